"""Assignment throughput: buyers per second of the VQ-VAE encoder pass vs k-means predict.

Both run in the same process on the same buyers (the development data replicated to
``--n`` rows, or generated traffic when none is found) and the same threads; the figure that
matters is the ratio and the absolute buyers/s against the 50k/s target on CPU.

Usage::

    python bench/bench_personas.py --data runs/ingest --n 200000 --threads 1
    python bench/bench_personas.py --checkpoint runs/personas/model   # a trained model

Writes ``runs/bench/personas_assign.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/ingest", help="ingest output folder(s), ',' joined")
    ap.add_argument("--checkpoint", default=None, help="a trained model (default: train a "
                    "quick one; throughput does not depend on how well it is trained)")
    ap.add_argument("--n", type=int, default=200_000, help="buyers timed (data replicated)")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="runs/bench/personas_assign.json")
    args = ap.parse_args(argv)

    import numpy as np
    import polars as pl
    import torch

    from simpersona_env.commands.personas import load_data
    from simpersona_env.personas.assign import load_checkpoint
    from simpersona_env.personas.baselines import KMeansBaseline
    from simpersona_env.personas.data import find_buyer_tables, to_arrays
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import TrainConfig, train_personas

    torch.set_num_threads(args.threads)
    data = args.data if any(find_buyer_tables(p) for p in args.data.split(",")) else "synthetic"
    if data == "synthetic":
        print(f"no buyer table under {args.data!r}: timing generated buyers", file=sys.stderr)
    buyers, _, source = load_data(data)
    if args.checkpoint:
        typer = load_checkpoint(args.checkpoint)
    else:
        typer = train_personas(buyers, PersonaVQVAEConfig(k=args.k),
                               TrainConfig(epochs_pretrain=1, epochs=1, progress=False))
    reps = -(-args.n // buyers.height)
    big = pl.concat([buyers] * reps).head(args.n)
    x = typer.scaler.transform(big)
    km = KMeansBaseline(k=typer.k, seed=0, n_init=1).fit(typer.scaler.transform(buyers))
    arr = to_arrays(big, typer.scaler, typer.model.cfg.max_len)

    def encoder_only() -> None:
        order = np.argsort(arr.seq_len, kind="stable")
        with torch.inference_mode():
            for s in range(0, len(arr), args.batch_size):
                idx = order[s:s + args.batch_size]
                length = int(arr.seq_len[idx].max())
                typer.model.assign(torch.from_numpy(arr.tokens[idx, :, :length]),
                                   torch.from_numpy(arr.seq_len[idx]),
                                   torch.from_numpy(arr.features[idx]))

    timings = {
        "vqvae_assign_from_table": _best(lambda: typer.assign(big, args.batch_size),
                                         args.repeats),
        "vqvae_encoder_pass": _best(encoder_only, args.repeats),
        "kmeans_predict_from_table": _best(
            lambda: km.predict(typer.scaler.transform(big)), args.repeats),
        "kmeans_predict": _best(lambda: km.predict(x), args.repeats),
    }
    rates = {k: args.n / v for k, v in timings.items()}
    seq = big["seq_len"].to_numpy()
    result = {
        "source": source, "buyers_timed": args.n, "distinct_buyers": buyers.height,
        "threads": args.threads, "k": typer.k, "max_len": typer.model.cfg.max_len,
        "seq_len_mean": float(seq.mean()), "seq_len_p90": float(np.percentile(seq, 90)),
        "seconds": timings, "buyers_per_second": rates,
        "ratio_kmeans_over_vqvae_from_table": rates["kmeans_predict_from_table"]
        / rates["vqvae_assign_from_table"],
        "meets_50k_per_s": rates["vqvae_assign_from_table"] >= 50_000,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(list(rates), [v / 1000 for v in rates.values()],
            color=["tab:blue", "tab:cyan", "tab:orange", "tab:red"])
    ax.axvline(50, color="k", ls=":", lw=1)
    ax.set(xlabel="thousand buyers / s", title=f"assignment throughput, {args.threads} threads "
           f"(dotted: 50k/s target)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)

    print(f"{source}: {args.n} buyers (mean seq_len {seq.mean():.1f}), {args.threads} threads")
    for name, r in rates.items():
        print(f"  {name:28} {r:>12,.0f} buyers/s")
    print(f"  k-means / VQ-VAE (from table): {result['ratio_kmeans_over_vqvae_from_table']:.2f}x")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
