"""A log in a format that is not built in, loaded by a YAML mapping, equals a built-in adapter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from conftest import HEADER, shop_source  # this folder's conftest, bound at collection

from simpersona_env.cli import main
from simpersona_env.ingest import builtin_mapping, ingest, load_mapping, read_events
from storefront_mock.canonical import default_data_dir

TAOBAO_EVENTS = {"pv": "PageView", "cart": "Basket", "fav": "Wish", "buy": "Order"}
SHANGHAI = timezone(timedelta(hours=8))

MAPPING_YAML = """
name: shoplog
sources:
  - path: {path}
    format: tsv
    has_header: false
    header: [when, what, who, item, cat]
    columns:
      ts: when
      event: what
      buyer_id: who
      product_id: item
      category: cat
    events:
      PageView: product_view
      Basket: add_to_cart
      Wish: favourite
      Order: purchase
    timestamp:
      format: "%d/%m/%Y %H:%M:%S"
      timezone: Asia/Shanghai
    merchant:
      constant: taobao
session_gap_minutes: 30
"""


def _taobao_rows(n: int, seed: int = 0) -> list[tuple[str, str, str, str, int]]:
    rng = random.Random(seed)
    rows, t = [], 1_511_500_000
    for _ in range(n):
        t += rng.choice([5, 40, 700, 2500, 9000])
        rows.append((str(rng.randint(1, 25)), str(rng.randint(1000, 1010)),
                     str(rng.randint(1, 4)), rng.choice(list(TAOBAO_EVENTS)), t))
    rng.shuffle(rows)  # out of order on purpose
    return rows + rows[:3]  # and three duplicates


def _frame(out) -> pl.DataFrame:
    return (read_events(out).drop("source").collect()
            .sort(["merchant_id", "buyer_id", "ts", "product_id", "event"]))


def test_yaml_mapping_of_a_new_format_reproduces_the_taobao_adapter(tmp_path):
    rows = _taobao_rows(400)
    taobao = tmp_path / "UserBehavior.csv"
    taobao.write_text("user_id,item_id,category_id,behavior_type,timestamp\n"
                      + "".join(f"{u},{i},{c},{b},{t}\n" for u, i, c, b, t in rows))
    other = tmp_path / "shop.tsv"
    other.write_text("".join(
        f"{datetime.fromtimestamp(t, SHANGHAI):%d/%m/%Y %H:%M:%S}\t{TAOBAO_EVENTS[b]}\t{u}\t{i}\t{c}\n"
        for u, i, c, b, t in rows))
    (tmp_path / "shop.yaml").write_text(MAPPING_YAML.format(path="shop.tsv"))

    built_in = ingest(builtin_mapping("taobao", path=taobao), tmp_path / "a")
    mapped = ingest(load_mapping(tmp_path / "shop.yaml"), tmp_path / "b")
    assert built_in.manifest["rows"]["duplicates_removed"] == 3
    assert mapped.manifest["rows"] == built_in.manifest["rows"]
    a, b = _frame(built_in.out_dir), _frame(mapped.out_dir)
    assert a.height == 400 and a.equals(b)
    # the buyer representations agree too
    ba = pl.read_parquet(built_in.buyers_dir / "buyers.parquet").sort("merchant_id", "buyer_id")
    bb = pl.read_parquet(mapped.buyers_dir / "buyers.parquet").sort("merchant_id", "buyer_id")
    assert ba.equals(bb)


def test_cli_ingests_a_mapping_file_and_a_builtin_with_another_path(tmp_path, capsys):
    rows = _taobao_rows(60, seed=1)
    (tmp_path / "shop.tsv").write_text("".join(
        f"{datetime.fromtimestamp(t, SHANGHAI):%d/%m/%Y %H:%M:%S}\t{TAOBAO_EVENTS[b]}\t{u}\t{i}\t{c}\n"
        for u, i, c, b, t in rows))
    (tmp_path / "shop.yaml").write_text(MAPPING_YAML.format(path="shop.tsv"))
    taobao = tmp_path / "tb.csv"
    taobao.write_text("user_id,item_id,category_id,behavior_type,timestamp\n"
                      + "".join(f"{u},{i},{c},{b},{t}\n" for u, i, c, b, t in rows))
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert main(["ingest", "data=mapping", f"data.mapping={tmp_path / 'shop.yaml'}",
                 f"out_dir={out1}", "progress=false", "bootstrap=50"]) == 0
    assert main(["ingest", "data=taobao", f"data.path={taobao}", f"out_dir={out2}",
                 "progress=false", "bootstrap=50"]) == 0
    err = capsys.readouterr().err
    assert "events out" in err and "quarantined" in err  # the summary table
    for out in (out1, out2):
        assert (out / "merchants.json").exists() and (out / "merchants.png").exists()
        assert (out / "buyers" / "buyers.parquet").exists()
    assert _frame(out1).equals(_frame(out2))
    # a bad key is named, with exit code 2
    assert main(["ingest", "data=taobao", "data.pth=x"]) == 2
    assert "data.pth" in capsys.readouterr().err


def test_several_files_with_their_own_mappings_merge_into_one_log(tmp_path):
    rows = _taobao_rows(100, seed=2)
    half = len(rows) // 2
    (tmp_path / "tb.csv").write_text("user_id,item_id,category_id,behavior_type,timestamp\n"
                                     + "".join(f"{u},{i},{c},{b},{t}\n"
                                               for u, i, c, b, t in rows[:half]))
    (tmp_path / "shop.tsv").write_text("".join(
        f"{datetime.fromtimestamp(t, SHANGHAI):%d/%m/%Y %H:%M:%S}\t{TAOBAO_EVENTS[b]}\t{u}\t{i}\t{c}\n"
        for u, i, c, b, t in rows[half:]))
    tb = builtin_mapping("taobao", path=tmp_path / "tb.csv").sources[0]
    (tmp_path / "shop.yaml").write_text(MAPPING_YAML.format(path="shop.tsv"))
    shop = load_mapping(tmp_path / "shop.yaml").sources[0]
    (tmp_path / "all.csv").write_text("user_id,item_id,category_id,behavior_type,timestamp\n"
                                      + "".join(f"{u},{i},{c},{b},{t}\n"
                                                for u, i, c, b, t in rows))
    from simpersona_env.ingest import LogMapping

    merged = ingest(LogMapping(name="merged", sources=[tb, shop]), tmp_path / "m")
    whole = ingest(builtin_mapping("taobao", path=tmp_path / "all.csv"), tmp_path / "w")
    assert [f["rows_in"] for f in merged.manifest["files"]] == [half, len(rows) - half]
    assert _frame(merged.out_dir).equals(_frame(whole.out_dir))


@pytest.mark.data
def test_rees46_as_jsonl_with_a_mapping_equals_the_builtin_adapter(tmp_path):
    src = default_data_dir() / "rees46" / "2019-Oct-sample.csv"
    if not src.exists():
        pytest.skip(f"real data not found at {src} (set SIMPERSONA_DATA_DIR)")
    raw = pl.read_csv(src, infer_schema=False)
    ms = (raw["event_time"].str.strptime(pl.Datetime("ms", "UTC"), "%Y-%m-%d %H:%M:%S UTC")
          .dt.epoch("ms"))
    raw.select(when_ms=ms, kind=pl.col("event_type").str.to_uppercase(), shopper="user_id",
               visit="user_session", sku="product_id", path="category_code", maker="brand",
               amount="price").write_ndjson(tmp_path / "rees.jsonl")
    (tmp_path / "rees.yaml").write_text("""
name: rees_jsonl
sources:
  - path: rees.jsonl
    format: jsonl
    columns: {ts: when_ms, event: kind, buyer_id: shopper, session_id: visit, product_id: sku,
              category: path, brand: maker, price: amount}
    events: {VIEW: product_view, CART: add_to_cart, PURCHASE: purchase}
    timestamp: {unit: ms}
    merchant: {column: path, level: 1, missing: uncategorized}
""")
    a = ingest(builtin_mapping("rees46"), tmp_path / "a", bootstrap=10)
    b = ingest(load_mapping(tmp_path / "rees.yaml"), tmp_path / "b", bootstrap=10)
    assert _frame(a.out_dir).equals(_frame(b.out_dir))


def test_per_file_constants_survive_staging(write, tmp_path):
    """Columns one value per file (source, a constant merchant, constants, unmapped
    fields) come out per row as mapped, with files of different shapes in one unit."""
    from simpersona_env.ingest import LogMapping, MerchantKey, ingest, read_events

    a = write("a.csv", "\n".join([HEADER, "s1,u1,x,2024-01-01 10:00:00,view,p1,9.5",
                                  "s1,u2,y,2024-01-01 10:05:00,buy,p2,"]) + "\n")
    b = write("b.csv", "\n".join(["user,time,action,item",
                                  "u1,2024-01-02 10:00:00,view,p9",
                                  "u3,2024-01-02 10:01:00,cart,p8"]) + "\n")
    src_b = shop_source(b, columns={"buyer_id": "user", "ts": "time", "event": "action",
                                    "product_id": "item"},
                        constants={"brand": "acme"}, merchant=MerchantKey(constant="shopB"),
                        source="other")
    mapping = LogMapping(name="two", sources=[shop_source(a), src_b])
    res = ingest(mapping, tmp_path / "out", units=1, buyers=False)
    ev = read_events(res.out_dir).collect().sort("ts")
    assert ev["merchant_id"].to_list() == ["s1", "s1", "shopB", "shopB"]
    assert ev["source"].to_list() == ["test", "test", "other", "other"]
    assert ev["brand"].to_list() == [None, None, "acme", "acme"]
    assert ev["price"].to_list() == [9.5, None, None, None]
    assert ev["query"].null_count() == 4
    assert ev["session_id"].to_list() == ["x", "y", "u1:1", "u3:1"]  # b: by the gap
