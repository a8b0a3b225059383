"""The persona-token LLM policy and the prompt-persona baseline.

The policy never emits an action the page does not offer: it scores every candidate action of
the page (:func:`agents.policies.base.candidate_actions`) by its log-likelihood under the
model given the rendered prompt, and samples one (seeded; ``temperature=0`` takes the best).
A concrete candidate (``click[add-to-cart]``) is scored with its end token, so it is the
probability of exactly that action; a template with free text (``search[<text>]``) is scored
by its prefix (``search[``), the total probability of all actions of that form. When a
template is drawn, the free text is generated token by token after the prefix, up to ``]``;
if the completed action does not validate (empty text, unknown option), the best concrete
candidate is taken instead.

Batched: :meth:`LLMPolicy.act_batch` encodes the prompts of several envs in one forward pass
(left-padded) and scores all their candidates in a second one that reuses the prompts' KV
cache, so the prompt is never recomputed per candidate.

Example:
    >>> policy = LLMPolicy("runs/agent", seed=0)  # doctest: +SKIP
    >>> policy.reset(persona=3, goal="")  # doctest: +SKIP
    >>> policy.act(obs)  # doctest: +SKIP
    'click[product-123]'
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.policies.base import (candidate_actions, fill, is_template, is_valid_action,
                                  template_prefix)
from agents.tokens import EOS_TOKEN, encode, render_step
from simpersona_env.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from agents.model import AgentMeta

__all__ = ["LLMPolicy", "PromptPersonaPolicy", "Choice"]

# tokens kept free at the end of the context for the candidate action (encode truncates the
# prompt from its start when the page is longer)
_ACTION_RESERVE = 48


@dataclass
class _Slot:
    persona: int = -1
    goal: str = ""
    history: list[str] = field(default_factory=list)


@dataclass
class Choice:
    """What the policy chose and why (for analysis: the candidate distribution)."""

    action: str
    candidates: list[str]
    logprobs: list[float]  # model log-likelihood of each candidate (prefix for templates)


class LLMPolicy:
    """The persona-token agent: a causal LM fine-tuned on traces, constrained to valid actions.

    Args:
        checkpoint: an agent folder from ``simpersona agent train``; or pass ``model``,
            ``tokenizer`` and ``meta`` directly.
        n_personas: K of the population it will play; checked against the checkpoint.
        temperature: sampling temperature over candidates and free text; 0 is greedy.
        seed: seeds all sampling (a torch generator; not reseeded at ``reset``).
        device: ``cpu``, ``cuda``; default CUDA when available.
        persona_mode: override the checkpoint's (``token``, ``none``, ``text``).
        descriptions: type index -> text, for ``persona_mode="text"``.
        max_text_tokens: longest free text generated for a template.
        max_rows: candidate rows scored per forward pass (memory bound).
        max_prompts: prompts encoded per forward pass (memory bound).
    """

    def __init__(self, checkpoint: str | Path | None = None, *, model: PreTrainedModel | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None, meta: AgentMeta | None = None,
                 n_personas: int | None = None, temperature: float = 1.0, seed: int = 0,
                 device: str | None = None, persona_mode: str | None = None,
                 descriptions: Mapping[int, str] | None = None, max_text_tokens: int = 16,
                 max_rows: int = 256, max_prompts: int = 16):
        import torch

        from agents.model import AgentMeta, load_agent

        if checkpoint is not None:
            tokenizer, model, meta = load_agent(checkpoint, n_personas=n_personas, device=device)
        elif model is None or tokenizer is None:
            raise ConfigError("LLMPolicy needs a checkpoint folder, or model and tokenizer")
        if meta is None:
            from agents.tokens import count_persona_tokens

            meta = AgentMeta(n_personas=count_persona_tokens(tokenizer))
        if temperature < 0:
            raise ConfigError(f"policy.temperature={temperature} must be >= 0 (0 is greedy)")
        self.tokenizer, self.model, self.meta = tokenizer, model.eval(), meta
        self.persona_mode = persona_mode or meta.persona_mode
        self.descriptions = {int(k): v for k, v in (descriptions or meta.descriptions or {}).items()}
        if self.persona_mode == "text" and not self.descriptions:
            raise ConfigError("persona_mode='text' needs descriptions (type index -> text)")
        self.temperature = temperature
        self.max_text_tokens = max_text_tokens
        self.max_rows = max_rows
        self.max_prompts = max_prompts
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        params = inspect.signature(model.forward).parameters
        # the KV-cache argument is ``cache`` in transformers 5, ``past_key_values`` before
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # only the prompt's last logits are needed: skip the (L, V) rest when the model can
        self._keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.slots: list[_Slot] = [_Slot()]
        self.last_choices: list[Choice] = []

    # -- the protocol --------------------------------------------------------------------
    def reset(self, persona: int, goal: str) -> None:
        self.reset_batch([persona], [goal])

    def act(self, observation: Mapping[str, Any]) -> str:
        return self.act_batch([observation])[0]

    def reset_batch(self, personas: Sequence[int], goals: Sequence[str]) -> None:
        """Start one episode per slot (slot ``i`` is env ``i`` in :meth:`act_batch`)."""
        if len(personas) != len(goals):
            raise ConfigError(f"{len(personas)} personas but {len(goals)} goals")
        for k in personas:
            if self.persona_mode == "token" and int(k) >= self.meta.n_personas:
                raise CheckpointError(
                    f"buyer type {k} has no persona token: the agent was trained with "
                    f"K={self.meta.n_personas}; use the population the agent was trained for")
            if self.persona_mode == "text" and int(k) >= 0 and int(k) not in self.descriptions:
                raise ConfigError(f"no description for buyer type {k}; descriptions cover "
                                  f"{sorted(self.descriptions)}")
        self.slots = [_Slot(int(k), str(g or "")) for k, g in zip(personas, goals)]

    def act_batch(self, observations: Sequence[Mapping[str, Any]]) -> list[str]:
        """One action per slot, in one batched pass over all the envs' candidates."""
        if len(observations) != len(self.slots):
            raise ConfigError(f"{len(observations)} observations for {len(self.slots)} slots; "
                              "call reset_batch with one persona per env first")
        prompts = [self._prompt(obs, slot) for obs, slot in zip(observations, self.slots)]
        # no page to go back to before the first action of an episode
        cands = [[a for a in candidate_actions(obs) if slot.history or a != "back"]
                 for obs, slot in zip(observations, self.slots)]
        scores = self.score(prompts, cands)
        actions = []
        self.last_choices = []
        for i, (obs, slot) in enumerate(zip(observations, self.slots)):
            action = self._choose(prompts[i], obs, cands[i], scores[i])
            slot.history.append(action)
            actions.append(action)
            self.last_choices.append(Choice(action, cands[i], scores[i]))
        return actions

    # -- internals -----------------------------------------------------------------------
    def _prompt(self, obs: Mapping[str, Any], slot: _Slot) -> list[int]:
        obs = dict(obs)
        # the env's persona/goal win; the ones given at reset fill in when the env has none
        if int(obs.get("persona", -1) if obs.get("persona") is not None else -1) < 0:
            obs["persona"] = slot.persona
        if not str(obs.get("goal") or ""):
            obs["goal"] = slot.goal
        r = render_step(obs, slot.history, persona=self.persona_mode,  # type: ignore[arg-type]
                        description=self.descriptions.get(int(obs["persona"])),
                        n_history=self.meta.n_history, max_obs_chars=self.meta.max_obs_chars)
        enc = encode(self.tokenizer, r.prompt, "", max_length=self.meta.max_length - _ACTION_RESERVE)
        return enc.input_ids[:-1]  # drop the completion's end token: the prompt alone

    def _candidate_ids(self, action: str) -> list[int]:
        if is_template(action):
            return list(self.tokenizer(template_prefix(action), add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(action, add_special_tokens=False)["input_ids"]) + [self.eos_id]

    def score(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[str]],
              ) -> list[list[float]]:
        """Log-likelihood of each candidate action after each prompt (token ids).

        One forward pass encodes the (left-padded) prompts with a KV cache; candidate rows
        then reuse their prompt's cache rows (``reorder_cache`` repeats them), in chunks of
        ``max_rows``.
        """
        import torch

        cand_ids = [[self._candidate_ids(c) for c in cs] for cs in candidates]
        out: list[list[float]] = [[0.0] * len(cs) for cs in candidates]
        rows = [(b, j) for b, cs in enumerate(cand_ids) for j in range(len(cs))]
        with torch.inference_mode():
            for start in range(0, len(prompts), self.max_prompts):
                group = list(range(start, min(len(prompts), start + self.max_prompts)))
                self._score_group(group, prompts, cand_ids,
                                  [r for r in rows if group[0] <= r[0] <= group[-1]], out)
        return out

    def _score_group(self, group: list[int], prompts: Sequence[Sequence[int]],
                     cand_ids: list[list[list[int]]], rows: list[tuple[int, int]],
                     out: list[list[float]]) -> None:
        import torch

        dev = self.device
        lp = max(len(prompts[b]) for b in group)
        # left padding: every prompt ends at column lp-1, where the first action token is read
        ids = torch.full((len(group), lp), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), lp), dtype=torch.long)
        for i, b in enumerate(group):
            ids[i, lp - len(prompts[b]):] = torch.tensor(prompts[b])
            mask[i, lp - len(prompts[b]):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                         position_ids=pos.to(dev), use_cache=True, **self._keep_last)
        first_logp = torch.log_softmax(res.logits[:, -1].float(), dim=-1)  # (G, V)
        where = {b: i for i, b in enumerate(group)}
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start:start + self.max_rows]
            lc = max(len(cand_ids[b][j]) for b, j in chunk)
            c_ids = torch.full((len(chunk), lc), self.pad_id, dtype=torch.long)
            c_mask = torch.zeros((len(chunk), lc), dtype=torch.long)
            for r, (b, j) in enumerate(chunk):
                t = cand_ids[b][j]
                c_ids[r, :len(t)] = torch.tensor(t)
                c_mask[r, :len(t)] = 1
            src = torch.tensor([where[b] for b, _ in chunk])
            cache = _repeat_cache(_cache_of(res), src.to(dev))
            full_mask = torch.cat([mask[src], c_mask], dim=1)  # (R, lp + lc)
            c_pos = mask[src].sum(-1, keepdim=True) + torch.arange(lc)  # continue each prompt
            logits = self.model(input_ids=c_ids.to(dev), attention_mask=full_mask.to(dev),
                                position_ids=c_pos.to(dev), use_cache=True,
                                **{self._cache_kw: cache}).logits.float()  # (R, lc, V)
            logp = torch.log_softmax(logits, dim=-1).cpu()
            # token t of a candidate is predicted at t-1 (t=0: at the prompt's last column)
            tok_lp = torch.cat([first_logp[src].cpu().gather(1, c_ids[:, :1]),
                                logp[:, :-1].gather(2, c_ids[:, 1:, None]).squeeze(-1)], dim=1)
            sums = (tok_lp * c_mask).sum(-1)
            for r, (b, j) in enumerate(chunk):
                out[b][j] = float(sums[r])

    def _sample_index(self, scores: Sequence[float]) -> int:
        import torch

        s = torch.tensor(scores, dtype=torch.float64)
        if self.temperature == 0:
            return int(s.argmax())
        probs = torch.softmax(s / self.temperature, dim=0)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def _choose(self, prompt: list[int], obs: Mapping[str, Any], cands: list[str],
                scores: list[float]) -> str:
        i = self._sample_index(scores)
        if not is_template(cands[i]):
            return cands[i]
        text = _clean(self._generate_text(prompt, template_prefix(cands[i])))
        action = fill(cands[i], text)
        if text.strip() and is_valid_action(action, obs):
            return action
        # fallback: the most likely concrete action (always valid: the page offered it)
        concrete = [(s, c) for s, c in zip(scores, cands) if not is_template(c)]
        return max(concrete)[1] if concrete else "stop"

    def _generate_text(self, prompt: list[int], prefix: str) -> str:
        """Sample the free text of a template after ``prompt + prefix``, up to ``]``."""
        import torch

        ids = prompt + list(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])
        out: list[int] = []
        with torch.inference_mode():
            res = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            for _ in range(self.max_text_tokens):
                logits = res.logits[0, -1].float().cpu()
                if self.temperature == 0:
                    nxt = int(logits.argmax())
                else:
                    probs = torch.softmax(logits / self.temperature, dim=-1)
                    nxt = int(torch.multinomial(probs, 1, generator=self.generator))
                if nxt == self.eos_id:
                    break
                out.append(nxt)
                text = self.tokenizer.decode(out)
                if "]" in text:
                    return text[: text.index("]")]
                res = self.model(input_ids=torch.tensor([[nxt]], device=self.device),
                                 use_cache=True, **{self._cache_kw: _cache_of(res)})
        return self.tokenizer.decode(out, skip_special_tokens=True).split("]")[0]


def _clean(text: str) -> str:
    """Generated text, or "" when it is not printable text (broken bytes, control chars)."""
    return text if text.isprintable() and "\ufffd" not in text else ""


def _cache_of(res: Any) -> Any:
    # transformers 5 names the output's KV cache ``cache``; older versions ``past_key_values``
    cache = getattr(res, "cache", None)
    return cache if cache is not None else res.past_key_values


def _repeat_cache(cache: Any, index: torch.Tensor) -> Any:
    """A copy of a KV cache whose batch rows are ``cache[index]`` (rows may repeat)."""
    import copy

    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    new.reorder_cache(index)  # index_select along the batch dim, into the copied layers
    return new


class PromptPersonaPolicy(LLMPolicy):
    """The hand-crafted persona baseline: the type is described in words, not by a token.

    Same model family and decoding as :class:`LLMPolicy`; the prompt's first line is
    ``persona: <description of the type>`` (a model trained with ``sft.persona=text``, or any
    causal LM).

    Args:
        checkpoint: the agent folder.
        descriptions: type index -> hand-written description (defaults to the checkpoint's).
        **kwargs: as :class:`LLMPolicy`.
    """

    def __init__(self, checkpoint: str | Path | None = None, *,
                 descriptions: Mapping[int, str] | None = None, **kwargs: Any):
        super().__init__(checkpoint, persona_mode="text", descriptions=descriptions, **kwargs)
