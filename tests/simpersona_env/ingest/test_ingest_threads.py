"""The local runner with several threads writes exactly what one thread writes."""

from __future__ import annotations

import polars as pl
import pytest
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
