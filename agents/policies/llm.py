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

Batched: :meth:`LLMPolicy.act_batch` scores the candidates of several envs in one forward
pass; each page's prompt is encoded once, its candidates attached to it under a tree-shaped
attention mask (see :meth:`LLMPolicy.score`).

Example:
    >>> policy = LLMPolicy("runs/agent", seed=0)  # doctest: +SKIP
    >>> policy.reset(persona=3, goal="")  # doctest: +SKIP
    >>> policy.act(obs)  # doctest: +SKIP
    'click[product-123]'
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.policies.base import (
    action_form,
    candidate_actions,
    fill,
    is_template,
    is_valid_action,
    template_prefix,
)
from agents.profile import CHECKOUT_FIELDS, ProfileStream
from agents.tokens import EOS_TOKEN, encode, render_step
from simpersona_env.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from agents.model import AgentMeta

__all__ = ["Choice", "LLMPolicy", "PromptPersonaPolicy", "span_mask"]

# tokens kept free at the end of the context for the candidate action (encode truncates the
# prompt from its start when the page is longer)
_ACTION_RESERVE = 48


@dataclass
class _Slot:
    persona: int = -1
    goal: str = ""
    history: list[str] = field(default_factory=list)
    depth: int = 0  # pages behind the current one in the env's history (what `back` can undo)
    profile: dict[str, str] = field(default_factory=dict)  # checkout field id -> text
    country: str = ""  # the profile's country (the checkout's select)
    url: str | None = None
    queue: list[str] = field(default_factory=list)  # autofill's remaining fields, this page
    queue_url: str | None = None

    def queued(self, obs: Mapping[str, Any]) -> str | None:
        """The next action autofill queued for this page, if still on it and still valid."""
        while self.queue and str(obs.get("url", "")) == self.queue_url:
            action = self.queue.pop(0)
            if is_valid_action(action, obs):
                return action
        self.queue = []
        return None

    def observe(self, url: str) -> None:
        """Follow the env's history from the URLs: a new page after `back` is one step back."""
        if self.url is not None and url != self.url:
            self.depth = max(0, self.depth - 1) if self.history[-1:] == ["back"] else self.depth + 1
        self.url = url


@dataclass
class Choice:
    """What the policy chose and why (for analysis: the candidate distribution)."""

    action: str
    candidates: list[str]
    # an action autofill had queued: candidates [action], logprobs [0.0] (certain, unscored)
    logprobs: list[float]  # score of each candidate (prefix for templates): masked-decoding
    # log-probability, or the whole-string log-likelihood with decoding="joint"; less the
    # form's SFT log-weight for a balanced checkpoint (LLMPolicy.action_scores)


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
        max_prompts: pages scored per forward pass (memory bound).
        decoding: ``masked`` (default): the model decodes token by token with every token
            that leads to no valid action masked out, so a branch keeps the mass the model
            gives its first token (a small model that favours "click[product-" but cannot yet
            copy the exact id still clicks a product); ``joint``: candidates are weighted by
            their whole-string likelihood renormalized over the page (mass the model gives to
            ids absent from the page is lost, which favours short actions such as "stop").
        autofill: ``form`` (default; ``True`` too): when the model chooses to type into one of
            the checkout form's personal fields (e-mail, name, address, city, postcode), the
            text comes from a fake per-episode buyer profile
            (:func:`agents.profile.checkout_details`, the generator the traces were replayed
            with), and the form's other empty personal fields and its country follow on the
            next steps, one action each, as a browser's autofill completes a form once one
            field is picked. The model still decides to check out, to start filling and to
            place the order. ``field``: only the field the model chose is filled from the
            profile (it picks each field). ``False``: the model writes the text (a small
            model rarely writes a valid e-mail address).
        action_support: ``trained`` (default): offer only the actions whose form
            (:func:`~agents.policies.base.action_form`, e.g. ``click[product-*]``) occurs in
            the training traces (the checkpoint's ``action_forms``), when the page has any;
            ``all``: every action the page offers. The env offers forms the traces never use
            (typing into the search box instead of ``search[...]``, a quantity): the model's
            probability for them is unfounded, and masked decoding would hand a branch it
            barely opens all of that branch's mass.
        prior_correction: undo the resampling of a checkpoint trained with ``sft.balance``
            (its ``action_log_weights``): each candidate's score loses the log of how much more
            often SFT showed its action form, so the policy acts at the traces' rates. A form
            the weights do not cover counts as the most upweighted one. Off: the model's raw
            scores (a balanced agent then over-takes rare actions such as adding to cart).
        goal_search: ``span`` (default): in an episode with a goal, the text of a
            ``search[...]`` is decoded as a span of the goal's words (every token that would
            leave the goal is masked, and the text may end only at a word's end), so a small
            model that has learned *to* search but not yet to copy exactly searches words of
            the goal rather than a query it memorized; ``free``: unconstrained. Episodes
            without a goal (population simulation) always generate freely.
    """

    def __init__(self, checkpoint: str | Path | None = None, *, model: PreTrainedModel | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None, meta: AgentMeta | None = None,
                 n_personas: int | None = None, temperature: float = 1.0, seed: int = 0,
                 device: str | None = None, persona_mode: str | None = None,
                 descriptions: Mapping[int, str] | None = None, max_text_tokens: int = 16,
                 max_prompts: int = 8, decoding: str = "masked", autofill: bool | str = "form",
                 action_support: str = "trained", prior_correction: bool = True,
                 goal_search: str = "span"):
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
        if decoding not in ("masked", "joint"):
            raise ConfigError(f"policy.decoding={decoding!r}: choose masked or joint")
        self.decoding = decoding
        if goal_search not in ("span", "free"):
            raise ConfigError(f"policy.goal_search={goal_search!r}: choose span or free")
        self.goal_search = goal_search
        self._vocab: list[str] | None = None  # token id -> its text (span decoding)
        self._vocab_index: dict[str, list[int]] = {}  # first character -> token ids
        if action_support not in ("trained", "all"):
            raise ConfigError(f"policy.action_support={action_support!r}: choose trained or all")
        self.support = (frozenset(meta.action_forms) if action_support == "trained"
                        else frozenset())
        modes = {True: "form", False: "", "form": "form", "field": "field", "off": ""}
        if not isinstance(autofill, (bool, str)) or autofill not in modes:
            raise ConfigError(f"policy.autofill={autofill!r}: choose form (the whole form from "
                              "the first field), field (each field the model picks) or false")
        self.autofill = modes[autofill]
        self.log_weights = dict(meta.action_log_weights) if prior_correction else {}
        self._profiles = ProfileStream("policy", seed)  # each episode its own checkout profile
        self.tokenizer, self.model, self.meta = tokenizer, model.eval(), meta
        self.persona_mode = persona_mode or meta.persona_mode
        self.descriptions = {int(k): v for k, v in (descriptions or meta.descriptions or {}).items()}
        if self.persona_mode == "text" and not self.descriptions:
            raise ConfigError("persona_mode='text' needs descriptions (type index -> text)")
        self.temperature = temperature
        self.max_text_tokens = max_text_tokens
        self.max_prompts = max_prompts
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        params = inspect.signature(model.forward).parameters
        # the KV-cache argument is ``cache`` in transformers 5, ``past_key_values`` before
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._slice_logits = "logits_to_keep" in params
        self.slots: list[_Slot] = [_Slot()]
        self.last_choices: list[Choice] = []

    # -- the protocol --------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Restart sampling and the checkout profiles at ``seed`` (the simulation runners call
        it before every buyer, so a buyer acts the same on any worker)."""
        self.generator.manual_seed(int(seed))
        self._profiles.reseed(seed)

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
        self.slots = []
        for k, g in zip(personas, goals):
            profile, country = self._profiles.next()
            self.slots.append(_Slot(int(k), str(g or ""), profile=profile, country=country))

    def act_batch(self, observations: Sequence[Mapping[str, Any]]) -> list[str]:
        """One action per slot, in one batched pass over all the envs' candidates."""
        if len(observations) != len(self.slots):
            raise ConfigError(f"{len(observations)} observations for {len(self.slots)} slots; "
                              "call reset_batch with one persona per env first")
        for obs, slot in zip(observations, self.slots):
            slot.observe(str(obs.get("url", "")))
        # a slot whose next action autofill queued needs no scoring: only the others go
        # through the model
        queued = [slot.queued(obs) for obs, slot in zip(observations, self.slots)]
        todo = [i for i, q in enumerate(queued) if q is None]
        prompts = {i: self._prompt(observations[i], self.slots[i]) for i in todo}
        cands = {i: self.candidates(observations[i], self.slots[i].depth > 0) for i in todo}
        scored = self.action_scores([prompts[i] for i in todo], [cands[i] for i in todo])
        scores = dict(zip(todo, scored))
        actions = []
        self.last_choices = []
        for i, (obs, slot) in enumerate(zip(observations, self.slots)):
            if queued[i] is not None:
                action, choice = queued[i], Choice(queued[i], [queued[i]], [0.0])
            else:
                action = self._choose(prompts[i], obs, cands[i], scores[i], slot)
                choice = Choice(action, cands[i], scores[i])
            slot.history.append(action)
            actions.append(action)
            self.last_choices.append(choice)
        return actions

    def candidates(self, observation: Mapping[str, Any], can_go_back: bool) -> list[str]:
        """The actions the policy chooses among on this page (see ``action_support``)."""
        # `back` only where there is a page to go back to
        cands = [a for a in candidate_actions(observation) if can_go_back or a != "back"]
        if self.support:
            known = [a for a in cands if action_form(a) in self.support]
            cands = known or cands  # a page with no trained form: everything it offers
        return cands

    def action_scores(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[str]],
                      ) -> list[list[float]]:
        """The scores the policy samples from: :meth:`score` in the policy's decoding mode,
        less each candidate form's SFT log-weight (``prior_correction``)."""
        scores = self.score(prompts, candidates, masked=self.decoding == "masked")
        if not self.log_weights:
            return scores
        top = max(self.log_weights.values())
        return [[s - self.log_weights.get(action_form(c), top) for s, c in zip(row, cs)]
                for row, cs in zip(scores, candidates)]

    def action_probabilities(self, observation: Mapping[str, Any], history: Sequence[str] = (),
                             persona: int | None = None, goal: str = "") -> dict[str, float]:
        """Candidate action -> probability on ``observation`` after ``history`` (the softmax of
        the scores the policy samples from, at temperature 1), as buyer type ``persona`` (the
        observation's when ``None``). For probing a checkpoint; episodes go through
        :meth:`act_batch`."""
        import torch

        cands = self.candidates(observation, bool(history))
        prompt = self.prompt_ids(observation, history, persona=persona, goal=goal)
        scores = torch.tensor(self.action_scores([prompt], [cands])[0], dtype=torch.float64)
        return dict(zip(cands, torch.softmax(scores, 0).tolist()))

    def prompt_ids(self, observation: Mapping[str, Any], history: Sequence[str] = (),
                   persona: int | None = None, goal: str = "") -> list[int]:
        """The token ids of the prompt the policy scores its candidates after, on
        ``observation`` after ``history``, as buyer type ``persona`` (the observation's
        when ``None``): the input of :meth:`action_scores`."""
        obs = dict(observation)
        if persona is not None:
            obs["persona"] = persona
        return self._prompt(obs, _teacher_slot(obs, history, persona, goal))

    def next_actions(self, observations: Sequence[Mapping[str, Any]],
                     histories: Sequence[Sequence[str]], *,
                     personas: Sequence[int] | None = None, goals: Sequence[str] | None = None,
                     profiles: Sequence[Mapping[str, str]] | None = None) -> list[Choice]:
        """What the policy does on each observation after ``histories[i]``, given rather than
        its own (teacher forcing: scoring a checkpoint step by step against traces), in one
        batched pass: at the policy's temperature (0: greedy), as buyer type
        ``personas[i]`` with goal ``goals[i]``, autofill typing ``profiles[i]`` (checkout
        field id -> text). The episodes of :meth:`reset_batch` are left as they were."""
        n = len(observations)
        given = [x for x in (personas, goals, profiles) if x is not None]
        if len(histories) != n or any(len(x) != n for x in given):
            raise ConfigError(f"{n} observations: give one history (and persona, goal, "
                              "profile where given) per observation")
        slots = [_teacher_slot(obs, histories[i],
                               personas[i] if personas is not None else None,
                               goals[i] if goals is not None else "",
                               profiles[i] if profiles is not None else None)
                 for i, obs in enumerate(observations)]
        prompts = [self._prompt(o, sl) for o, sl in zip(observations, slots)]
        cands = [self.candidates(o, bool(sl.history)) for o, sl in zip(observations, slots)]
        scores = self.action_scores(prompts, cands)
        return [Choice(self._choose(p, o, c, sc, sl), c, sc)
                for p, o, c, sc, sl in zip(prompts, observations, cands, scores, slots)]

    # -- internals -----------------------------------------------------------------------
    def _prompt(self, obs: Mapping[str, Any], slot: _Slot) -> list[int]:
        obs = dict(obs)
        # the env's persona/goal win; the ones given at reset fill in when the env has none
        if int(obs.get("persona", -1) if obs.get("persona") is not None else -1) < 0:
            obs["persona"] = slot.persona
        obs["goal"] = _goal(obs, slot)
        k = int(obs["persona"])
        mode = self.persona_mode if k >= 0 else "none"  # no type: no persona line at all
        r = render_step(obs, slot.history, persona=mode,  # type: ignore[arg-type]
                        description=self.descriptions.get(k),
                        n_history=self.meta.n_history, max_obs_chars=self.meta.max_obs_chars,
                        drop_chrome=self.meta.drop_chrome)
        enc = encode(self.tokenizer, r.prompt, "", max_length=self.meta.max_length - _ACTION_RESERVE)
        return enc.input_ids[:-1]  # drop the completion's end token: the prompt alone

    def _candidate_ids(self, action: str) -> list[int]:
        if is_template(action):
            return list(self.tokenizer(template_prefix(action), add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(action, add_special_tokens=False)["input_ids"]) + [self.eos_id]

    def score(self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[str]],
              masked: bool = False) -> list[list[float]]:
        """Log-likelihood of each candidate action after each prompt (token ids).

        With ``masked``, the log-probability of decoding the candidate when every token that
        leads to no candidate is masked out (renormalized at each branch of the candidates'
        token trie), so the candidates' probabilities sum to one.

        Each prompt and *all* its candidates form one sequence, ``prompt + cand_1 + cand_2 +
        ...``, with an attention mask that lets a candidate's tokens see the prompt and their
        own earlier tokens only, and positions that restart after the prompt for each
        candidate: one forward pass scores every candidate of ``max_prompts`` pages at once,
        and the prompt is encoded once (not once per candidate).
        """
        import torch

        cand_ids = [[self._candidate_ids(c) for c in cs] for cs in candidates]
        out: list[list[Any]] = [[0.0] * len(cs) for cs in candidates]
        # pages of similar length share a pass: less padding
        order = sorted(range(len(prompts)),
                       key=lambda b: len(prompts[b]) + sum(map(len, cand_ids[b])))
        with torch.inference_mode():
            for start in range(0, len(order), self.max_prompts):
                self._score_group(order[start:start + self.max_prompts], prompts, cand_ids, out)
        if masked:
            return [_masked_scores(ids, per_token) for ids, per_token in zip(cand_ids, out)]
        return [[float(sum(t)) for t in row] for row in out]

    def _score_group(self, group: list[int], prompts: Sequence[Sequence[int]],
                     cand_ids: list[list[list[int]]], out: list[list[float]]) -> None:
        import torch

        dtype = next(self.model.parameters()).dtype
        lengths = [len(prompts[b]) + sum(map(len, cand_ids[b])) for b in group]
        t_max = max(lengths)
        ids = torch.full((len(group), t_max), self.pad_id, dtype=torch.long)
        pos = torch.zeros((len(group), t_max), dtype=torch.long)
        allow = torch.zeros((len(group), t_max, t_max), dtype=torch.bool)  # [query, key]
        reads: list[tuple[int, int, list[int], list[int]]] = []  # (b, j, read positions, ids)
        for i, b in enumerate(group):
            lp = len(prompts[b])
            ids[i, :lp] = torch.tensor(prompts[b])
            pos[i, :lp] = torch.arange(lp)
            allow[i, :lp, :lp] = torch.ones(lp, lp, dtype=torch.bool).tril()
            s = lp
            for j, t in enumerate(cand_ids[b]):
                n = len(t)
                ids[i, s:s + n] = torch.tensor(t)
                pos[i, s:s + n] = torch.arange(lp, lp + n)  # every candidate follows the prompt
                allow[i, s:s + n, :lp] = True
                allow[i, s:s + n, s:s + n] = torch.ones(n, n, dtype=torch.bool).tril()
                # token 0 is read at the prompt's last position, token m at the candidate's m-1
                reads.append((i, j, [lp - 1] + list(range(s, s + n - 1)), t))
                s += n
            allow[i, s:, s:] = torch.eye(t_max - s, dtype=torch.bool)  # padding: itself only
        # an additive mask works with every attention kernel (eager, sdpa)
        mask = torch.zeros(allow.shape, dtype=dtype).masked_fill(~allow, torch.finfo(dtype).min)
        # logits are read only from the last prompt position on: skip the LM head elsewhere
        first = min(len(prompts[b]) for b in group) - 1
        keep = ({"logits_to_keep": torch.arange(first, t_max, device=self.device)}
                if self._slice_logits else {})
        logits = self.model(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                            attention_mask=mask[:, None].to(self.device), **keep).logits
        shift = first if keep else 0  # logits: (G, T - shift, V)
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        for i, j, at, t in reads:  # per-token log-probabilities of each candidate
            out[group[i]][j] = logp[i, [a - shift for a in at], t].tolist()

    def _sample_index(self, scores: Sequence[float]) -> int:
        import torch

        s = torch.tensor(scores, dtype=torch.float64)
        if self.temperature == 0:
            return int(s.argmax())
        probs = torch.softmax(s / self.temperature, dim=0)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def _choose(self, prompt: list[int], obs: Mapping[str, Any], cands: list[str],
                scores: list[float], slot: _Slot) -> str:
        i = self._sample_index(scores)
        if not is_template(cands[i]):
            return cands[i]
        known = self._autofill_text(cands[i], slot)
        if known is not None and self.autofill == "form":
            slot.queue, slot.queue_url = _rest_of_form(obs, cands[i], slot), str(obs.get("url", ""))
        goal = _goal(obs, slot)
        span = (goal if self.goal_search == "span" and goal.strip()
                and cands[i].startswith("search[") else None)
        text = (known if known is not None
                else _clean(self._generate_text(prompt, template_prefix(cands[i]),
                                                      span=span)))
        action = fill(cands[i], text)
        if text.strip() and is_valid_action(action, obs):
            return action
        # fallback: the most likely concrete action (always valid: the page offered it)
        concrete = [(s, c) for s, c in zip(scores, cands) if not is_template(c)]
        return max(concrete)[1] if concrete else "stop"

    def _autofill_text(self, template: str, slot: _Slot) -> str | None:
        """The profile's text for a ``type[<field>][<text>]`` template, else ``None``."""
        if not self.autofill or not template.startswith("type["):
            return None
        return slot.profile.get(template[len("type["):template.index("]")])

    def _generate_text(self, prompt: list[int], prefix: str, span: str | None = None) -> str:
        """Sample the free text of a template after ``prompt + prefix``, up to ``]``; with
        ``span``, only text that is a span of its words (:func:`span_mask`)."""
        import torch

        ids = prompt + list(self.tokenizer(prefix, add_special_tokens=False)["input_ids"])
        out: list[int] = []
        if span is not None and self._vocab is None:
            special = set(self.tokenizer.all_special_ids)
            self._vocab = ["" if i in special else self.tokenizer.decode([i])
                           for i in range(len(self.tokenizer))]
            self._vocab_index = first_char_index(self._vocab)
        with torch.inference_mode():
            res = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            for _ in range(self.max_text_tokens):
                logits = res.logits[0, -1].float().cpu()
                if span is not None:
                    allowed = span_mask(self._vocab or [], self.tokenizer.decode(out), span,
                                        self.eos_id, self._vocab_index)
                    if not any(allowed):
                        break
                    keep = torch.zeros(logits.shape[0], dtype=torch.bool)  # model rows >= vocab
                    keep[:len(allowed)] = torch.tensor(allowed[:logits.shape[0]])
                    logits = logits.masked_fill(~keep, float("-inf"))
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


def _teacher_slot(obs: Mapping[str, Any], history: Sequence[str], persona: int | None,
                  goal: str, profile: Mapping[str, str] | None = None) -> _Slot:
    """The episode state of one teacher-forced step: ``history`` given, as buyer type
    ``persona`` (the observation's when ``None``, else none)."""
    if persona is None:
        persona = obs.get("persona") if obs.get("persona") is not None else -1
    return _Slot(int(persona), str(goal or ""), list(history), profile=dict(profile or {}))


def _rest_of_form(obs: Mapping[str, Any], chosen: str, slot: _Slot) -> list[str]:
    """What autofill types after the field the model chose: the rest of the form brought to
    the episode's profile (:func:`~simpersona_env.env.actions.fill_form`, which the env's
    oracle fills the checkout with too)."""
    from simpersona_env.env.actions import fill_form

    first = f"type[{chosen[len('type['):chosen.index(']')]}]"
    fields = {f: v for f, v in slot.profile.items() if f in CHECKOUT_FIELDS}
    return [a for a in fill_form(obs, fields, slot.country or None) if not a.startswith(first)]


def _masked_scores(cand_ids: Sequence[Sequence[int]], token_logps: Sequence[Sequence[float]]
                   ) -> list[float]:
    """Scores of masked decoding from each candidate's per-token log-probabilities.

    Candidates sharing a token prefix share its context, so the log-probability of each
    allowed next token at a trie node is read off any candidate through it; renormalizing
    over the allowed tokens at each node is what masking the others out at decoding does.

    Example:
        >>> s = _masked_scores([[1, 2], [1, 3], [4]], [[-0.1, -1.6], [-0.1, -2.3], [-3.0]])
        >>> round(sum(math.exp(x) for x in s), 6)
        1.0
    """
    children: dict[tuple[int, ...], dict[int, float]] = {}
    for ids, lps in zip(cand_ids, token_logps):
        for m, (tok, lp) in enumerate(zip(ids, lps)):
            children.setdefault(tuple(ids[:m]), {})[tok] = lp
    norm = {prefix: math.log(sum(math.exp(v) for v in ch.values()))
            for prefix, ch in children.items()}
    return [sum(lp - norm[tuple(ids[:m])] for m, lp in enumerate(lps))
            for ids, lps in zip(cand_ids, token_logps)]


def _goal(obs: Mapping[str, Any], slot: _Slot) -> str:
    """The episode's goal: the env's when it shows one, else the one given at reset."""
    return str(obs.get("goal") or "") or slot.goal


def span_mask(vocab: Sequence[str], text: str, span: str, eos_id: int,
              index: Mapping[str, Sequence[int]] | None = None) -> list[bool]:
    """Which tokens may follow ``text`` so that the text stays a span of ``span``'s words.

    Case is ignored, and a run of spaces in ``span`` counts as one. The text starts at a
    word of ``span`` (or the space before one) and may end (``eos_id``, or a token starting
    with ``]``, which closes the template) only at the end of a word. ``index`` is :func:`first_char_index` of ``vocab``
    (built when not given; a policy keeps it, since it costs one pass over the vocabulary).

    Example:
        >>> vocab = ["red", " mug", " cup", "]", "<eos>"]
        >>> span_mask(vocab, "", "Buy a red mug", eos_id=4)
        [True, True, False, False, False]
        >>> span_mask(vocab, "red", "Buy a red mug", eos_id=4)
        [False, True, False, True, True]
    """
    goal = " ".join(span.split()).lower()
    done = text.lower()
    starts = [i for i in range(len(goal))
              if i == 0 or goal[i] == " " or goal[i - 1] == " "]
    ends = [i + len(done) for i in starts if goal.startswith(done, i)]
    may_end = bool(done.strip()) and any(
        e == len(goal) or not goal[e].isalnum() for e in ends)
    allowed = [False] * len(vocab)
    # only tokens whose first character is the goal's next one can continue it
    by_first = first_char_index(vocab) if index is None else index
    for e in ends:
        if e < len(goal):
            for i in by_first.get(goal[e], ()):
                allowed[i] = allowed[i] or goal.startswith(vocab[i].lower(), e)
    for i in by_first.get("]", ()):
        allowed[i] = may_end
    if 0 <= eos_id < len(vocab):
        allowed[eos_id] = may_end
    return allowed


def first_char_index(vocab: Sequence[str]) -> dict[str, list[int]]:
    """Lower-cased first character -> ids of the (non-empty) tokens that start with it."""
    index: dict[str, list[int]] = {}
    for i, tok in enumerate(vocab):
        if tok:
            index.setdefault(tok[0].lower(), []).append(i)
    return index


def _clean(text: str) -> str:
    """Generated text, or "" when it is not printable text (broken bytes, control chars)."""
    return text if text.isprintable() and "\ufffd" not in text else ""


def _cache_of(res: Any) -> Any:
    # transformers 5 names the output's KV cache ``cache``; older versions ``past_key_values``
    cache = getattr(res, "cache", None)
    return cache if cache is not None else res.past_key_values


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
