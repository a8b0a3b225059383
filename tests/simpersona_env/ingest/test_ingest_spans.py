"""A large CSV is parsed in byte spans (in parallel); the output is the whole file's."""

from __future__ import annotations

import copy
import json
import random
import re

import polars as pl
import pytest
from conftest import HEADER, shop_mapping  # this folder's conftest, bound at collection

from simpersona_env.errors import DataError
from simpersona_env.ingest import ingest, pipeline


def _lines(n: int, seed: int = 5) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(f"s{rng.randint(1, 3)},u{rng.randint(1, 60)},{rng.choice(['', 'a', 'b'])},"
                   f"2024-01-0{rng.randint(1, 3)} {rng.randint(10, 23)}:{rng.randint(10, 59)}:00,"
                   f"{rng.choice(['view', 'view', 'cart', 'buy'])},p{rng.randint(1, 30)},"
                   f"{rng.choice(['', '3.5', '99.9'])}".encode())
    return out


def _write(tmp_path, lines: list[bytes], name: str = "log.csv", newline_at_end: bool = True):
    path = tmp_path / name
    path.write_bytes(b"\n".join([HEADER.encode(), *lines]) + (b"\n" if newline_at_end else b""))
    return path


def _outputs(res) -> dict:
    files = {str(p.relative_to(res.out_dir)): pl.read_parquet(p)
             for p in sorted(res.out_dir.rglob("*.parquet"))}
    manifest = {k: copy.deepcopy(v) for k, v in res.manifest.items() if k != "timings_s"}
    for f in manifest["files"]:
        del f["parse_spans"]
    return {"files": files, "manifest": manifest,
            "merchants": (res.out_dir / "merchants.json").read_text()}


def _same(a: dict, b: dict) -> None:
    assert a["files"].keys() == b["files"].keys()
    for name, frame in a["files"].items():
        assert frame.equals(b["files"][name]), name
    assert json.dumps(a["manifest"], default=str) == json.dumps(b["manifest"], default=str)
    assert a["merchants"] == b["merchants"]


def test_spans_write_what_the_whole_file_writes(tmp_path, monkeypatch):
    lines = _lines(3000)
    lines[40] = b"s1,u1,a,not a time,view,p1,1"  # bad rows in several spans
    lines[1700] = b"s2,u2,b,2024-01-01 10:00:00,view"  # too few fields
    lines[2500] = "s1,u3,a,2024-01-01 11:00:00,view,café,1".encode("latin-1")
    lines += lines[100:110]  # exact duplicates, far from their first copies
    path = _write(tmp_path, lines, newline_at_end=False)
    whole = ingest(shop_mapping(path), tmp_path / "whole", units=3, bootstrap=20, threads=2)
    monkeypatch.setattr(pipeline, "_SPAN_BYTES", 8 << 10)  # ~14 spans of this 120 KiB file
    spans = ingest(shop_mapping(path), tmp_path / "spans", units=3, bootstrap=20, threads=2)
    # one worker parses each file whole: spans would only add the line count
    one = ingest(shop_mapping(path), tmp_path / "one", units=3, bootstrap=20, threads=1)
    f = spans.manifest["files"][0]
    assert f["parse_spans"] > 10 and whole.manifest["files"][0]["parse_spans"] == 1
    assert one.manifest["files"][0]["parse_spans"] == 1
    assert f["rows_quarantined"] == 2 and f["recoded_line_numbers"] == [2502]
    assert spans.manifest["rows"]["duplicates_removed"] >= 10
    q = pl.read_parquet(spans.quarantine_path)
    assert q["line"].to_list() == [42, 1702]  # file lines (header = line 1)
    assert q["raw"].to_list() == ["s1,u1,a,not a time,view,p1,1",
                                  "s2,u2,b,2024-01-01 10:00:00,view"]
    _same(_outputs(whole), _outputs(spans))
    _same(_outputs(one), _outputs(spans))


def test_strict_reports_the_files_first_bad_row_across_spans(tmp_path, monkeypatch):
    lines = _lines(3000)
    lines[1200] = b"s1,u1,a,2024-01-01 10:00:00,teleport,p1,1"
    lines[2800] = b"s1,u1,a,not a time,view,p1,1"
    path = _write(tmp_path, lines)
    monkeypatch.setattr(pipeline, "_SPAN_BYTES", 8 << 10)
    with pytest.raises(DataError, match=r"log\.csv:1202: unknown_event"):
        ingest(shop_mapping(path), tmp_path / "out", strict=True, threads=2)


def test_a_quote_in_a_later_span_parses_the_file_whole(tmp_path, monkeypatch):
    """A quoted field may hold a newline, so spans cut at line starts could split it: a
    file with the quote character anywhere (here far past its first MiB check) is parsed
    whole, and the output is the same."""
    lines = _lines(3000)
    lines[2900] = b's1,u9,a,2024-01-01 12:00:00,view,"p,1",2'
    path = _write(tmp_path, lines)
    whole = ingest(shop_mapping(path, quote_char='"'), tmp_path / "whole", units=2,
                   bootstrap=20)
    monkeypatch.setattr(pipeline, "_SPAN_BYTES", 8 << 10)
    spans = ingest(shop_mapping(path, quote_char='"'), tmp_path / "spans", units=2,
                   bootstrap=20, threads=2)
    assert spans.manifest["files"][0]["parse_spans"] == 1
    events = pl.concat([pl.read_parquet(p) for p in sorted(spans.events_dir.rglob("*.parquet"))])
    assert "p,1" in events["product_id"].to_list()
    _same(_outputs(whole), _outputs(spans))


def test_a_span_that_meets_a_quote_after_the_count_reparses_its_file_whole(tmp_path,
                                                                        monkeypatch):
    """The lines are counted before the spans are parsed; a quote that appears in between
    (a log still being written to) sends the file to the whole-file parse, and its spans'
    staged rows are dropped."""
    lines = _lines(30_000)  # 1.2 MB: the quote below is past the first MiB's check
    path = _write(tmp_path, lines)
    monkeypatch.setattr(pipeline, "_SPAN_BYTES", 64 << 10)
    mapping = shop_mapping(path, quote_char='"')
    files = [(str(path), mapping.sources[0])]
    run = pipeline._Local(2)
    tasks = pipeline._stage1_tasks(files, run, None)
    assert len(tasks) > 10
    # as many bytes as before, a product id quoted on a line of the last span
    rows = path.read_bytes().split(b"\n")
    k = max(i for i, row in enumerate(rows) if re.search(rb",p\d\d,", row))
    rows[k] = re.sub(rb",p\d(\d),", rb',"\1",', rows[k], count=1)
    path.write_bytes(b"\n".join(rows))
    stage = tmp_path / "stage"
    calls = [(str(path), mapping.sources[0], i, 2, str(stage), False, 16 << 20, span)
             for i, span in tasks]
    parsed = run.map(pipeline._stage1_file, calls, "parse", None)
    assert [r.get("whole_file", False) for r in parsed] == [False] * (len(tasks) - 1) + [True]
    assert list((stage / "chunks").glob("f00000-s0000-*.arrow"))  # the first span's rows

    def redo(whole):
        return run.map(pipeline._stage1_file, [(str(path), mapping.sources[0], i, 2,
                                                str(stage), False) for i in whole],
                       "parse", None)

    merged = pipeline._merge_spans(files, tasks, parsed, stage, redo)
    assert len(merged) == 1 and "spans" not in merged[0]
    assert merged[0]["good"] == 30_000 and merged[0]["bad"] == {}
    # the spans' staged chunks are gone; the whole file went through the quote-aware scan
    assert not list((stage / "chunks").glob("*-s*.arrow"))
    assert list((stage / "units").glob("unit=*/f00000-*.parquet"))
