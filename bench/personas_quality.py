"""Quality of the learned buyer types against k-means, on the development data.

Usage::

    simpersona ingest data=rees46 out_dir=runs/ingest/rees46
    simpersona ingest data=taobao out_dir=runs/ingest/taobao
    python bench/personas_quality.py --data runs/ingest --out runs/bench/personas_quality.json

Without ``--data`` (or when it holds no buyer table) it runs on generated archetype traffic
and says so. Writes one JSON (see ``simpersona_env.personas.quality.evaluate_personas``) and
prints the headline figures; the checks are the targets of docs/personas.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/ingest", help="ingest output folder(s), ',' joined")
    ap.add_argument("--out", default="runs/bench/personas_quality.json")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--planted-buyers", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="model/train overrides, e.g. "
                    "model.w_outcomes=1.0 train.epochs=30")
    args = ap.parse_args(argv)

    import torch

    from simpersona_env.commands.personas import load_data
    from simpersona_env.personas.data import find_buyer_tables
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.quality import evaluate_personas
    from simpersona_env.personas.train import TrainConfig

    torch.set_num_threads(args.threads)
    data = args.data if any(find_buyer_tables(p) for p in args.data.split(",")) else "synthetic"
    if data == "synthetic":
        print(f"no buyer table under {args.data!r}: measuring on generated data", file=sys.stderr)
    buyers, _, source = load_data(data)
    model_cfg, train_cfg = PersonaVQVAEConfig(k=args.k), TrainConfig(progress=False)
    for item in args.set:
        key, value = item.split("=", 1)
        group, name = key.split(".", 1)
        target = model_cfg if group == "model" else train_cfg
        typ = type(getattr(target, name))
        if group == "model":
            model_cfg = dataclasses.replace(model_cfg, **{name: typ(value)})
        else:
            train_cfg = dataclasses.replace(train_cfg, **{name: typ(value)})
    t0 = time.perf_counter()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    result = evaluate_personas(buyers, model_cfg, train_cfg, seeds=seeds,
                               planted_buyers=args.planted_buyers)
    result["source"] = source
    result["wall_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    vq, km = result["vqvae"], result["kmeans"]
    print(f"data: {source}: {result['buyers']} buyers, {result['merchants']} merchants, k={args.k}")
    print(f"{'':28}{'VQ-VAE':>10}{'k-means':>10}")
    for label, a, b in [
        ("Calinski-Harabasz (up)", vq["calinski_harabasz"], km["calinski_harabasz"]),
        ("Davies-Bouldin (down)", vq["davies_bouldin"], km["davies_bouldin"]),
        ("conv. rate spread (w.std)", vq["conversion_spread"]["weighted_std"],
         km["conversion_spread"]["weighted_std"]),
        ("conv. rate range", vq["conversion_spread"]["range"], km["conversion_spread"]["range"]),
        ("MI(type; conversion) nats", vq["mi_conversion"]["mi_nats"],
         km["mi_conversion"]["mi_nats"]),
        ("MI(type; cart) nats", vq["mi_cart"]["mi_nats"], km["mi_cart"]["mi_nats"]),
        ("perplexity", vq["perplexity"], km["perplexity"]),
        ("stability ARI (2 seeds)", result["stability"]["vqvae"]["ari"],
         result["stability"]["kmeans"]["ari"]),
    ]:
        print(f"{label:28}{a:>10.3f}{b:>10.3f}")
    print(f"held-out / train MI(type; conversion): {result['heldout_over_train_mi']:.3f}")
    if "planted" in result:
        print(f"planted archetypes ARI: VQ-VAE {result['planted']['ari']:.3f}, "
              f"k-means {result['planted']['kmeans_ari']:.3f}")
    print(f"train time per model: {result['train_seconds_per_model']:.1f}s")
    print("checks:", json.dumps(result["checks"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
