"""Per-episode product aliases for SFT (``sft.alias_items``)."""

from __future__ import annotations

import re

import pytest
from agent_helpers import home_obs, product_obs

from agents.sft import alias_items, build_examples
from agents.traces import Episode, Step


def _episode(pid: str, persona: int = 1) -> Episode:
    cart = {"text": f"Cart\n[cart-qty-{pid}] textbox \"Quantity\" value=\"1\"\nTotal $12.00\n"
                    "[checkout] button \"Checkout\"", "url": "/s/demo/cart", "goal": "",
            "persona": persona, "last_action_error": ""}
    return Episode(persona=persona, merchant_id="demo", goal=f"buy {pid}", steps=[
        Step(home_obs(persona), f"click[product-{pid}]"),
        Step(product_obs(persona, pid), "click[add-to-cart]"),
        Step(cart, f"type[cart-qty-{pid}][2]"),
    ])


def _ids(ep: Episode) -> set[str]:
    text = " ".join(s.observation["text"] + " " + s.observation["url"] + " " + s.action
                    for s in ep.steps)
    return set(re.findall(r"product-([A-Za-z0-9_-]+)", text))


def test_aliases_are_consistent_within_an_episode_and_fresh_across_episodes():
    eps = [_episode("mug-red"), _episode("mug-red")]
    a, b = alias_items(eps, seed=0)
    orig = _ids(eps[0])
    assert "mug-red" in orig
    for out in (a, b):
        text = " ".join(s.observation["text"] + s.observation["url"] + s.action + out.goal
                        for s in out.steps)
        assert "mug-red" not in text  # page text, url, actions, cart lines and the goal
        assert len(_ids(out)) == len(orig)
    click = a.steps[0].action[len("click[product-"):-1]
    assert click in a.steps[0].observation["text"]  # the alias is the one the page shows
    assert a.steps[1].observation["url"] == f"/s/demo/products/{click}"
    assert a.steps[2].action == f"type[cart-qty-{click}][2]"
    assert a.goal == f"buy {click}"
    assert re.fullmatch(r"[a-z]{3}-[a-z]{3}", click)  # same shape as mug-red
    assert _ids(a) != _ids(b)  # the next episode draws its own aliases
    assert "Total $12.00" in a.steps[2].observation["text"]  # other numbers untouched


def test_aliasing_is_seeded_keeps_the_rest_and_leaves_short_ids():
    eps = [_episode("123456"), _episode("SP0000081", persona=-1)]
    one, two = alias_items(eps, seed=3), alias_items(eps, seed=3)
    assert [e.to_dict() for e in one] == [e.to_dict() for e in two]
    assert [e.to_dict() for e in alias_items(eps, seed=4)] != [e.to_dict() for e in one]
    assert [(e.persona, e.merchant_id, len(e.steps)) for e in one] == [(1, "demo", 3), (-1, "demo", 3)]
    new = one[1].steps[0].action[len("click[product-"):-1]
    assert re.fullmatch(r"[A-Z]{2}\d{7}", new) and new != "SP0000081"
    assert eps[0].steps[0].action == "click[product-123456]"  # the input is not modified
    short = Episode(0, "demo", steps=[Step(product_obs(0, "p1"), "click[product-p1]")])
    assert alias_items([short])[0].to_dict() == short.to_dict()  # "p1" could be anything


def test_aliased_examples_keep_their_actions_on_the_page():
    ex = build_examples(alias_items([_episode("tee-black")]), persona="token")
    click = ex[0].completion[len("click[product-"):-1]
    assert click != "tee-black" and f"[product-{click}]" in ex[0].prompt


@pytest.mark.slow
def test_aliased_agent_acts_on_the_type_on_a_product_it_never_saw(tmp_path):
    """Every add to cart in the traces is of one product, by type 1, and the pages name
    products by id only (as a log's catalog does); trained on aliased episodes, the agent
    adds an unseen product for type 1 and not for type 0."""
    import random

    import torch
    from agent_helpers import tiny_tokenizer_and_model

    from agents.model import AgentMeta
    from agents.policies.llm import LLMPolicy
    from agents.sft import SFTSettings, train_sft

    torch.manual_seed(0)
    rng = random.Random(0)
    ids = [str(100200 + 17 * i) for i in range(6)]
    eps = []
    for i in range(120):
        k = i % 2
        pid = ids[0] if k == 1 else rng.choice(ids[1:])
        eps.append(Episode(persona=k, merchant_id="demo", goal="", steps=[
            Step(home_obs(k), f"click[product-{pid}]"),
            Step(product_obs(k, pid), "click[add-to-cart]" if k == 1 else "stop")]))
    aliased = alias_items(eps, seed=0)
    examples = build_examples(aliased)
    tok, model = tiny_tokenizer_and_model(2, episodes_=aliased)
    train_sft(tok, model, examples, [], SFTSettings(epochs=12, learning_rate=1e-2,
                                                    batch_size=16, logging_steps=50), tmp_path)
    policy = LLMPolicy(model=model, tokenizer=tok, meta=AgentMeta(n_personas=2))

    def p_add(k: int) -> float:
        obs = product_obs(k, "733911")  # in no trace
        return policy.action_probabilities(obs, ["click[product-733911]"])["click[add-to-cart]"]

    print(f"P(add | unseen product): type 1 {p_add(1):.3f}, type 0 {p_add(0):.3f}")
    assert p_add(1) > 0.5 > p_add(0)
