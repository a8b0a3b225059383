"""Goal-task demonstrations for SFT: disjoint from the goal benchmark's tasks, valid (replaying
their actions in a fresh env solves the task again), copyable searches, and the traces
command that appends them (builtin catalog only: no data needed)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from agents.goal_demos import (
    GoalDemonstrator,
    benchmark_task_seeds,
    goal_demo_seed,
    goal_demonstrations,
    instruction_query,
)
from agents.traces import read_episodes
from simpersona_env.errors import ConfigError, UnknownNameError
from simpersona_env.simulation.population import BuyerPlan


@pytest.fixture(scope="module")
def demos():
    # 1000 excluded benchmark tasks on the 120-product builtin catalog: some drawn demo
    # instructions repeat a benchmark one, so the instruction filter is exercised
    return goal_demonstrations(["builtin"], 6, seed=0, benchmark_tasks=1000, progress=False)


def _goal_env():
    import simpersona_env  # noqa: F401  (registers the env)

    return gym.make("simpersona/Storefront-v0", task="goal", store="builtin",
                    max_episode_steps=30)


def test_demo_seed_stream_never_meets_the_benchmark_seeds():
    bench = benchmark_task_seeds(5000, seeds=range(4))
    assert BuyerPlan.of(3, 4999).env_seed in bench and len(bench) == 20000
    demo = {goal_demo_seed(s, cat, i) for s in range(3) for cat in ("builtin", "flipkart",
                                                                      "amazon")
            for i in range(2000)}
    assert len(demo) == 18000  # distinct per (seed, catalog, index)
    assert not demo & bench


def test_demos_are_disjoint_from_the_real_goal_benchmark(demos, tmp_path):
    from simpersona_env.evaluation.goal import goal_benchmark

    episodes, report = demos
    stats = report["catalogs"]["builtin"]
    assert stats["added"] == len(episodes) == 6
    # the benchmark as it runs: its tasks are the goals of the env seeds we exclude
    res = goal_benchmark({"oracle": "oracle"}, catalogs=["builtin"], n_tasks=6, seed=0,
                         out_dir=tmp_path, progress=False, bootstrap=10)
    bench_goals = res["tasks"]["builtin"]
    env = _goal_env()
    drawn = [env.reset(seed=BuyerPlan.of(0, j).env_seed)[0]["goal"] for j in range(6)]
    assert drawn == bench_goals
    assert not set(stats["env_seeds"]) & benchmark_task_seeds(1000, [0])
    assert not {ep.goal for ep in episodes} & set(bench_goals)
    # instruction filter: demo goals equal to any of the first 1000 benchmark tasks' are dropped
    assert stats["skipped_benchmark_goal"] > 0
    thousand = {env.reset(seed=s)[0]["goal"] for s in benchmark_task_seeds(1000, [0])}
    assert not {ep.goal for ep in episodes} & thousand
    env.close()


def test_demos_replay_to_goal_success_without_persona(demos):
    episodes, report = demos
    env = _goal_env()
    for ep, seed in zip(episodes, report["catalogs"]["builtin"]["env_seeds"], strict=True):
        assert ep.persona == -1 and ep.goal.startswith("Buy a")
        assert all(s.observation["goal"] == ep.goal and int(s.observation["persona"]) == -1
                   for s in ep.steps)
        obs, _ = env.reset(seed=seed)
        assert obs["goal"] == ep.goal
        reward = 0.0
        for step in ep.steps:
            assert obs["text"] == step.observation["text"]  # the recorded pages, exactly
            obs, reward, terminated, _, _ = env.step(step.action)
        assert terminated and reward == 1.0
        # the search is words of the instruction (an agent can copy it), checkout fields typed
        search = next(s.action for s in ep.steps if s.action.startswith("search["))
        assert search == f"search[{instruction_query(ep.goal)}]"
        assert search[len("search["):-1] in ep.goal
        assert ep.steps[-1].action == "click[place-order]"
    env.close()


def test_type_and_title_queries():
    env = _goal_env()
    obs, info = env.reset(seed=goal_demo_seed(0, "builtin", 0))
    spec = info["goal_spec"]
    demo = GoalDemonstrator(env.unwrapped.catalog, "x", query="title")
    demo.reset(-1, spec)
    assert demo.act(obs) == f"search[{spec['product_title']}]"  # the oracle's search
    demo = GoalDemonstrator(env.unwrapped.catalog, "x", query="type")
    demo.reset(-1, spec)
    action = demo.act(obs)
    assert action == f"search[{spec['product_type'].lower()}]" and action[7:-1] in obs["goal"]
    env.close()
    eps, report = goal_demonstrations(["builtin"], 2, query="type", benchmark_tasks=10,
                                      progress=False)
    assert report["catalogs"]["builtin"]["added"] == 2
    assert all(any(s.action == "search[" + e.goal.split(" with ")[0][6:] + "]"
                   for s in e.steps) for e in eps)


def test_instruction_query():
    q = instruction_query("Buy a t-shirt with material: Cotton, sleeve: Short sleeve, color: "
                          "White, size: L, price lower than 34.00.", max_words=6)
    assert q == "t-shirt with material: Cotton, sleeve: Short"
    assert instruction_query("Buy an usb cables, price lower than 1876.00.") == "usb cables"


def test_bad_settings_fail_with_clear_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'flipkart'"):
        goal_demonstrations(["flipkat"], 1, progress=False)
    with pytest.raises(ConfigError, match="query"):
        goal_demonstrations(["builtin"], 1, query="oracle", progress=False)
    with pytest.raises(ConfigError, match="n=-1"):
        goal_demonstrations(["builtin"], -1, progress=False)


def test_traces_command_appends_demos(tmp_path):
    from agents.commands_traces import traces
    from agents.sft import build_examples
    from simpersona_env.config import compose

    base = ["events=synthetic", "synthetic_buyers=20", "max_sessions=6", "progress=false"]
    # a typo in the catalogs fails before anything is replayed or written
    bad = tmp_path / "bad"
    with pytest.raises(UnknownNameError):
        traces(compose("traces", [*base, f"out_dir={bad}", "goal_demos.n=2",
                                  "goal_demos.catalogs=[buitlin]"]))
    assert not (bad / "traces.jsonl").exists()

    out = tmp_path / "tr"
    assert traces(compose("traces", [*base, f"out_dir={out}", "goal_demos.n=2",
                                     "goal_demos.catalogs=[builtin]"])) == 0
    cov = json.loads((out / "coverage.json").read_text())
    eps = read_episodes(out / "traces.jsonl")
    assert cov["goal_demos"]["added"] == 2 and cov["goal_demos"]["catalogs"]["builtin"]["added"] == 2
    assert len(eps) == cov["episodes_written"] + 2
    demo_eps = eps[-2:]
    assert all(e.merchant_id == "builtin" and e.goal and e.persona == -1 for e in demo_eps)
    # SFT renders them with the goal and no persona line, in every persona mode
    for ex in build_examples(demo_eps, persona="token"):
        assert ex.prompt.startswith("goal: Buy a") and "<persona_" not in ex.prompt

    # a second file instead of appending
    out2 = tmp_path / "tr2"
    traces(compose("traces", [*base, f"out_dir={out2}", "goal_demos.n=1",
                              "goal_demos.catalogs=[builtin]", "goal_demos.file=demos.jsonl"]))
    assert len(read_episodes(out2 / "demos.jsonl")) == 1
    assert all(not e.goal or e.merchant_id != "builtin"
               for e in read_episodes(out2 / "traces.jsonl"))
