"""Benchmark of the population runners against a bare env loop, in one process run.

    .venv/bin/python bench/bench_simulate.py [n_buyers=120] [out=reports/bench_simulate] [ray=1]

Contenders (same buyers, seed for seed, rule-based typed buyer on the builtin store, http
backend): ``bare`` (one env, one policy, a plain reset/step loop: the floor), ``local-0``
(the runner in process: records, event log, episode file), ``local-2`` (two worker
processes), ``ray-2`` (two Ray actors; skipped with ray=0). Reported as episodes/s and as a
ratio to the bare loop. Writes ``<out>/bench_simulate.json`` and ``.png``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

POLICY = {"_target_": "agents.policies.rule_based.RuleBasedBuyer", "seed": 0, "profiles": {
    "0": {"views_per_session": 1.0, "view_to_cart": 0.05, "cart_to_purchase": 0.5},
    "1": {"views_per_session": 4.0, "view_to_cart": 0.3, "cart_to_purchase": 0.8}}}


def bare(n: int) -> float:
    """The floor: the env and the policy in a plain loop, nothing recorded."""
    import gymnasium as gym

    import simpersona_env  # noqa: F401
    from simpersona_env.simulation import BuyerPlan, make_policy

    env = gym.make("simpersona/Storefront-v0", num_personas=2)
    policy = make_policy(POLICY)
    t0 = time.perf_counter()
    for i in range(n):
        plan = BuyerPlan.of(0, i)
        obs, _ = env.reset(seed=plan.env_seed, options={"persona": i % 2})
        policy.reset(i % 2, "")
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(policy.act(obs))
            done = term or trunc
    seconds = time.perf_counter() - t0
    env.close()
    return seconds


def main(argv: list[str]) -> int:
    args = dict(a.split("=", 1) for a in argv)
    n = int(args.get("n_buyers", 120))
    out = Path(args.get("out", "reports/bench_simulate"))
    out.mkdir(parents=True, exist_ok=True)
    from simpersona_env.simulation import SimulationSpec, simulate

    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=n, policy=POLICY, batch_size=4)
    results = {"bare": bare(n)}
    runs = [("local-0", "local", 0), ("local-2", "local", 2)]
    if args.get("ray", "1") != "0":
        runs.append(("ray-2", "ray", 2))
    with tempfile.TemporaryDirectory() as tmp:
        for name, runner, workers in runs:
            t0 = time.perf_counter()
            simulate(spec, Path(tmp) / name, runner=runner, workers=workers, num_cpus=2,
                     progress=False)
            results[name] = time.perf_counter() - t0  # start-up included: what a user waits
    doc = {"n_buyers": n, "policy": "rule_based", "backend": "http",
           "seconds": results, "episodes_per_s": {k: n / v for k, v in results.items()},
           "ratio_to_bare": {k: results["bare"] / v for k, v in results.items()},
           "note": "runner times include process/actor start-up and writing the episode file "
                   "and the Parquet log; 'bare' records nothing"}
    (out / "bench_simulate.json").write_text(json.dumps(doc, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(results)
    ax.barh(names, [doc["episodes_per_s"][k] for k in names])
    for i, k in enumerate(names):
        ax.text(doc["episodes_per_s"][k], i, f" x{doc['ratio_to_bare'][k]:.2f}", va="center")
    ax.set_xlabel(f"episodes/s ({n} buyers; ratio to the bare loop)")
    ax.set_title("Population runners vs a bare env loop")
    fig.tight_layout()
    fig.savefig(out / "bench_simulate.png", dpi=110)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
