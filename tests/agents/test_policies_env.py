"""Policies in the real env (bundled shop, http backend; playwright behind the browser marker).

Traces are recorded by running the env's oracle and the rule-based buyer, a tiny agent is
trained on them for real, and every policy plays full episodes taking only valid actions.
"""

from __future__ import annotations

import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("simpersona_env.env.storefront_env")

from agents.policies.base import candidate_actions, is_template, is_valid_action
from agents.policies.random import RandomPolicy
from agents.policies.rule_based import RuleBasedBuyer, TypeProfile
from agents.traces import Episode, read_episodes, record_episode, write_episodes

K = 3
PROFILES = {0: TypeProfile(views_per_session=1, view_to_cart=0.0, bounce=0.0),
            1: TypeProfile(views_per_session=3, view_to_cart=0.3, cart_to_purchase=0.0, bounce=0.0),
            2: TypeProfile(views_per_session=2, view_to_cart=1.0, cart_to_purchase=1.0, bounce=0.0)}


def make_env(backend: str = "http", task: str = "browse"):
    import simpersona_env  # noqa: F401  (registers the env ids)

    return gym.make("simpersona/Storefront-v0", store="builtin", backend=backend, task=task,
                    num_personas=K, max_episode_steps=30)


def check_valid_episode(env, policy, persona: int, seed: int) -> Episode:
    """Play one episode, checking each action against the page it was taken on."""
    obs, info = env.reset(seed=seed, options={"persona": persona})
    policy.reset(persona, str(obs["goal"]))
    steps, done = 0, False
    while not done:
        action = policy.act(obs)
        assert is_valid_action(action, obs), (action, obs["url"])
        offered = candidate_actions(obs)
        assert action in offered or any(
            is_template(t) and action.startswith(t.split("<text>")[0]) for t in offered), action
        obs, _, terminated, truncated, info = env.step(action)
        assert obs["last_action_error"] == "", (action, obs["last_action_error"])
        steps += 1
        done = terminated or truncated
    assert steps >= 1
    return info


@pytest.fixture(scope="module")
def env_traces(tmp_path_factory):
    """Episodes recorded in the env: the rule-based buyer of each type, seeded."""
    env = make_env()
    buyer = RuleBasedBuyer(PROFILES, seed=0)
    eps = []
    for i in range(9):
        k = i % K
        ep, info = record_episode(env, buyer, persona=k, seed=i, merchant_id="builtin",
                                  options={"persona": k})
        assert info["converted"] == (k == 2 and buyer.depth > 0), (k, info["stage"])
        eps.append(ep)
    env.close()
    path = tmp_path_factory.mktemp("traces") / "env_traces.jsonl"
    write_episodes(eps, path)
    return path


def test_recorded_traces_round_trip(env_traces):
    eps = read_episodes(env_traces)
    assert len(eps) == 9 and {e.persona for e in eps} == {0, 1, 2}
    for ep in eps:
        assert ep.steps and set(ep.steps[0].observation) >= {"text", "url", "goal", "persona",
                                                              "last_action_error"}
        assert ep.steps[-1].action == "stop" or "place-order" in ep.steps[-1].action
    # the type shows in the traces: type 2 buys, type 0 never adds to cart
    acts = {k: [s.action for e in eps if e.persona == k for s in e.steps] for k in range(K)}
    assert "click[place-order]" in acts[2] and "click[add-to-cart]" not in acts[0]


def test_random_and_rule_based_take_valid_actions():
    env = make_env()
    for seed in range(2):
        check_valid_episode(env, RandomPolicy(seed=seed), persona=-1, seed=seed)
    info = check_valid_episode(env, RuleBasedBuyer(PROFILES, seed=0), persona=2, seed=0)
    assert info["converted"] and info["stage"] == "purchase"
    env.close()


def test_random_policy_is_seeded():
    env = make_env()
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        p = RandomPolicy(seed=7)
        p.reset(-1, "")
        acts = []
        for _ in range(5):
            acts.append(p.act(obs))
            obs, *_ = env.step(acts[-1])
        runs.append(acts)
    assert runs[0] == runs[1]
    env.close()


@pytest.fixture(scope="module")
def env_agent(env_traces, tmp_path_factory):
    """A tiny agent trained for real on the env traces through `simpersona agent train`."""
    from simpersona_env.cli import main

    out = tmp_path_factory.mktemp("env_agent")
    code = main(["agent", "train", f"traces={env_traces}", f"out={out}", "agent=tiny",
                 "sft.epochs=2", "sft.batch_size=16", "sft.max_obs_chars=600",
                 "sft.learning_rate=1e-2", f"n_personas={K}"])
    assert code == 0
    return out


def test_trained_policy_full_episode_valid_http(env_agent):
    from agents.policies.llm import LLMPolicy

    env = make_env()
    policy = LLMPolicy(env_agent, n_personas=K, seed=0, temperature=1.0)
    for k in range(K):
        check_valid_episode(env, policy, persona=k, seed=10 + k)
    env.close()


def test_trained_policy_batched_matches_single(env_agent):
    """act_batch over several envs gives the same greedy actions as one env at a time."""
    from agents.policies.llm import LLMPolicy

    envs = [make_env() for _ in range(3)]
    obs = [e.reset(seed=20 + i, options={"persona": i})[0] for i, e in enumerate(envs)]
    policy = LLMPolicy(env_agent, n_personas=K, temperature=0)
    policy.reset_batch([0, 1, 2], ["", "", ""])
    batched = policy.act_batch(obs)
    batched_scores = [c.logprobs for c in policy.last_choices]
    for i, o in enumerate(obs):
        policy.reset(i, "")
        assert policy.act(o) == batched[i]
        assert policy.last_choices[0].logprobs == pytest.approx(batched_scores[i], abs=1e-3)
    for e in envs:
        e.close()


def test_goal_task_episode_valid(env_agent):
    from agents.policies.llm import LLMPolicy

    env = make_env(task="goal")
    policy = LLMPolicy(env_agent, n_personas=K, seed=1)
    check_valid_episode(env, policy, persona=1, seed=5)
    env.close()


@pytest.mark.browser
def test_trained_policy_full_episode_valid_playwright(env_agent):
    from agents.policies.llm import LLMPolicy

    env = make_env(backend="playwright")
    try:
        policy = LLMPolicy(env_agent, n_personas=K, seed=0)
        check_valid_episode(env, policy, persona=2, seed=11)
    finally:
        env.close()


def _to_checkout(env, seed: int = 0) -> dict:
    """From the home page: the first product, add to cart, checkout (the real shop)."""
    obs, _ = env.reset(seed=seed, options={"persona": 2})
    product = next(a for a in candidate_actions(obs) if a.startswith("click[product-"))
    for action in (product, "click[add-to-cart]", "click[checkout]"):
        obs, *_ = env.step(action)
        assert obs["last_action_error"] == "", (action, obs["last_action_error"])
    assert "[place-order]" in obs["text"]
    return obs


def test_autofill_completes_the_form_once_the_model_picks_a_field(env_agent):
    """autofill=form: the model types into one field; the other empty fields and the country
    follow from the episode's profile, one step each, and the order goes through."""
    import math

    from agents.policies.llm import LLMPolicy
    from simpersona_env.errors import ConfigError

    env = make_env()
    for mode in ("form", "field"):
        obs = _to_checkout(env)
        policy = LLMPolicy(env_agent, n_personas=K, seed=0, autofill=mode)
        policy.reset(2, "")
        slot = policy.slots[0]
        cands = policy.candidates(obs, True)
        # the model's draw, made certain: type into the e-mail field
        scores = [0.0 if c.startswith("type[field-email]") else -math.inf for c in cands]
        first = policy._choose([], obs, cands, scores, slot)
        assert first == f"type[field-email][{slot.profile['field-email']}]"
        slot.history.append(first)
        obs, *_ = env.step(first)
        if mode == "field":
            assert slot.queue == []  # the model picks every field itself
            continue
        filled = []
        scored = []  # pages the model scores: none while autofill has the next action
        score = policy.action_scores
        policy.action_scores = lambda prompts, cands: scored.append(len(prompts)) or score(
            prompts, cands)
        for _ in range(5):
            action = policy.act(obs)
            filled.append(action)
            obs, _, terminated, _, info = env.step(action)
            assert obs["last_action_error"] == "", (action, obs["last_action_error"])
        assert filled == [f"type[{f}][{slot.profile[f]}]" for f in
                          ("field-name", "field-address", "field-city", "field-postcode")] + [
            f"select[field-country][{slot.country}]"]
        assert slot.queue == []  # the model decides again: placing the order is its choice
        assert scored == [0] * 5
        assert policy.last_choices[0].candidates == [filled[-1]]
        obs, _, terminated, _, info = env.step("click[place-order]")
        assert obs["last_action_error"] == "" and info["converted"], info
    with pytest.raises(ConfigError, match="policy.autofill"):
        LLMPolicy(env_agent, n_personas=K, autofill="yes")
    env.close()
