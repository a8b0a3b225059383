"""The worked example of docs/mapping.md runs as written (its YAML is read from the doc)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from simpersona_env.ingest import ingest, load_mapping, read_events

DOC = Path(__file__).resolve().parents[3] / "docs" / "mapping.md"


def _blocks() -> list[str]:
    """The fenced code blocks of the doc, in order."""
    blocks, cur = [], None
    for line in DOC.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if cur is None:
                cur = []
            else:
                blocks.append("".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def test_mapping_doc_example(tmp_path):
    tsv = next(b for b in _blocks() if b.startswith("2024-03-02T09:14:05"))
    yaml = next(b for b in _blocks() if b.startswith("name: my_shop"))
    (tmp_path / "events.tsv").write_text(tsv)
    (tmp_path / "searches.jsonl").write_text(json.dumps(
        {"who": "cust-2210", "at": 1709373731000, "q": "hedge trimmer", "store": "shop-at"}) + "\n")
    (tmp_path / "my_shop.yaml").write_text(yaml)
    res = ingest(load_mapping(tmp_path / "my_shop.yaml"), tmp_path / "out", bootstrap=20)
    m = res.manifest
    assert m["rows"] == {**m["rows"], "in": 5, "quarantined": 0, "events_out": 5}
    ev = read_events(res.out_dir).collect().sort("ts")
    assert ev["event"].to_list() == ["product_view", "add_to_cart", "purchase", "search",
                                     "search"]
    de = ev.filter(pl.col("merchant_id") == "shop-de")
    assert de["category"].to_list() == ["Garden.Tools.Shears"] * 3
    assert de["price"].to_list() == [24.9] * 3
    # 09:14:05 in Berlin (CET, UTC+1) is 08:14:05 UTC
    assert str(de["ts"][0]) == "2024-03-02 08:14:05+00:00"
    at = ev.filter(pl.col("merchant_id") == "shop-at")
    assert at["query"].to_list() == [None, "hedge trimmer"]
    assert at["session_id"].null_count() == 0 and at["price"].null_count() == 2
