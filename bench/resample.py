"""Generate a large clickstream by resampling real REES46 and Taobao buyers with fresh ids.

This is **resampled real data**, not synthetic behaviour: every generated buyer is a copy
of one real buyer of the REES46 or Taobao sample in ``$SIMPERSONA_DATA_DIR`` (drawn with
replacement, seeded), with all of that buyer's events in order and unchanged (event types,
products, categories, brands, prices, gaps between events), and only

* a fresh buyer id (and fresh session ids for REES46, UUID-shaped),
* the buyer's whole timeline shifted by one random offset (whole seconds, within a month),

so that the copies do not coincide. Two files come out, each in its source's own format
(REES46 CSV, Taobao UserBehavior CSV), half of the events each; the ingest reads them as
one log of two sources.

Usage::

    python bench/resample.py --events 10000000 --out /tmp/simpersona-bench --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from storefront_mock.canonical import default_data_dir

REES46 = "rees46/2019-Oct-sample.csv"
TAOBAO = "taobao/UserBehavior-sample.csv"


def _copies(events_per_buyer: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of real buyers, drawn with replacement until their events reach ``target``."""
    mean = events_per_buyer.mean()
    n = int(target / mean * 1.05) + 10
    idx = rng.integers(0, len(events_per_buyer), size=n)
    cum = np.cumsum(events_per_buyer[idx])
    return idx[: int(np.searchsorted(cum, target)) + 1]


def _uuid_like(n: int, rng: np.random.Generator) -> pl.Series:
    """n random UUID-shaped ids (8-4-4-4-12 hex), as REES46's sessions look."""
    h = pl.Series(np.frombuffer(rng.bytes(16 * n), dtype="S16"), dtype=pl.Binary).bin.encode("hex")
    return (h.str.slice(0, 8) + "-" + h.str.slice(8, 4) + "-" + h.str.slice(12, 4) + "-"
            + h.str.slice(16, 4) + "-" + h.str.slice(20, 12))


def resample_rees46(src: Path, dst: Path, target: int, rng: np.random.Generator) -> int:
    raw = pl.read_csv(src, infer_schema=False)
    raw = raw.with_columns(
        _t=pl.col("event_time").str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%d %H:%M:%S UTC"),
        _b=pl.col("user_id").rank("dense").cast(pl.Int64) - 1,
        _s=pl.col("user_session").fill_null("").rank("dense").cast(pl.Int64) - 1)
    per_buyer = raw.group_by("_b").len().sort("_b")["len"].to_numpy()
    picks = _copies(per_buyer, target, rng)
    copies = pl.DataFrame({"_copy": np.arange(len(picks), dtype=np.int64), "_b": picks,
                           "_shift": rng.integers(0, 29 * 86400, size=len(picks))})
    out = copies.join(raw, on="_b", how="inner")
    n_sess = int(raw["_s"].max()) + 1
    sess_key = out["_copy"] * n_sess + out["_s"]
    uniq, inverse = np.unique(sess_key.to_numpy(), return_inverse=True)
    uuids = _uuid_like(len(uniq), rng)
    out = out.with_columns(
        user_id=(pl.col("_copy") + 600_000_000).cast(pl.String),
        user_session=pl.when(pl.col("user_session").is_null()).then(None)
        .otherwise(uuids.gather(inverse)),
        event_time=(pl.col("_t") + pl.duration(seconds=pl.col("_shift")))
        .dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        _ts=pl.col("_t") + pl.duration(seconds=pl.col("_shift")))
    out = out.sort("_ts").head(target)  # a REES46 month file is in time order
    out.select(raw.columns[:9]).write_csv(dst)
    return out.height


def resample_taobao(src: Path, dst: Path, target: int, rng: np.random.Generator) -> int:
    raw = pl.read_csv(src, schema_overrides={"user_id": pl.Int64, "timestamp": pl.Int64})
    raw = raw.with_columns(_b=pl.col("user_id").rank("dense").cast(pl.Int64) - 1)
    per_buyer = raw.group_by("_b").len().sort("_b")["len"].to_numpy()
    picks = _copies(per_buyer, target, rng)
    copies = pl.DataFrame({"_copy": np.arange(len(picks), dtype=np.int64), "_b": picks,
                           "_shift": rng.integers(-3 * 86400, 3 * 86400, size=len(picks))})
    out = (copies.join(raw, on="_b", how="inner")
           .with_columns(user_id=pl.col("_copy") + 2_000_000,
                         timestamp=pl.col("timestamp") + pl.col("_shift"))
           .sort(["_copy", "timestamp"], maintain_order=True).head(target))
    out.select("user_id", "item_id", "category_id", "behavior_type", "timestamp").write_csv(dst)
    return out.height


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="total events (half each)")
    ap.add_argument("--out", default="/tmp/simpersona-bench", help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data = default_data_dir()
    if not (data / REES46).exists() or not (data / TAOBAO).exists():
        print(f"real data not found in {data} (set SIMPERSONA_DATA_DIR); the generator "
              "resamples real buyers and cannot run without them", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    n1 = resample_rees46(data / REES46, out / "rees46-resampled.csv", args.events // 2, rng)
    n2 = resample_taobao(data / TAOBAO, out / "taobao-resampled.csv", args.events - n1, rng)
    info = {"events": n1 + n2, "rees46_events": n1, "taobao_events": n2, "seed": args.seed,
            "files": ["rees46-resampled.csv", "taobao-resampled.csv"],
            "bytes": sum((out / f).stat().st_size for f in ("rees46-resampled.csv",
                                                            "taobao-resampled.csv")),
            "note": "resampled real data: real REES46 and Taobao buyers copied with fresh ids "
                    "and a time shift (bench/resample.py)",
            "seconds": round(time.perf_counter() - t, 1)}
    (out / "resample.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
