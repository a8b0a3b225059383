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
                    "model.w_outcomes=1.0 train.epochs=30 "
                    "model.funnel_outcomes=has_purchase:4,has_cart:1")
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
        if typ is bool:
            parsed = value.lower() in ("1", "true", "yes")
        elif typ is list:  # a,b
            parsed = [v for v in value.split(",") if v]
        elif typ is dict:  # name:number,name:number ('' = empty)
            pairs = [v.split(":", 1) for v in value.split(",") if v]
            parsed = {name_: float(num) for name_, num in pairs}
        else:
            parsed = typ(value)
        if group == "model":
            model_cfg = dataclasses.replace(model_cfg, **{name: parsed})
        else:
            train_cfg = dataclasses.replace(train_cfg, **{name: parsed})
    t0 = time.perf_counter()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    result = evaluate_personas(buyers, model_cfg, train_cfg, seeds=seeds,
                               planted_buyers=args.planted_buyers)
    result["source"] = source
    result["wall_seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    per_seed = result["per_seed"]
    print(f"data: {source}: {result['buyers']} buyers, {result['merchants']} merchants, k={args.k}")
    print(f"conversion rate {result['conversion_rate']:.3f}: MI(type; conversion) <= "
          f"{result['conversion_entropy_nats']:.3f} nats, spread (w.std) <= "
          f"{result['max_conversion_spread']:.3f}")
    print(f"{'':28}" + "".join(f"{'VQ-VAE s' + str(p['seed']):>12}{'k-means s' + str(p['seed']):>12}"
                               for p in per_seed))

    def row(label: str, get) -> None:
        cells = "".join(f"{get(p['vqvae']):>12.3f}{get(p['kmeans']):>12.3f}" for p in per_seed)
        print(f"{label:28}{cells}")

    row("Calinski-Harabasz (up)", lambda d: d["calinski_harabasz"])
    row("Davies-Bouldin (down)", lambda d: d["davies_bouldin"])
    row("conv. rate spread (w.std)", lambda d: d["conversion_spread"]["weighted_std"])
    row("conv. rate range", lambda d: d["conversion_spread"]["range"])
    row("MI(type; conversion) nats", lambda d: d["mi_conversion"]["mi_nats"])
    row("  train buyers", lambda d: d["mi_conversion_train"]["mi_nats"])
    row("  held-out buyers", lambda d: d["mi_conversion_heldout"]["mi_nats"])
    row("MI(type; cart) nats", lambda d: d["mi_cart"]["mi_nats"])
    row("MI(type; bounce) nats", lambda d: d["mi_bounce"]["mi_nats"])
    row("perplexity", lambda d: d["perplexity"])
    print(f"stability ARI (2 seeds): VQ-VAE {result['stability']['vqvae']['ari']:.3f}, "
          f"k-means {result['stability']['kmeans']['ari']:.3f}")
    print(f"held-out / train MI(type; conversion): {result['heldout_over_train_mi']:.3f}")
    for p in result.get("planted_per_seed", []):
        print(f"planted archetypes ARI (seed {p['seed']}): VQ-VAE {p['ari']:.3f}, "
              f"k-means {p['kmeans_ari']:.3f}")
    print(f"train time per model: {result['train_seconds_per_model']:.1f}s")
    print("checks:", json.dumps(result["checks"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
