"""Each built-in adapter on its real file, with counts checked once by hand and pinned.

The hand check: a plain ``csv``/``json`` pass over each file (rows, distinct merchants,
distinct (merchant, buyer), exact duplicate rows, sessions by a 30-minute gap where the log
has none, purchases with no earlier view or cart of the same merchant and buyer).
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from simpersona_env.buyers import read_buyers
from simpersona_env.ingest import builtin_mapping, ingest, read_events
from storefront_mock.canonical import default_data_dir

pytestmark = pytest.mark.data

EXPECTED = {
    # name: (file, rows in, duplicates, merchants, buyers, sessions, events by type,
    #        sessionized rows, purchases without view/cart, first ts, last ts)
    "rees46": ("rees46/2019-Oct-sample.csv", 13256, 1, 10, 4042, 4419,
               {"product_view": 12918, "add_to_cart": 155, "purchase": 182}, 0, 0,
               "2019-10-01 00:00:00+00:00", "2019-10-01 02:50:00+00:00"),
    "taobao": ("taobao/UserBehavior-sample.csv", 94475, 0, 1, 929, 15822,
               {"product_view": 84918, "add_to_cart": 5033, "favourite": 2568, "purchase": 1956},
               94475, 36, "2017-09-11 08:16:39+00:00", "2017-12-03 15:59:28+00:00"),
    "tmall": ("tmall/user_log_sample.csv", 3000, 0, 1453, 2998, 2999,
              {"product_view": 2643, "add_to_cart": 2, "purchase": 183, "favourite": 172},
              3000, 183, "2015-05-11 00:00:00+00:00", "2015-11-11 00:00:00+00:00"),
    "otto": ("otto/train-sample.jsonl", 862, 0, 1, 20, 144,
             {"product_view": 800, "add_to_cart": 52, "purchase": 10}, 862, 0,
             "2022-07-31 22:00:00.025000+00:00", "2022-08-28 21:59:57.885000+00:00"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_adapter_on_its_real_file(name, tmp_path):
    (file, rows_in, dups, merchants, buyers, sessions, by_event, sessionized, orphans,
     first, last) = EXPECTED[name]
    path = default_data_dir() / file
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SIMPERSONA_DATA_DIR)")
    res = ingest(builtin_mapping(name), tmp_path / name, bootstrap=20)
    m = res.manifest
    assert m["rows"] == {**m["rows"], "in": rows_in, "quarantined": 0, "duplicates_removed": dups,
                         "events_out": rows_in - dups, "balanced": True}
    assert (m["n_merchants"], m["n_buyers"]) == (merchants, buyers)
    assert m["sessionized_rows"] == sessionized
    assert m["purchases_without_view_or_cart"] == orphans
    assert (m["time_range"]["min"], m["time_range"]["max"]) == (first, last)
    ev = read_events(res.out_dir).collect()
    assert dict(ev["event"].value_counts().iter_rows()) == by_event
    assert ev.select(pl.struct("merchant_id", "buyer_id", "session_id").n_unique()).item() == sessions
    assert ev["source"].unique().to_list() == [name]
    # every merchant has its own partition folder
    assert len(list((res.out_dir / "events").glob("merchant_id=*"))) == merchants
    b = read_buyers(res.buyers_dir)
    assert b.height == buyers and b["n_events"].sum() == rows_in - dups
    stats = json.loads(res.merchants_path.read_text())
    assert len(stats["merchants"]) == merchants
    assert stats["overall"]["conversion_rate"]["count"] == b["has_purchase"].sum()


def test_rees46_merchant_rates_match_the_data_readme(tmp_path):
    path = default_data_dir() / EXPECTED["rees46"][0]
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SIMPERSONA_DATA_DIR)")
    res = ingest(builtin_mapping("rees46"), tmp_path / "r", bootstrap=200)
    stats = json.loads(res.merchants_path.read_text())["merchants"]
    el = stats["electronics"]
    # README: about 6% conversion for electronics; hand count 118 of 1978 buyers
    assert (el["conversion_rate"]["count"], el["buyers"]) == (118, 1978)
    lo, hi = el["conversion_rate"]["ci"]
    assert lo < 118 / 1978 < hi and hi - lo < 0.03
