"""Measure simulated and real buyers alike: the same funnel and statistics code on both logs.

Both sides go through :func:`simpersona_env.buyers.stats.buyer_funnel` (the per-buyer funnel
the ingest computes) and :func:`simpersona_env.buyers.stats.merchant_stats` (the merchant
statistics with bootstrap intervals); type assignment goes through
:func:`simpersona_env.buyers.build_buyers` and the VQ-VAE, exactly as for real buyers.

A real log only records some event types (REES46: product views, carts, purchases; no page
views or searches), and a visitor who never triggered one is not in it. So before measuring,
the simulated log is **projected** onto the real log's event types (:func:`project`): the
simulated buyers who would not appear in the real log drop out of the denominators, as they
do on the real side.

Example:
    >>> import polars as pl
    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> ev = pl.DataFrame({"merchant_id": ["m", "m", "m"], "buyer_id": ["a", "a", "b"],
    ...     "session_id": ["s", "s", "t"], "ts": [t, t, t],
    ...     "event": ["product_view", "purchase", "page_view"], "price": [9.0, 9.0, None]})
    >>> {m: r.tolist() for m, r in reach_by_merchant(project(ev, ["product_view", "purchase"]),
    ...                                               ["product_view", "purchase"]).items()}
    {'m': [[True, True]]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from storefront_mock.canonical import FUNNEL_STAGES

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "funnel_table",
    "observed_event_types",
    "project",
    "reach_by_merchant",
    "share_estimate",
    "stages_observed",
    "stats_by_type",
]


def observed_event_types(events: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The event types a log records (sorted)."""
    import polars as pl

    return sorted(events.lazy().select(pl.col("event").unique()).collect()["event"].to_list())


def project(events: pl.DataFrame | pl.LazyFrame, event_types: Iterable[str]) -> pl.DataFrame:
    """Keep only the rows of ``event_types``: what a log that records only those would hold."""
    import polars as pl

    return events.lazy().filter(pl.col("event").is_in(list(event_types))).collect()


def stages_observed(event_types: Iterable[str]) -> list[str]:
    """The funnel stages a log with these event types can measure, in funnel order."""
    have = set(event_types)
    return [s for s in FUNNEL_STAGES if s in have]


def funnel_table(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per (merchant, buyer) funnel flags: :func:`~simpersona_env.buyers.stats.buyer_funnel`."""
    from simpersona_env.buyers.stats import buyer_funnel

    return buyer_funnel(events).collect()


def reach_by_merchant(events: pl.DataFrame | pl.LazyFrame | None, stages: Sequence[str],
                      funnel: pl.DataFrame | None = None) -> dict[str, np.ndarray]:
    """merchant -> bool array (buyers, stages): did each buyer reach each stage.

    The input of :func:`~simpersona_env.evaluation.alignment.funnel_alignment`.
    """
    f = funnel if funnel is not None else funnel_table(events)
    cols = [f"reached_{s}" for s in stages]
    out: dict[str, np.ndarray] = {}
    for (m,), part in f.group_by(["merchant_id"], maintain_order=True):
        out[str(m)] = part.select(cols).to_numpy().astype(bool).reshape(-1, len(cols))
    return dict(sorted(out.items()))


def stats_by_type(funnel: pl.DataFrame, types: Mapping[tuple[str, str], int] | pl.DataFrame,
                  *, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Funnel statistics per buyer type (with bootstrap intervals), by the merchant-statistics
    code with the type in the merchant's place.

    Args:
        funnel: a :func:`funnel_table`.
        types: a frame with ``merchant_id, buyer_id, type`` (or a dict keyed by those).
    """
    import polars as pl

    from simpersona_env.buyers.stats import merchant_stats

    if not isinstance(types, pl.DataFrame):
        types = pl.DataFrame({"merchant_id": [m for m, _ in types],
                              "buyer_id": [b for _, b in types],
                              "type": list(types.values())}, schema={
            "merchant_id": pl.String, "buyer_id": pl.String, "type": pl.Int64})
    joined = funnel.join(types.select("merchant_id", "buyer_id", pl.col("type").cast(pl.Int64)),
                         on=["merchant_id", "buyer_id"], how="inner")
    keyed = joined.with_columns(pl.col("type").cast(pl.String).alias("merchant_id")).drop("type")
    return merchant_stats(keyed, bootstrap=bootstrap, seed=seed)["merchants"]


def share_estimate(flags: np.ndarray, *, bootstrap: int = 1000, level: float = 0.95,
                   seed: int = 0) -> dict[str, Any]:
    """A share with its percentile bootstrap interval (binomial resampling), as a dict."""
    flags = np.asarray(flags, bool)
    n = flags.size
    p = float(flags.mean()) if n else float("nan")
    if not n:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    boot = np.random.default_rng(seed).binomial(n, p, size=bootstrap) / n
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"value": p, "lo": float(lo), "hi": float(hi), "n": int(n)}
