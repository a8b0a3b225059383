"""Balanced SFT: rare action forms are resampled up, and the policy undoes it when it acts."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from agents.policies.base import action_form
from agents.sft import balance_examples, build_examples
from agents.tokens import Rendered
from simpersona_env.errors import ConfigError


def _examples(counts: dict[str, int]) -> list[Rendered]:
    return [Rendered(f"page {i}", a) for a, n in counts.items() for i in range(n)]


def test_balance_shares_follow_the_power_and_weights_match_them():
    counts = {"click[product-1]": 600, "stop": 300, "click[add-to-cart]": 8, "back": 92}
    ex = _examples(counts)
    for power in (0.5, 1.0):
        out, logw = balance_examples(ex, power, seed=3)
        got = Counter(action_form(e.completion) for e in out)
        mass = {action_form(a): n ** (1 - power) for a, n in counts.items()}
        for a, n in counts.items():
            form = action_form(a)
            assert got[form] == pytest.approx(len(ex) * mass[form] / sum(mass.values()), abs=1)
            # the log-weight is exactly how much more often the form was shown
            assert math.exp(logw[form]) == pytest.approx(got[form] / n)
        assert abs(len(out) - len(ex)) <= len(counts)
        # every example of a form shown more often is kept (repeated), none dropped
        adds = [e for e in out if e.completion == "click[add-to-cart]"]
        assert {e.prompt for e in adds} == {f"page {i}" for i in range(8)}
    assert max(got.values()) - min(got.values()) <= 1  # power 1: every form equally often


def test_balance_zero_is_the_identity_and_bad_power_names_the_key():
    ex = _examples({"stop": 5, "back": 2})
    out, logw = balance_examples(ex, 0.0)
    assert out == ex and set(logw.values()) == {0.0}
    with pytest.raises(ConfigError, match="sft.balance"):
        balance_examples(ex, 1.5)


def test_balance_is_seeded():
    ex = _examples({"stop": 50, "back": 7, "click[add-to-cart]": 3})
    assert balance_examples(ex, 0.5, seed=1) == balance_examples(ex, 0.5, seed=1)


def _rare_add_episodes(n: int, p_add: float, seed: int = 0):
    """One type: open a product from home, then add it to cart with probability p_add."""
    from agent_helpers import PRODUCTS, home_obs, product_obs

    from agents.traces import Episode, Step

    rng = random.Random(seed)
    eps = []
    for i in range(n):
        pid = rng.choice(PRODUCTS)
        add = i < round(p_add * n)
        eps.append(Episode(persona=0, merchant_id="demo", goal="", steps=[
            Step(home_obs(0), f"click[product-{pid}]"),
            Step(product_obs(0, pid), "click[add-to-cart]" if add else "stop")]))
    random.Random(seed + 1).shuffle(eps)
    return eps


@pytest.mark.slow
def test_prior_correction_recovers_the_traces_rate(tmp_path):
    """A tiny model trained on balanced steps over-adds to cart; corrected, it adds at ~10%."""
    import torch
    from agent_helpers import product_obs, tiny_tokenizer_and_model

    from agents.model import AgentMeta
    from agents.policies.llm import LLMPolicy, _Slot
    from agents.sft import SFTSettings, train_sft

    torch.manual_seed(0)
    episodes = _rare_add_episodes(120, p_add=0.1)
    examples = build_examples(episodes)
    balanced, logw = balance_examples(examples, 1.0, seed=0)
    tok, model = tiny_tokenizer_and_model(1, episodes_=episodes)
    settings = SFTSettings(epochs=20, learning_rate=1e-2, batch_size=16, lr_scheduler="linear",
                           logging_steps=50, seed=0)
    train_sft(tok, model, balanced, [], settings, tmp_path)
    forms = sorted({action_form(e.completion) for e in examples})
    meta = AgentMeta(n_personas=1, action_forms=forms, action_log_weights=logw)

    def p_add(correct: bool) -> float:
        policy = LLMPolicy(model=model, tokenizer=tok, meta=meta, prior_correction=correct)
        obs = product_obs(0, "mug-red")
        slot_prompt = policy._prompt(obs, _Slot(0, "", ["click[product-mug-red]"]))
        cands = policy.candidates(obs, True)
        assert sorted(cands) == ["click[add-to-cart]", "stop"]
        scores = torch.tensor(policy.action_scores([slot_prompt], [cands])[0])
        return float(torch.softmax(scores, 0)[cands.index("click[add-to-cart]")])

    raw, corrected = p_add(False), p_add(True)
    print(f"P(add to cart | product page): raw {raw:.3f}, corrected {corrected:.3f}")
    assert raw > 0.3, raw  # trained on as many adds as stops
    assert 0.03 < corrected < 0.25, corrected  # the traces' rate is 0.1
