"""Benchmark of the agent side on CPU: SFT tokens/s and policy actions/s, in one run.

- **SFT**: TRL ``SFTTrainer`` on traces recorded in the env (the rule-based buyer of each type
  on the bundled shop, http backend), for the ``small`` built-in model and, as the baseline in
  the same run, the ``large`` one (~8x the block parameters): training tokens per second
  (prompt + action tokens of the examples seen) and the large/small ratio.
- **Policy**: the persona-token LLM policy (the ``small`` agent just trained) choosing actions
  on real pages of the shop: ``act_batch`` over ``B`` envs at once vs ``act`` one env at a
  time (the baseline): actions per second and the batched/single ratio. Greedy decoding, so
  both make the same choices.

Writes ``reports/bench_agents/bench_agents.json`` and ``bench_agents.png``.

Run::

    .venv/bin/python bench/bench_agents.py            # full (a few minutes on 2 cores)
    .venv/bin/python bench/bench_agents.py --quick    # smoke run (~1 minute)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def record_traces(n_episodes: int, k: int, seed: int = 0):
    """Episodes of the rule-based buyer of each type in the real env (http backend)."""
    import gymnasium as gym

    import simpersona_env  # noqa: F401
    from agents.policies.rule_based import RuleBasedBuyer, TypeProfile
    from agents.traces import record_episode

    profiles = {t: TypeProfile(views_per_session=1 + t, view_to_cart=min(1.0, 0.3 * t),
                               cart_to_purchase=0.5, bounce=0.0) for t in range(k)}
    env = gym.make("simpersona/Storefront-v0", store="builtin", backend="http",
                   num_personas=k, max_episode_steps=20)
    buyer = RuleBasedBuyer(profiles, seed=seed)
    eps, pages = [], []
    for i in range(n_episodes):
        ep, _ = record_episode(env, buyer, persona=i % k, seed=seed + i, merchant_id="builtin",
                               options={"persona": i % k})
        eps.append(ep)
        pages += [s.observation for s in ep.steps]
    env.close()
    return eps, pages


def bench_sft(size: str, examples, eval_examples, k: int, steps: int, out: Path) -> dict:
    import torch

    import agents.commands  # noqa: F401  (registers the agent_train schema)
    from agents.model import AgentModelConfig, build_agent
    from agents.sft import SFTSettings, train_sft
    from simpersona_env.config import compose, to_object

    torch.manual_seed(0)
    cfg = to_object(compose("agent_train", ["traces=x", f"agent={size}"]).agent, AgentModelConfig)
    tok, model = build_agent(cfg, k, corpus=[e.prompt + e.completion for e in examples])
    settings = SFTSettings(max_steps=steps, batch_size=8, logging_steps=max(1, steps // 5),
                           max_obs_chars=1500, learning_rate=1e-3)
    res = train_sft(tok, model, examples, eval_examples, settings, out / f"sft_{size}")
    # tokens actually seen: the examples' lengths over the steps taken (with wrap-around)
    from agents.tokens import encode

    lengths = [len(encode(tok, e.prompt, e.completion, settings.max_length).input_ids)
               for e in examples]
    seen = steps * settings.batch_size
    tokens = sum(lengths) * (seen // len(lengths)) + sum(lengths[: seen % len(lengths)])
    return {"size": size, "parameters": sum(p.numel() for p in model.parameters()),
            "steps": steps, "seconds": res.seconds, "tokens": tokens,
            "tokens_per_s": tokens / res.seconds, "loss_first": res.train_loss_first,
            "loss_last": res.train_loss_last, "model": model, "tokenizer": tok}


def bench_policy(model, tok, k: int, pages, batch: int, rounds: int) -> dict:
    from agents.model import AgentMeta
    from agents.policies.llm import LLMPolicy

    policy = LLMPolicy(model=model, tokenizer=tok, meta=AgentMeta(n_personas=k), temperature=0)
    groups = [pages[i * batch:(i + 1) * batch] for i in range(rounds)]
    groups = [g for g in groups if len(g) == batch]
    personas = [i % k for i in range(batch)]
    # warm-up (first-call allocations)
    policy.reset_batch(personas, [""] * batch)
    policy.act_batch(groups[0])
    single, batched, same = [], [], 0
    for g in groups:  # alternate the contenders so machine load hits both alike
        t = time.perf_counter()
        one = []
        for p, obs in zip(personas, g):
            policy.reset(p, "")
            one.append(policy.act(obs))
        single.append(time.perf_counter() - t)
        t = time.perf_counter()
        policy.reset_batch(personas, [""] * batch)
        many = policy.act_batch(g)
        batched.append(time.perf_counter() - t)
        same += sum(a == b for a, b in zip(one, many))
    n = batch * len(groups)
    return {"batch": batch, "actions": n,
            "single_actions_per_s": n / sum(single), "batched_actions_per_s": n / sum(batched),
            "batched_over_single": sum(single) / sum(batched),
            "single_median_s_per_action": statistics.median(single) / batch,
            "batched_median_s_per_action": statistics.median(batched) / batch,
            "same_choice_share": same / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", default=str(REPO / "reports" / "bench_agents"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k = 4
    n_eps, steps, batch, rounds = (12, 10, 8, 3) if args.quick else (40, 40, 16, 6)
    from agents.sft import build_examples, split_episodes

    t0 = time.perf_counter()
    eps, pages = record_traces(n_eps, k)
    train, held = split_episodes(eps, 0.1)
    ex, ev = build_examples(train), build_examples(held)
    print(f"[bench agents] {len(eps)} env episodes, {len(ex)} training steps "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    results: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                                 "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                                 "cuda": torch.cuda.is_available()},
                     "quick": args.quick}
    sft = {}
    for size in ("small", "large"):
        r = bench_sft(size, ex, ev, k, steps, out)
        print(f"[bench agents] SFT {size}: {r['parameters'] / 1e6:.2f}M params, "
              f"{r['tokens_per_s']:.0f} tokens/s", flush=True)
        sft[size] = r
    results["sft"] = {s: {a: b for a, b in r.items() if a not in ("model", "tokenizer")}
                      for s, r in sft.items()}
    results["sft"]["large_over_small_time_per_token"] = (sft["small"]["tokens_per_s"]
                                                         / sft["large"]["tokens_per_s"])
    pol = bench_policy(sft["small"]["model"], sft["small"]["tokenizer"], k, pages, batch, rounds)
    print(f"[bench agents] policy: {pol['single_actions_per_s']:.1f} actions/s one at a time, "
          f"{pol['batched_actions_per_s']:.1f} batched (B={batch}): "
          f"x{pol['batched_over_single']:.2f}", flush=True)
    results["policy"] = pol
    (out / "bench_agents.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "bench_agents.png")
    print(f"[bench agents] wrote {out / 'bench_agents.json'} and bench_agents.png")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    sft = results["sft"]
    a.bar(["small", "large"], [sft["small"]["tokens_per_s"], sft["large"]["tokens_per_s"]],
          color=["tab:blue", "tab:gray"])
    a.set_ylabel("training tokens / s")
    a.set_title(f"SFT on CPU (large is x{sft['large_over_small_time_per_token']:.1f} slower)")
    p = results["policy"]
    b.bar(["one at a time", f"batched (B={p['batch']})"],
          [p["single_actions_per_s"], p["batched_actions_per_s"]], color=["tab:gray", "tab:blue"])
    b.set_ylabel("actions / s")
    b.set_title(f"LLM policy (x{p['batched_over_single']:.1f} batched)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
