"""Buyer representations checked against buyers computed by hand (docs/buyers.md)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from simpersona_env.buyers import (
    FEATURE_NAMES,
    OUTCOME_COLUMNS,
    TOKEN_CHANNELS,
    build_buyers,
    buyer_schema,
    read_buyers,
    write_buyers,
)
from simpersona_env.errors import DataError, SchemaError
from storefront_mock.canonical import CANONICAL_SCHEMA

T0 = datetime(2024, 1, 1, 10, 0, 0, tzinfo=timezone.utc)


def _events(rows: list[tuple]) -> pl.DataFrame:
    """rows: (buyer, session, seconds after T0, event, category, price)."""
    return pl.DataFrame(
        [{"merchant_id": "m", "buyer_id": b, "session_id": s, "ts": T0 + timedelta(seconds=t),
          "event": e, "product_id": "p", "category": c, "brand": None, "price": p,
          "query": None, "source": "test"} for b, s, t, e, c, p in rows],
        schema=pl.Schema(CANONICAL_SCHEMA),
    )


HAND = [
    ("A", "s1", 0, "product_view", "a.x", 10.0),
    ("A", "s1", 5, "product_view", "a.x", 20.0),
    ("A", "s1", 65, "add_to_cart", "a.y", 20.0),
    ("A", "s2", 3665, "purchase", None, 20.0),
    ("B", "s3", 100, "search", None, None),
    ("B", "s3", 200, "product_view", "b", 40.0),
]


def test_hand_computed_buyers():
    out = build_buyers(_events(HAND), max_len=64, heldout_fraction=0.5, seed=0)
    assert out.schema == pl.Schema(buyer_schema())
    a, b = out.to_dicts()
    # merchant prices 10,20,20,20,40 -> quintile edges 18, 20, 20, 24 (linear interpolation)
    assert a["tok_event"] == [4, 4, 6, 9]
    assert a["tok_gap"] == [10, 2, 4, 7]  # first event, 5 s, 60 s, 3600 s
    assert a["tok_price"] == [2, 3, 3, 3]  # levels 1, 2, 2, 2
    assert a["tok_category_change"] == [3, 2, 3, 1]
    assert a["tok_session_start"] == [2, 1, 1, 2]
    assert a["seq_len"] == 4
    hours = [10, 10, 10, 11]
    expect_a = {
        "n_sessions": 2, "n_events": 4, "events_per_session": 2, "session_duration_s": 32.5,
        "n_product_views": 2, "view_to_cart": 0.5, "cart_to_purchase": 1.0,
        "view_to_purchase": 0.5, "converted": 1, "order_value": 20.0, "price_level": 1.5,
        "category_diversity": 2 / 3, "search_share": 0.0,
        "hour_sin": sum(math.sin(2 * math.pi * h / 24) for h in hours) / 4,
        "hour_cos": sum(math.cos(2 * math.pi * h / 24) for h in hours) / 4,
        "recency_days": 0.0,
    }
    for k, v in expect_a.items():
        assert a[k] == pytest.approx(v), k
    assert (a["has_cart"], a["has_purchase"], a["bounced"]) == (True, True, False)

    assert b["tok_event"] == [3, 4]
    assert b["tok_gap"] == [10, 4]
    assert b["tok_price"] == [1, 6]
    assert b["tok_category_change"] == [1, 3]
    assert b["tok_session_start"] == [2, 1]
    expect_b = {"n_sessions": 1, "n_events": 2, "session_duration_s": 100.0, "view_to_cart": 0.0,
                "cart_to_purchase": 0.0, "converted": 0.0, "order_value": 0.0,
                "price_level": 5.0, "category_diversity": 1.0, "search_share": 0.5,
                "recency_days": 3465 / 86400}
    for k, v in expect_b.items():
        assert b[k] == pytest.approx(v), k
    assert (b["has_cart"], b["has_purchase"], b["bounced"]) == (False, False, False)


def test_truncates_to_last_events_and_ignores_row_order():
    ev = _events(HAND)
    short = build_buyers(ev.reverse(), max_len=3)
    a = short.row(0, named=True)
    assert a["seq_len"] == 3 and a["tok_event"] == [4, 6, 9] and a["tok_gap"] == [2, 4, 7]
    assert a["n_events"] == 4  # features still see every event
    assert build_buyers(ev.sample(fraction=1.0, shuffle=True, seed=3), max_len=3).equals(short)


def test_no_nan_tokens_nonzero_and_lengths_match():
    out = build_buyers(_events(HAND + [("C", "s9", 50, "purchase", None, None)]))
    for f in FEATURE_NAMES:
        assert not out[f].is_nan().any() and out[f].null_count() == 0, f
    for ch, vocab in TOKEN_CHANNELS.items():
        col = out[f"tok_{ch}"]
        assert (col.list.len() == out["seq_len"]).all()
        flat = col.explode()
        assert flat.min() >= 1 and flat.max() < vocab, ch
    c = out.filter(pl.col("buyer_id") == "C").row(0, named=True)
    # a purchase with no prior view or cart is kept; rates with no denominator are 0
    assert c["converted"] == 1.0 and c["view_to_purchase"] == 0.0 and c["bounced"] is True
    assert set(OUTCOME_COLUMNS) <= set(out.columns)


def test_split_is_deterministic_and_seeded():
    rows = [(f"b{i}", f"s{i}", i, "product_view", None, None) for i in range(400)]
    ev = _events(rows)
    s1 = build_buyers(ev, seed=0)["split"]
    assert build_buyers(ev.reverse(), seed=0)["split"].equals(s1)
    assert 120 < (s1 == "heldout").sum() < 280
    assert not build_buyers(ev, seed=1)["split"].equals(s1)
    assert (build_buyers(ev, heldout_fraction=0.0)["split"] == "train").all()


def test_lazy_input_and_empty_input():
    ev = _events(HAND)
    assert build_buyers(ev.lazy()).equals(build_buyers(ev))
    empty = build_buyers(ev.clear())
    assert empty.height == 0 and empty.schema == pl.Schema(buyer_schema())


def test_bad_input_named():
    with pytest.raises(SchemaError, match="session_id"):
        build_buyers(_events(HAND).drop("session_id"))
    bad = _events(HAND).with_columns(event=pl.lit("click"))
    with pytest.raises(DataError, match="click"):
        build_buyers(bad)


def test_write_read_roundtrip_and_version_check(tmp_path):
    out = build_buyers(_events(HAND), max_len=8)
    write_buyers(out, tmp_path, max_len=8)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["max_len"] == 8 and manifest["token_channels"] == TOKEN_CHANNELS
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert read_buyers(tmp_path).equals(out)
    manifest["schema_version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="999"):
        read_buyers(tmp_path / "buyers.parquet")


def test_ingest_buyers_equal_build_buyers_on_its_events(tmp_path):
    """The ingest builds buyers in units with whole-log context (price edges from each
    unit's price counts, nan and inf left out): the same as building at once."""
    import random

    from simpersona_env.ingest import (
        LogMapping,
        MerchantKey,
        SourceMapping,
        TimestampSpec,
        ingest,
        read_events,
    )

    rng = random.Random(0)
    lines = ["shop,user,time,action,item,price"]
    for _ in range(3000):
        shop = rng.randint(1, 5)
        price = rng.choice(["", "1", "5", "20", "80", "nan", "inf", "-0.0", "0",
                            f"{rng.uniform(0, 500):.2f}", f"{rng.uniform(0, 500):.2f}"])
        lines.append(f"s{shop},u{rng.randint(1, 200)},{1_700_000_000 + rng.randint(0, 90000)},"
                     f"{rng.choice(['v', 'v', 'c', 'b', 'q'])},p{rng.randint(1, 20)},"
                     f"{'' if shop == 5 else price}")  # shop 5 never shows a price
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    src = SourceMapping(path=str(tmp_path / "log.csv"),
                        columns={"buyer_id": "user", "ts": "time", "event": "action",
                                 "product_id": "item", "price": "price"},
                        events={"v": "product_view", "c": "add_to_cart", "b": "purchase",
                                "q": "search"},
                        timestamp=TimestampSpec(unit="s"), merchant=MerchantKey(column="shop"))
    res = ingest(LogMapping(name="u", sources=[src]), tmp_path / "out", units=3, max_len=16,
                 bootstrap=10)
    assert res.manifest["rows"]["quarantined"] == 0
    got = read_buyers(res.buyers_dir).sort("merchant_id", "buyer_id")
    want = build_buyers(read_events(res.out_dir), max_len=16)
    assert got.equals(want)


def test_ingest_price_edges_from_unit_counts_equal_merchant_context(tmp_path):
    """The ingest's merchant context merges each unit's price counts; its edges are exactly
    (bit for bit) merchant_context's quantiles over all the events."""
    from datetime import datetime, timedelta, timezone

    import numpy as np

    from simpersona_env.buyers.represent import merchant_context
    from simpersona_env.ingest.pipeline import _merchant_context

    rng = np.random.default_rng(2)
    n = 20_000
    prices = np.round(rng.lognormal(3, 1.5, n) * 100) / 100  # cents: many ties
    prices[rng.random(n) < 0.05] = np.nan
    prices[rng.random(n) < 0.01] = np.inf
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    events = pl.DataFrame({
        "merchant_id": rng.choice(["a", "b", "c", "only-one", "no-prices"], n),
        "price": prices,
        "ts": [t0 + timedelta(seconds=int(s)) for s in rng.integers(0, 10**6, n)],
        "unit": rng.integers(0, 4, n),
    }).with_columns(  # every 17th row without a price; one merchant with one price, one none
        price=pl.when((pl.col("merchant_id") == "no-prices") | (pl.int_range(pl.len()) % 17 == 0))
        .then(None)
        .when(pl.col("merchant_id") == "only-one").then(pl.lit(7.5))
        .otherwise("price"))
    (tmp_path / "prices").mkdir()
    s2 = []
    for u, part in events.group_by("unit"):
        known = part.filter(pl.col("price").is_not_null() & pl.col("price").is_finite())
        known.group_by("merchant_id", "price").agg(n=pl.len()).write_parquet(
            tmp_path / "prices" / f"part-{u[0]:05d}.parquet")
        s2.append({"log_end": dict(part.group_by("merchant_id").agg(pl.col("ts").max())
                                   .iter_rows())})
    got = _merchant_context(tmp_path, s2)
    want = merchant_context(events).collect().sort("merchant_id")
    assert got.columns == want.columns
    assert got.equals(want.cast(got.schema)), (got, want)
    assert got.filter(pl.col("merchant_id") == "no-prices")["_q0"].is_null().all()
