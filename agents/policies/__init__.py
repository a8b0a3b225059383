"""Policies behind one protocol: ``reset(persona, goal)`` and ``act(observation) -> action``.

Importing this package is cheap; a policy's module (and torch, for the LLM ones) loads when
the policy is first used.

Example:
    >>> from agents.policies import RandomPolicy
    >>> RandomPolicy(seed=0).reset(-1, "")
"""

from __future__ import annotations

import importlib
from typing import Any

from agents.policies.base import BatchPolicy, Policy

__all__ = [
    # protocol
    "Policy", "BatchPolicy",
    # baselines
    "RandomPolicy", "RuleBasedBuyer", "TypeProfile",
    # language-model agents
    "LLMPolicy", "PromptPersonaPolicy",
    # outside agents
    "CallablePolicy", "OpenAIChatPolicy",
]

_LAZY = {
    "RandomPolicy": "agents.policies.random",
    "RuleBasedBuyer": "agents.policies.rule_based",
    "TypeProfile": "agents.policies.rule_based",
    "LLMPolicy": "agents.policies.llm",
    "PromptPersonaPolicy": "agents.policies.llm",
    "CallablePolicy": "agents.policies.external",
    "OpenAIChatPolicy": "agents.policies.external",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents.policies' has no attribute {name!r}")
