"""bench/agent_probe.py on a real (tiny) agent and a shop built from a written event log."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest


def _events(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storefront_mock.canonical import CANONICAL_SCHEMA

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    data = {c: [] for c in CANONICAL_SCHEMA.names}
    for i, pid in enumerate(["1004856", "1004767", "2001334", "3002871"]):
        row = {"merchant_id": "m1", "buyer_id": f"b{i}", "session_id": f"s{i}",
               "ts": t0 + timedelta(seconds=i), "event": "product_view", "product_id": pid,
               "category": "electronics.smartphone", "brand": "acme", "price": 10.0 + i,
               "query": None, "source": "test"}
        for c, values in data.items():
            values.append(row.get(c))
    pq.write_table(pa.Table.from_pydict(data, schema=CANONICAL_SCHEMA), path)


@pytest.mark.slow
def test_probe_reads_the_policys_probabilities_per_type(tmp_path, trained_agent, episodes,
                                                        bench_script):
    from agents.traces import write_episodes

    events = tmp_path / "events.parquet"
    _events(events)
    traces = tmp_path / "traces.jsonl"
    write_episodes(episodes[:12], traces)
    probe = bench_script("agent_probe")
    out = tmp_path / "probe"
    assert probe.main(["--agents", str(trained_agent["dir"]), "--events", str(events),
                       "--merchant", "m1", "--types", "0", "2", "--pages", "3",
                       "--traces", str(traces), "--buying-type", "2", "--swap-to", "1",
                       "--out", str(out)]) == 0
    result = json.loads((out / "agent_probe.json").read_text())
    entry = result["agents"][str(trained_agent["dir"])]
    pages = entry["shop"]["pages"]
    assert len(pages) == 3 and all("/products/" in p["page"] for p in pages)
    for t in ("type_0", "type_2"):
        for a in ("add_to_cart", "stop"):
            vals = [p[t][a] for p in pages]
            assert all(0 <= v <= 1 for v in vals)
            assert entry["shop"]["mean"][t][a] == pytest.approx(sum(vals) / len(vals))
    # the fixture's type 2 always adds what it views, type 1 never: the token carries it
    tr = entry["traces"]
    assert tr["buying_type, added"]["n"] > 0 and tr["other_type, did not add"]["n"] > 0
    assert tr["buying_type, added"]["p_add"] > tr["buying_type, added"]["p_add_type_swapped"]
