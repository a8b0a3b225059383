"""Goal-task scaling: the persona-token small agent against the ~8x no-persona model.

The issue's target: "the persona agent's goal success >= that of the 8x no-persona model".
On the same traces (the real sessions the demo replayed for its training merchants, plus
scripted goal demonstrations on task seeds the benchmark never uses,
:func:`agents.goal_demos.goal_demonstrations`), this trains

- ``persona_agent``: ``agent=small`` with the persona token (``sft.persona=token``), and
- ``no_persona_8x``: ``agent=large`` (2x width, 2x depth: ~8x the transformer-block
  parameters) without it (``sft.persona=none``),

with the same data, the same seed (hence the same batches in the same order) and the **same
number of optimizer steps**. Same steps rather than the same wall budget: the question is
whether the persona agent matches a model 8x its size given the same data; a wall budget
would hand the small model ~2.4x more updates (it runs faster on CPU) and measure compute
instead of scale. Both are then run on the goal benchmark
(:func:`simpersona_env.evaluation.goal.goal_benchmark`: the same ``n_tasks`` seeded
instructions per catalog, no persona shown to any policy) with the scripted oracle (upper
bound) and the random policy (floor) in the same run.

Writes ``<out>/goal_scaling.json`` and ``<out>/goal_scaling.png``: goal success and mean
reward per policy (overall and per catalog) with percentile bootstrap intervals over tasks,
each agent's parameter count (total and transformer blocks), training tokens, SFT seconds and
losses, and the sizes used.

Run::

    .venv/bin/python bench/goal_scaling.py                      # ~20 min on 2 busy cores
    .venv/bin/python bench/goal_scaling.py --reuse-agents       # evaluation only (~5 min)
    .venv/bin/python bench/goal_scaling.py --sft-steps 20 --demos 10 --n-tasks 2   # smoke run
    .venv/bin/python bench/goal_scaling.py --query type --demos 300 --sft-steps 1500 \
        --threads 2 --out runs/bench/goal_type_small                 # docs/traces.md, ~40 min

``--agents persona_agent`` trains and runs one agent (no verdict); a later run with
``--reuse-agents`` and both trains only the missing one. ``--goal-search free`` lets the LLM
policies write goal searches freely (default: spans of the goal).

Besides end-to-end success it scores each agent's next action on held-out goal
demonstrations (tasks in neither the traces nor the benchmark), by kind of step (search,
product, option, cart, checkout field, place order), so that a comparison still says
something when both agents' success is 0. The target is reported as met, not met, or
undecided (both 0).

Without ``runs/demo/traces/traces.jsonl`` (run ``simpersona demo`` first) it replays a
generated log instead (``simpersona traces events=synthetic``) and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simpersona_env.cli import run_command  # the repository, not an install

AGENTS = {  # name -> (agent config, sft.persona): the comparison of the target
    "persona_agent": ("small", "token"),
    "no_persona_8x": ("large", "none"),
}


def say(msg: str) -> None:
    print(f"[goal_scaling {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_traces(args: argparse.Namespace, out: Path) -> tuple[Path, dict[str, Any]]:
    """Real replayed traces + goal demonstrations in one JSONL; what went in."""
    from agents.goal_demos import goal_demonstrations
    from agents.traces import read_episodes, write_episodes

    real_path = Path(args.traces)
    if real_path.is_file():
        source = f"{real_path} (the demo's replayed training-merchant sessions)"
    else:
        say(f"no traces at {real_path} (run `simpersona demo` for the real ones): replaying a "
            "generated log instead")
        gen = out / "generated-traces"
        run_command("agents.commands_traces:traces", "traces",
                ["events=synthetic", f"out_dir={gen}", "synthetic_buyers=400",
                 f"seed={args.seed}", "progress=false"])
        real_path, source = gen / "traces.jsonl", "generated archetype traffic (no data)"
    everything = read_episodes(real_path)
    # the demo's traces may carry goal demonstrations of their own (untyped, with a goal):
    # the bench adds its own, so only the replayed sessions are kept
    real = [e for e in everything if not (e.goal and e.persona < 0)]
    if len(real) < len(everything):
        say(f"left out {len(everything) - len(real)} goal demonstrations found in {real_path}")
    t0 = time.perf_counter()
    demos, report = goal_demonstrations(args.catalogs, args.demos, seed=args.seed,
                                        query=args.query, benchmark_seeds=[args.bench_seed],
                                        benchmark_tasks=max(1000, args.n_tasks),
                                        max_steps=args.max_steps, progress=True)
    say(f"{len(real)} real episodes ({sum(len(e.steps) for e in real)} steps) + "
        f"{len(demos)} goal demonstrations ({sum(len(e.steps) for e in demos)} steps, "
        f"{time.perf_counter() - t0:.1f}s) from {source}")
    path = out / "traces.jsonl"
    write_episodes([*real, *demos], path)
    info = {"real_source": source, "real_episodes": len(real),
            "demos_left_out_of_real": len(everything) - len(real),
            "real_steps": sum(len(e.steps) for e in real),
            "real_goal_episodes": sum(bool(e.goal) for e in real),
            "demo_episodes": len(demos), "demo_steps": sum(len(e.steps) for e in demos),
            "goal_demos": {**report, "catalogs": {c: {k: v for k, v in s.items()
                                                     if k != "env_seeds"}
                                                 for c, s in report["catalogs"].items()}},
            "n_personas": max(1, 1 + max((e.persona for e in real), default=-1))}
    return path, info


def block_params(model: Any) -> int:
    """Parameters of the transformer blocks (no embeddings / LM head)."""
    return sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)


def train(name: str, size: str, persona: str, traces: Path, k: int, args: argparse.Namespace,
          out: Path) -> dict[str, Any]:
    say(f"SFT {name}: agent={size}, sft.persona={persona}, {args.sft_steps} steps")
    t0 = time.perf_counter()
    run_command("agents.commands:train", "agent_train",
            [f"traces={traces}", f"out={out / name}", f"agent={size}", f"n_personas={k}",
             f"sft.persona={persona}", f"sft.max_steps={args.sft_steps}",
             f"sft.learning_rate={args.lr}", f"sft.batch_size={args.batch_size}",
             f"sft.max_obs_chars={args.max_obs_chars}", f"sft.max_length={args.max_length}",
             f"sft.seed={args.seed}", f"sft.eval_fraction={args.eval_fraction}",
             f"sft.alias_items={args.alias_items}",
             "sft.logging_steps=25", "quality_steps=0"])
    return summary(name, size, persona, args, out, wall=time.perf_counter() - t0)


def saved_matches(name: str, size: str, persona: str, args: argparse.Namespace,
                  out: Path) -> bool:
    """Whether ``out/name`` holds a finished agent trained with these settings."""
    path = out / name / "metrics.json"
    if not path.is_file():
        return False
    sft = json.loads(path.read_text()).get("config", {}).get("sft", {})
    want = {"persona": persona, "max_steps": args.sft_steps, "learning_rate": args.lr,
            "batch_size": args.batch_size, "max_length": args.max_length,
            "max_obs_chars": args.max_obs_chars, "seed": args.seed,
            "alias_items": args.alias_items}
    differ = {k: (sft.get(k), v) for k, v in want.items() if sft.get(k) != v}
    if differ:
        say(f"{name}: the checkpoint in {out / name} was trained with other settings "
            f"(saved, asked: {differ}); training again")
    return not differ


def summary(name: str, size: str, persona: str, args: argparse.Namespace, out: Path,
            wall: float | None = None) -> dict[str, Any]:
    """What the report keeps of a trained agent, from its checkpoint and metrics."""
    from agents.model import load_agent

    m = json.loads((out / name / "metrics.json").read_text())
    _, model, _ = load_agent(out / name, device="cpu")
    res = {"agent": size, "persona": persona, "n_parameters": m["n_parameters"],
           "block_parameters": block_params(model), "train_tokens": m["train_tokens"],
           "sft_seconds": round(m["seconds"], 1),
           "wall_seconds": round(wall if wall is not None else m.get("wall_s", m["seconds"]), 1),
           "train_loss_first": m["train_loss_first"], "train_loss_last": m["train_loss_last"],
           "eval_loss": m["eval_loss"], "steps": args.sft_steps}
    say(f"{name}: {res['n_parameters'] / 1e6:.2f}M parameters ({res['block_parameters'] / 1e6:.2f}M "
        f"in blocks), {res['train_tokens']} tokens in {res['sft_seconds']:.0f}s; loss "
        f"{res['train_loss_first']:.2f} -> {res['train_loss_last']:.2f}, held-out {res['eval_loss']}")
    return res


def goal_prompt_cut(traces: Path, args: argparse.Namespace, agent_dir: Path) -> float:
    """Share of goal-demonstration examples whose goal line the max_length cut removes."""
    from agents.model import load_agent
    from agents.sft import build_examples
    from agents.tokens import encode
    from agents.traces import read_episodes

    tok, _, meta = load_agent(agent_dir, device="cpu")
    eps = [e for e in read_episodes(traces) if e.goal and e.persona < 0]
    eps = eps[:: max(1, len(eps) // 60)]  # a spread over every catalog
    exs = build_examples(eps, persona="none", max_obs_chars=args.max_obs_chars,
                         drop_chrome=meta.drop_chrome)
    if not exs:
        return 0.0
    cut = 0
    for ex in exs:
        enc = encode(tok, ex.prompt, ex.completion, max_length=args.max_length)
        cut += "goal:" not in tok.decode(enc.input_ids)
    return cut / len(exs)


def action_kind(action: str) -> str:
    """A coarse kind of a shop action, to see which step of a goal task a model gets wrong."""
    if action.startswith("search["):
        return "search"
    if action.startswith("click[product-"):
        return "product"
    if action.startswith("select[option-"):
        return "option"
    if action.startswith(("type[field-", "select[field-")):
        return "checkout_field"
    if action in ("click[add-to-cart]", "click[nav-cart]", "click[checkout]"):
        return "cart"
    if action == "click[place-order]":
        return "place_order"
    return "other"


def heldout_demos(args: argparse.Namespace, traces: Path) -> list[Any]:
    """Goal demonstrations of tasks in neither the training traces nor the benchmark."""
    from agents.goal_demos import goal_demonstrations
    from agents.traces import read_episodes

    seen = {e.goal for e in read_episodes(traces) if e.goal}
    eps, _ = goal_demonstrations(args.catalogs, args.heldout_demos, seed=args.seed + 1,
                                 query=args.query, benchmark_seeds=[args.bench_seed],
                                 benchmark_tasks=max(1000, args.n_tasks),
                                 max_steps=args.max_steps, progress=False)
    return [e for e in eps if e.goal not in seen]


def step_match(agent_dir: Path, episodes: list[Any], persona_mode: str,
               goal_search: str = "span") -> dict[str, Any]:
    """Greedy next-action exact match with the demonstrator's history (teacher forcing), by
    action kind: :func:`agents.evaluate.next_action_match` grouped by :func:`action_kind`."""
    from agents.evaluate import next_action_match
    from agents.policies.llm import LLMPolicy

    policy = LLMPolicy(agent_dir, temperature=0.0, persona_mode=persona_mode, device="cpu",
                       goal_search=goal_search)
    m = next_action_match(policy, episodes, group=lambda ep, step: action_kind(step.action))
    return {"overall": m["overall"] if m["n"] else None, "n": m["n"],
            "per_kind": m["per_group"], "n_per_kind": m["n_per_group"]}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pols = list(result["goal"]["policies"])
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    colors = {"oracle": "#888", "random": "#bbb", "persona_agent": "#2a7",
              "no_persona_8x": "#c63"}
    for ax, metric in zip(axes[:2], ("success", "reward")):
        vals = [result["goal"]["policies"][p]["all"][metric] for p in pols]
        v = [x["value"] or 0.0 for x in vals]
        err = [[max(0.0, a - (x["lo"] or 0.0)) for a, x in zip(v, vals)],
               [max(0.0, (x["hi"] or 0.0) - a) for a, x in zip(v, vals)]]
        ax.bar(pols, v, yerr=err, capsize=4, color=[colors.get(p, "#58b") for p in pols])
        for i, a in enumerate(v):
            ax.text(i, a + 0.02, f"{a:.2f}", ha="center", fontsize=9)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"goal {metric} ({result['goal']['n_tasks']} tasks x "
                     f"{len(result['goal']['catalogs'])} catalogs, 95% bootstrap)")
        ax.tick_params(axis="x", labelrotation=15)
    ax = axes[2]
    match = result.get("heldout_demo_step_match", {})
    kinds = sorted({k for m in match.values() for k in m["per_kind"]})
    for i, (name, m) in enumerate(match.items()):
        xs = [j + (i - 0.5) * 0.4 for j in range(len(kinds))]
        ax.bar(xs, [m["per_kind"].get(k, 0.0) for k in kinds], width=0.4, label=name,
               color=colors.get(name, "#58b"))
    ax.set_xticks(range(len(kinds)), kinds, rotation=25, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    n_steps = next(iter(match.values()), {}).get("n", 0)
    ax.set_title(f"next-action match, held-out demonstrations ({n_steps} steps)")
    ax = axes[3]
    names = list(result["agents"])
    ax.axis("off")
    rows = [[n, f"{a['n_parameters'] / 1e6:.2f}M", f"{a['block_parameters'] / 1e6:.2f}M",
             f"{a['train_tokens'] / 1e6:.2f}M", f"{a['sft_seconds']:.0f}s",
             f"{a['train_loss_last']:.2f}"] for n, a in ((n, result["agents"][n]) for n in names)]
    tab = ax.table(cellText=rows, colLabels=["agent", "params", "blocks", "tokens", "SFT",
                                             "loss"], loc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(9)
    tab.scale(1, 1.8)
    ax.set_title(f"same data, {result['settings']['sft_steps']} optimizer steps each")
    fig.suptitle("goal benchmark: persona-token small agent vs ~8x no-persona model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", default="runs/demo/traces/traces.jsonl",
                    help="real replayed traces (the demo's; generated data when missing)")
    ap.add_argument("--catalogs", default="builtin,flipkart,amazon",
                    help="catalogs of the demonstrations and of the benchmark")
    ap.add_argument("--demos", type=int, default=200, help="goal demonstrations per catalog")
    ap.add_argument("--query", default="instruction", choices=("instruction", "type"),
                    help="what a demonstration searches: words of the instruction, or only "
                         "its product type (agents.goal_demos.GoalDemonstrator)")
    ap.add_argument("--agents", default=",".join(AGENTS),
                    help="which of the two agents to train and run (both for the target)")
    ap.add_argument("--sft-steps", type=int, default=250, help="optimizer steps of each SFT "
                    "(the demo's)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (the demo's)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-obs-chars", type=int, default=800,
                    help="page text in the prompt (the search page's first results start "
                         "after ~450-720 characters of header)")
    ap.add_argument("--max-length", type=int, default=512, help="longest example in tokens")
    ap.add_argument("--n-tasks", type=int, default=8, help="goal tasks per catalog")
    ap.add_argument("--max-steps", type=int, default=30, help="step limit of a goal task")
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="LLM policies' sampling temperature (0: greedy)")
    ap.add_argument("--goal-search", default="span", choices=("span", "free"),
                    help="LLM policies' search text: a span of the goal's words (decoding "
                         "constrained) or free (agents.policies.llm.LLMPolicy goal_search)")
    ap.add_argument("--alias-items", action=argparse.BooleanOptionalAction, default=False,
                    help="per-episode product aliases in SFT (sft.alias_items; off: the "
                         "figures in docs/traces.md were measured without them)")
    ap.add_argument("--eval-batch", type=int, default=8, help="envs per batched LLM step")
    ap.add_argument("--bench-seed", type=int, default=0, help="seed of the goal benchmark")
    ap.add_argument("--seed", type=int, default=0, help="seed of the demos and the SFT")
    ap.add_argument("--eval-fraction", type=float, default=0.01,
                    help="episodes held out for the SFT eval loss (kept small: it is scored "
                         "before and after training)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine two threads ran "
                         "several times slower)")
    ap.add_argument("--heldout-demos", type=int, default=10,
                    help="held-out goal demonstrations per catalog (their own seed stream) "
                         "scored step by step (next-action match by kind)")
    ap.add_argument("--reuse-agents", action="store_true",
                    help="keep the agents of a previous run in --out whose saved SFT settings match "
                         "these (checked); train the others")
    ap.add_argument("--out", default="runs/bench/goal_scaling")
    args = ap.parse_args(argv)
    args.catalogs = [c.strip() for c in args.catalogs.split(",") if c.strip()]
    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = sorted(set(names) - set(AGENTS))
    if unknown or not names:
        ap.error(f"--agents {args.agents!r}: choose from {', '.join(AGENTS)}")
    chosen = {n: AGENTS[n] for n in AGENTS if n in names}

    import torch

    from simpersona_env.evaluation.goal import goal_benchmark, paired_difference

    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    traces, data = build_traces(args, out)
    times["traces"] = round(time.perf_counter() - t0, 1)
    agents = {}
    previous = out / "goal_scaling.json"
    before = json.loads(previous.read_text())["agents"] if previous.is_file() else {}
    for name, (size, persona) in chosen.items():
        t = time.perf_counter()
        if args.reuse_agents and saved_matches(name, size, persona, args, out):
            agents[name] = before.get(name) or summary(name, size, persona, args, out)
            say(f"{name}: reusing the checkpoint in {out / name} (--reuse-agents)")
        else:
            agents[name] = train(name, size, persona, traces, data["n_personas"], args, out)
        times[f"sft_{name}"] = round(time.perf_counter() - t, 1)
    data["goal_line_cut_share"] = goal_prompt_cut(traces, args, out / next(iter(chosen)))
    ratio = (agents["no_persona_8x"]["block_parameters"]
             / agents["persona_agent"]["block_parameters"] if len(chosen) == 2 else None)
    say(f"block parameters large/small: {ratio and f'{ratio:.2f}x'}; goal line cut from "
        f"{data['goal_line_cut_share']:.1%} of demonstration prompts")

    t = time.perf_counter()
    held = heldout_demos(args, traces)
    steps_match = {name: step_match(out / name, held, persona_mode=AGENTS[name][1],
                                    goal_search=args.goal_search) for name in chosen}
    times["step_match"] = round(time.perf_counter() - t, 1)
    for name, m in steps_match.items():
        say(f"{name}: next-action match on {m['n']} steps of {len(held)} held-out goal "
            f"demonstrations {m['overall']:.3f}; by kind " + ", ".join(
                f"{k} {v:.2f}" for k, v in m["per_kind"].items()))

    llm = {"_target_": "agents.policies.llm.LLMPolicy", "temperature": args.temperature,
           "seed": args.seed, "goal_search": args.goal_search}
    policies = {
        "oracle": {"_target_": "simpersona_env.env.oracle:ShopOracle"},
        "random": {"_target_": "agents.policies.random.RandomPolicy", "seed": args.seed},
        "persona_agent": {**llm, "checkpoint": str(out / "persona_agent")},
        "no_persona_8x": {**llm, "checkpoint": str(out / "no_persona_8x"),
                          "persona_mode": "none"},
    }
    policies = {p: v for p, v in policies.items() if p not in AGENTS or p in chosen}
    t = time.perf_counter()
    say(f"goal benchmark: {len(policies)} policies x {args.n_tasks} tasks x "
        f"{len(args.catalogs)} catalogs")
    goal = goal_benchmark(policies, out_dir=out / "goal", catalogs=args.catalogs,
                          n_tasks=args.n_tasks, seed=args.bench_seed, max_steps=args.max_steps,
                          batch_size=args.eval_batch, progress=True)
    times["goal_benchmark"] = round(time.perf_counter() - t, 1)
    times["total"] = round(time.perf_counter() - t0, 1)

    succ = {p: goal["policies"][p]["all"]["success"] for p in policies}
    target_met: bool | None = None  # only with both agents
    paired: dict[str, Any] = {}
    if len(chosen) == 2:
        a, b = (succ["persona_agent"]["value"] or 0), (succ["no_persona_8x"]["value"] or 0)
        # 0 >= 0 is no evidence either way: say so rather than report the target as met
        target_met = None if a == b == 0 else a >= b
        # persona minus 8x, task by task (the same tasks): is the gap more than chance?
        tasks = {p: goal["policies"][p]["all"]["per_task"] for p in chosen}
        paired = {m: paired_difference(tasks["persona_agent"][m], tasks["no_persona_8x"][m],
                                       seed=args.bench_seed) for m in ("success", "reward")}
    result = {"settings": {k: v for k, v in vars(args).items()}, "data": data,
              "agents": agents, "block_parameter_ratio": ratio and round(ratio, 2), "goal": goal,
              "heldout_demo_step_match": steps_match,
              "target": {"persona_success_ge_8x_no_persona": target_met,
                         **{name: succ[name] for name in chosen},
                         "paired_difference_persona_minus_8x": paired},
              "seconds": times, "torch_threads": torch.get_num_threads(),
              "load_average": os.getloadavg()}
    (out / "goal_scaling.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "goal_scaling.png")
    for p in policies:
        s, r = goal["policies"][p]["all"]["success"], goal["policies"][p]["all"]["reward"]
        per = ", ".join(f"{c} {goal['policies'][p][c]['success']['value']:.2f}"
                        for c in goal["catalogs"])
        say(f"{p:>14}: success {s['value']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}], reward "
            f"{r['value']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] ({per})")
    verdict = ({None: "undecided (both 0)", True: "met", False: "not met"}[target_met]
               if len(chosen) == 2 else "not judged (one agent)")
    if paired:
        d = paired["success"]
        verdict += (f" on the point estimate; paired success difference {d['value']:+.3f} "
                    f"[{d['lo']:+.3f}, {d['hi']:+.3f}] over {d['n']} tasks")
    say(f"target (persona agent >= 8x no-persona): {verdict}; "
        f"{times['total'] / 60:.1f} min; {out / 'goal_scaling.json'}, {out / 'goal_scaling.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
