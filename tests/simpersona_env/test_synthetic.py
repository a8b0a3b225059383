"""The synthetic clickstream: canonical schema, seeded, and shaped like real traffic."""

from __future__ import annotations

import polars as pl
import pytest

from simpersona_env.errors import ConfigError, UnknownNameError
from simpersona_env.synthetic import ARCHETYPES, BALANCED_MIX, generate_events
from storefront_mock.canonical import CANONICAL_SCHEMA, EVENT_TYPES


@pytest.fixture(scope="module")
def log():
    return generate_events(3000, seed=0)


def test_canonical_schema_and_values(log):
    assert log.events.schema == pl.from_arrow(CANONICAL_SCHEMA.empty_table()).schema
    assert log.events.to_arrow().cast(CANONICAL_SCHEMA).num_rows == log.events.height
    assert log.events.select(pl.col("merchant_id", "buyer_id", "session_id", "ts", "event")
                             .null_count()).sum_horizontal().item() == 0
    assert set(log.events["event"].unique()) <= set(EVENT_TYPES)
    assert log.events["merchant_id"].n_unique() == 4
    keys = log.events.select("merchant_id", "buyer_id").unique().sort(["merchant_id", "buyer_id"])
    assert keys.equals(log.labels.select("merchant_id", "buyer_id"))
    assert set(log.labels["archetype"]) <= set(ARCHETYPES)


def test_seeded(log):
    again = generate_events(3000, seed=0)
    assert again.events.equals(log.events) and again.labels.equals(log.labels)
    assert not generate_events(3000, seed=1).events.equals(log.events)


def test_shaped_like_real_traffic(log):
    ev = log.events
    per = ev.group_by("merchant_id", "buyer_id").agg(
        (pl.col("event") == "purchase").any().alias("bought"),
        (pl.col("event") == "product_view").sum().alias("views"))
    conv = per["bought"].mean()
    assert 0.01 <= conv <= 0.08  # a few percent convert
    assert (per["views"] <= 2).mean() > 0.5  # most buyers view one or two products
    by_m = per.join(log.events.select("merchant_id").unique(), on="merchant_id").group_by(
        "merchant_id").agg(pl.col("bought").mean())
    assert by_m["bought"].max() > by_m["bought"].min()  # conversion differs across merchants
    prod = ev.filter(pl.col("event") == "product_view")
    assert 0 < prod["price"].null_count() < 0.2 * prod.height  # some prices are missing
    assert prod["category"].null_count() > 0
    # some purchases have no cart event before them in their session
    sess = ev.group_by("session_id").agg(
        (pl.col("event") == "purchase").any().alias("p"),
        (pl.col("event") == "add_to_cart").any().alias("c"))
    assert sess.filter(pl.col("p") & ~pl.col("c")).height > 0


def test_balanced_mix_and_bad_mix():
    lab = generate_events(500, seed=2, mix=BALANCED_MIX).labels
    counts = lab["archetype"].value_counts()["count"]
    assert counts.min() > 60
    with pytest.raises(UnknownNameError, match="did you mean 'bouncer'"):
        generate_events(10, mix={"bouncr": 1.0})
    with pytest.raises(ConfigError, match="positive"):
        generate_events(10, mix={"bouncer": 0.0})
    with pytest.raises(ConfigError, match="n_buyers"):
        generate_events(0)
