"""Per-merchant statistics with bootstrap confidence intervals (buyers resampled).

For each merchant: buyers, sessions, events, the funnel (share of buyers reaching each stage
of :data:`~storefront_mock.canonical.FUNNEL_STAGES`, plus each step's rate), conversion
rate (buyers with a purchase / buyers) and average order value (mean known price of a
purchase event), each with a percentile bootstrap interval over buyers.

Why the bootstrap is exact and cheap: resampling n buyers with replacement makes the count
of buyers with a flag Binomial(n, p), so a share needs B binomial draws, not B x n; the
order value needs only the purchasers (k ~ Binomial(n, q) of them drawn per resample).

Example:
    >>> import polars as pl
    >>> from simpersona_env.buyers.stats import merchant_stats
    >>> f = pl.DataFrame({"merchant_id": ["m"] * 4, "buyer_id": list("abcd"),
    ...     "n_events": [3, 1, 2, 5], "n_sessions": [1, 1, 1, 2],
    ...     "reached_product_view": [True, True, True, True],
    ...     "reached_add_to_cart": [True, False, False, True],
    ...     "reached_checkout_start": [False, False, False, True],
    ...     "reached_purchase": [False, False, False, True],
    ...     "order_value": [0.0, 0.0, 0.0, 30.0], "n_priced_purchases": [0, 0, 0, 2]})
    >>> merchant_stats(f, bootstrap=200)["merchants"]["m"]["conversion_rate"]["value"]
    0.25
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from storefront_mock.canonical import FUNNEL_STAGES

if TYPE_CHECKING:
    import polars as pl

__all__ = ["buyer_funnel", "merchant_stats", "plot_merchant_stats"]


def buyer_funnel(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Per (merchant, buyer): funnel stages reached, events, sessions, order value.

    Columns: ``merchant_id, buyer_id, n_events, n_sessions, reached_<stage>`` for each
    funnel stage, ``order_value`` (sum of known purchase prices), ``n_priced_purchases``.
    """
    import polars as pl

    ev = pl.col("event")
    priced = (ev == "purchase") & pl.col("price").is_not_null() & pl.col("price").is_finite()
    return (events.lazy().group_by(["merchant_id", "buyer_id"])
            .agg(pl.len().alias("n_events"),
                 pl.col("session_id").n_unique().alias("n_sessions"),
                 *[(ev == s).any().alias(f"reached_{s}") for s in FUNNEL_STAGES],
                 pl.col("price").filter(priced).sum().alias("order_value"),
                 priced.sum().alias("n_priced_purchases"))
            .sort(["merchant_id", "buyer_id"]))


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    """Percentile interval (linear interpolation, as numpy's default quantile)."""
    x = np.sort(samples[~np.isnan(samples)])
    if x.size == 0:
        return [float("nan"), float("nan")]
    pos = np.array([(1 - confidence) / 2, 1 - (1 - confidence) / 2]) * (x.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, x.size - 1)
    v = x[lo] + (x[hi] - x[lo]) * (pos - lo)
    return [float(v[0]), float(v[1])]


def _share(k: int, n: int, rng: np.random.Generator, b: int, confidence: float
           ) -> dict[str, Any]:
    p = k / n if n else 0.0
    boot = rng.binomial(n, p, size=b) / n if n else np.zeros(0)
    return {"value": p, "ci": _interval(boot, confidence), "count": int(k)}


_DRAWS_PER_BLOCK = 1 << 20


def _aov(values: np.ndarray, counts: np.ndarray, n: int, rng: np.random.Generator, b: int,
         confidence: float) -> dict[str, Any]:
    """Average order value and its interval; only purchasers enter the resample."""
    total = counts.sum()
    value = float(values.sum() / total) if total else float("nan")
    if not len(values):
        return {"value": value, "ci": [float("nan")] * 2, "priced_purchases": 0}
    # k_i purchasers in resample i, then k_i draws among them, all at once
    k = rng.binomial(n, len(values) / n, size=b)
    num, den = np.zeros(b), np.zeros(b)
    # Why blocks of resamples (~1M draws each): all draws at once take b x purchasers x 24
    # bytes (GBs for a large merchant at b=1000); consecutive draws from one generator
    # give the same numbers as one big draw, so the result is the same
    ends = np.cumsum(k)
    start = 0
    while start < b:
        base = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + _DRAWS_PER_BLOCK, side="right")))
        kk = k[start:stop]
        pick = rng.integers(0, len(values), size=int(kk.sum()))
        seg = np.repeat(np.arange(stop - start), kk)
        num[start:stop] = np.bincount(seg, weights=values[pick], minlength=stop - start)
        den[start:stop] = np.bincount(seg, weights=counts[pick], minlength=stop - start)
        start = stop
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return {"value": value, "ci": _interval(boot, confidence), "priced_purchases": int(total)}


def _merchant(row: dict[str, Any], values: np.ndarray, counts: np.ndarray,
              rng: np.random.Generator, b: int, confidence: float) -> dict[str, Any]:
    n = int(row["buyers"])
    funnel = {s: _share(int(row[f"reached_{s}"]), n, rng, b, confidence) for s in FUNNEL_STAGES}
    steps = {}
    for prev, cur in pairwise(FUNNEL_STAGES):
        # step rate: of the buyers who reached `prev`, the share who also reached `cur`
        steps[f"{prev}->{cur}"] = _share(int(row[f"step_{cur}"]), int(row[f"reached_{prev}"]),
                                         rng, b, confidence)
    return {
        "buyers": n,
        "sessions": int(row["n_sessions"]),
        "events": int(row["n_events"]),
        "funnel": funnel,
        "funnel_steps": steps,
        "conversion_rate": funnel["purchase"],
        "average_order_value": _aov(values, counts, n, rng, b, confidence),
    }


def _aggregate(funnel: pl.LazyFrame, by: list[str]) -> pl.DataFrame:
    import polars as pl

    steps = [(pl.col(f"reached_{p}") & pl.col(f"reached_{c}")).sum().alias(f"step_{c}")
             for p, c in pairwise(FUNNEL_STAGES)]
    aggs = [pl.len().alias("buyers"), pl.col("n_sessions").sum(), pl.col("n_events").sum(),
            *[pl.col(f"reached_{s}").sum() for s in FUNNEL_STAGES], *steps]
    out = funnel.group_by(by).agg(aggs).sort(by) if by else funnel.select(aggs)
    return out.collect(engine="streaming")


def merchant_stats(funnel: pl.DataFrame | pl.LazyFrame | None, *, bootstrap: int = 1000,
                   confidence: float = 0.95, seed: int = 0,
                   merchant_heldout_fraction: float = 0.0) -> dict[str, Any]:
    """Statistics per merchant (and over all buyers) from a :func:`buyer_funnel` table.

    Args:
        funnel: the per-buyer funnel table (None or empty: no merchants); a lazy one
            (e.g. a scan of parts) is streamed: only the buyers with a priced purchase are
            held in memory.
        bootstrap: resamples per interval.
        confidence: interval level.
        seed: base seed; each merchant's draws are seeded by its id, so adding a merchant
            leaves the others' intervals unchanged.
        merchant_heldout_fraction: share of merchants marked ``"heldout"`` (by hash).

    Returns:
        JSON-ready dict: ``{"bootstrap", "confidence", "method", "overall", "merchants":
        {merchant_id: {...}}}``. NaN (no priced purchase) is written as null.
    """
    import polars as pl

    from simpersona_env.buyers.split import merchant_split, stable_hash

    out: dict[str, Any] = {
        "bootstrap": bootstrap, "confidence": confidence, "seed": seed,
        "method": "percentile bootstrap over buyers (shares: exact binomial resampling)",
        "definitions": {
            "funnel": "share of the merchant's buyers with at least one event of the stage",
            "funnel_steps": "of the buyers reaching a stage, the share also reaching the next",
            "conversion_rate": "buyers with a purchase / buyers",
            "average_order_value": "sum of known purchase prices / purchase events with a "
                                   "known price",
        },
        "merchants": {},
    }
    lf = funnel.lazy() if funnel is not None else None
    merchants = (lf.select(pl.col("merchant_id").unique().sort()).collect(engine="streaming")
                 .to_series() if lf is not None else None)
    if merchants is None or merchants.len() == 0:
        out["overall"] = None
        return _clean(out)
    splits = dict(zip(merchants.to_list(),
                      merchant_split(merchants, heldout_fraction=merchant_heldout_fraction,
                                     seed=seed).to_list()))
    seeds = dict(zip(merchants.to_list(), stable_hash(merchants, seed).tolist()))
    purchasers = (lf.filter(pl.col("n_priced_purchases") > 0)
                  .select("merchant_id", "buyer_id", "order_value", "n_priced_purchases")
                  .collect(engine="streaming").sort(["merchant_id", "buyer_id"]))
    pm = purchasers["merchant_id"]
    values = purchasers["order_value"].to_numpy().astype(np.float64)
    counts = purchasers["n_priced_purchases"].to_numpy().astype(np.float64)
    # each merchant's purchasers are one contiguous slice of the sorted table
    bounds = (purchasers.with_row_index("_i").group_by("merchant_id")
              .agg(pl.col("_i").min().alias("lo"), (pl.col("_i").max() + 1).alias("hi")))
    slices = {m: (lo, hi) for m, lo, hi in bounds.iter_rows()}
    del pm
    for row in _aggregate(lf, ["merchant_id"]).iter_rows(named=True):
        m = row["merchant_id"]
        lo, hi = slices.get(m, (0, 0))
        rng = np.random.default_rng([seed, int(seeds[m]) & 0xFFFFFFFF])
        out["merchants"][m] = {**_merchant(row, values[lo:hi], counts[lo:hi], rng, bootstrap,
                                           confidence), "split": splits[m]}
    overall = _aggregate(lf, []).row(0, named=True)
    out["overall"] = _merchant(overall, values, counts, np.random.default_rng([seed, 0]),
                               bootstrap, confidence)
    return _clean(out)


def _clean(obj: Any) -> Any:
    """NaN -> None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


def plot_merchant_stats(stats: dict[str, Any], path: str, top: int = 20) -> None:
    """PNG: conversion rate and funnel shares with intervals for the ``top`` largest merchants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(stats["merchants"].items(), key=lambda kv: -kv[1]["buyers"])[:top]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3, 0.35 * len(items) + 1.5)))
    names = [f"{m} (n={v['buyers']})" for m, v in items]
    y = np.arange(len(items))
    conv = [v["conversion_rate"] for _, v in items]
    vals = np.array([c["value"] for c in conv])
    lo = np.array([c["ci"][0] if c["ci"][0] is not None else c["value"] for c in conv])
    hi = np.array([c["ci"][1] if c["ci"][1] is not None else c["value"] for c in conv])
    axes[0].errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="o", capsize=3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].set_xlabel(f"conversion rate ({int(stats['confidence'] * 100)}% bootstrap CI)")
    for stage_i, stage in enumerate(FUNNEL_STAGES):
        shares = [v["funnel"][stage]["value"] for _, v in items]
        axes[1].barh(y + (stage_i - 1.5) * 0.2, shares, height=0.2, label=stage)
    axes[1].set_yticks(y, [""] * len(items))
    axes[1].invert_yaxis()
    axes[1].set_xscale("symlog", linthresh=0.01)
    axes[1].set_xlabel("share of buyers reaching the stage")
    axes[1].legend(fontsize=8)
    fig.suptitle("Per-merchant funnel")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
