"""The goal-task benchmark: a fixed, seeded set of shopping instructions over real catalogs.

Task ``j`` of a catalog is the goal the ``goal`` task draws for env seed
``BuyerPlan.of(seed, j).env_seed``, so every policy gets the very same instructions. Each
policy's success rate (WebShop reward 1) and mean reward come with percentile bootstrap
intervals over tasks. The scripted oracle (``policy: oracle``) is the upper bound, the random
policy the floor; any LLM policy given is measured between them.

Example:
    >>> res = goal_benchmark({"oracle": "oracle"}, catalogs=["builtin"], n_tasks=3,
    ...                      out_dir="runs/goal-doc", progress=False)  # doctest: +SKIP
    >>> res["policies"]["oracle"]["builtin"]["success"]["value"]  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simpersona_env.errors import ConfigError

__all__ = ["goal_benchmark", "mean_estimate", "paired_difference"]


def mean_estimate(values: Sequence[float], *, bootstrap: int = 1000, level: float = 0.95,
                  seed: int = 0) -> dict[str, Any]:
    """Mean with a percentile bootstrap interval: ``{"value", "lo", "hi", "n"}``."""
    x = np.asarray(values, float)
    if x.size == 0:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    idx = np.random.default_rng(seed).integers(0, x.size, size=(bootstrap, x.size))
    lo, hi = np.quantile(x[idx].mean(1), [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"value": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(x.size)}


def paired_difference(a: Sequence[float], b: Sequence[float], *, bootstrap: int = 1000,
                      level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Mean of ``a - b`` over the same tasks, with a bootstrap interval that resamples tasks
    (both policies' results of a task stay together).

    Example:
        >>> paired_difference([1, 0, 1, 0], [0, 0, 1, 0])["value"]
        0.25
    """
    if len(a) != len(b):
        raise ConfigError(f"{len(a)} against {len(b)} task results: compare policies run on "
                          "the same tasks")
    return mean_estimate([x - y for x, y in zip(a, b)], bootstrap=bootstrap, level=level,
                         seed=seed)


def goal_benchmark(policies: Mapping[str, Any], *, out_dir: str | Path,
                   catalogs: Sequence[str] = ("builtin", "flipkart", "amazon"),
                   n_tasks: int = 20, seed: int = 0, data_dir: str | None = None,
                   max_steps: int = 30, runner: str = "local", workers: int = 0,
                   batch_size: int = 1, backend: str = "http", bootstrap: int = 1000,
                   resume: bool = False, progress: bool = True,
                   contrasts: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Run every policy on the same ``n_tasks`` goal tasks of each catalog.

    Args:
        policies: name -> policy spec (``"oracle"``, ``"module:Class"``, or a dict with
            ``_target_``); policies see no persona (persona -1).
        out_dir: episodes go to ``<out_dir>/<policy>/<catalog>``.
        catalogs: bundled store presets; a data-backed one without its data is skipped (noted
            in ``skipped``).
        n_tasks, seed: the task set.
        max_steps: step limit per task.
        contrasts: pairs ``(a, b)`` of policies whose success and reward are compared task by
            task (a - b, :func:`paired_difference`); default: the first against each other.

    Returns:
        ``{"tasks": {catalog: [instructions]}, "policies": {name: {catalog: {"success",
        "reward"}, "all": {..., "per_task": {"success": [...], "reward": [...]}}}},
        "skipped": {catalog: reason}, "paired": [{"a", "b", "meaning", "success", "reward"}]}``;
        ``per_task`` lists every task in the same order for every policy, so two policies
        compare task by task (:func:`paired_difference`), as ``paired`` does.
    """
    from simpersona_env.errors import DataError, UnknownNameError
    from simpersona_env.evaluation.alignment import contrast_pairs
    from simpersona_env.simulation import SimulationSpec, simulate
    from storefront_mock.errors import StorefrontError
    from storefront_mock.errors import UnknownNameError as UnknownPreset
    from storefront_mock.stores import make_stores

    if not policies:
        raise ConfigError("no policies for the goal benchmark; pass policies={name: spec}")
    pairs = contrast_pairs(policies, contrasts)
    if n_tasks < 1:
        raise ConfigError(f"n_tasks={n_tasks} must be >= 1")
    out = Path(out_dir)
    result: dict[str, Any] = {"n_tasks": n_tasks, "seed": seed, "max_steps": max_steps,
                              "catalogs": [], "tasks": {}, "policies": {}, "skipped": {}}
    ok: list[str] = []
    for cat in catalogs:
        try:
            make_stores(cat, data_dir=data_dir)
            ok.append(cat)
        except StorefrontError as exc:
            if isinstance(exc, UnknownPreset):
                raise UnknownNameError("catalog", exc.name, exc.choices) from exc
            result["skipped"][cat] = str(exc)
    if not ok:
        raise DataError(f"none of the catalogs {list(catalogs)} could be built: "
                        f"{result['skipped']}")
    result["catalogs"] = ok
    for name, spec in policies.items():
        per: dict[str, Any] = {}
        success_all: list[float] = []
        reward_all: list[float] = []
        for cat in ok:
            sim = SimulationSpec(store={"name": cat, "data_dir": data_dir}, population=[],
                                 policy=spec, policy_name=name, n_buyers=n_tasks, seed=seed,
                                 task="goal", batch_size=batch_size, backend={"name": backend},
                                 max_steps=max_steps, personas=False)
            res = simulate(sim, out / name / cat, runner=runner, workers=workers, resume=resume,
                           overwrite=not resume, progress=progress)
            recs = res.records()
            result["tasks"].setdefault(cat, [r["goal"] for r in recs])
            succ = [float(bool((r.get("goal_result") or {}).get("success"))) for r in recs]
            rew = [float((r.get("goal_result") or {}).get("reward", 0.0)) for r in recs]
            success_all += succ
            reward_all += rew
            per[cat] = {"success": mean_estimate(succ, bootstrap=bootstrap, seed=seed),
                        "reward": mean_estimate(rew, bootstrap=bootstrap, seed=seed),
                        "mean_steps": res.summary["mean_steps"], "dir": str(res.out_dir)}
        per["all"] = {"success": mean_estimate(success_all, bootstrap=bootstrap, seed=seed),
                      "reward": mean_estimate(reward_all, bootstrap=bootstrap, seed=seed),
                      # task by task, in the same order for every policy (catalog, then task)
                      "per_task": {"success": success_all, "reward": reward_all}}
        result["policies"][name] = per
    result["paired"] = []
    for a, b in pairs:
        pa, pb = (result["policies"][n]["all"]["per_task"] for n in (a, b))
        result["paired"].append({
            "a": a, "b": b, "meaning": f"{a} - {b}", "n": len(pa["success"]),
            **{k: paired_difference(pa[k], pb[k], bootstrap=bootstrap, seed=seed)
               for k in ("success", "reward")}})
    return result
