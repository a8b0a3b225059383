"""The storefront env on the http backend (and, where marked, the browser): Gymnasium contract,
determinism, bad actions, typed errors, tasks and their oracles, wrappers, vector envs,
concurrency, and the event log an episode leaves."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simpersona_env  # noqa: F401 (registers the ids)
from simpersona_env.env import RecordFunnel, RecordGoalSuccess, ShopOracle
from simpersona_env.env.tasks import Goal, goal_reward
from simpersona_env.errors import ConfigError, UnknownNameError
from storefront_mock import create_app, make_stores

ENV_ID = "simpersona/Storefront-v0"
IDS = sorted(k for k in gym.registry if k.startswith("simpersona/"))
BACKENDS = ["http", pytest.param("playwright", marks=pytest.mark.browser)]


def run_oracle(env, seed: int, goal=None):
    """One oracle episode; returns (observations, rewards, last info)."""
    obs, info = env.reset(seed=seed, options={"goal": goal} if goal else None)
    oracle = ShopOracle()
    oracle.reset(-1, info["goal_spec"])
    seen, rewards = [obs], []
    while True:
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        seen.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            return seen, rewards, info


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("task", ["browse", "goal"])
def test_check_env(env_id, backend, task, recwarn):
    env = gym.make(env_id, backend=backend, task=task, n_products=30)
    try:
        check_env(env.unwrapped)
    finally:
        env.close()
    gym_warnings = [w for w in recwarn if "gymnasium" in str(w.filename)]
    assert not gym_warnings, [str(w.message) for w in gym_warnings]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_and_actions_give_same_observations(backend):
    runs = []
    for _ in range(2):
        env = gym.make(ENV_ID, backend=backend, task="goal", n_products=30)
        try:
            seen, rewards, _ = run_oracle(env, seed=7)
            seen += [env.step("click[continue-shopping]")[0]]  # after the end: an error
        finally:
            env.close()
        # each env serves its own shop: on the browser backend the port differs, nothing else
        seen = [{**o, "url": o["url"].split("/", 3)[-1]} for o in seen]
        runs.append((seen, rewards))
    assert runs[0] == runs[1]
    assert runs[0][1][-1] == 1.0


def test_observation_contract():
    env = gym.make(ENV_ID, num_personas=8)
    obs, info = env.reset(seed=0, options={"persona": 5})
    assert env.observation_space.contains(obs)
    assert obs["persona"] == 5 and obs["goal"] == "" and obs["last_action_error"] == ""
    assert obs["text"].startswith("# ") and "\npath: /s/builtin/\n" in obs["text"]
    assert info["stage"] == "visit" and info["page"] == "home" and info["events"] == ["page_view"]
    obs, _ = env.reset(seed=0)
    assert obs["persona"] == -1
    with pytest.raises(ConfigError, match=r"persona must be an int in \[-1, 7\]"):
        env.reset(options={"persona": 8})
    with pytest.raises(ConfigError, match="valid: persona, goal, visitor"):
        env.reset(options={"personna": 1})


def test_bad_actions_are_observations_and_count_as_steps():
    env = gym.make(ENV_ID, max_episode_steps=9)
    obs0, _ = env.reset(seed=0)
    bad = {
        "go to the cart": "cannot parse action 'go to the cart'",
        "click[no-such-id]": "no element [no-such-id] on this page",
        "click[search-input]": "[search-input] is a textbox: use type[search-input][text]",
        "type[search-submit][shoes]": "cannot type into [search-submit]: it is a button",
        "select[nav-cart][x]": "cannot select in [nav-cart]: it is a link",
        "back": "there is no previous page",
    }
    for action, message in bad.items():
        obs, reward, terminated, truncated, _ = env.step(action)
        assert message in obs["last_action_error"], obs["last_action_error"]
        assert obs["text"] == obs0["text"] and reward == 0.0 and not terminated and not truncated
    obs, *_ = env.step("click[nav-cart]")
    assert obs["last_action_error"] == "" and "path: /s/builtin/cart" in obs["text"]
    obs, *_ = env.step("back")
    assert obs["text"] == obs0["text"]
    obs, _, _, truncated, _ = env.step("type[nav-home][x]")
    assert truncated  # 9 steps: bad ones counted


def test_unknown_option_and_step_after_the_end():
    env = gym.make(ENV_ID, task="goal")
    obs, info = env.reset(seed=1)
    pid = info["goal_spec"]["product_id"]
    env.step(f"search[{info['goal_spec']['product_title']}]")
    obs, *_ = env.step(f"click[product-{pid}]")
    select_id = next(line.split("]")[0][1:] for line in obs["text"].splitlines()
                     if line.startswith("[option-"))
    obs, *_ = env.step(f"select[{select_id}][no such value]")
    assert f"[{select_id}] has no option 'no such value'; options: " in obs["last_action_error"]
    _, _, terminated, _, _ = env.step("stop")
    assert terminated
    obs, reward, terminated, _, _ = env.step("click[nav-home]")
    assert "the episode has ended" in obs["last_action_error"] and terminated and reward == 0.0


@pytest.mark.parametrize("kwargs, kind, choice", [
    ({"store": "bultin"}, "store", "builtin"),
    ({"task": "gaol"}, "task", "goal"),
    ({"backend": "playwrite"}, "backend", "playwright"),
])
def test_unknown_names_raise_typed_errors_naming_choices(kwargs, kind, choice):
    with pytest.raises(UnknownNameError) as err:
        gym.make(ENV_ID, **kwargs)
    message = str(err.value)
    assert f"unknown {kind}" in message and choice in message
    assert f"did you mean '{choice}'" in message


def test_env_from_stores():
    stores = make_stores("builtin", n_products=12, theme="grid")
    env = gym.make(ENV_ID, stores=stores)
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.catalog is stores[0].catalog and "path: /s/builtin/" in obs["text"]
    with pytest.raises(ConfigError, match="not both"):
        gym.make(ENV_ID, stores=stores, app=create_app(stores))


def test_bad_settings_raise_config_errors():
    with pytest.raises(ConfigError, match="valid settings: store"):
        gym.make(ENV_ID, stor="builtin")
    with pytest.raises(ConfigError, match="use backend=playwright"):
        gym.make(ENV_ID, store="https://shop.example.com/", backend="http")
    with pytest.raises(ConfigError, match="needs the bundled shop"):
        gym.make(ENV_ID, store="https://shop.example.com/", backend="playwright", task="goal",
                 browser_path="/nonexistent")


@pytest.mark.parametrize("seed", range(8))
def test_goal_oracle_solves_every_goal(seed):
    env = RecordGoalSuccess(gym.make(ENV_ID, task="goal"))
    _, rewards, info = run_oracle(env, seed)
    assert rewards[-1] == 1.0 and info["goal"] == {"reward": 1.0, "success": True}
    assert info["stage"] == "purchase" and len(info["purchased"]) == 1


def test_browse_oracle_buys_and_gets_reward_1():
    env = RecordFunnel(gym.make(ENV_ID, task="browse"))
    _, rewards, info = run_oracle(env, seed=0)
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0
    f = info["funnel"]
    assert f["stage"] == "purchase" and f["purchase"] and f["cart_adds"] == 1
    assert f["cart_value"] > 0 and f["purchased"] == info["purchased"]


def test_wrong_product_scores_below_1_by_the_formula():
    env = gym.make(ENV_ID, task="goal")
    catalog = env.unwrapped.catalog
    _, info = env.reset(seed=3)
    goal = Goal.from_any(info["goal_spec"])
    target = catalog.by_id[goal.product_id]
    # same type, but it misses at least one asked-for attribute
    wrong = next(p for p in catalog.products if p.product_type == target.product_type
                 and any(p.attributes.get(k) != v for k, v in goal.attributes.items()))
    decoy = {**goal.to_dict(), "product_id": wrong.product_id, "product_title": wrong.title,
             "options": {}}
    oracle = ShopOracle()
    oracle.reset(-1, decoy)  # the oracle buys the wrong product; the env scores the real goal
    obs, _ = env.reset(seed=3, options={"goal": goal})
    while True:
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        if terminated or truncated:
            break
    assert info["purchased"] == [wrong.product_id]
    order = env.unwrapped.shop.orders[obs["url"].rsplit("/", 1)[-1]]
    expected = goal_reward(goal, wrong, order.lines[0][1])
    assert reward == pytest.approx(expected) and 0 < reward < 1


def test_goal_reward_formula():
    class P:
        product_type, price = "Dress", 50.0
        attributes = {"Material": "Linen", "Length": "Midi"}

    goal = Goal("x", product_type="dress", attributes={"Material": "Linen", "Length": "Maxi"},
                options={"Size": "M"}, max_price=60.0)
    assert goal_reward(goal, P, {"Size": "M"}) == pytest.approx(3 / 4)
    assert goal_reward(goal, P, {"Size": "S"}) == pytest.approx(2 / 4)
    assert goal_reward(Goal("x", product_type="Dress", max_price=40.0), P, {}) == 0.0
    assert goal_reward(Goal("x", product_type="Shoe", attributes={"Material": "Linen"}), P, {}) == 0.0


def test_vector_env():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, n_products=30)] * 3)
    try:
        obs, _ = envs.reset(seed=0)
        assert list(obs["persona"]) == [-1, -1, -1]
        obs, reward, terminated, _, info = envs.step(["click[nav-cart]", "stop", "bad"])
        assert "/cart" in obs["url"][0] and "/cart" not in obs["url"][1]
        assert list(terminated) == [False, True, False]
        assert obs["last_action_error"][2].startswith("cannot parse")
        assert list(info["stage"]) == ["visit"] * 3
    finally:
        envs.close()


def test_event_log_of_a_scripted_episode_is_exact():
    t0 = 1_767_225_600.0  # 2026-01-01 UTC
    app = create_app(make_stores("builtin", n_products=30), clock=lambda: t0)
    env = gym.make(ENV_ID, app=app)
    catalog = env.unwrapped.catalog
    _, info = env.reset(seed=11)
    vid = info["visitor_id"]
    p = catalog.by_id[next(p.product_id for p in catalog.search("mug"))]
    script = ["search[mug]", f"click[product-{p.product_id}]", "type[quantity][2]",
              "click[add-to-cart]", "click[checkout]", "type[field-email][ann@example.com]",
              "type[field-name][Ann Lee]", "type[field-address][1 Main Street]",
              "type[field-city][Springfield]", "type[field-postcode][12345]",
              "select[field-country][Germany]", "click[place-order]"]
    for action in script:
        obs, reward, terminated, _, info = env.step(action)
        assert obs["last_action_error"] == "", (action, obs["last_action_error"])
    assert terminated and reward == 1.0
    ts = datetime.fromtimestamp(t0, timezone.utc)
    base = {"merchant_id": "builtin", "buyer_id": vid, "session_id": f"{vid}-1", "ts": ts,
            "product_id": None, "category": None, "brand": None, "price": None, "query": None,
            "source": "storefront"}
    prod = {"product_id": p.product_id, "category": p.category_path, "brand": p.brand,
            "price": p.price}
    expected = [
        {**base, "event": "page_view"},
        {**base, "event": "search", "query": "mug"},
        {**base, "event": "product_view", **prod},
        {**base, "event": "add_to_cart", **prod},
        {**base, "event": "page_view"},  # the cart page after the redirect
        {**base, "event": "checkout_start"},
        {**base, "event": "purchase", **prod},
        {**base, "event": "page_view"},  # the order page
    ]
    assert app.state.shop.event_log.rows() == expected
    order = app.state.shop.orders[obs["url"].rsplit("/", 1)[-1]]
    assert order.lines[0][0] == p.product_id and order.lines[0][2] == 2


def test_a_returning_visitor_keeps_its_cart_and_starts_a_new_session():
    now = [1_767_225_600.0]
    app = create_app(make_stores("builtin", n_products=30), clock=lambda: now[0])
    env = gym.make(ENV_ID, app=app)
    _, info = env.reset(seed=3)
    vid = info["visitor_id"]
    pid = next(iter(env.unwrapped.catalog.by_id))
    env.step("search[" + env.unwrapped.catalog.by_id[pid].title.split()[0] + "]")
    obs, *_ = env.step(f"click[product-{pid}]")
    obs, *_ = env.step("click[add-to-cart]")
    assert 'Cart (1)' in obs["text"]
    now[0] += 7200  # two hours later: past the shop's 30-minute session timeout
    obs, info = env.reset(seed=4, options={"visitor": vid})
    assert info["visitor_id"] == vid and 'Cart (1)' in obs["text"]
    rows = app.state.shop.event_log.rows(buyer_id=vid)
    assert rows[0]["session_id"] == f"{vid}-1"
    assert rows[-1]["session_id"] == f"{vid}-2" and rows[-1]["event"] == "page_view"
    _, info = env.reset(seed=5)  # without the option: a new visitor, an empty cart
    assert info["visitor_id"] != vid
    with pytest.raises(ConfigError, match="has no such visitor"):
        env.reset(options={"visitor": "sp-nobody"})


def test_16_envs_in_threads_share_one_shop_without_mixing():
    app = create_app(make_stores("builtin", n_products=40))
    catalog = app.state.shop.stores["builtin"].catalog
    products = [p.product_id for p in catalog.featured(8)] * 2
    barrier = threading.Barrier(16)
    results: dict[int, tuple[str, float]] = {}
    errors: list[BaseException] = []

    def shop(i: int) -> None:
        try:
            env = gym.make(ENV_ID, app=app)
            _, info = env.reset(seed=1000 + i)
            barrier.wait()
            for action in ["click[nav-home]", f"click[product-{products[i]}]",
                           "click[add-to-cart]", "click[nav-home]"]:
                obs, _, _, _, step_info = env.step(action)
                assert obs["last_action_error"] == "", obs["last_action_error"]
            results[i] = (info["visitor_id"], step_info["cart_value"])
            env.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shop, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    shop_state = app.state.shop
    visitors = {vid for vid, _ in results.values()}
    assert len(visitors) == 16
    for i, (vid, cart_value) in results.items():
        cart = shop_state.visitors[vid].carts["builtin"]
        assert list(cart) and all(line.product_id == products[i] for line in cart.values())
        assert cart_value == pytest.approx(catalog.by_id[products[i]].price)
    rows = shop_state.event_log.rows()
    per_visitor = {vid: [r["event"] for r in rows if r["buyer_id"] == vid] for vid in visitors}
    for events in per_visitor.values():  # every event once, in order
        assert events == ["page_view", "page_view", "product_view", "add_to_cart", "page_view",
                          "page_view"]
    assert len(rows) == 16 * 6
    adds = [(r["buyer_id"], r["product_id"]) for r in rows if r["event"] == "add_to_cart"]
    assert len(adds) == len(set(adds)) == 16


def test_np_random_seeding_changes_the_goal():
    env = gym.make(ENV_ID, task="goal")
    goals = {env.reset(seed=s)[0]["goal"] for s in range(6)}
    assert len(goals) > 1
    assert np.all([g.startswith("Buy a ") for g in goals])


@pytest.mark.data
@pytest.mark.parametrize("store", ["flipkart", "amazon"])
def test_goal_oracle_on_real_catalogs(store):
    from storefront_mock.canonical import default_data_dir

    if not (default_data_dir() / "catalogs").is_dir():
        pytest.skip(f"real data not found at {default_data_dir()} (set SIMPERSONA_DATA_DIR)")
    env = gym.make(ENV_ID, store=store, task="goal")
    for seed in range(3):
        _, rewards, info = run_oracle(env, seed)
        assert rewards[-1] == 1.0, (seed, info)


def test_stepping_imports_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys, gymnasium as gym, simpersona_env\n"
            "env = gym.make('simpersona/Storefront-v0', task='goal', n_products=20)\n"
            "env.reset(seed=0); env.step('click[nav-cart]')\n"
            "print(' '.join(sorted(m for m in ('torch', 'transformers', 'playwright', 'trl')"
            " if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _small_env():
    return gym.make(ENV_ID, n_products=20)


@pytest.mark.slow
def test_async_vector_env():
    envs = gym.vector.AsyncVectorEnv([_small_env] * 2, shared_memory=False)
    try:
        envs.reset(seed=0)
        obs, _, terminated, _, _ = envs.step(["click[nav-cart]", "stop"])
        assert obs["url"][0].endswith("/s/builtin/cart") and list(terminated) == [False, True]
    finally:
        envs.close()


def test_sample_persona_draws_from_the_population_reproducibly():
    from simpersona_env.env import SamplePersona

    env = SamplePersona(gym.make(ENV_ID, num_personas=3, n_products=20), [0.2, 0.0, 0.8])
    draws = [int(env.reset(seed=s)[0]["persona"]) for s in range(30)]
    assert set(draws) <= {0, 2} and draws.count(2) > draws.count(0)
    assert draws == [int(env.reset(seed=s)[0]["persona"]) for s in range(30)]
    assert int(env.reset(options={"persona": 1})[0]["persona"]) == 1  # an explicit one wins
    with pytest.raises(ConfigError, match="probs must be 3 non-negative numbers"):
        SamplePersona(gym.make(ENV_ID, num_personas=3, n_products=20), [0.5, 0.5])
