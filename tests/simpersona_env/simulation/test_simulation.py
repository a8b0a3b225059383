"""Population simulation: per-buyer determinism across runners, batching, resume, the command."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simpersona_env.errors import ConfigError, UnknownNameError
from simpersona_env.simulation import (
    BuyerPlan,
    EpisodeWriter,
    SimulationSpec,
    SimulationWorker,
    read_episode_records,
    simulate,
)
from storefront_mock.canonical import CANONICAL_COLUMNS

REPO = Path(__file__).resolve().parents[3]

#: two buyer types with very different propensities (rule-based typed buyer)
RULE_BASED = {"_target_": "agents.policies.rule_based.RuleBasedBuyer", "profiles": {
    "0": {"views_per_session": 1.0, "view_to_cart": 0.0, "bounce": 0.5},
    "1": {"views_per_session": 3.0, "view_to_cart": 0.9, "cart_to_purchase": 1.0}}}
RANDOM = {"_target_": "agents.policies.random.RandomPolicy", "seed": 0}


def _strip(records):
    """Records without wall-clock measurements (the only part allowed to differ)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_buyer_plan_depends_on_seed_and_index_only():
    a = [BuyerPlan.of(3, i) for i in range(50)]
    assert a == [BuyerPlan.of(3, i) for i in range(50)]
    assert len({p.env_seed for p in a}) == 50
    assert BuyerPlan.of(0, 1).env_seed != BuyerPlan.of(1, 0).env_seed  # no seed + index
    think = BuyerPlan.of(0, 0).think_times(median_s=20.0)
    gaps = [next(think) for _ in range(400)]
    assert 10 < float(np.median(gaps)) < 40 and min(gaps) > 0


def test_personas_follow_the_population_and_are_recorded(tmp_path):
    spec = SimulationSpec(population=[0.0, 0.25, 0.75], n_buyers=40, policy=RANDOM, max_steps=3)
    res = simulate(spec, tmp_path, progress=False)
    records = res.records()
    personas = [r["persona"] for r in records]
    assert 0 not in personas and {1, 2} <= set(personas)
    assert res.summary["persona_counts"] == [0, personas.count(1), personas.count(2)]
    assert [r["index"] for r in records] == list(range(40))
    # the shop's log: canonical columns, one buyer per episode, timestamps from the sim clock
    events = pl.read_parquet(res.events_path)
    assert events.columns == list(CANONICAL_COLUMNS)
    assert events["buyer_id"].n_unique() == 40
    assert set(events["buyer_id"]) == {r["visitor_id"] for r in records}
    assert events["ts"].min().year == 2026


def test_workers_and_batches_do_not_change_the_episodes(tmp_path):
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=12, policy=RULE_BASED, batch_size=3)
    one = simulate(spec, tmp_path / "in-process", workers=0, progress=False).records()
    two = simulate(spec, tmp_path / "two-procs", workers=2, progress=False).records()
    assert _strip(one) == _strip(two)
    assert any(r["funnel"]["stage"] != "visit" for r in one)  # they did shop


class BatchRandom:
    """An outside batch policy: one seeded random policy per slot; counts its batched calls."""

    def __init__(self, seed: int = 0):
        from agents.policies.random import RandomPolicy

        self.seed_, self.make = seed, RandomPolicy
        self.calls: list[int] = []
        self.slots = [RandomPolicy(seed)]

    def seed(self, seed: int) -> None:
        self.seed_ = seed

    def reset(self, persona, goal):
        self.reset_batch([persona], [goal])

    def act(self, observation):
        return self.act_batch([observation])[0]

    def reset_batch(self, personas, goals):
        self.slots = [self.make(self.seed_ + i) for i in range(len(personas))]

    def act_batch(self, observations):
        self.calls.append(len(observations))
        return [p.act(o) for p, o in zip(self.slots, observations)]


def test_batch_policy_drives_the_batch_in_lockstep():
    policy = BatchRandom()
    worker = SimulationWorker(SimulationSpec(population=[1.0], n_buyers=4, batch_size=4,
                                             policy=policy, max_steps=6))
    records = list(worker.run_batch([0, 1, 2, 3]))
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]
    assert policy.calls and set(policy.calls) == {4}  # one call per step for all four envs
    assert len(policy.calls) == max(len(r["steps"]) for r in records)


def test_no_persona_baseline_hides_the_type(tmp_path):
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=5, policy="oracle", personas=False)
    records = simulate(spec, tmp_path, progress=False).records()
    assert {r["persona"] for r in records} == {-1}
    assert all(r["funnel"]["purchase"] for r in records)


class CartThenLeave:
    """Adds the first apparel product to the cart and leaves; notes the cart it finds on each
    session's first page."""

    def __init__(self):
        self.first_pages: list[str] = []
        self._plan: list[str] = []

    def reset(self, persona, goal):
        self._plan, self._fresh = ["click[collection-apparel]", "product", "click[add-to-cart]",
                                   "stop"], True

    def act(self, observation):
        import re

        if self._fresh:
            self.first_pages.append(re.search(r'Cart \((\d+)\)', observation["text"]).group(0))
            self._fresh = False
        step = self._plan.pop(0)
        if step == "product":
            pid = re.search(r"\[(product-[^\]]+)\]", observation["text"]).group(1)
            return f"click[{pid}]"
        return step


def test_a_buyer_returns_for_its_sessions_with_its_cart(tmp_path):
    policy = CartThenLeave()
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=3, policy=policy, max_steps=10,
                          sessions=[[1.0], [0.0, 0.0, 1.0]], session_gap_median_s=60.0)
    res = simulate(spec, tmp_path, progress=False)
    records = res.records()
    n_sessions = {1: 3, 0: 1}
    assert [len(r["sessions"]) for r in records] == [n_sessions[r["persona"]] for r in records]
    assert {r["persona"] for r in records} == {0, 1}  # seed 0 draws both types
    assert res.summary["sessions"] == sum(len(r["sessions"]) for r in records)
    # the same visitor comes back: its cart is there, one more line each session
    expected = []
    for r in records:
        expected += [f"Cart ({j})" for j in range(len(r["sessions"]))]
    assert policy.first_pages == expected
    events = pl.read_parquet(res.events_path)
    for r in records:
        mine = events.filter(pl.col("buyer_id") == r["visitor_id"]).sort("ts")
        assert mine["session_id"].n_unique() == len(r["sessions"])  # one buyer, n sessions
        starts = mine.group_by("session_id").agg(pl.col("ts").min()).sort("ts")["ts"]
        assert all(b - a > timedelta(minutes=31) for a, b in itertools.pairwise(starts))
        assert [s["steps"] for s in r["sessions"]] == [4] * len(r["sessions"])
        assert len(r["steps"]) == 4 * len(r["sessions"])
        assert [st["session"] for st in r["steps"]] == [j for j in range(len(r["sessions"]))
                                                       for _ in range(4)]
        assert r["funnel"]["cart_adds"] == len(r["sessions"])
    # the batch size does not change a buyer's sessions
    again = simulate(dataclasses.replace(spec, batch_size=2, policy=CartThenLeave()),
                     tmp_path / "batched", progress=False).records()
    assert _strip(again) == _strip(records)


def test_a_hidden_type_draws_its_sessions_from_the_population_mixture():
    spec = SimulationSpec(population=[0.25, 0.75], sessions=[[1.0], [0.0, 1.0]])
    assert spec.session_probs(0) == [1.0] and spec.session_probs(1) == [0.0, 1.0]
    assert spec.session_probs(-1) == pytest.approx([0.25, 0.75])
    assert SimulationSpec(population=[0.5, 0.5]).session_probs(1) == [1.0]


class Exploding:
    """A policy that fails on its 4th episode (an interrupted run)."""

    def __init__(self, fail_at: int):
        from simpersona_env.env.oracle import ShopOracle

        self.inner, self.episodes, self.fail_at = ShopOracle(), 0, fail_at

    def reset(self, persona, goal):
        self.episodes += 1
        if self.episodes == self.fail_at:
            raise RuntimeError("policy crashed")
        self.inner.reset(persona, goal)

    def act(self, observation):
        return self.inner.act(observation)


def test_resume_after_a_policy_crash_loses_and_duplicates_nothing(tmp_path):
    base = {"population": [0.5, 0.5], "n_buyers": 8, "policy_name": "oracle", "max_steps": 20}
    with pytest.raises(RuntimeError, match="policy crashed"):
        simulate(SimulationSpec(policy=Exploding(4), **base), tmp_path / "run", progress=False)
    assert [r["index"] for r in read_episode_records(tmp_path / "run")] == [0, 1, 2]
    with pytest.raises(ConfigError, match="resume=true"):
        simulate(SimulationSpec(policy=Exploding(99), **base), tmp_path / "run", progress=False)
    resumed = simulate(SimulationSpec(policy=Exploding(99), **base), tmp_path / "run",
                       resume=True, progress=False)
    assert resumed.summary["new_episodes"] == 5 and resumed.summary["resumed"]
    full = simulate(SimulationSpec(policy=Exploding(99), **base), tmp_path / "full",
                    progress=False)
    assert _strip(resumed.records()) == _strip(full.records())
    assert pl.read_parquet(resumed.events_path).equals(pl.read_parquet(full.events_path))


def test_resume_mid_sessions_loses_nothing_and_old_runs_resume(tmp_path):
    base = {"population": [0.5, 0.5], "n_buyers": 6, "policy_name": "oracle", "max_steps": 20,
            "sessions": [[0.3, 0.7]]}
    with pytest.raises(RuntimeError, match="policy crashed"):  # in some buyer's session
        simulate(SimulationSpec(policy=Exploding(6), **base), tmp_path / "run", progress=False)
    kept = read_episode_records(tmp_path / "run")
    assert 0 < len(kept) < 6 and all(len(r["sessions"]) in (1, 2) for r in kept)
    resumed = simulate(SimulationSpec(policy=Exploding(99), **base), tmp_path / "run",
                       resume=True, progress=False)
    full = simulate(SimulationSpec(policy=Exploding(99), **base), tmp_path / "full",
                    progress=False)
    assert _strip(resumed.records()) == _strip(full.records())
    assert sum(len(r["sessions"]) == 2 for r in full.records()) >= 2
    # a run written before a setting existed resumes when the setting is at its default
    one = {**base, "sessions": []}
    simulate(SimulationSpec(policy="oracle", **one), tmp_path / "old", progress=False)
    doc = json.loads((tmp_path / "old" / "simulation.json").read_text())
    for key in ("sessions", "session_gap_median_s"):
        del doc["spec"][key]
    (tmp_path / "old" / "simulation.json").write_text(json.dumps(doc))
    again = simulate(SimulationSpec(policy="oracle", **{**one, "n_buyers": 7}), tmp_path / "old",
                     resume=True, progress=False)
    assert again.summary["new_episodes"] == 1
    with pytest.raises(ConfigError, match="other settings \\(sessions\\)"):
        simulate(SimulationSpec(policy="oracle", **base), tmp_path / "old", resume=True,
                 progress=False)


@pytest.mark.slow
def test_resume_after_killing_the_process_mid_run(tmp_path):
    """Kill `simpersona simulate` (SIGKILL, its worker processes too) after a few episodes,
    tear its last line as a crash mid-write would, resume: every episode exactly once, and the
    same episodes as an uninterrupted run."""
    args = ["policy=random", "k=3", "n_buyers=60", "workers=2", "batch_size=2", "seed=7",
            "max_steps=30", "progress=false"]
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "simpersona_env.cli", "simulate", *args,
                             f"out_dir={run_dir}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    episodes = run_dir / "episodes.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if episodes.exists() and episodes.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = read_episode_records(run_dir)
    assert 6 <= len(done) < 60, "the run was not interrupted mid-way"
    with episodes.open("a") as fh:
        fh.write('{"index": 59, "merchant_id": "buil')  # a torn write
    from simpersona_env.cli import main

    assert main(["simulate", *args, f"out_dir={run_dir}", "resume=true"]) == 0
    assert main(["simulate", *args, f"out_dir={tmp_path / 'full'}"]) == 0
    resumed, full = read_episode_records(run_dir), read_episode_records(tmp_path / "full")
    assert [r["index"] for r in resumed] == list(range(60))
    assert _strip(resumed) == _strip(full)
    summary = json.loads((run_dir / "simulation.json").read_text())["summary"]
    assert summary["episodes"] == 60 and summary["new_episodes"] == 60 - len(done)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_runner_gives_the_same_episodes_as_the_local_runner(tmp_path):
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=8, policy=RULE_BASED, batch_size=2)
    local = simulate(spec, tmp_path / "local", runner="local", workers=0, progress=False)
    ray_ = simulate(spec, tmp_path / "ray", runner="ray", workers=2, num_cpus=2, progress=False)
    assert _strip(local.records()) == _strip(ray_.records())
    assert pl.read_parquet(local.events_path).equals(pl.read_parquet(ray_.events_path))
    assert ray_.summary["runner"] == "ray"


def test_bad_settings_raise_typed_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="policy"):
        SimulationWorker(SimulationSpec(policy={"_target_": "agents.policies.nope:Nope"}))
    with pytest.raises(UnknownNameError, match="policy"):  # before any worker starts
        simulate(SimulationSpec(n_buyers=2, policy="nope:Nope"), tmp_path / "p", workers=2)
    assert not (tmp_path / "p" / "episodes.jsonl").exists()
    with pytest.raises(UnknownNameError, match="runner"):
        simulate(SimulationSpec(n_buyers=1, policy="oracle"), tmp_path, runner="spark")
    with pytest.raises(ConfigError, match="batch_size"):
        SimulationSpec(batch_size=0)
    with pytest.raises(ConfigError, match="probs"):
        SimulationWorker(SimulationSpec(population=[0.5, 0.2], policy="oracle"))._env(0)
    with pytest.raises(UnknownNameError, match="store id"):
        SimulationWorker(SimulationSpec(store_id="nope", policy="oracle"))
    with pytest.raises(ConfigError, match="one per type"):
        SimulationSpec(population=[0.5, 0.5], sessions=[[1.0], [1.0], [1.0]])
    with pytest.raises(ConfigError, match="not a distribution"):
        SimulationSpec(population=[1.0], sessions=[[0.0, -1.0]])
    with pytest.raises(ConfigError, match="a goal is one visit"):
        SimulationSpec(task="goal", sessions=[[0.5, 0.5]])


def test_writer_refuses_a_damaged_file_and_double_writes(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.raises(Exception, match="damaged"):
        EpisodeWriter(path, resume=True)
    path.write_text('{"index": 0}\n')
    with EpisodeWriter(path, resume=True) as w, pytest.raises(Exception, match="already"):
        w.write({"index": 0})


def test_simulate_command_on_a_population_file(tmp_path):
    from simpersona_env.cli import main
    from simpersona_env.personas.population import Population, write_populations

    pops = tmp_path / "populations.json"
    write_populations({"builtin": Population("builtin", [0, 5, 5])}, pops)
    out = tmp_path / "sim"
    assert main(["simulate", "policy=oracle", f"population={pops}", "n_buyers=6",
                 f"out_dir={out}", "progress=false"]) == 0
    records = read_episode_records(out)
    assert len(records) == 6 and {r["persona"] for r in records} <= {1, 2}
    assert all(r["funnel"]["purchase"] for r in records)
    assert main(["simulate", "policy=oracle", "n_buyers=3", "sessions=[0,1]",
                 f"out_dir={tmp_path / 'twice'}", "progress=false"]) == 0
    assert [len(r["sessions"]) for r in read_episode_records(tmp_path / "twice")] == [2, 2, 2]
    assert main(["simulate", "policy=oracle", "sessions=[[0,1],[a]]",
                 f"out_dir={tmp_path / 'bad'}"]) == 2
    assert main(["simulate", "policy=rule_based", f"out_dir={tmp_path / 'x'}"]) == 2  # profiles ???
    assert main(["simulate", "policy=oracle", f"population={tmp_path / 'missing.json'}",
                 f"out_dir={tmp_path / 'y'}"]) == 2


@pytest.mark.browser
@pytest.mark.slow
def test_playwright_backend_gives_the_same_shop_log_as_http(tmp_path):
    """The same buyers in a real Chromium: the same funnels and the same canonical events."""
    base = {"population": [0.5, 0.5], "n_buyers": 3, "policy": "oracle", "task": "goal"}
    http = simulate(SimulationSpec(**base), tmp_path / "http", progress=False)
    pw = simulate(SimulationSpec(**base, backend={"name": "playwright"}), tmp_path / "pw",
                  progress=False)
    assert [r["funnel"] for r in http.records()] == [r["funnel"] for r in pw.records()]
    assert all(r["goal_result"]["success"] for r in pw.records())
    assert pl.read_parquet(http.events_path).equals(pl.read_parquet(pw.events_path))
