"""Quality of a trained agent on held-out traces.

- :func:`next_action_match`: the share of held-out steps where the policy's greedy action
  equals the buyer's, overall and per type (teacher-forced: the history shown is the trace's).
  Run it on the persona-token agent, the no-persona variant and the prompt-persona baseline
  to compare them. It also gives the calibration of each action form: the policy's mean
  probability of the form on those steps (temperature 1) beside the share of steps that took
  it, so a form the agent under- or over-takes shows (adding to cart, for one).
- :func:`persona_swap_divergence`: on the same observations, how much the distribution over
  the page's actions changes when the persona is swapped from type ``a`` to type ``b``
  (Jensen-Shannon divergence, bits, averaged over observations), as a K x K matrix. Zero
  everywhere means the token is ignored.

Example:
    >>> policy = LLMPolicy("runs/agent", temperature=0)  # doctest: +SKIP
    >>> next_action_match(policy, read_episodes("heldout.jsonl"))["overall"]  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.traces import Episode, Step

if TYPE_CHECKING:
    from agents.policies.llm import LLMPolicy

__all__ = ["STEERS_BITS", "next_action_match", "persona_swap_divergence", "plot_divergence",
           "steering_words"]

#: Mean persona-swap divergence (bits) from which the persona token steers the agent: ~0.001
#: when the token is ignored, 0.087-0.107 for the two-epoch agents whose types steer
#: (measured on the REES46 sample, docs/agents.md).
STEERS_BITS = 0.05


def _steps(episodes: Sequence[Episode], max_steps: int | None):
    n = 0
    for ep in episodes:
        history: list[str] = []
        for step in ep.steps:
            if max_steps is not None and n >= max_steps:
                return
            yield ep, step, list(history)
            history.append(step.action)
            n += 1


def next_action_match(policy: LLMPolicy, episodes: Sequence[Episode], batch: int = 8,
                      max_steps: int | None = None,
                      group: Callable[[Episode, Step], str] | None = None) -> dict[str, Any]:
    """Greedy next-action exact match on traces (teacher-forced history).

    Args:
        group: also split the match by ``group(episode, step)`` (e.g. the kind of the
            buyer's action): ``per_group`` and ``n_per_group`` in the result.

    Returns:
        ``{"overall": share, "n": steps, "per_type": {type: share}, "n_per_type": {...},
        "calibration": {form: {"predicted": mean probability, "observed": share}}}``.
    """
    from agents.policies.base import action_form

    saved_t = policy.temperature
    policy.temperature = 0.0
    hits: dict[int, int] = defaultdict(int)
    counts: dict[int, int] = defaultdict(int)
    predicted: dict[str, float] = defaultdict(float)
    observed: dict[str, int] = defaultdict(int)
    g_hits: dict[str, int] = defaultdict(int)
    g_counts: dict[str, int] = defaultdict(int)
    items = list(_steps(episodes, max_steps))
    try:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            # autofill types the buyer's own profile: the one the trace was replayed with
            obs = [{**s.observation, "persona": s.observation.get("persona", ep.persona)}
                   for ep, s, _ in chunk]
            choices = policy.next_actions(
                obs, [hist for _, _, hist in chunk], personas=[ep.persona for ep, _, _ in chunk],
                goals=[ep.goal for ep, _, _ in chunk],
                profiles=[_typed_profile(ep) for ep, _, _ in chunk])
            for (ep, step, _), choice in zip(chunk, choices):
                action, c, sc = choice.action, choice.candidates, choice.logprobs
                counts[ep.persona] += 1
                hits[ep.persona] += int(action == step.action)
                if group is not None:
                    key = group(ep, step)
                    g_counts[key] += 1
                    g_hits[key] += int(action == step.action)
                top = max(sc)
                weights = [math.exp(v - top) for v in sc]
                total = sum(weights)
                for cand, w in zip(c, weights):
                    predicted[action_form(cand)] += w / total
                observed[action_form(step.action)] += 1
    finally:
        policy.temperature = saved_t
    n = sum(counts.values())
    out = {"overall": sum(hits.values()) / n if n else math.nan, "n": n,
           "per_type": {k: hits[k] / counts[k] for k in sorted(counts)},
           "n_per_type": dict(sorted(counts.items())),
           "calibration": {f: {"predicted": predicted[f] / n, "observed": observed[f] / n}
                           for f in sorted(set(predicted) | set(observed))} if n else {}}
    if group is not None:
        out["per_group"] = {k: g_hits[k] / g_counts[k] for k in sorted(g_counts)}
        out["n_per_group"] = dict(sorted(g_counts.items()))
    return out


def _typed_profile(episode: Episode) -> dict[str, str]:
    """Checkout field -> the text the episode typed into it (its buyer's profile)."""
    from agents.profile import CHECKOUT_FIELDS
    from simpersona_env.env.actions import parse_action

    out = {}
    for step in episode.steps:
        if step.action.startswith("type["):
            fid, text = parse_action(step.action).args[:2]
            if fid in CHECKOUT_FIELDS:
                out[fid] = text
    return out


def persona_swap_divergence(policy: LLMPolicy, episodes: Sequence[Episode], n_types: int,
                            max_steps: int = 64) -> list[list[float]]:
    """Mean Jensen-Shannon divergence (bits) of the action distribution between type pairs.

    Each observation (up to ``max_steps`` of them) is scored once per type with the persona
    token swapped; the candidate distribution is the softmax of the candidates' scores.
    """
    import torch

    items = list(_steps(episodes, max_steps))
    total = torch.zeros(n_types, n_types, dtype=torch.float64)
    for ep, step, hist in items:
        obs = dict(step.observation)
        cands = policy.candidates(obs, bool(hist))
        prompts = [policy.prompt_ids(obs, hist, persona=k, goal=ep.goal) for k in range(n_types)]
        scores = torch.tensor(policy.action_scores(prompts, [cands] * n_types),
                              dtype=torch.float64)
        p = torch.softmax(scores, dim=-1)  # (K, C)
        m = 0.5 * (p[:, None] + p[None])  # (K, K, C)
        kl = lambda a, b: (a * (a.clamp_min(1e-300).log2() - b.clamp_min(1e-300).log2())).sum(-1)
        total += 0.5 * kl(p[:, None].expand_as(m), m) + 0.5 * kl(p[None].expand_as(m), m)
    return (total / max(1, len(items))).tolist()


def steering_words(bits: float) -> str:
    """The mean persona-swap divergence in words: does the persona token steer the agent?

    Example:
        >>> steering_words(0.09)
        "persona-swap divergence 0.0900 bits: the persona token steers the agent's actions"
    """
    if bits >= STEERS_BITS:
        return (f"persona-swap divergence {bits:.4f} bits: the persona token steers the "
                "agent's actions")
    return (f"persona-swap divergence {bits:.4f} bits: the persona token barely steers the "
            f"agent (it steers from ~{STEERS_BITS} bits; two-epoch agents reach 0.09-0.11, "
            "docs/agents.md)")


def plot_divergence(matrix: list[list[float]], path: str | Path, title: str = "") -> Path:
    """Heatmap of a K x K divergence matrix, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_xlabel("persona b")
    ax.set_ylabel("persona a")
    ax.set_title(title or "action-distribution JS divergence (bits)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
