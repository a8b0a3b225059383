"""``simpersona evaluate`` and ``simpersona evaluate goal``: the population evaluation on
held-out merchants, the goal-task benchmark, and their report.

Examples::

    simpersona evaluate real=runs/ingest/rees46                 # rule-based typed buyer, random
    simpersona evaluate real=synthetic n_buyers=100             # no real data: generated traffic
    simpersona evaluate real=runs/ingest/rees46 eval=agents persona_agent=runs/agent \\
        baseline_agent=runs/agent-nopersona checkpoint=runs/personas/model
    simpersona evaluate goal                                    # oracle and random on 3 catalogs
    simpersona evaluate goal +policies.agent._target_=agents.policies.llm.LLMPolicy \\
        +policies.agent.checkpoint=runs/agent

Each writes ``report.md``, ``report.json`` and the PNGs into ``out_dir`` and prints the
headline figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpersona_env.commands.ingest import RunnerConfig
from simpersona_env.commands.personas import SyntheticSource
from simpersona_env.config import field, register
from simpersona_env.env.settings import BackendConfig
from simpersona_env.personas.model import PersonaVQVAEConfig
from simpersona_env.personas.train import TrainConfig

__all__ = ["EvaluateConfig", "GoalBenchmarkConfig", "goal", "load_real_data", "run"]


@dataclass
class GoalBenchmarkConfig:
    """Settings of the goal-task benchmark (``simpersona evaluate goal``)."""

    policies: dict[str, Any] = field({}, help="name -> policy spec (_target_ + kwargs, or "
                                     "'oracle'); set by the eval= group or +policies.NAME...")
    catalogs: list[str] = field(["builtin", "flipkart", "amazon"], help="bundled store "
                                "presets whose catalogs give the tasks (data-backed ones are "
                                "skipped, and said so, without the data)")
    n_tasks: int = field(20, help="tasks per catalog (the same for every policy)")
    seed: int = field(0, help="seed of the task set")
    max_steps: int = field(30, help="step limit per task")
    data_dir: str | None = field(None, help="the data folder (default $SIMPERSONA_DATA_DIR)")
    runner: RunnerConfig = field(help="local or ray (config group)", default_factory=RunnerConfig)
    workers: int = field(0, help="worker processes or actors (0: in this process)")
    batch_size: int = field(1, help="tasks per batch (lockstep for act_batch policies)")
    backend: BackendConfig = field(help="http (fast, no browser) or playwright (config group)",
                                   default_factory=BackendConfig)
    bootstrap: int = field(1000, help="bootstrap resamples for the intervals")
    contrasts: list[Any] | None = field(None, help="pairs of policies compared task by task, "
                                        "e.g. [[persona_agent,no_persona]] (default: the first "
                                        "policy against each other one)")
    out_dir: str = field("runs/evaluate_goal", help="output folder (episodes + report)")
    resume: bool = field(False, help="continue interrupted runs in out_dir")
    progress: bool = field(True, help="show progress bars")


@dataclass
class EvaluateConfig:
    """Settings of ``simpersona evaluate``."""

    real: str = field("auto", help="the real data: an ingest output folder (events/ + buyers/), 'synthetic' "
                      "(generated traffic), or 'auto': runs/ingest/rees46 when it exists, else "
                      "synthetic")
    synthetic: SyntheticSource = field(help="generated data settings (real=synthetic)",
                                       default_factory=SyntheticSource)
    checkpoint: str = field("", help="the VQ-VAE (`personas train`), trained on training "
                            "merchants only; empty: train one here on the training merchants")
    model: PersonaVQVAEConfig = field(help="VQ-VAE trained here when no checkpoint",
                                      default_factory=PersonaVQVAEConfig)
    train: TrainConfig = field(help="its optimisation", default_factory=TrainConfig)
    policies: dict[str, Any] = field({}, help="name -> policy spec; set by the eval= group "
                                     "(baselines, agents); profiles: auto = type profiles of "
                                     "the training buyers; _personas: false = no-persona")
    persona_agent: str = field("", help="persona-token agent checkpoint (eval=agents)")
    baseline_agent: str = field("", help="no-persona agent checkpoint (eval=agents)")
    prompt_agent: str = field("", help="prompt-persona agent checkpoint (eval=agents)")
    merchants: list[str] = field([], help="held-out merchants (default: by "
                                 "merchant_heldout_fraction)")
    merchant_heldout_fraction: float = field(0.5, help="share of merchants held out (stable hash)")
    heldout_fraction: float = field(0.5, help="share of a held-out merchant's buyers giving the "
                                    "real rates (the rest give its population)")
    split_seed: int = field(0, help="seed of the merchant and buyer splits")
    buyer_split_seed: int | None = field(None, help="re-draw only the buyer halves of the "
                                            "held-out merchants (default: split_seed)")
    min_buyers: int = field(20, help="skip a held-out merchant with fewer buyers in a half")
    n_buyers: int = field(200, help="simulated buyers per held-out merchant and policy")
    seed: int = field(0, help="simulation seed")
    sessions: str = field("population", help="sessions per simulated buyer: 'population' (drawn "
                          "from its type's buyers in the merchant's population half; the same "
                          "visitor returns, with its cart) or 'one'")
    max_sessions: int = field(5, help="most sessions of a simulated buyer (sessions=population)")
    runner: RunnerConfig = field(help="local or ray (config group)", default_factory=RunnerConfig)
    workers: int = field(0, help="worker processes or actors (0: in this process)")
    batch_size: int = field(1, help="buyers per batch (lockstep for act_batch policies)")
    backend: BackendConfig = field(help="http (fast, no browser) or playwright (config group)",
                                   default_factory=BackendConfig)
    max_steps: int = field(50, help="step limit per episode")
    bootstrap: int = field(1000, help="bootstrap resamples for every interval")
    ab: bool = field(True, help="also run the A/B test of the two themes")
    ab_policy: str = field("", help="the A/B test's policy (default: the first)")
    ab_merchant: str = field("", help="the A/B test's merchant (default: the held-out one with "
                             "most buyers)")
    contrasts: list[Any] | None = field(None, help="pairs of policies compared over the same "
                                        "simulated buyers, e.g. [[persona_agent,no_persona]] "
                                        "(default: the first policy against each other one)")
    goal: bool = field(False, help="also run the goal-task benchmark (goal_benchmark settings)")
    goal_benchmark: GoalBenchmarkConfig = field(help="the goal benchmark run with goal=true",
                                                default_factory=GoalBenchmarkConfig)
    threads: int = field(2, help="torch CPU threads")
    out_dir: str = field("runs/evaluate", help="output folder (simulations + report)")
    resume: bool = field(False, help="continue interrupted simulations in out_dir")
    progress: bool = field(True, help="show progress bars")


register("evaluate_schema", EvaluateConfig)
register("evaluate_goal_schema", GoalBenchmarkConfig)


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold magenta]evaluate[/] {msg}")


def _policies(node: Any) -> dict[str, Any]:
    from simpersona_env.commands.simulate import policy_spec

    return {str(k): policy_spec(v) for k, v in node.items()}


def load_real_data(data: str, out_dir: Path, synthetic: Any = None) -> tuple[Path, Any, str]:
    """(events path, buyer table, description) for the ``real`` setting (see EvaluateConfig)."""
    from simpersona_env.buyers import build_buyers
    from simpersona_env.errors import DataError

    if data == "auto":
        data = "runs/ingest/rees46" if Path("runs/ingest/rees46/events").is_dir() else "synthetic"
    if data == "synthetic":
        from simpersona_env.commands.personas import SyntheticSource
        from simpersona_env.synthetic import generate_events

        syn = synthetic or SyntheticSource()
        _log(f"[yellow]no real data given: generating {syn.buyers} buyers at {syn.merchants} "
             f"merchants (seed {syn.seed}); pass real=<ingest out_dir> for real logs")
        log = generate_events(syn.buyers, n_merchants=syn.merchants, seed=syn.seed)
        path = out_dir / "real" / "events.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        log.events.write_parquet(path)
        return path, build_buyers(log.events, heldout_fraction=syn.heldout_fraction), \
            f"synthetic archetypes, seed {syn.seed}"
    p = Path(data)
    if not (p / "events").is_dir():
        raise DataError(f"data={data}: no ingest output there (events/ missing); run "
                        "`simpersona ingest data=rees46` first or pass real=synthetic")
    from simpersona_env.personas.data import load_buyers

    return p, load_buyers(str(p)), str(p)


def run(cfg: Any) -> int:
    """Evaluate simulated populations against real held-out merchants; write the report."""
    import polars as pl
    import torch

    from simpersona_env.buyers.split import TRAIN, assign_splits
    from simpersona_env.config import to_object
    from simpersona_env.evaluation.population import evaluate_population, pick_heldout_merchants
    from simpersona_env.evaluation.report import headline, write_report
    from simpersona_env.personas.assign import load_checkpoint
    from simpersona_env.personas.train import train_personas

    t0 = time.perf_counter()
    runner = to_object(cfg.runner, RunnerConfig)
    syn = to_object(cfg.synthetic, SyntheticSource)
    out = Path(cfg.out_dir)
    torch.set_num_threads(max(1, int(cfg.threads)))
    events, buyers, source = load_real_data(cfg.real, out, syn)
    _log(f"real data: {source} ({buyers.height} buyers at "
         f"{buyers['merchant_id'].n_unique()} merchants)")
    merchants = sorted(buyers["merchant_id"].unique().to_list())
    held = pick_heldout_merchants(merchants, fraction=cfg.merchant_heldout_fraction,
                                  seed=cfg.split_seed, explicit=list(cfg.merchants) or None)
    if cfg.checkpoint:
        typer = load_checkpoint(cfg.checkpoint)
        _log(f"VQ-VAE: {cfg.checkpoint} (k={typer.k}); it must not have seen the held-out "
             f"merchants {held}")
    else:
        train_buyers = assign_splits(buyers.filter(~pl.col("merchant_id").is_in(held)),
                                     heldout_fraction=cfg.heldout_fraction, seed=cfg.split_seed)
        train_buyers = train_buyers.filter(pl.col("split") == TRAIN)
        _log(f"training the VQ-VAE (k={cfg.model.k}) on {train_buyers.height} buyers of the "
             f"{len(merchants) - len(held)} training merchants")
        typer = train_personas(train_buyers, to_object(cfg.model, PersonaVQVAEConfig),
                               to_object(cfg.train, TrainConfig))
        typer.save(out / "personas" / "model")
    result = evaluate_population(
        events, typer, _policies(cfg.policies), out_dir=out, buyers=buyers, merchants=held,
        heldout_fraction=cfg.heldout_fraction, split_seed=cfg.split_seed,
        buyer_split_seed=cfg.buyer_split_seed,
        n_buyers=cfg.n_buyers, seed=cfg.seed, min_buyers=cfg.min_buyers, runner=runner.name,
        workers=cfg.workers, batch_size=cfg.batch_size, backend=cfg.backend.name,
        max_steps=cfg.max_steps, bootstrap=cfg.bootstrap, ab=cfg.ab,
        ab_policy=cfg.ab_policy or None, ab_merchant=cfg.ab_merchant or None,
        resume=cfg.resume, progress=cfg.progress,
        sessions=cfg.sessions, max_sessions=cfg.max_sessions,
        contrasts=_contrasts(cfg.contrasts))
    result["protocol"]["data"] = source
    goal_res = None
    if cfg.goal:
        goal_res = _run_goal(cfg.goal_benchmark, out / "goal", progress=cfg.progress)
    paths = write_report(result, out, goal=goal_res)
    for line in headline(result, goal_res):
        print(line)
    print(f"report: {paths['md']} ({time.perf_counter() - t0:.0f}s)")
    return 0


def _run_goal(g: Any, out_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    from simpersona_env.evaluation.goal import goal_benchmark

    runner = g.runner.name if g.get("runner") else "local"
    return goal_benchmark(_policies(g.policies), out_dir=out_dir or Path(g.out_dir),
                          catalogs=list(g.catalogs), n_tasks=g.n_tasks, seed=g.seed,
                          data_dir=g.data_dir, max_steps=g.max_steps, runner=runner,
                          workers=g.workers, batch_size=g.batch_size, backend=g.backend.name,
                          bootstrap=g.bootstrap, resume=g.resume,
                          progress=g.progress and progress,
                          contrasts=_contrasts(g.get("contrasts")))


def _contrasts(node: Any) -> list[Any] | None:
    """``contrasts`` from the config as plain lists (None: the default pairs); checked by
    :func:`~simpersona_env.evaluation.alignment.contrast_pairs`."""
    return None if node is None else list(node)


def goal(cfg: Any) -> int:
    """Goal-task benchmark: success rate and mean reward per policy on real catalogs."""
    from simpersona_env.evaluation.report import headline, write_report

    t0 = time.perf_counter()
    res = _run_goal(cfg)
    for cat, why in res["skipped"].items():
        _log(f"[yellow]catalog {cat} skipped: {why}")
    paths = write_report(None, cfg.out_dir, goal=res, title="SimPersona goal-task benchmark")
    for line in headline({}, res):
        print(line)
    print(f"report: {paths['md']} ({time.perf_counter() - t0:.0f}s)")
    return 0
