"""Bad input: every malformed row is quarantined with its line and reason, nothing is lost."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import HEADER, shop_mapping

from simpersona_env.errors import ConfigError, DataError, SchemaError
from simpersona_env.ingest import (
    LogMapping,
    MerchantKey,
    SourceMapping,
    TimestampSpec,
    ingest,
    read_events,
    read_quarantine,
)

GOOD = "s1,u1,a,2024-01-01 10:00:00,view,p1,9.5"

BAD_LINES = {
    # line number in the file (header = line 1) -> (text, reason)
    3: ("s1,u1,a,2024-01-01 10:01:00,view,p1", "wrong_column_count"),
    4: ("s1,u1,a,2024-01-01 10:02:00,view,p1,9.5,extra", "wrong_column_count"),
    5: ("s1,u1,a,2024-01-01 10:03:00,view,p1,nine", "bad_number"),
    6: ("s1,u1,a,2024-13-45 10:03:00,view,p1,9.5", "bad_timestamp"),
    7: ("s1,u1,a,2024-01-01 10:04:00,teleport,p1,9.5", "unknown_event"),
    8: ("s1,,a,2024-01-01 10:05:00,view,p1,9.5", "empty_id"),
    9: (",u1,a,2024-01-01 10:05:00,view,p1,9.5", "empty_id"),
    10: ("", "blank_line"),
    11: ("s1,u1,a,,view,p1,9.5", "bad_timestamp"),
}


def _bad_file(write):
    lines = [HEADER, GOOD] + [BAD_LINES[n][0] for n in sorted(BAD_LINES)]
    lines.append("s1,u2,b,2024-01-01 11:00:00,buy,p2,")  # line 12: good, price empty -> null
    return write("bad.csv", "\n".join(lines) + "\n")


def test_malformed_rows_are_quarantined_with_line_and_reason(write, tmp_path):
    src = _bad_file(write)
    res = ingest(shop_mapping(src), tmp_path / "out")
    q = read_quarantine(res.out_dir).sort("line")
    assert dict(zip(q["line"], q["reason"])) == {n: r for n, (_, r) in BAD_LINES.items()}
    raw = dict(zip(q["line"], q["raw"]))
    assert raw[4] == BAD_LINES[4][0] and raw[7] == BAD_LINES[7][0]  # the source text, intact
    assert "teleport" in q.filter(pl.col("line") == 7)["detail"][0]
    assert "buyer_id" in q.filter(pl.col("line") == 8)["detail"][0]
    rows = res.manifest["rows"]
    assert rows == {**rows, "in": 11, "quarantined": 9, "events_out": 2, "balanced": True}
    assert res.manifest["quarantined_by_reason"]["wrong_column_count"] == 2
    ev = read_events(res.out_dir).collect().sort("ts")
    assert ev["price"].to_list() == [9.5, None]  # a missing price stays null
    assert ev["event"].to_list() == ["product_view", "purchase"]


def test_strict_fails_on_first_bad_row_with_line_and_reason(write, tmp_path):
    src = _bad_file(write)
    with pytest.raises(DataError, match=r"bad\.csv:3: wrong_column_count"):
        ingest(shop_mapping(src), tmp_path / "out", strict=True)
    ok = write("ok.csv", f"{HEADER}\n{GOOD}\n")
    res = ingest(shop_mapping(ok), tmp_path / "out2", strict=True)
    assert res.manifest["rows"]["events_out"] == 1


def test_missing_columns_fail_before_any_work(write, tmp_path):
    src = write("no_user.csv", "shop,sess,time,action,item,price\ns1,a,2024-01-01 10:00:00,view,p,1\n")
    out = tmp_path / "out"
    with pytest.raises(SchemaError) as err:
        ingest(shop_mapping(src), out)
    msg = str(err.value)
    assert "buyer_id <- 'user'" in msg and "columns.buyer_id" in msg
    assert not out.exists()  # nothing was written
    # a required canonical field not mapped at all names the key to set
    with pytest.raises(SchemaError, match=r"columns\.ts"):
        from simpersona_env.ingest import mapping_from_config

        mapping_from_config({"name": "x", "sources": [{
            "path": str(src), "columns": {"buyer_id": "user", "event": "action"},
            "events": {"view": "product_view"}, "merchant": {"constant": "m"}}]})


def test_bad_config_values_are_named(write):
    from simpersona_env.ingest import mapping_from_config

    src = write("a.csv", f"{HEADER}\n{GOOD}\n")
    base = {"path": str(src), "columns": {"buyer_id": "user", "ts": "time", "event": "action"},
            "events": {"view": "product_view"}, "merchant": {"column": "shop"}}
    with pytest.raises(ConfigError, match="format"):
        mapping_from_config({"name": "x", "sources": [{**base, "format": "xlsx"}]})
    with pytest.raises(ConfigError, match="product_veiw"):
        mapping_from_config({"name": "x", "sources": [{**base, "events": {"v": "product_veiw"}}]})
    with pytest.raises(ConfigError, match="merchant.column"):
        mapping_from_config({"name": "x", "sources": [{**base, "merchant": {}}]})
    with pytest.raises(ConfigError, match="columne"):
        mapping_from_config({"name": "x", "sources": [{**base, "columne": {}}]})
    with pytest.raises(DataError, match="not found"):
        ingest(mapping_from_config({"name": "x", "sources": [{**base, "path": "/nope.csv"}]}),
               "/tmp/never")


def test_empty_and_header_only_files(write, tmp_path):
    empty = write("empty.csv", "")
    res = ingest(shop_mapping(empty), tmp_path / "o1")
    assert res.manifest["rows"]["in"] == 0 and res.manifest["files"][0]["empty"]
    assert "empty file" in res.manifest["files"][0]["notes"][0]
    header = write("header.csv", HEADER + "\n")
    res = ingest(shop_mapping(header), tmp_path / "o2")
    assert res.manifest["rows"] == {**res.manifest["rows"], "in": 0, "events_out": 0}
    assert read_events(res.out_dir).collect().height == 0
    assert json.loads((res.out_dir / "buyers" / "manifest.json").read_text())["rows"] == 0


def test_latin1_lines_in_a_utf8_log_are_recoded_and_reported(write, tmp_path):
    text = (f"{HEADER}\n{GOOD}\n".encode()
            + "s1,u1,a,2024-01-01 10:05:00,view,café,1\n".encode("latin-1")
            + "s1,u1,a,2024-01-01 10:06:00,view,thé,2\n".encode())
    res = ingest(shop_mapping(write("mixed.csv", text)), tmp_path / "out")
    f = res.manifest["files"][0]
    assert f["recoded_latin1_lines"] == 1 and f["recoded_line_numbers"] == [3]
    items = read_events(res.out_dir).collect().sort("ts")["product_id"].to_list()
    assert items == ["p1", "café", "thé"]
    whole = write("latin.csv", f"{HEADER}\ns1,u1,a,2024-01-01 10:05:00,view,crème,1\n"
                  .encode("latin-1"))
    res = ingest(shop_mapping(whole, encoding="latin1"), tmp_path / "out2")
    assert read_events(res.out_dir).collect()["product_id"].to_list() == ["crème"]


def test_duplicates_out_of_order_missing_sessions_and_orphan_purchases(write, tmp_path):
    lines = [HEADER,
             "s1,u1,,2024-01-01 10:30:00,view,p2,2",   # out of order (earlier line, later time)
             "s1,u1,,2024-01-01 10:00:00,view,p1,1",
             "s1,u1,,2024-01-01 10:00:00,view,p1,1",   # exact duplicate
             "s1,u1,,2024-01-01 11:30:00,cart,p1,1",   # > 30 min after 10:30 -> new session
             "s1,u1,x,2024-01-01 11:31:00,view,p3,3",  # has a session id: kept as is
             "s1,u2,y,2024-01-01 12:00:00,buy,p9,5"]   # purchase with no prior view or cart
    res = ingest(shop_mapping(write("d.csv", "\n".join(lines) + "\n")), tmp_path / "out")
    m = res.manifest
    assert m["rows"]["duplicates_removed"] == 1 and m["rows"]["events_out"] == 5
    assert m["out_of_order_events"] == 1
    assert m["sessionized_rows"] == 3
    assert m["purchases_without_view_or_cart"] == 1
    ev = read_events(res.out_dir).collect()
    u1 = ev.filter(pl.col("buyer_id") == "u1")
    assert u1["ts"].is_sorted()
    assert u1["session_id"].to_list() == ["u1:1", "u1:1", "u1:2", "x"]
    assert ev.filter(pl.col("buyer_id") == "u2")["event"].to_list() == ["purchase"]
    # without dedup the duplicate is kept
    res2 = ingest(LogMapping(name="t", sources=shop_mapping(tmp_path / "d.csv").sources,
                             dedup=False), tmp_path / "out2")
    assert res2.manifest["rows"]["events_out"] == 6


def test_jsonl_bad_lines_and_empty_records(write, tmp_path):
    lines = ['{"user": "u1", "events": [{"t": 1700000000000, "k": "clicks", "a": 5}]}',
             '{"user": "u2", "events": [{"t": 1700000001000, "k"',
             '{"user": "u3", "events": []}',
             ('{"user": "u4", "events": [{"t": 1700000002000, "k": "orders", "a": 6},'
              ' {"t": "soon", "k": "clicks", "a": 7}]}')]
    src = SourceMapping(path=str(write("x.jsonl", "\n".join(lines) + "\n")), format="jsonl",
                        explode="events",
                        columns={"buyer_id": "user", "ts": "t", "event": "k", "product_id": "a"},
                        events={"clicks": "product_view", "orders": "purchase"},
                        timestamp=TimestampSpec(unit="ms"), merchant=MerchantKey(constant="m"))
    res = ingest(LogMapping(name="j", sources=[src]), tmp_path / "out")
    q = read_quarantine(res.out_dir).sort("line")
    assert list(zip(q["line"], q["reason"])) == [(2, "bad_json"), (4, "bad_timestamp")]
    assert q["raw"][0] == lines[1]
    ev = read_events(res.out_dir).collect().sort("ts")
    assert ev["product_id"].to_list() == ["5", "6"] and ev["buyer_id"].to_list() == ["u1", "u4"]


def test_strict_mode_reads_a_mixed_encoding_log(write, tmp_path):
    text = (f"{HEADER}\n{GOOD}\n".encode()
            + "s1,u1,a,2024-01-01 10:05:00,view,café,1\n".encode("latin-1"))
    res = ingest(shop_mapping(write("mixed.csv", text)), tmp_path / "out", strict=True)
    assert res.manifest["files"][0]["recoded_line_numbers"] == [3]


def test_chunked_reading_changes_nothing(write, tmp_path):
    """Reading a CSV in tiny byte chunks gives the same events, quarantine and line numbers."""
    src = _bad_file(write)
    whole = ingest(shop_mapping(src), tmp_path / "whole")
    tiny = ingest(shop_mapping(src), tmp_path / "tiny", chunk_bytes=64)
    assert tiny.manifest["rows"] == whole.manifest["rows"]
    assert read_quarantine(tiny.out_dir).sort("line").equals(
        read_quarantine(whole.out_dir).sort("line"))
    assert read_events(tiny.out_dir).collect().sort("ts").equals(
        read_events(whole.out_dir).collect().sort("ts"))


def test_short_and_long_lines_that_balance_the_separator_count(write, tmp_path):
    """A line with a field too many and one with a field too few leave the chunk's
    separator total right: both are still found (the fast path refuses ragged lines)."""
    lines = [HEADER, GOOD,
             "s1,u1,a,2024-01-01 10:01:00,view,p1",  # line 3: one field short
             "s1,u1,a,2024-01-01 10:02:00,view,p1,9.5,extra",  # line 4: one field extra
             "s1,u1,a,2024-01-01 10:03:00,view,p2,7"]
    src = write("balanced.csv", "\n".join(lines) + "\n")
    for chunk in (16 << 20, 64):
        res = ingest(shop_mapping(src), tmp_path / f"out{chunk}", chunk_bytes=chunk)
        q = read_quarantine(res.out_dir).sort("line")
        assert q["line"].to_list() == [3, 4]
        assert q["reason"].to_list() == ["wrong_column_count"] * 2
        assert res.manifest["rows"]["events_out"] == 2


def test_quoted_fields_with_separators_and_newlines(write, tmp_path):
    lines = [HEADER,
             's1,u1,a,2024-01-01 10:00:00,view,"p,1",9.5',
             's1,u1,a,2024-01-01 10:01:00,view,"multi',
             'line",1',
             's1,u1,a,2024-01-01 10:02:00,view,p3',  # one field short
             's1,u1,a,2024-01-01 10:03:00,buy,"p""4",2']
    src = write("q.csv", "\n".join(lines) + "\n")
    res = ingest(shop_mapping(src), tmp_path / "out", chunk_bytes=64)
    ev = read_events(res.out_dir).collect().sort("ts")
    assert ev["product_id"].to_list() == ["p,1", "multi\nline", 'p"4']
    q = read_quarantine(res.out_dir)
    assert q["reason"].to_list() == ["wrong_column_count"]
    assert q["line"].to_list() == [5] and q["raw"].to_list() == [lines[4]]  # physical line
