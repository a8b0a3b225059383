"""bench/alignment_ceiling.py: the held-out split's own ceiling, on a generated log."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_ceiling_over_splits_matches_the_halves_by_hand(tmp_path, bench_script):
    from simpersona_env.evaluation.alignment import alignment_score
    from simpersona_env.synthetic import generate_events

    log = generate_events(600, n_merchants=4, seed=3)
    events = tmp_path / "events.parquet"
    log.events.write_parquet(events)
    out = tmp_path / "out"
    assert bench_script("alignment_ceiling").main(
        ["--events", str(events), "--split-seeds", "2", "--buyer-seeds", "3", "--n-sim", "50",
         "--draws", "20", "--min-buyers", "5", "--out", str(out)]) == 0
    doc = json.loads((out / "alignment_ceiling.json").read_text())
    assert doc["splits_scored"] + doc["splits_skipped_no_merchant"] == 6
    assert doc["splits_scored"] > 0
    for row in doc["splits"]:
        # the reference is the mean over merchants of the paper's score, population vs real
        assert row["real_halves"] == pytest.approx(
            float(np.mean(alignment_score(np.array(row["population"]), np.array(row["real"])))))
        for key in ("real_halves", "exact_rate@50", "known_rate@50"):
            assert 0.0 <= row[key] <= 1.0
    # different buyer seeds draw different halves
    assert len({tuple(r["real"]) for r in doc["splits"]}) > 1
    c = doc["ceiling"]["real_halves"]
    assert c["n"] == doc["splits_scored"] and c["p05"] <= c["median"] <= c["p95"]
    assert (out / "alignment_ceiling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
