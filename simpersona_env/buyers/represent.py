"""Buyer representations: canonical events -> one row per (merchant, buyer), per ``spec.py``.

Each row holds the buyer's last ``max_len`` events as integer tokens on the channels of
:data:`~simpersona_env.buyers.spec.TOKEN_CHANNELS` and the aggregate behaviour features of
:data:`~simpersona_env.buyers.spec.FEATURE_NAMES`, plus the outcome labels and the
deterministic train / held-out split. docs/buyers.md documents every field.

The whole computation is a few vectorised passes over the event log (a sort, per-event
token columns, one group-by for the token lists and the float and distinct-count features,
and numpy reductions over each buyer's contiguous rows for the integer counts), so it runs
at millions of events per second on one core.

Example:
    >>> import polars as pl
    >>> from datetime import datetime, timezone
    >>> from simpersona_env.buyers import build_buyers
    >>> t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    >>> ev = pl.DataFrame({"merchant_id": ["m"], "buyer_id": ["b"], "session_id": ["s"],
    ...     "ts": [t], "event": ["product_view"], "product_id": ["p"], "category": ["a.b"],
    ...     "brand": [None], "price": [9.5], "query": [None], "source": ["doc"]})
    >>> build_buyers(ev)["tok_event"].to_list()
    [[4]]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpersona_env.buyers.spec import (
    FEATURE_NAMES,
    GAP_BUCKETS_S,
    OUTCOME_COLUMNS,
    SCHEMA_VERSION,
    TOKEN_CHANNELS,
    token_column,
)
from simpersona_env.errors import DataError, SchemaError
from storefront_mock.canonical import CANONICAL_COLUMNS, EVENT_TYPES

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "BUYERS_FILE",
    "MANIFEST_FILE",
    "build_buyers",
    "buyer_schema",
    "merchant_context",
    "read_buyers",
    "read_manifest",
    "write_buyers",
]

BUYERS_FILE = "buyers.parquet"
MANIFEST_FILE = "manifest.json"

#: Columns build_buyers needs from the canonical log (the others are not read).
_NEEDED = ("merchant_id", "buyer_id", "session_id", "ts", "event", "category", "price")


def buyer_schema() -> dict[str, Any]:
    """The Polars schema of a buyer-representation table, in column order."""
    import polars as pl

    schema: dict[str, Any] = {"merchant_id": pl.String, "buyer_id": pl.String,
                              "split": pl.String, "seq_len": pl.Int32}
    schema.update({token_column(c): pl.List(pl.UInt8) for c in TOKEN_CHANNELS})
    schema.update({f: pl.Float64 for f in FEATURE_NAMES})
    schema.update({o: pl.Boolean for o in OUTCOME_COLUMNS})
    return schema


def _as_lazy(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    import polars as pl

    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    have = set(lf.collect_schema().names())
    missing = [c for c in _NEEDED if c not in have]
    if missing:
        raise SchemaError(f"events lack canonical column(s) {missing}; build_buyers needs "
                          f"{list(_NEEDED)} (the canonical schema: {list(CANONICAL_COLUMNS)}); "
                          "ingest the raw log first (`simpersona ingest`)")
    return lf


def merchant_context(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """What a buyer's row needs from its whole merchant: price quintile edges and log end.

    One row per merchant: ``_q0.._q3`` = the 20/40/60/80 % quantiles (linear interpolation)
    of the known prices of the merchant's events (a price's level is ``1 + #{edges it
    exceeds}``, 1..5; null edges when no price is known) and ``_log_end`` = its last event.
    Computed once over the whole log and passed to :func:`build_buyers` as ``context`` when
    the buyers are built in parts (the ingest does so), so parts agree with the whole.
    """
    import polars as pl

    lf = events.lazy()
    known = pl.col("price").is_not_null() & pl.col("price").is_finite()
    return (lf.group_by("merchant_id")
            .agg(*[pl.col("price").filter(known).quantile(q, interpolation="linear")
                   .alias(f"_q{i}") for i, q in enumerate((0.2, 0.4, 0.6, 0.8))],
                 pl.col("ts").max().alias("_log_end")))


def build_buyers(events: pl.DataFrame | pl.LazyFrame, *, max_len: int = 64,
                 heldout_fraction: float = 0.5, seed: int = 0,
                 context: pl.DataFrame | None = None,
                 assume_sorted: bool = False) -> pl.DataFrame:
    """Turn a canonical event log into buyer representations (one row per merchant x buyer).

    Args:
        events: canonical events (``storefront_mock.canonical.CANONICAL_SCHEMA``), eager or lazy,
            in any order; ties in ``ts`` keep their input order.
        max_len: keep each buyer's last ``max_len`` events as tokens (``seq_len <= max_len``).
        heldout_fraction: share of each merchant's buyers put in the ``"heldout"`` split
            (deterministic by hash of (merchant, buyer) and ``seed``).
        seed: split seed.
        context: per-merchant price edges and log end from :func:`merchant_context` over
            the whole log, when ``events`` is only a part of it (default: computed from
            ``events``).
        assume_sorted: the rows are already grouped by (merchant, buyer) and in time order
            within each buyer (as the ingest writes them): skip the sort; rows come out in
            input order.

    Returns:
        A DataFrame with the columns and types of :func:`buyer_schema`, sorted by
        (merchant_id, buyer_id) unless ``assume_sorted``.

    Raises:
        SchemaError: when a needed canonical column is missing.
        DataError: when an ``event`` value is not one of ``EVENT_TYPES``.
        ConfigError: when ``max_len < 1`` or ``heldout_fraction`` is outside [0, 1].

    Example:
        >>> buyers = build_buyers(read_events("runs/ingest/rees46"))  # doctest: +SKIP
    """
    return _build(events, max_len=max_len, heldout_fraction=heldout_fraction, seed=seed,
                  context=context, assume_sorted=assume_sorted, with_funnel=False)


def _build(events: pl.DataFrame | pl.LazyFrame, *, max_len: int, heldout_fraction: float,
           seed: int, context: pl.DataFrame | None, assume_sorted: bool, with_funnel: bool
           ) -> Any:
    """build_buyers, optionally also returning the per-buyer funnel table of
    :func:`simpersona_env.buyers.stats.buyer_funnel` (computed in the same pass)."""
    import polars as pl

    from simpersona_env.buyers.split import buyer_split
    from simpersona_env.errors import ConfigError

    if max_len < 1:
        raise ConfigError(f"max_len={max_len!r} must be >= 1 (events kept per buyer)")
    import numpy as np

    df = _as_lazy(events).select(_NEEDED).collect().rechunk()
    # Why one sort and integer group ids instead of group_by(merchant, buyer) or `.over()`:
    # once rows are in (merchant, buyer, ts) order, "previous event of the same buyer" is a
    # plain shift and every per-buyer aggregate is a sorted group-by on an integer, which is
    # several times cheaper than hashing string keys at 10M+ rows.
    if not assume_sorted:
        df = df.sort(["merchant_id", "buyer_id", "ts"], maintain_order=True)
    ctx = (merchant_context(df) if context is None else context.lazy()).collect()
    m, b, sess = pl.col("merchant_id"), pl.col("buyer_id"), pl.col("session_id")
    new_buyer = ((m != m.shift(1)) | (b != b.shift(1))).fill_null(True)
    new_session = (new_buyer | (sess != sess.shift(1))).fill_null(True)
    # integer microseconds throughout: float division by a constant is not bit-identical
    # across Polars' code paths, and a bucket edge must not depend on rounding
    gap_us = (pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds()
    n_edges = len(GAP_BUCKETS_S)
    # token = 1 + index of the first edge the gap is below == 1 + #{finite edges <= gap}
    # (one binary search per row over the sorted edges; a null gap counts no edge)
    edges = pl.Series(sorted(int(e * 1_000_000) for e in GAP_BUCKETS_S if math.isfinite(e)),
                      dtype=pl.Int64)
    gap_tok = pl.lit(edges).search_sorted(gap_us.fill_null(edges.min() - 1), side="right") + 1
    price_lvl = (1 + sum((pl.col("price") > pl.col(f"_q{i}")).cast(pl.UInt8) for i in range(4)))
    cat = pl.col("category")
    event_codes = {e: i + 1 for i, e in enumerate(EVENT_TYPES)}
    angle = pl.int_range(24, dtype=pl.Int64).cast(pl.Float64) * (2 * math.pi / 24)
    hour_sin, hour_cos = (pl.select(angle.sin()).to_series(), pl.select(angle.cos()).to_series())

    ev = (df.join(ctx, on="merchant_id", how="left", maintain_order="left")
          .with_columns(
              _new_buyer=new_buyer,
              _new_session=new_session,
              tok_event=pl.col("event").replace_strict(event_codes, default=0,
                                                       return_dtype=pl.UInt8),
              tok_gap=pl.when(new_buyer).then(pl.lit(n_edges + 1, pl.UInt8))
              .otherwise(gap_tok.cast(pl.UInt8)),
              _price_level=pl.when(pl.col("price").is_not_null() & pl.col("price").is_finite()
                                   & pl.col("_q0").is_not_null())
              .then(price_lvl.cast(pl.UInt8)).otherwise(None),
              # hour of day from the epoch (UTC): integer maths, no time-zone machinery
              _hour=((pl.col("ts").dt.epoch("us") // 3_600_000_000) % 24),
          )
          .with_columns(
              _g=pl.col("_new_buyer").cum_sum().cast(pl.UInt32).set_sorted(),
              _sr=pl.col("_new_session").cum_sum().cast(pl.UInt32).set_sorted(),
              tok_price=(pl.col("_price_level").fill_null(0) + 1).cast(pl.UInt8),
              tok_category_change=pl.when(cat.is_null()).then(pl.lit(1, pl.UInt8))
              .when(~pl.col("_new_buyer") & (cat == cat.shift(1))).then(pl.lit(2, pl.UInt8))
              .otherwise(pl.lit(3, pl.UInt8)),
              tok_session_start=pl.when(pl.col("_new_session")).then(pl.lit(2, pl.UInt8))
              .otherwise(pl.lit(1, pl.UInt8)),
          ))

    # Precomputed per-event columns keep the aggregations below on Polars' fast paths
    # (plain sums and means of columns, not expressions evaluated per group).
    ev = ev.with_columns(
        _ov=pl.when((pl.col("tok_event") == event_codes["purchase"]) & pl.col("price").is_finite())
        .then(pl.col("price")),
        _vl=pl.when(pl.col("tok_event") == event_codes["product_view"])
        .then(pl.col("_price_level")),
        # sin and cos of the 24 hours once (the same Polars kernels), gathered per row
        _hs=pl.lit(hour_sin).gather(pl.col("_hour")),
        _hc=pl.lit(hour_cos).gather(pl.col("_hour")),
    )
    tok_cols = [token_column(c) for c in TOKEN_CHANNELS]
    # Float aggregates (and string ones) in Polars, exactly as before; integer counts of
    # each buyer's contiguous rows with numpy's reduceat below (exact, and ~10x cheaper
    # than a group-by aggregation each)
    out = ev.group_by("_g", maintain_order=True).agg(
        *[pl.col(c).tail(max_len) for c in tok_cols],
        sess.n_unique().alias("n_sessions"),
        pl.col("_ov").sum().alias("order_value"),
        pl.col("_vl").mean().alias("price_level"),
        cat.drop_nulls().n_unique().alias("_n_cat"),
        pl.col("_hs").mean().alias("hour_sin"),
        pl.col("_hc").mean().alias("hour_cos"),
        pl.col("ts").max().alias("_last_ts"),
    )
    n = ev.height
    starts = np.flatnonzero(ev.get_column("_new_buyer").to_numpy())  # a buyer's first row
    te = ev.get_column("tok_event").to_numpy()

    def per_buyer(x: Any, ufunc: Any = np.add) -> Any:
        return ufunc.reduceat(x, starts) if n else x[:0]

    def count(flag: Any) -> pl.Series:
        return pl.Series(per_buyer(flag.astype(np.uint32)), dtype=pl.UInt32)

    first = pl.Series(starts, dtype=pl.UInt32)
    out = out.with_columns(
        ev.get_column("merchant_id").gather(first),
        ev.get_column("buyer_id").gather(first),
        ev.get_column("_log_end").gather(first),
        _min_event=pl.Series(per_buyer(te, np.minimum), dtype=pl.UInt8),
        n_events=pl.Series(np.diff(np.append(starts, n)), dtype=pl.UInt32),
        _n_runs=count(ev.get_column("_new_session").to_numpy()),
        n_product_views=count(te == event_codes["product_view"]),
        _n_cart=count(te == event_codes["add_to_cart"]),
        _n_purchase=count(te == event_codes["purchase"]),
        _n_search=count(te == event_codes["search"]),
        _n_checkout=count(te == event_codes["checkout_start"]),
        _n_priced=count(ev.get_column("_ov").is_not_null().to_numpy()),
        _n_cat_events=count(ev.get_column("category").is_not_null().to_numpy()),
    )
    if out.height and out["_min_event"].min() == 0:
        raise DataError(_unknown_events(events))

    # Session durations: a session is usually one run of consecutive events; a buyer whose
    # sessions interleave (two tabs) has more runs than sessions and is regrouped by id.
    ts_us = ev.get_column("ts").dt.epoch("us")
    if n and ts_us.null_count() == 0:
        # each run's (max - min) time, summed over the buyer's runs: integer microseconds
        t = ts_us.to_numpy()
        run_starts = np.flatnonzero(ev.get_column("_new_session").to_numpy())
        d = np.maximum.reduceat(t, run_starts) - np.minimum.reduceat(t, run_starts)
        # a buyer's first row starts a run: its runs are a contiguous slice of the runs
        dur_us = np.add.reduceat(d, np.searchsorted(run_starts, starts))
        out = out.with_columns(_dur_us=pl.Series(dur_us, dtype=pl.Int64))
    else:
        runs = (ev.group_by("_sr", maintain_order=True)
                .agg(pl.col("_g").first(),
                     (pl.col("ts").max() - pl.col("ts").min()).dt.total_microseconds()
                     .alias("_d")))
        dur = runs.group_by("_g", maintain_order=True).agg(pl.col("_d").sum().alias("_dur_us"))
        out = out.join(dur, on="_g", how="left", maintain_order="left")
    mixed = out.filter(pl.col("_n_runs") != pl.col("n_sessions"))["_g"]
    if mixed.len():
        fix = (ev.filter(pl.col("_g").is_in(mixed.implode()))
               .group_by(["_g", "session_id"])
               .agg((pl.col("ts").max() - pl.col("ts").min()).dt.total_microseconds()
                    .alias("_d"))
               .group_by("_g").agg(pl.col("_d").sum().alias("_fix")))
        out = (out.join(fix, on="_g", how="left", maintain_order="left")
               .with_columns(_dur_us=pl.coalesce("_fix", "_dur_us")).drop("_fix"))

    def ratio(num: str, den: str) -> pl.Expr:
        return (pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(0.0))

    out = out.with_columns(
        seq_len=pl.col(tok_cols[0]).list.len().cast(pl.Int32),
        events_per_session=ratio("n_events", "n_sessions"),
        view_to_cart=ratio("_n_cart", "n_product_views"),
        cart_to_purchase=ratio("_n_purchase", "_n_cart"),
        view_to_purchase=ratio("_n_purchase", "n_product_views"),
        converted=(pl.col("_n_purchase") > 0).cast(pl.Float64),
        category_diversity=ratio("_n_cat", "_n_cat_events"),
        search_share=ratio("_n_search", "n_events"),
        _rec_us=(pl.col("_log_end") - pl.col("_last_ts")).dt.total_microseconds(),
        has_cart=pl.col("_n_cart") > 0,
        has_purchase=pl.col("_n_purchase") > 0,
        bounced=pl.col("n_events") == 1,
    )
    if not assume_sorted:
        out = out.sort(["merchant_id", "buyer_id"])
    with np.errstate(invalid="ignore", divide="ignore"):
        dur_s = out["_dur_us"].to_numpy().astype(np.float64) / 1e6 / \
            out["n_sessions"].to_numpy().astype(np.float64)
        rec = out["_rec_us"].to_numpy().astype(np.float64) / 86_400e6
    out = out.with_columns(
        pl.Series("session_duration_s", dur_s, dtype=pl.Float64),
        pl.Series("recency_days", rec, dtype=pl.Float64),
        buyer_split(out["merchant_id"], out["buyer_id"], heldout_fraction=heldout_fraction,
                    seed=seed))
    if with_funnel:
        funnel = out.select(
            "merchant_id", "buyer_id", pl.col("n_events").cast(pl.UInt32),
            pl.col("n_sessions").cast(pl.UInt32),
            reached_product_view=pl.col("n_product_views") > 0,
            reached_add_to_cart=pl.col("_n_cart") > 0,
            reached_checkout_start=pl.col("_n_checkout") > 0,
            reached_purchase=pl.col("_n_purchase") > 0,
            order_value=pl.col("order_value").fill_null(0.0),
            n_priced_purchases=pl.col("_n_priced").cast(pl.UInt32))
    schema = buyer_schema()
    # never NaN: an undefined rate or mean is 0 (spec.py)
    buyers = out.select([
        pl.col(name).cast(dtype).fill_null(0.0).fill_nan(0.0) if dtype == pl.Float64
        else pl.col(name).cast(dtype) for name, dtype in schema.items()])
    return (buyers, funnel) if with_funnel else buyers


def _unknown_events(events: pl.DataFrame | pl.LazyFrame) -> str:
    import polars as pl

    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    bad = (lf.filter(~pl.col("event").is_in(list(EVENT_TYPES))).select(pl.col("event").unique())
           .collect()["event"].to_list())
    return (f"event value(s) {sorted(map(str, bad))} are not canonical; valid: "
            f"{list(EVENT_TYPES)}; map them in the ingest mapping's `events:` table")


def write_buyers(df: pl.DataFrame | pl.LazyFrame, out_dir: str | Path, *,
                 max_len: int | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``buyers.parquet`` and ``manifest.json`` into ``out_dir``.

    Args:
        df: a table from :func:`build_buyers`, or a lazy frame of several (streamed to disk,
            so a large table is never held in memory at once).
        out_dir: the folder (created).
        max_len: the ``max_len`` it was built with (default: the longest ``seq_len``).
        extra: more manifest entries (e.g. the source log).

    Returns:
        The path of ``buyers.parquet``.

    Raises:
        SchemaError: when ``df`` lacks a column of :func:`buyer_schema`.
    """
    import polars as pl

    lf = df.lazy()
    names = lf.collect_schema().names()
    missing = [c for c in buyer_schema() if c not in names]
    if missing:
        raise SchemaError(f"not a buyer table: missing {missing}; build it with build_buyers()")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / BUYERS_FILE
    # lz4, as the events: zstd halves the file but costs ~1.8x the CPU time (measured)
    lf.select(list(buyer_schema())).sink_parquet(path, compression="lz4", engine="streaming")
    written = pl.scan_parquet(path)
    summary = written.select(pl.len().alias("rows"), pl.col("seq_len").max().alias("seq_max"),
                             pl.col("merchant_id").n_unique().alias("merchants")).collect()
    splits = written.group_by("split").len().sort("split").collect()
    rows = int(summary["rows"][0])
    seq_max = int(summary["seq_max"][0] or 0) if rows else 0
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "max_len": int(max_len if max_len is not None else seq_max),
        "token_channels": dict(TOKEN_CHANNELS),
        "token_columns": {c: token_column(c) for c in TOKEN_CHANNELS},
        "feature_names": list(FEATURE_NAMES),
        "outcome_columns": list(OUTCOME_COLUMNS),
        "rows": rows,
        "merchants": int(summary["merchants"][0]) if rows else 0,
        "splits": {k: int(v) for k, v in splits.iter_rows()},
        **(extra or {}),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest beside a buyers file (``path`` is the folder or the parquet file)."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    mf = folder / MANIFEST_FILE
    if not mf.exists():
        raise SchemaError(f"no {MANIFEST_FILE} in {folder}; write buyer tables with "
                          "write_buyers() (it records the schema version)")
    return json.loads(mf.read_text())


def read_buyers(path: str | Path) -> pl.DataFrame:
    """Read a buyer table written by :func:`write_buyers`, checking its schema version.

    Args:
        path: the output folder or its ``buyers.parquet``.

    Raises:
        SchemaError: when the manifest is missing, of another ``schema_version``, or the
            columns do not match ``spec.py``.

    Example:
        >>> buyers = read_buyers("runs/ingest/rees46/buyers")  # doctest: +SKIP
    """
    import polars as pl

    p = Path(path)
    manifest = read_manifest(p)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{p} has buyer schema_version {version!r} but this code reads "
                          f"version {SCHEMA_VERSION}; rebuild it with `simpersona ingest`")
    file = p if p.is_file() else p / BUYERS_FILE
    df = pl.read_parquet(file)
    expected = buyer_schema()
    wrong = {c: str(df.schema.get(c)) for c, t in expected.items() if df.schema.get(c) != t}
    if wrong:
        raise SchemaError(f"{file}: column(s) {wrong} do not match the buyer schema "
                          f"{ {c: str(t) for c, t in expected.items()} }; rebuild it")
    return df
