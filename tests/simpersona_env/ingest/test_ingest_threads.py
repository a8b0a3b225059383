"""The local runner with several threads writes exactly what one thread writes."""

from __future__ import annotations

from pathlib import Path

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


def test_buyers_sharing_a_sort_key_come_out_as_with_distinct_keys(tmp_path, monkeypatch):
    """Stage 2 sorts by a 64-bit (merchant, buyer hash) key; buyers whose keys are equal
    (forced here: one hash bit kept) are still each contiguous, deduplicated, sessionized
    and counted exactly as with distinct keys; only the order of buyers differs."""
    from simpersona_env.ingest import pipeline

    mapping = _log(tmp_path, n_files=2, rows=800)
    for src in mapping.sources:  # exact duplicates of a few rows
        path = Path(src.path)
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines, *lines[10:20]]) + "\n")
    apart = ingest(mapping, tmp_path / "apart", units=2, bootstrap=20)
    monkeypatch.setattr(pipeline, "_KEY_HASH_BITS", 1)
    shared = ingest(mapping, tmp_path / "shared", units=2, bootstrap=20)
    for k in ("rows", "out_of_order_events", "sessionized_rows",
              "purchases_without_view_or_cart", "merchants", "n_buyers"):
        assert apart.manifest[k] == shared.manifest[k], k
    assert apart.manifest["rows"]["duplicates_removed"] >= 10
    events = sorted(p.relative_to(apart.out_dir) for p in apart.events_dir.rglob("*.parquet"))
    assert events == sorted(p.relative_to(shared.out_dir)
                            for p in shared.events_dir.rglob("*.parquet"))
    for rel in events:
        a, b = (pl.read_parquet(r.out_dir / rel) for r in (apart, shared))
        # each buyer's rows stay together and in the same order: a stable sort by buyer
        # of either file gives the same frame
        for frame in (a, b):
            runs = frame.select((pl.col("buyer_id") != pl.col("buyer_id").shift(1))
                                .fill_null(True).sum()).item()
            assert runs == frame["buyer_id"].n_unique(), rel
        assert a.sort("buyer_id", maintain_order=True).equals(
            b.sort("buyer_id", maintain_order=True)), rel
    buyers = [pl.read_parquet(r.buyers_dir / "buyers.parquet").sort("merchant_id", "buyer_id")
              for r in (apart, shared)]
    assert buyers[0].equals(buyers[1])


def test_each_units_staged_batch_holds_only_its_own_rows(tmp_path):
    """Stage 1 writes a chunk as one file with a record batch per unit, each holding only
    its own strings, so a unit's stage 2 reads only its own pages (batches that kept the
    chunk's whole string buffers made every unit read every page: 2.2 GB at 10M events)."""
    import pyarrow as pa
    from pyarrow import ipc

    from simpersona_env.ingest import pipeline

    src = _log(tmp_path, n_files=1, rows=4000).sources[0]
    stage = tmp_path / "stage"
    r = pipeline._stage1_file(src.path, src, 0, 8, str(stage), False)
    [(name, batches)] = r["chunks"]
    path = stage / "chunks" / name
    with pa.memory_map(str(path)) as f:
        reader = ipc.open_file(f)
        assert reader.num_record_batches == len(batches) == 8
        sizes = [reader.get_batch(i).nbytes for i in range(reader.num_record_batches)]
    rows = [b[3] for b in batches]
    assert sum(rows) == r["good"] == 4000  # and one bad row, not staged
    assert sum(sizes) <= 1.2 * path.stat().st_size
    for size, n in zip(sizes, rows):
        assert size < 2 * sum(sizes) * n / sum(rows)
