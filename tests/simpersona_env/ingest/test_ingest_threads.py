"""The local runner with several threads writes exactly what one thread writes."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import HEADER, shop_mapping  # this folder's conftest, bound at collection
from test_ingest_ray import _log

from simpersona_env.errors import DataError
from simpersona_env.ingest import ingest


def test_local_threads_write_identical_parquet(tmp_path):
    mapping = _log(tmp_path, n_files=3, rows=800)
    one = ingest(mapping, tmp_path / "one", units=3, bootstrap=50, threads=1)
    two = ingest(mapping, tmp_path / "two", units=3, bootstrap=50, threads=2)
    files_1 = sorted(p.relative_to(one.out_dir) for p in one.out_dir.rglob("*.parquet"))
    files_2 = sorted(p.relative_to(two.out_dir) for p in two.out_dir.rglob("*.parquet"))
    assert files_1 == files_2 and len(files_1) > 4
    for rel in files_1:
        assert pl.read_parquet(one.out_dir / rel).equals(pl.read_parquet(two.out_dir / rel)), rel
    assert one.manifest["rows"] == two.manifest["rows"]
    assert one.manifest["rows"]["quarantined"] == 3
    assert (one.out_dir / "merchants.json").read_text() == \
        (two.out_dir / "merchants.json").read_text()
    # strict: the first bad row in file order, whichever thread meets it first
    with pytest.raises(DataError, match=r"log0\.csv:6: bad_timestamp"):
        ingest(mapping, tmp_path / "strict", strict=True, threads=2)


def test_many_merchants_write_the_same_events_as_few(tmp_path, monkeypatch):
    """A unit with more merchants than ``_MERCHANTS_PER_LOOP`` writes them with one
    partitioned sink: the same files and rows as the write per merchant."""
    import random

    from simpersona_env.ingest import pipeline

    rng = random.Random(3)
    lines = [HEADER] + [f"shop{rng.randint(1, 90)},u{rng.randint(1, 40)},,"
                        f"2024-01-01 {rng.randint(10, 23)}:{rng.randint(10, 59)}:00,view,p1,2"
                        for _ in range(600)]
    src = tmp_path / "many.csv"
    src.write_text("\n".join(lines) + "\n")
    sink = ingest(shop_mapping(src), tmp_path / "sink", units=2, bootstrap=20)
    monkeypatch.setattr(pipeline, "_MERCHANTS_PER_LOOP", 10_000)
    loop = ingest(shop_mapping(src), tmp_path / "loop", units=2, bootstrap=20)
    files = sorted(p.relative_to(sink.out_dir) for p in sink.out_dir.rglob("*.parquet"))
    assert files == sorted(p.relative_to(loop.out_dir) for p in loop.out_dir.rglob("*.parquet"))
    assert len([f for f in files if f.parts[0] == "events"]) > 2 * 64
    for rel in files:
        assert pl.read_parquet(sink.out_dir / rel).equals(pl.read_parquet(loop.out_dir / rel)), rel
    assert sink.manifest["merchants"] == loop.manifest["merchants"]
