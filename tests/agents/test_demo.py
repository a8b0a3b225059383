"""The main job (`simpersona demo`) end to end on generated data, and its stage runner."""

from __future__ import annotations

import json

import pytest


def test_a_stage_does_not_change_the_demos_threads():
    """A command that sets one torch thread for itself (type assignment) left the demo's SFT
    on one thread, at half speed; each in-process command now gives the caller's back."""
    import torch

    import agents.demo  # noqa: F401  (registers the demo's config, composed for the stand-in)
    from simpersona_env.cli import run_command

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_command("agent_helpers:one_thread_command", "demo", [])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_demo_end_to_end_on_generated_data(tmp_path):
    """Every stage runs and the report has its figures, on data the project generates."""
    from simpersona_env.cli import main

    out = tmp_path / "demo"
    code = main(["demo", "source=synthetic", f"out_dir={out}", "synthetic_buyers=400",
                 "synthetic_merchants=4", "k=4", "trace_sessions=40", "sft_steps=4",
                 "sft_batch_size=4", "n_buyers=4", "goal_tasks=1", "max_steps=8", "goal_demos=2",
                 "browser_episode=true", "threads=1"])
    assert code == 0
    summary = json.loads((out / "demo.json").read_text())
    assert "generated" in summary["data"] or "synthetic" in summary["data"]
    assert set(summary["seconds"]) >= {"ingest", "buyer types", "traces", "agent SFT",
                                       "simulation + evaluation", "browser episode"}
    # how far the persona token steers, from the agent's own quality metrics
    metrics = json.loads((out / "agent" / "metrics.json").read_text())
    assert summary["persona_swap_js_bits"] == metrics["quality"]["persona_swap_js_bits_mean"] >= 0
    coverage = json.loads((out / "traces" / "coverage.json").read_text())
    assert coverage["goal_demos"]["catalogs"]["builtin"]["added"] == 2
    goals = [json.loads(line)["goal"] for line in
             (out / "traces" / "traces.jsonl").read_text().splitlines()]
    assert sum(bool(g) for g in goals) >= 2  # the demonstrations went into the agents' traces
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert report  # the evaluation wrote its figures
    ref = report["population"]["reference"]["real_halves"]
    assert 0.0 <= ref["conversion"]["alignment"]["value"] <= 1.0  # the split's ceiling
    # the goal tasks compare the agents task by task, and each against the oracle
    assert [(c["a"], c["b"]) for c in report["goal"]["paired"]] == [
        ("persona_agent", "no_persona"), ("oracle", "persona_agent"), ("oracle", "no_persona")]
    for png in ("conversion.png", "funnel_by_type.png", "type_fidelity.png", "paired.png"):
        assert (out / "evaluate" / png).stat().st_size > 0
    for agent in ("agent", "agent-nopersona"):
        meta = json.loads((out / agent / "agent.json").read_text())
        assert meta["n_personas"] == 4
