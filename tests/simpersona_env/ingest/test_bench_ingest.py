"""bench/bench_ingest.py end to end on a small resampled log: every measurement runs and the
three implementations of the same work agree on what they count."""

from __future__ import annotations

import json

import pytest

from storefront_mock.canonical import default_data_dir


def _need_real_logs() -> None:
    """Skip unless the REES46 and Taobao samples the resampler copies from are there."""
    for f in ("rees46/2019-Oct-sample.csv", "taobao/UserBehavior-sample.csv"):
        if not (default_data_dir() / f).exists():
            pytest.skip(f"real data not found at {default_data_dir() / f} "
                        "(set SIMPERSONA_DATA_DIR)")


@pytest.mark.slow
def test_bench_ingest_runs_and_the_implementations_agree(tmp_path, bench_script):
    _need_real_logs()
    out = tmp_path / "out"
    assert bench_script("bench_ingest").main(
        ["--events", "40000", "--pandas-events", "40000", "--data", str(tmp_path / "data"),
         "--out", str(out)]) == 0
    doc = json.loads((out / "bench_ingest.json").read_text())
    assert "resampled real data" in doc["data"]
    # the sample is the whole (small) log, so every implementation reads the same rows
    rows = doc["floor"]["rows"]
    assert rows == doc["simpersona"]["rows"] == doc["polars_minimal"]["rows"]
    assert doc["pandas"]["rows"] == doc["simpersona_sample"]["rows"]
    # one buyer per (merchant, buyer) in each: the same people, counted three ways
    assert doc["polars_minimal"]["buyers"] == doc["simpersona"]["buyers"]
    assert doc["pandas"]["buyers"] == doc["simpersona_sample"]["buyers"]
    assert set(doc["targets"]) == {">= 1M events/s", ">= 5x pandas", "within 3x of raw scan",
                                   "peak memory under input size"}
    for key in ("simpersona_time_over_raw_scan", "polars_minimal_time_over_raw_scan",
                "simpersona_time_over_polars_minimal"):
        assert doc["ratios"][key] > 0
    assert (out / "bench_ingest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_ingest_memory_reports_each_size(tmp_path, bench_script):
    _need_real_logs()
    out = tmp_path / "out"
    assert bench_script("bench_ingest_memory").main(
        ["--events", "40000,20000", "--data-root", str(tmp_path), "--out", str(out),
         "--threads", "1"]) == 0
    doc = json.loads((out / "bench_ingest_memory.json").read_text())
    runs = doc["runs"]
    assert [r["events"] for r in runs] == [20000, 40000]
    assert runs[0]["data_mib"] < runs[1]["data_mib"]
    for r in runs:
        assert r["peak_mib"] > 0 and r["events_per_s"] > 0 and r["buyers"] > 0
        assert r["peak_over_input"] == pytest.approx(r["peak_mib"] / r["data_mib"])
    assert (out / "bench_ingest_memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
