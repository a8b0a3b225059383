"""Merchant statistics (hand-checked values, honest intervals) and deterministic splits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from simpersona_env.buyers import assign_splits, buyer_split, merchant_split
from simpersona_env.buyers.split import stable_hash
from simpersona_env.buyers.stats import buyer_funnel, merchant_stats
from simpersona_env.errors import ConfigError


def _funnel(rows):
    """rows: (merchant, buyer, view, cart, checkout, purchase, order_value, priced)."""
    return pl.DataFrame(
        [{"merchant_id": m, "buyer_id": b, "n_events": 1 + v + c + k + p, "n_sessions": 1,
          "reached_product_view": bool(v), "reached_add_to_cart": bool(c),
          "reached_checkout_start": bool(k), "reached_purchase": bool(p),
          "order_value": ov, "n_priced_purchases": n} for m, b, v, c, k, p, ov, n in rows])


def test_merchant_stats_hand_computed():
    rows = [("m", f"b{i}", 1, int(i < 40), int(i < 20), int(i < 10), 10.0 * (i < 10) * (i + 1),
             int(i < 10)) for i in range(100)]
    rows += [("n", "x", 1, 0, 0, 1, 0.0, 0)]  # a purchase with an unknown price
    stats = merchant_stats(_funnel(rows), bootstrap=2000, seed=1)
    m = stats["merchants"]["m"]
    assert m["buyers"] == 100 and m["events"] == 100 + 100 + 40 + 20 + 10
    assert [m["funnel"][s]["value"] for s in
            ("product_view", "add_to_cart", "checkout_start", "purchase")] == [1, .4, .2, .1]
    assert m["funnel_steps"]["add_to_cart->checkout_start"]["value"] == 0.5
    assert m["conversion_rate"]["value"] == 0.1
    assert m["average_order_value"]["value"] == pytest.approx(55.0)  # mean of 10..100
    lo, hi = m["conversion_rate"]["ci"]
    # the binomial 95% interval for 10/100 is about [0.045, 0.16]
    assert 0.03 < lo < 0.07 and 0.13 < hi < 0.17
    alo, ahi = m["average_order_value"]["ci"]
    assert alo < 55 < ahi
    n = stats["merchants"]["n"]
    assert n["conversion_rate"]["value"] == 1.0 and n["average_order_value"]["value"] is None
    assert stats["overall"]["buyers"] == 101
    # seeded: same seed -> same intervals; a merchant's draws do not depend on the others
    again = merchant_stats(_funnel(rows[:100]), bootstrap=2000, seed=1)["merchants"]["m"]
    assert again == m


def test_buyer_funnel_from_events():
    from datetime import datetime, timezone

    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ev = pl.DataFrame({"merchant_id": ["m"] * 4, "buyer_id": ["a", "a", "a", "b"],
                       "session_id": ["s", "s", "t", "u"], "ts": [t] * 4,
                       "event": ["product_view", "purchase", "purchase", "search"],
                       "price": [1.0, 5.0, None, None]})
    f = buyer_funnel(ev).collect().to_dicts()
    assert f[0] == {"merchant_id": "m", "buyer_id": "a", "n_events": 3, "n_sessions": 2,
                    "reached_product_view": True, "reached_add_to_cart": False,
                    "reached_checkout_start": False, "reached_purchase": True,
                    "order_value": 5.0, "n_priced_purchases": 1}
    assert f[1]["reached_product_view"] is False and f[1]["n_events"] == 1


def test_splits_are_deterministic_stable_and_by_merchant():
    keys = pl.Series([f"buyer-{i}" for i in range(5000)])
    h = stable_hash(keys, seed=0)
    # pinned values: the hash must never change across versions or platforms
    assert h[:2].tolist() == stable_hash(pl.Series(["buyer-0", "buyer-1"])).tolist()
    assert stable_hash(pl.Series(["abc"]))[0] == stable_hash(pl.Series(["abc"]))[0]
    m = pl.Series(["m1"] * 5000)
    s = buyer_split(m, keys, heldout_fraction=0.2)
    assert 0.17 < (s == "heldout").mean() < 0.23
    # the same buyer id at another merchant is split independently
    other = buyer_split(pl.Series(["m2"] * 5000), keys, heldout_fraction=0.2)
    assert (s != other).sum() > 500
    ms = merchant_split(pl.Series([f"shop{i}" for i in range(400)]), heldout_fraction=0.25)
    assert 60 < (ms == "heldout").sum() < 140
    df = assign_splits(pl.DataFrame({"merchant_id": ["a", "a", "b"], "buyer_id": ["1", "2", "1"]}),
                       merchant_heldout_fraction=0.5, seed=3)
    assert df["merchant_split"].to_list()[0] == df["merchant_split"].to_list()[1]
    with pytest.raises(ConfigError, match="heldout_fraction"):
        buyer_split(m, keys, heldout_fraction=1.5)
    assert np.unique(h).size == h.size


def test_stable_hash_pinned_value():
    # FNV-1a 64 of b"a" is 0xaf63dc4c8601ec8c; then the splitmix64 finaliser
    x = np.array([0xAF63DC4C8601EC8C], dtype=np.uint64)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    assert stable_hash(pl.Series(["a"]))[0] == x[0]


def test_buyer_split_is_the_hash_of_merchant_and_buyer_joined():
    """buyer_split hashes each merchant prefix once per run of equal merchants and goes on
    over the buyer id: exactly the hash of the joined key, in any row order, with nulls
    (the empty string) and multi-byte text."""
    import random

    from simpersona_env.buyers.split import _SEP, unit_hash

    rng = random.Random(4)
    merchants = [rng.choice([None, "", "shop", "électronique", "店铺-7"]) for _ in range(3000)]
    buyers = [rng.choice([None, "", f"u{rng.randint(0, 10**9)}", "日本-ü"]) for _ in range(3000)]
    for order in ("as drawn", "grouped"):
        if order == "grouped":
            rows = sorted(zip(merchants, buyers), key=lambda r: (r[0] or "", r[1] or ""))
            merchants, buyers = [r[0] for r in rows], [r[1] for r in rows]
        m, b = pl.Series(merchants, dtype=pl.String), pl.Series(buyers, dtype=pl.String)
        joined = m.fill_null("") + _SEP + b.fill_null("")
        for seed in (0, 11):
            want = np.where(unit_hash(joined, seed) < 0.4, "heldout", "train")
            got = buyer_split(m, b, heldout_fraction=0.4, seed=seed).to_numpy()
            assert (got == want).all(), (order, seed)
