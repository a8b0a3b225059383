"""``simpersona demo``: the main job end to end, on the real data when it is there.

ingest -> buyer types (VQ-VAE on the training merchants) -> traces (real sessions replayed in
the storefront) -> SFT of the default small agent (with the persona token and without it;
``prompt_persona=true`` adds the variant with a text description of the type) -> population
simulation on the held-out merchants ->
evaluation against their real buyers -> report; then one persona-agent episode in a real
Chromium to show the browser backend.

Each stage is the same code as its own command (``simpersona ingest``, ``personas assign``,
``traces``, ``agent train``, ``evaluate``), composed from the same configs with the overrides
below; the demo only chooses small sizes so that the whole run fits in about 15 minutes on 2
CPU cores. It lives in ``agents`` because it drives the agents (the library never imports
them).

Example:
    $ simpersona demo                      # REES46 from $SIMPERSONA_DATA_DIR, else generated data
    $ simpersona demo source=synthetic n_buyers=60
    $ simpersona demo sft_steps=1000 prompt_persona=true  # one epoch of SFT per agent
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpersona_env.cli import run_command
from simpersona_env.config import field, register

__all__ = ["DemoConfig", "run"]


@dataclass
class DemoConfig:
    """Settings of ``simpersona demo``."""

    source: str = field("auto", help="the clickstream: auto (REES46 from $SIMPERSONA_DATA_DIR "
                        "when present, else generated), rees46, or synthetic (generated "
                        "archetype traffic). Not `data=`: that name is the ingest's config group")
    out_dir: str = field("runs/demo", help="where every stage writes; the report is "
                         "<out_dir>/evaluate/report.md")
    k: int = field(16, help="number of buyer types")
    synthetic_buyers: int = field(3000, help="source=synthetic: buyers generated")
    synthetic_merchants: int = field(6, help="source=synthetic: merchants generated")
    trace_sessions: int = field(0, help="real sessions of the training merchants replayed "
                                "as agent-training traces (0: all; purchases are rare, so "
                                "every session counts)")
    goal_demos: int = field(0, help="scripted goal-task demonstrations per catalog "
                            "(builtin, Flipkart, Amazon.in) added to the agents' traces, "
                            "searching the goal's product type (traces goal_demos.query=type). "
                            "0: none. Measured at 100: +4.3 min of SFT, still no goal success at "
                            "600 steps, and the simulated buyers add to cart far more often "
                            "(funnel alignment 0.79 -> 0.50); bench/goal_scaling.py trains "
                            "for the goal task (docs/traces.md)")
    sft_steps: int = field(500, help="optimizer steps of each agent's SFT (500 x 16 examples: "
                           "~0.5 epoch of the REES46 sample's traces, ~2 min per agent on 2 "
                           "cores; `sft_steps=1000` is one epoch; the types steer the agents "
                           "reliably only at ~2 epochs: `sft_steps=2000 sft_balance=0.5`, "
                           "~17 min, docs/agents.md)")
    sft_batch_size: int = field(16, help="examples per SFT step")
    sft_learning_rate: float = field(3e-3, help="peak learning rate of each agent's SFT")
    sft_balance: float = field(0.0, help="resampling of rare action forms in SFT (sft.balance; "
                               "adding to cart and checkout are ~0.4% of the traces' steps; "
                               "the agent undoes the resampling when it acts). 0: off; on "
                               "the REES46 sample it does not make simulated buyers buy "
                               "(docs/agents.md)")
    sft_alias_items: bool = field(True, help="give product ids a fresh alias in every training "
                                  "episode (sft.alias_items), so the agents learn when to act "
                                  "from the buyer type and the page, not from which product of "
                                  "a training merchant it is (docs/agents.md)")
    max_obs_chars: int = field(400, help="page text in the agent's prompt, in characters (the "
                               "top of the page: header, title, price, the first listings)")
    max_steps: int = field(30, help="step limit of a simulated buyer's episode (a purchase "
                           "takes ~10 steps from a product page: cart, checkout, 6 fields, "
                           "order)")
    prompt_persona: bool = field(False, help="also train and evaluate the prompt-persona "
                                 "baseline (type described in words instead of a token; a "
                                 "third SFT and simulation, ~+4 min)")
    n_buyers: int = field(80, help="simulated buyers per held-out merchant and policy")
    goal_tasks: int = field(8, help="goal tasks per catalog in the goal benchmark")
    browser_episode: bool = field(True, help="finish with one persona-agent episode in Chromium")
    threads: int = field(2, help="torch CPU threads")
    seed: int = field(0, help="seed of the splits, the training runs and the simulation")


register("demo_schema", DemoConfig)


def _say(console: Any, msg: str) -> None:
    console.print(f"[bold green]demo[/] {msg}")


def _ingest(cfg: Any, out: Path, console: Any) -> tuple[Path, str]:
    from storefront_mock.canonical import default_data_dir

    data = cfg.source
    rees = default_data_dir() / "rees46" / "2019-Oct-sample.csv"
    if data == "auto":
        data = "rees46" if rees.exists() else "synthetic"
        if data == "synthetic":
            _say(console, f"[yellow]no real data at {default_data_dir()} "
                          "(set SIMPERSONA_DATA_DIR): running on generated archetype traffic")
    ingest_dir = out / "ingest"
    if data == "synthetic":
        from simpersona_env.synthetic import generate_events

        log = generate_events(cfg.synthetic_buyers, n_merchants=cfg.synthetic_merchants,
                              seed=cfg.seed)
        raw = out / "generated" / "events.parquet"
        raw.parent.mkdir(parents=True, exist_ok=True)
        log.events.write_parquet(raw)
        run_command("simpersona_env.commands.ingest:run", "ingest",
                 ["data=canonical", f"data.path={raw}", f"out_dir={ingest_dir}",
                  f"seed={cfg.seed}"])
        return ingest_dir, (f"generated archetype traffic ({cfg.synthetic_buyers} buyers, "
                            f"{cfg.synthetic_merchants} merchants, seed {cfg.seed})")
    run_command("simpersona_env.commands.ingest:run", "ingest",
             [f"data={data}", f"out_dir={ingest_dir}", f"seed={cfg.seed}"])
    return ingest_dir, f"real {data} data from {default_data_dir()}"


def run(cfg: Any) -> int:
    """The main job end to end: buyer types, persona agents, simulated vs real conversion."""
    import polars as pl
    import torch
    from rich.console import Console

    from simpersona_env.buyers.split import TRAIN, assign_splits
    from simpersona_env.cpu import flush_denormals
    from simpersona_env.evaluation.population import pick_heldout_merchants
    from simpersona_env.personas.data import load_buyers
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import TrainConfig, train_personas

    console = Console(stderr=True, highlight=False)
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, cfg.threads))
    # subnormal floats as zero before any torch work starts its threads (simpersona_env.cpu):
    # the agents' SFT slows severalfold on them late in training
    flush_denormals()
    out = Path(cfg.out_dir)
    times: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        times[name] = round(time.perf_counter() - since, 1)
        _say(console, f"{name}: {times[name]:.0f}s")
        return time.perf_counter()

    # 1. canonical events, buyer representations, merchant statistics
    t = time.perf_counter()
    ingest_dir, source = _ingest(cfg, out, console)
    buyers = load_buyers(str(ingest_dir))
    merchants = sorted(buyers["merchant_id"].unique().to_list())
    held = pick_heldout_merchants(merchants, fraction=0.5, seed=cfg.seed)
    train_merchants = [m for m in merchants if m not in held]
    _say(console, f"data: {source}; {buyers.height} buyers at {len(merchants)} merchants; "
                  f"held out: {', '.join(held)}")
    t = lap("ingest", t)

    # 2. buyer types, trained on the training merchants only
    train_buyers = assign_splits(buyers.filter(~pl.col("merchant_id").is_in(held)),
                                 heldout_fraction=0.5, seed=cfg.seed)
    train_buyers = train_buyers.filter(pl.col("split") == TRAIN)
    typer = train_personas(train_buyers, PersonaVQVAEConfig(k=cfg.k),
                           TrainConfig(seed=cfg.seed))
    model_dir = out / "personas" / "model"
    typer.save(model_dir)
    run_command("simpersona_env.commands.personas:assign", "personas_assign",
             [f"buyers={ingest_dir}", f"checkpoint={model_dir}", f"out_dir={out / 'personas'}"])
    run_command("simpersona_env.commands.personas:report", "personas_report",
             [f"buyers={ingest_dir}", f"checkpoint={model_dir}",
              f"out_dir={out / 'personas' / 'report'}"])
    stats = json.loads((out / "personas" / "report" / "type_stats.json").read_text())
    descriptions = {str(r["type"]): r["description"] for r in stats["types"]}
    (out / "personas" / "descriptions.json").write_text(json.dumps(descriptions, indent=1))
    t = lap("buyer types", t)

    # 3. traces: real sessions of the training merchants replayed in their storefronts
    traces_dir = out / "traces"
    run_command("agents.commands_traces:traces", "traces",
             [f"events={ingest_dir}", f"persona_types={out / 'personas' / 'types.parquet'}",
              f"out_dir={traces_dir}", f"max_sessions={cfg.trace_sessions}",
              f"merchants=[{','.join(train_merchants)}]", f"num_personas={cfg.k}",
              f"seed={cfg.seed}", f"goal_demos.n={cfg.goal_demos}", "goal_demos.query=type",
              f"goal_demos.seed={cfg.seed}", f"goal_demos.benchmark_seeds=[{cfg.seed}]"])
    t = lap("traces", t)

    # 4. SFT: the persona-token agent and its baselines, the same model and data
    sft = [f"traces={traces_dir / 'traces.jsonl'}", f"n_personas={cfg.k}",
           f"sft.max_steps={cfg.sft_steps}", f"sft.seed={cfg.seed}",
           f"sft.learning_rate={cfg.sft_learning_rate}", f"sft.batch_size={cfg.sft_batch_size}",
           f"sft.max_obs_chars={cfg.max_obs_chars}", f"sft.balance={cfg.sft_balance}",
           f"sft.alias_items={cfg.sft_alias_items}", "sft.max_length=384",
           "sft.eval_fraction=0.05", "quality_steps=100"]
    variants = {"agent": "token", "agent-nopersona": "none"}
    if cfg.prompt_persona:
        variants["agent-text"] = "text"
    for name, mode in variants.items():
        extra = [f"descriptions={out / 'personas' / 'descriptions.json'}"] if mode == "text" else []
        run_command("agents.commands:train", "agent_train",
                 [*sft, f"out={out / name}", f"sft.persona={mode}", *extra])
    t = lap("agent SFT", t)
    steering = _steering(out / "agent")
    if steering is not None:
        _say(console, f"persona agent: {_steering_words(steering)}")

    # 5-6. population simulation on the held-out merchants, evaluation, report
    ev = [f"real={ingest_dir}", f"checkpoint={model_dir}", "eval=agents",
          f"persona_agent={out / 'agent'}", f"baseline_agent={out / 'agent-nopersona'}",
          f"n_buyers={cfg.n_buyers}", f"seed={cfg.seed}", f"split_seed={cfg.seed}",
          f"out_dir={out / 'evaluate'}", "min_buyers=10", "batch_size=16", f"max_steps={cfg.max_steps}",
          f"threads={cfg.threads}", "goal=true", f"goal_benchmark.n_tasks={cfg.goal_tasks}",
          "goal_benchmark.batch_size=8", f"goal_benchmark.seed={cfg.seed}",
          "+goal_benchmark.policies.persona_agent._target_=agents.policies.llm.LLMPolicy",
          f"+goal_benchmark.policies.persona_agent.checkpoint={out / 'agent'}",
          "+goal_benchmark.policies.no_persona._target_=agents.policies.llm.LLMPolicy",
          f"+goal_benchmark.policies.no_persona.checkpoint={out / 'agent-nopersona'}",
          "+goal_benchmark.policies.no_persona.persona_mode=none",
          # task by task: the agents against each other, and each against the oracle's ceiling
          ("goal_benchmark.contrasts=[[persona_agent,no_persona],[oracle,persona_agent],"
           "[oracle,no_persona]]")]
    if cfg.prompt_persona:
        ev.append(f"prompt_agent={out / 'agent-text'}")
    else:
        ev.append("~policies.prompt_persona")
    run_command("simpersona_env.commands.evaluate:run", "evaluate", ev)
    t = lap("simulation + evaluation", t)

    # 7. one persona-agent episode in a real browser, on a held-out merchant's storefront
    if cfg.browser_episode:
        _browser_episode(cfg, ingest_dir, held, out, console)
        t = lap("browser episode", t)

    total = time.perf_counter() - t0
    (out / "demo.json").write_text(json.dumps({"data": source, "held_out": held,
                                               "seconds": times, "total_s": total,
                                               "persona_swap_js_bits": steering}, indent=2))
    report = out / "evaluate" / "report.md"
    print(f"\ndemo finished in {total / 60:.1f} min on {source}")
    if steering is not None:
        print(f"persona agent: {_steering_words(steering)}")
    print(f"report: {report.resolve()}")
    return 0


def _steering(agent_dir: Path) -> float | None:
    """The persona agent's persona-swap divergence (bits), from its ``metrics.json``."""
    try:
        quality = json.loads((agent_dir / "metrics.json").read_text()).get("quality", {})
    except (OSError, ValueError):
        return None
    value = quality.get("persona_swap_js_bits_mean")
    return float(value) if value is not None else None


def _steering_words(bits: float) -> str:
    """:func:`agents.evaluate.steering_words`, and what it means for the demo's headline."""
    from agents.evaluate import STEERS_BITS, steering_words

    words = steering_words(bits)
    if bits < STEERS_BITS:
        words += ("; at this SFT budget persona against no-persona is decided by a few orders "
                  "either way (`sft_steps=2000 sft_balance=0.5` trains two epochs)")
    return words


def _browser_episode(cfg: Any, ingest_dir: Path, held: list[str], out: Path,
                     console: Any) -> None:
    """The persona agent shops once at a held-out merchant in headless Chromium."""
    import gymnasium as gym
    import polars as pl
    from rich.markup import escape

    import simpersona_env  # noqa: F401  (registers the env)
    from agents.policies.llm import LLMPolicy
    from simpersona_env.env.wrappers import RecordFunnel
    from storefront_mock.stores import stores_from_events

    types = pl.read_parquet(out / "personas" / "types.parquet")
    merchant = held[0]
    persona = int(types.filter(pl.col("merchant_id") == merchant)["type"].mode().sort()[0])
    env = RecordFunnel(gym.make("simpersona/Storefront-v0", backend="playwright",
                                stores=stores_from_events(ingest_dir, [merchant]),
                                num_personas=cfg.k, max_episode_steps=cfg.max_steps))
    policy = LLMPolicy(out / "agent", seed=cfg.seed)
    try:
        obs, info = env.reset(seed=cfg.seed, options={"persona": persona})
        policy.reset(persona, "")
        _say(console, f"a buyer of type {persona} at {merchant} in Chromium "
                      f"({env.unwrapped.start_url}):")
        done = False
        while not done:
            action = policy.act(obs)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            console.print(f"    {escape(action):<48} -> {info['page']} ({info['stage']})")
        f = info["funnel"]
        _say(console, f"funnel reached: {f['stage']}, {f['cart_adds']} cart adds, "
                      f"purchase: {'yes' if f['purchase'] else 'no'}, {f['steps']} steps")
    finally:
        env.close()
