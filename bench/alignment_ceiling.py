"""How high can conversion alignment go on this data? The held-out split's own ceiling.

The evaluation scores a simulated population against the *real half* of each held-out
merchant's buyers (docs/evaluation.md). Even a simulator that reproduced the other half, the
*population half*, exactly would not score 1: two halves of a few hundred real buyers convert
at different rates by chance, and a merchant whose real half holds one purchase (or none)
swings the score between 0 and 1. This measures that ceiling on the real log, over many
splits (no simulation, no model: seconds), for three ideal simulators:

* ``real_halves``: the population half's own real buyers in the simulation's place (the
  evaluation report's reference row);
* ``exact_rate@n``: n simulated buyers who each convert with exactly the population half's
  real rate (binomial draws; the demo simulates 80 per merchant);
* ``known_rate@n``: n simulated buyers converting at the merchant's rate over *all* its buyers
  (both halves: a simulator that knew more than any can; an upper bound).

For each merchant split seed (which merchants are held out, as ``evaluate
split_seed=``) and buyer split seed (the halves, as ``buyer_split_seed=``), the figure is
the mean over the held-out merchants with ``min_buyers`` buyers in both halves, as in the
evaluation. Writes ``<out>/alignment_ceiling.json`` and ``<out>/alignment_ceiling.png``.

Run::

    .venv/bin/python bench/alignment_ceiling.py                 # REES46 sample, ~10 s
    .venv/bin/python bench/alignment_ceiling.py --events runs/demo/ingest --buyer-seeds 50

Without the real data (``$SIMPERSONA_DATA_DIR``) it ingests a generated log and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def say(msg: str) -> None:
    print(f"[alignment_ceiling {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def real_log(args: argparse.Namespace, out: Path) -> tuple[Path, str]:
    """An ingest output folder: ``--events``, else the REES46 sample, else a generated log."""
    from simpersona_env.ingest import builtin_mapping, ingest
    from storefront_mock.canonical import default_data_dir

    if args.events:
        return Path(args.events), f"{args.events}"
    rees = default_data_dir() / "rees46" / "2019-Oct-sample.csv"
    if rees.exists():
        ingest(builtin_mapping("rees46"), out / "ingest", seed=0)
        return out / "ingest", f"real REES46 sample ({rees})"
    from simpersona_env.synthetic import generate_events

    say(f"no real data at {default_data_dir()} (set SIMPERSONA_DATA_DIR): a generated log")
    log = generate_events(3000, n_merchants=8, seed=0)
    path = out / "generated.parquet"
    log.events.write_parquet(path)
    return path, "generated archetype traffic (3000 buyers, 8 merchants): not real data"


def summary(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, float)
    if not v.size:
        return {"n": 0}
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": int(v.size), "mean": float(v.mean()), "p05": float(q[0]), "p25": float(q[1]),
            "median": float(q[2]), "p75": float(q[3]), "p95": float(q[4]),
            "share_at_least_0.78": float((v >= 0.78).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", default="", help="an ingest output folder or canonical Parquet "
                    "(default: ingest the REES46 sample)")
    ap.add_argument("--split-seeds", type=int, default=10, help="merchant split seeds 0..N-1")
    ap.add_argument("--buyer-seeds", type=int, default=20, help="buyer split seeds 0..M-1")
    ap.add_argument("--merchant-fraction", type=float, default=0.5,
                    help="share of merchants held out (evaluate's merchant_heldout_fraction)")
    ap.add_argument("--min-buyers", type=int, default=10)
    ap.add_argument("--n-sim", default="80,500,5000", help="simulated buyers per merchant")
    ap.add_argument("--draws", type=int, default=200, help="binomial draws per ideal simulator")
    ap.add_argument("--out", default="runs/bench/alignment_ceiling")
    args = ap.parse_args(argv)
    n_sims = [int(x) for x in args.n_sim.split(",") if x.strip()]

    from simpersona_env.buyers import build_buyers
    from simpersona_env.errors import DataError
    from simpersona_env.evaluation.alignment import alignment_score
    from simpersona_env.evaluation.measure import funnel_table
    from simpersona_env.evaluation.population import heldout_protocol, pick_heldout_merchants
    from storefront_mock.catalog import read_event_frame

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, source = real_log(args, out)
    events = read_event_frame(path)
    buyers = build_buyers(events)
    funnel = funnel_table(events)
    merchants = sorted(events["merchant_id"].unique().to_list())
    full_rate = {str(m): float(part["reached_purchase"].mean())
                 for (m,), part in funnel.group_by(["merchant_id"])}
    say(f"{source}: {events.height} events, {buyers.height} buyers, {len(merchants)} merchants")

    rng = np.random.default_rng(0)
    figures: dict[str, list[float]] = {"real_halves": []}
    for n in n_sims:
        figures[f"exact_rate@{n}"], figures[f"known_rate@{n}"] = [], []
    splits, skipped, merchant_counts = [], 0, []
    for ms in range(args.split_seeds):
        held = pick_heldout_merchants(merchants, fraction=args.merchant_fraction, seed=ms)
        for bs in range(args.buyer_seeds):
            try:
                proto = heldout_protocol(funnel, buyers, None, held, seed=bs,
                                         min_buyers=args.min_buyers, log=False)
            except DataError:
                skipped += 1
                continue
            ms_ = list(proto)
            pop = np.array([proto[m].population_funnel["reached_purchase"].mean() for m in ms_])
            real = np.array([proto[m].real_funnel["reached_purchase"].mean() for m in ms_])
            known = np.array([full_rate[m] for m in ms_])
            row = {"merchant_seed": ms, "buyer_seed": bs, "merchants": ms_,
                   "real": real.tolist(), "population": pop.tolist(),
                   "real_buyers": [len(proto[m].real_buyers) for m in ms_],
                   "real_halves": float(alignment_score(pop, real).mean())}
            figures["real_halves"].append(row["real_halves"])
            for n in n_sims:
                for name, rate in ((f"exact_rate@{n}", pop), (f"known_rate@{n}", known)):
                    sim = rng.binomial(n, rate, size=(args.draws, len(ms_))) / n
                    row[name] = float(alignment_score(sim, real).mean())
                    figures[name].append(row[name])
            splits.append(row)
            merchant_counts.append(len(ms_))
    result = {"source": source, "settings": vars(args), "splits_scored": len(splits),
              "splits_skipped_no_merchant": skipped,
              "merchants_per_split": summary(merchant_counts),
              "ceiling": {k: summary(v) for k, v in figures.items()},
              "demo_split": next((s for s in splits if s["merchant_seed"] == 0
                                  and s["buyer_seed"] == 0), None),
              "splits": splits, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "alignment_ceiling.json").write_text(json.dumps(result, indent=2))
    plot(result, figures, out / "alignment_ceiling.png")
    for k, s in result["ceiling"].items():
        if s["n"]:
            say(f"{k:>16}: mean {s['mean']:.3f}, median {s['median']:.3f} "
                f"[p05 {s['p05']:.3f}, p95 {s['p95']:.3f}], splits >= 0.78: "
                f"{s['share_at_least_0.78']:.0%}")
    d = result["demo_split"]
    if d:
        say(f"the demo's split (seeds 0, 0): merchants {d['merchants']}, real half "
            f"{[round(x, 4) for x in d['real']]} ({d['real_buyers']} buyers), population half "
            f"{[round(x, 4) for x in d['population']]}; ceiling {d['real_halves']:.3f}")
    say(f"{len(splits)} splits ({skipped} with no merchant of {args.min_buyers}+ buyers per "
        f"half); {result['seconds']}s; {out / 'alignment_ceiling.json'}")
    return 0


def plot(result: dict[str, Any], figures: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, v in figures.items() if v]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names)), 4.5))
    ax.boxplot([figures[k] for k in names], whis=(5, 95), showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax.axhline(0.78, color="C3", ls="--", lw=1, label="target 0.78")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("conversion alignment (mean over held-out merchants)")
    ax.set_title(f"ideal simulators over {result['splits_scored']} held-out splits\n"
                 f"{result['source']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
