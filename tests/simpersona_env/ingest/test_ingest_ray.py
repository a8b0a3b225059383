"""The Ray runner writes exactly what the local runner writes."""

from __future__ import annotations

import random

import polars as pl
import pytest
from conftest import HEADER, shop_mapping

from simpersona_env.ingest import LogMapping, ingest

pytestmark = pytest.mark.ray


def _log(tmp_path, n_files: int = 2, rows: int = 1500):
    rng = random.Random(7)
    sources = []
    for f in range(n_files):
        lines = [HEADER]
        for _ in range(rows):
            sess = rng.choice(["", "a", "b"])  # some rows without a session id
            lines.append(f"s{rng.randint(1, 4)},u{rng.randint(1, 150)},{sess},"
                         f"2024-01-0{rng.randint(1, 3)} {rng.randint(10, 23)}:{rng.randint(10, 59)}:00,"
                         f"{rng.choice(['view', 'view', 'cart', 'buy'])},p{rng.randint(1, 30)},"
                         f"{rng.choice(['', '3.5', '10', '99.9'])}")
        lines.insert(5, "s1,u1,a,not a time,view,p1,1")  # one bad row per file
        p = tmp_path / f"log{f}.csv"
        p.write_text("\n".join(lines) + "\n")
        sources += shop_mapping(p).sources
    return LogMapping(name="rt", sources=sources)


def test_ray_and_local_runners_write_identical_parquet(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from simpersona_env.ingest import pipeline

    mapping = _log(tmp_path)
    local = ingest(mapping, tmp_path / "local", units=2, bootstrap=50)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = ingest(mapping, tmp_path / "ray", runner="ray", units=2, bootstrap=50)
        with monkeypatch.context() as m:  # each file parsed in spans, by Ray tasks
            m.setattr(pipeline, "_SPAN_BYTES", 8 << 10)
            spans = ingest(mapping, tmp_path / "ray-spans", runner="ray", units=2,
                           bootstrap=50)
        from simpersona_env.errors import DataError

        with pytest.raises(DataError, match=r"log0\.csv:6: bad_timestamp"):
            ingest(mapping, tmp_path / "strict", runner="ray", strict=True)
    finally:
        ray.shutdown()
    files_l = sorted(p.relative_to(local.out_dir) for p in local.out_dir.rglob("*.parquet"))
    files_r = sorted(p.relative_to(remote.out_dir) for p in remote.out_dir.rglob("*.parquet"))
    assert files_l == files_r and len(files_l) > 4
    for rel in files_l:
        a, b = pl.read_parquet(local.out_dir / rel), pl.read_parquet(remote.out_dir / rel)
        assert a.equals(b), rel
    assert local.manifest["rows"] == remote.manifest["rows"]
    assert local.manifest["rows"]["quarantined"] == 2
    assert (local.out_dir / "merchants.json").read_text() == \
        (remote.out_dir / "merchants.json").read_text()
    assert min(f["parse_spans"] for f in spans.manifest["files"]) > 3
    assert sorted(p.relative_to(spans.out_dir) for p in spans.out_dir.rglob("*.parquet")) \
        == files_l
    for rel in files_l:
        assert pl.read_parquet(local.out_dir / rel).equals(pl.read_parquet(spans.out_dir / rel))
    assert local.manifest["rows"] == spans.manifest["rows"]
