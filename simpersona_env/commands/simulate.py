"""``simpersona simulate``: a merchant's buyer population shops on its storefront.

Examples::

    simpersona simulate policy=oracle n_buyers=20 k=4             # uniform over 4 types
    simpersona simulate store=events store.events=runs/ingest/rees46 store_id=electronics \\
        population=runs/personas/populations.json policy=rule_based \\
        policy.profiles=runs/evaluate/type_profiles.json n_buyers=500 workers=2
    simpersona simulate ... runner=ray workers=2
    simpersona simulate ... resume=true                           # after an interruption

Writes ``<out_dir>/episodes.jsonl`` (one line per finished episode, as it ends),
``events.parquet`` (the shop's canonical event log) and ``simulation.json`` (settings and
summary).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from simpersona_env.commands.ingest import RunnerConfig
from simpersona_env.commands.shop import StoreConfig
from simpersona_env.config import field, register
from simpersona_env.env.settings import BackendConfig, TaskConfig
from simpersona_env.errors import ConfigError

__all__ = ["SimulateConfig", "policy_spec", "run"]


@dataclass
class SimulateConfig:
    """Settings of ``simpersona simulate``."""

    store: StoreConfig = field(help="the merchants' storefronts (config group)",
                               default_factory=StoreConfig)
    store_id: str = field("", help="the merchant whose buyers shop (default: the first store)")
    backend: BackendConfig = field(help="http (fast, no browser) or playwright (config group)",
                                   default_factory=BackendConfig)
    task: TaskConfig = field(help="browse or goal (config group)", default_factory=TaskConfig)
    runner: RunnerConfig = field(help="local or ray (config group)", default_factory=RunnerConfig)
    policy: dict[str, Any] = field({}, help="the policy (config group: random, rule_based, "
                                   "oracle, llm, prompt_persona, openai); _target_ + kwargs")
    population: str = field("", help="populations.json (from `personas assign`); empty: "
                            "uniform over k types, or no persona when k=0")
    merchant: str = field("", help="the population's merchant key (default: store_id; falls "
                          "back to __all__)")
    k: int = field(0, help="number of buyer types when no population file is given")
    n_buyers: int = field(100, help="buyers (episodes) to simulate")
    seed: int = field(0, help="buyer i is fixed by (seed, i): persona, visitor, think times")
    workers: int = field(0, help="worker processes (local) or actors (ray); 0: in this process")
    batch_size: int = field(1, help="buyers per batch; a policy with act_batch drives a "
                            "batch's envs in lockstep")
    max_steps: int = field(50, help="step limit per episode")
    show_persona: bool = field(True, help="show the sampled type to the policy (false: the "
                               "no-persona baseline; not `personas=`, the VQ-VAE's config group)")
    sessions: list[Any] = field([], help="sessions per buyer: the probabilities of 1, 2, ... "
                                "sessions ([0.8,0.2]), or one such list per type; empty: one")
    session_gap_median_s: float = field(86400.0, help="median seconds before a buyer returns")
    record_observations: bool = field(False, help="keep each step's full observation text")
    out_dir: str = field("runs/simulate", help="output folder")
    resume: bool = field(False, help="continue an interrupted run in out_dir")
    overwrite: bool = field(False, help="discard a previous run in out_dir")
    progress: bool = field(True, help="show a progress bar")


register("simulate_schema", SimulateConfig)


def _sessions(value: Any) -> list[list[float]]:
    """``[0.8, 0.2]`` (one distribution for every buyer) or ``[[...], ...]`` (one per type)."""
    items = list(value or [])
    if items and all(isinstance(x, (int, float)) for x in items):
        return [[float(x) for x in items]]
    try:
        return [[float(x) for x in d] for d in items]
    except (TypeError, ValueError):
        raise ConfigError(f"sessions={items!r}: give the probabilities of 1, 2, ... sessions, "
                          "e.g. sessions=[0.8,0.2], or one such list per type") from None


def policy_spec(policy: Any) -> Any:
    """A composed ``policy`` node as the runner's spec (a plain dict), checking ``???``."""
    from omegaconf import DictConfig, OmegaConf

    from simpersona_env.errors import ConfigError

    if isinstance(policy, DictConfig):
        missing = sorted(OmegaConf.missing_keys(policy))
        if missing:
            names = ", ".join(m if m.startswith("policy.") else f"policy.{m}" for m in missing)
            raise ConfigError(f"policy setting(s) not set: {names}; pass them as key=value")
        policy = OmegaConf.to_container(policy, resolve=True)
    if isinstance(policy, dict) and not policy:
        raise ConfigError("no policy given; pass policy=random|rule_based|oracle|llm|...")
    return policy


def run(cfg: Any) -> int:
    """Simulate a merchant's buyer population on its storefront; write episodes and event log."""
    from omegaconf import OmegaConf
    from rich.console import Console

    from simpersona_env.config import to_object
    from simpersona_env.errors import ConfigError
    from simpersona_env.simulation import SimulationSpec, population_probs, simulate

    console = Console(stderr=True, highlight=False)
    c = to_object(OmegaConf.masked_copy(cfg, [f.name for f in dataclasses.fields(_Flat)]), _Flat)
    store = OmegaConf.to_container(cfg.store, resolve=True)
    runner = to_object(cfg.runner, RunnerConfig)
    policy = policy_spec(cfg.policy)
    if isinstance(policy, dict) and policy.get("profiles") == "auto":
        raise ConfigError("policy.profiles=auto needs the training buyers; it works in "
                          "`simpersona evaluate`; here pass a profiles JSON (type_profiles.json)")
    if c.population:
        merchant = c.merchant or c.store_id
        if not merchant:  # the store the buyers will shop at: the preset's first
            from simpersona_env.commands.shop import build_stores

            merchant = build_stores(StoreConfig(**store))[0].store_id
        probs = population_probs(c.population, merchant)
        where = f"{c.population} ({merchant})"
    elif c.k > 0:
        probs, where = [1.0 / c.k] * c.k, f"uniform over k={c.k} types (no population given)"
    else:
        probs, where = [], "no buyer types (persona -1; pass population=... or k=...)"
    spec = SimulationSpec(store=store, store_id=c.store_id, population=probs, policy=policy,
                          n_buyers=c.n_buyers, seed=c.seed, batch_size=c.batch_size,
                          backend=OmegaConf.to_container(cfg.backend, resolve=True),
                          task=cfg.task.name, max_steps=c.max_steps,
                          record_observations=c.record_observations, personas=c.show_persona,
                          sessions=_sessions(c.sessions),
                          session_gap_median_s=c.session_gap_median_s)
    console.print(f"simulate: {c.n_buyers} buyers of store {store['name']}"
                  f"{'/' + c.store_id if c.store_id else ''}, population {where}, policy "
                  f"{spec.policy_name}, runner {runner.name} x{c.workers}, backend "
                  f"{cfg.backend.name} -> {c.out_dir}")
    if store["name"] == "builtin":
        console.print("(the builtin store is generated from a seed: no data needed)")
    res = simulate(spec, c.out_dir, runner=runner.name, workers=c.workers, resume=c.resume,
                   overwrite=c.overwrite, progress=c.progress, num_cpus=runner.num_cpus,
                   address=runner.address)
    s = res.summary
    visits = f", {s['sessions']} sessions" if s["sessions"] != s["episodes"] else ""
    console.print(f"{s['episodes']} buyers{visits} ({s['new_episodes']} new, "
                  f"{s['seconds']:.1f}s): conversion per buyer {s['conversion_rate']:.3f}, mean "
                  f"steps {s['mean_steps']:.1f}, {s['events']} events")
    console.print(f"wrote {res.episodes_path}, {res.events_path}, {res.out_dir / 'simulation.json'}")
    return 0


#: the config groups of :class:`SimulateConfig`, read apart from its scalar settings
_GROUPS = ("policy", "store", "backend", "task", "runner")


def _copy(f: Any) -> Any:
    kw: dict[str, Any] = {"metadata": f.metadata}
    if f.default is not dataclasses.MISSING:
        kw["default"] = f.default
    else:
        kw["default_factory"] = f.default_factory
    return dataclasses.field(**kw)


#: the scalar settings of :class:`SimulateConfig` (made from its fields: one list of them)
_Flat = dataclasses.make_dataclass(
    "_Flat", [(f.name, f.type, _copy(f)) for f in dataclasses.fields(SimulateConfig)
              if f.name not in _GROUPS])
