"""Agent-training traces: episodes of (observation, action) steps, stored as JSONL.

One line per episode::

    {"persona": 3, "merchant_id": "acme", "goal": "",
     "steps": [{"observation": {"text": ..., "url": ..., "goal": ..., "persona": 3,
                                "last_action_error": ""},
                "action": "click[nav-home]"}, ...]}

``persona`` is the buyer's type index (its VQ-VAE code) or -1 when unknown; ``goal`` is the
hindsight goal of a session that bought (empty otherwise). Producers: the replay of real
clickstreams, any policy run in the env (:func:`record_episode`), and scripted
demonstrations of the ``goal`` task on task seeds the goal benchmark never uses
(:func:`agents.goal_demos.goal_demonstrations`, persona -1). Consumer: the SFT dataset
(:func:`agents.sft.build_examples`).

Example:
    >>> ep = Episode(persona=1, merchant_id="acme", goal="", steps=[
    ...     Step({"text": "Home", "url": "/s/acme/", "goal": "", "persona": 1,
    ...           "last_action_error": ""}, "stop")])
    >>> Episode.from_dict(ep.to_dict()) == ep
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpersona_env.errors import DataError

__all__ = [
    "OBSERVATION_KEYS",
    "Episode",
    "Step",
    "read_episodes",
    "record_episode",
    "write_episodes",
]

#: The keys of an observation in a trace (the env's observation contract).
OBSERVATION_KEYS: tuple[str, ...] = ("text", "url", "goal", "persona", "last_action_error")


def _plain(value: Any) -> Any:
    """numpy scalars/arrays (from a gymnasium Dict space) -> JSON-able Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


@dataclass
class Step:
    """One step: what the agent saw and the action it took."""

    observation: dict[str, Any]
    action: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        obs = {k: _plain(v) for k, v in dict(data["observation"]).items()}
        return cls(observation=obs, action=str(data["action"]))


@dataclass
class Episode:
    """One buyer's episode at one merchant; see the module docstring for the JSON form."""

    persona: int
    merchant_id: str
    goal: str = ""
    steps: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"persona": int(self.persona), "merchant_id": self.merchant_id, "goal": self.goal,
                "steps": [{"observation": {k: _plain(v) for k, v in s.observation.items()},
                           "action": s.action} for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        return cls(persona=int(data.get("persona", -1)), merchant_id=str(data["merchant_id"]),
                   goal=str(data.get("goal") or ""),
                   steps=[Step.from_dict(s) for s in data.get("steps", [])])


def read_episodes(path: str | Path) -> list[Episode]:
    """Read a JSONL file of episodes, or every ``*.jsonl`` file of a folder (name order).

    A folder lets replayed sessions and goal demonstrations written apart be trained on
    together.

    Raises:
        DataError: if the file is missing, the folder holds no ``.jsonl`` file, or a line is
            not an episode (naming the file and line).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise DataError(f"no .jsonl trace file in the folder {str(path)!r}; produce one "
                            "with `simpersona traces`")
        return [ep for f in files for ep in read_episodes(f)]
    if not path.is_file():
        raise DataError(f"no trace file at {str(path)!r}; produce one with `simpersona traces` "
                        "or agents.traces.write_episodes")
    episodes = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                episodes.append(Episode.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}:{n}: not an episode ({exc!r}); expected "
                                '{"persona", "merchant_id", "goal", "steps": [...]}') from exc
    return episodes


def write_episodes(episodes: Iterable[Episode], path: str | Path) -> int:
    """Write episodes as JSONL (creating parent folders); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ep in episodes:
            fh.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def record_episode(env: Any, policy: Any, *, persona: int = -1, goal: str | None = None,
                   seed: int | None = None, merchant_id: str = "",
                   options: dict[str, Any] | None = None) -> tuple[Episode, dict[str, Any]]:
    """Run one episode of ``policy`` in a gymnasium ``env`` and record it as an :class:`Episode`.

    The persona and goal come from the env's first observation when it sets them (a persona
    wrapper, the goal task); otherwise from the arguments.

    Returns:
        The episode and the final ``info`` dict.

    Example:
        >>> ep, info = record_episode(env, RandomPolicy(seed=0), seed=0)  # doctest: +SKIP
    """
    obs, info = env.reset(seed=seed, options=options)
    k = int(_plain(obs.get("persona", -1)))
    k = k if k >= 0 else persona
    g = str(obs.get("goal") or "") or (goal or "")
    policy.reset(k, g)
    steps: list[Step] = []
    done = False
    while not done:
        action = policy.act(obs)
        steps.append(Step({key: _plain(obs[key]) for key in OBSERVATION_KEYS if key in obs}, action))
        obs, _, terminated, truncated, info = env.step(action)
        done = bool(terminated or truncated)
    return Episode(persona=k, merchant_id=merchant_id, goal=g, steps=steps), info
