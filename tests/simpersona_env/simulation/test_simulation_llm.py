"""The persona-token LLM policy (tiny, untrained: only the plumbing is under test) runs a
population through the runner in lockstep batches, one batched call per step."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory):
    import gymnasium as gym
    import torch

    import simpersona_env  # noqa: F401
    from agents.model import AgentMeta, AgentModelConfig, build_agent, save_agent

    torch.manual_seed(0)
    env = gym.make("simpersona/Storefront-v0", num_personas=2)
    corpus = [env.reset(seed=s)[0]["text"] for s in range(3)]
    env.close()
    cfg = AgentModelConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
                           intermediate_size=64)
    tok, model = build_agent(cfg, 2, corpus=corpus + ["click[product-x] stop back"])
    folder = tmp_path_factory.mktemp("agent")
    save_agent(folder, model, tok, AgentMeta(n_personas=2))
    return folder


@pytest.mark.slow
def test_llm_policy_acts_in_lockstep_batches(tiny_agent, tmp_path):
    from agents.policies.base import is_valid_action
    from simpersona_env.simulation import SimulationSpec, SimulationWorker, simulate

    policy = {"_target_": "agents.policies.llm.LLMPolicy", "checkpoint": str(tiny_agent),
              "n_personas": 2, "seed": 0, "device": "cpu", "max_prompts": 4}
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=4, batch_size=4, policy=policy,
                          max_steps=4, record_observations=True)
    worker = SimulationWorker(spec)
    calls = []
    act_batch = worker.policy.act_batch
    worker.policy.act_batch = lambda obs: calls.append(len(obs)) or act_batch(obs)
    records = list(worker.run_batch([0, 1, 2, 3]))
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]
    assert calls and set(calls) == {4}
    for r in records:
        for step in r["steps"]:
            assert is_valid_action(step["action"], step["observation"])
    # the same batch again, in a fresh run: the same episodes (the batch reseeds the policy)
    a = simulate(spec, tmp_path / "a", progress=False).records()
    b = simulate(spec, tmp_path / "b", progress=False).records()
    strip = lambda rs: [{k: v for k, v in x.items() if k != "seconds"} for x in rs]
    assert strip(a) == strip(b)
    assert {x["persona"] for x in a} <= {0, 1}


@pytest.mark.slow
def test_llm_policy_sessions_run_in_rounds(tiny_agent, tmp_path):
    """Buyers with 1 or 2 sessions: the second round is a smaller lockstep batch of the
    returning buyers, with the policy reset for them; reruns give the same records."""
    from simpersona_env.simulation import SimulationSpec, SimulationWorker, simulate

    policy = {"_target_": "agents.policies.llm.LLMPolicy", "checkpoint": str(tiny_agent),
              "n_personas": 2, "seed": 0, "device": "cpu", "max_prompts": 4}
    spec = SimulationSpec(population=[0.5, 0.5], n_buyers=4, batch_size=4, policy=policy,
                          max_steps=3, sessions=[[1.0], [0.0, 1.0]])
    worker = SimulationWorker(spec)
    resets = []
    reset_batch = worker.policy.reset_batch
    worker.policy.reset_batch = lambda p, g: resets.append(list(p)) or reset_batch(p, g)
    records = {r["index"]: r for r in worker.run_batch([0, 1, 2, 3])}
    returning = sorted(r["persona"] for r in records.values() if r["persona"] == 1)
    assert resets[0] == [records[i]["persona"] for i in range(4)]
    assert (resets[1:] == [returning]) if returning else resets[1:] == []
    for r in records.values():
        assert len(r["sessions"]) == (2 if r["persona"] == 1 else 1)
    a = simulate(spec, tmp_path / "a", progress=False).records()
    b = simulate(spec, tmp_path / "b", progress=False).records()
    strip = lambda rs: [{k: v for k, v in x.items() if k != "seconds"} for x in rs]
    assert strip(a) == strip(b)
