"""SimPersona agents: policies for the storefront env, persona tokens and their SFT.

Not the unrelated PyPI package ``agents``: this is the repository's own package (a test
checks that ``import agents`` resolves here). Importing it is cheap: torch, transformers and
TRL load inside the functions that need them.

Topics:

- policies (one protocol, ``reset(persona, goal)`` / ``act(observation)``):
  :mod:`agents.policies` (random, rule-based buyer, persona-token LLM, prompt-persona
  baseline, callable and OpenAI-compatible adapters);
- persona tokens, the prompt rendering and the loss mask: :mod:`agents.tokens`;
- traces: :mod:`agents.traces` (``Episode``, ``Step``, JSONL);
- the model: :mod:`agents.model`, :mod:`agents.tokenizer`; training: :mod:`agents.sft`,
  ``simpersona agent train`` (:func:`agents.commands.train`).

Example:
    >>> import agents
    >>> agents.persona_token(2)
    '<persona_2>'
"""

from __future__ import annotations

from agents.tokens import (
                           PERSONA_TOKEN_FORMAT,
                           add_persona_tokens,
                           encode,
                           persona_token,
                           persona_tokens,
                           render_step,
)
from agents.traces import Episode, Step, read_episodes, write_episodes

__all__ = [
    # persona tokens and rendering
    "PERSONA_TOKEN_FORMAT", "persona_token", "persona_tokens", "add_persona_tokens",
    "render_step", "encode",
    # traces
    "Episode", "Step", "read_episodes", "write_episodes",
]
