"""Replay speed: sessions/s with one env per merchant (reused) against a fresh shop and env
per session (the baseline), on the same sessions in the same run.

    .venv/bin/python bench/bench_replay.py [--events runs/ingest/rees46] [--n 200] [--out out/bench]

Without ``--events`` the sessions come from a generated log (no data needed). Both arms
replay the same sessions in the same order, interleaved in rounds so that machine load hits
both alike; the ratio is what to compare across machines. Writes ``bench_replay.json`` and
``bench_replay.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from agents.replay import Replayer, sessions_of


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="", help="ingest output folder or Parquet (default: "
                    "a generated log)")
    ap.add_argument("--n", type=int, default=200, help="sessions per arm")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()

    if args.events:
        events, source = args.events, args.events
    else:
        from simpersona_env.synthetic import generate_events

        events = generate_events(400, n_merchants=2, seed=0).events
        source = "generated log (400 buyers, 2 merchants)"
    sessions = list(sessions_of(events, max_sessions=args.n))
    reused = Replayer(events)
    fresh = Replayer(events)
    chunks = [sessions[i::args.rounds] for i in range(args.rounds)]
    times = {"reused env per merchant": 0.0, "fresh shop and env per session": 0.0}
    steps = {k: 0 for k in times}
    bar = tqdm(total=2 * len(sessions), desc="replay", unit="session")
    for chunk in chunks:
        t0 = time.perf_counter()
        for _, rows in chunk:
            steps["reused env per merchant"] += reused.replay(rows).coverage.steps
            bar.update(1)
        t1 = time.perf_counter()
        for _, rows in chunk:
            fresh._fresh_app()  # the baseline: a new shop app and a new env for every session
            steps["fresh shop and env per session"] += fresh.replay(rows).coverage.steps
            bar.update(1)
        t2 = time.perf_counter()
        times["reused env per merchant"] += t1 - t0
        times["fresh shop and env per session"] += t2 - t1
    bar.close()
    n = len(sessions)
    result = {
        "source": source, "sessions": n,
        "arms": {k: {"seconds": round(v, 3), "sessions_per_s": round(n / v, 2),
                     "steps_per_s": round(steps[k] / v, 1)} for k, v in times.items()},
        "speedup_reused_vs_fresh": round(times["fresh shop and env per session"]
                                         / times["reused env per merchant"], 2),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_replay.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    names = list(result["arms"])
    ax.barh(names, [result["arms"][k]["sessions_per_s"] for k in names], color=["#3a7", "#999"])
    ax.set_xlabel("sessions / s")
    ax.set_title(f"replay of {n} sessions: reuse is {result['speedup_reused_vs_fresh']}x")
    fig.tight_layout()
    fig.savefig(out / "bench_replay.png", dpi=110)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
