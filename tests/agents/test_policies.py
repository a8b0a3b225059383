"""The policy protocol, the LLM policy's constrained scoring, the baselines, the configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from agent_helpers import home_obs, product_obs, tiny_tokenizer_and_model

from agents.model import AgentMeta
from agents.policies import BatchPolicy, Policy
from agents.policies.base import candidate_actions, is_valid_action
from agents.policies.llm import LLMPolicy, PromptPersonaPolicy
from agents.policies.rule_based import RuleBasedBuyer, TypeProfile, load_profiles
from simpersona_env.errors import ConfigError, UnknownNameError

REPO = Path(__file__).resolve().parents[2]


def test_agents_is_this_repository_and_imports_light():
    import agents

    assert Path(agents.__file__).resolve().is_relative_to(REPO)
    code = ("import sys, agents, agents.policies, agents.traces, agents.tokens;"
            "from agents.policies import RandomPolicy, RuleBasedBuyer, CallablePolicy;"
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def fresh():
    torch.manual_seed(0)
    return tiny_tokenizer_and_model(3)


def test_batched_scoring_equals_full_forward(fresh):
    """The tree-masked batch scores each candidate exactly like a plain forward pass would."""
    tok, model = fresh
    policy = LLMPolicy(model=model, tokenizer=tok, max_prompts=2)
    assert isinstance(policy, Policy) and isinstance(policy, BatchPolicy)
    obs = [home_obs(0), product_obs(1, "mug-red"), home_obs(2, goal="a red mug")]
    policy.reset_batch([0, 1, 2], ["", "", ""])
    prompts = [policy._prompt(o, s) for o, s in zip(obs, policy.slots)]
    cands = [candidate_actions(o) for o in obs]
    scores = policy.score(prompts, cands)
    model.eval()
    for b, (p, cs) in enumerate(zip(prompts, cands)):
        for j, c in enumerate(cs):
            ids = policy._candidate_ids(c)
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=torch.tensor([p + ids])).logits[0], -1)
            ref = sum(float(lp[len(p) - 1 + i, t]) for i, t in enumerate(ids))
            assert scores[b][j] == pytest.approx(ref, abs=1e-3), (b, c)


def test_masked_decoding_is_a_distribution_over_the_offered_actions(fresh):
    """Masked scores: per page the candidates' probabilities sum to one, and each equals the
    product of its tokens' probabilities renormalized among the tokens the page allows."""
    import math

    tok, model = fresh
    policy = LLMPolicy(model=model, tokenizer=tok)
    obs = [home_obs(0), product_obs(1, "mug-red")]
    policy.reset_batch([0, 1], ["", ""])
    prompts = [policy._prompt(o, s) for o, s in zip(obs, policy.slots)]
    cands = [candidate_actions(o) for o in obs]
    joint = policy.score(prompts, cands)
    masked = policy.score(prompts, cands, masked=True)
    for b, cs in enumerate(cands):
        assert sum(math.exp(x) for x in masked[b]) == pytest.approx(1.0, abs=1e-6)
        # masking only removes mass: no candidate is less likely than its joint likelihood
        assert all(m >= j - 1e-9 for m, j in zip(masked[b], joint[b]))
    # a candidate alone on its branch from the first token gets that token's renormalized mass
    ids = [policy._candidate_ids(c) for c in cands[0]]
    firsts = [i[0] for i in ids]
    lone = [j for j, i in enumerate(ids) if firsts.count(i[0]) == 1]
    assert lone  # e.g. "stop"
    j = lone[0]
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([prompts[0]])).logits[0, -1], -1)
    norm = math.log(sum(math.exp(float(lp[t])) for t in set(firsts)))
    # the tokens after the first are forced on a lone branch (renormalized log-prob 0)
    assert masked[0][j] == pytest.approx(float(lp[ids[j][0]]) - norm, abs=1e-4)


def test_llm_policy_only_valid_actions_and_seeded(fresh):
    tok, model = fresh
    pages = [home_obs(1), product_obs(1, "cap-green"), home_obs(2, error="bad id")]
    runs = []
    for _ in range(2):
        policy = LLMPolicy(model=model, tokenizer=tok, seed=5, temperature=30.0)
        policy.reset(1, "")
        acts = [policy.act(pages[i % 3]) for i in range(24)]
        runs.append(acts)
        for i, a in enumerate(acts):
            assert is_valid_action(a, pages[i % 3]), a
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 3  # it does sample (untrained: long actions need a high temperature)


def test_free_text_is_generated_or_falls_back(fresh):
    tok, model = fresh
    policy = LLMPolicy(model=model, tokenizer=tok, seed=0)
    policy.reset(0, "")
    obs = home_obs(0)
    for text in ["red mug", "", "\x02\ufffd"]:
        policy._generate_text = lambda prompt, prefix, span=None, t=text: t  # a fixed reply
        action = policy._choose([1, 2], obs, ["search[<text>]", "click[nav-cart]", "stop"],
                                [0.0, -50.0, -60.0], policy.slots[0])
        assert action == ("search[red mug]" if text == "red mug" else "click[nav-cart]")


def _is_span(text: str, goal: str) -> bool:
    words, found = text.lower().split(), goal.lower().split()
    return bool(words) and any(found[i:i + len(words)] == words for i in range(len(found)))


def test_goal_search_text_is_a_span_of_the_goal(fresh):
    """An untrained model writes anything; with a goal, span decoding keeps its search text
    to the goal's words (whole words, in order), and without a goal it still writes freely."""
    tok, model = fresh
    goal = "Buy a red mug with handle: Large, price lower than 12.00."
    span = LLMPolicy(model=model, tokenizer=tok, seed=0, temperature=1.0, max_text_tokens=6)
    free = LLMPolicy(model=model, tokenizer=tok, seed=0, temperature=1.0, max_text_tokens=6,
                     goal_search="free")
    prompt = tok("goal: " + goal, add_special_tokens=False)["input_ids"]
    spans = [span._generate_text(prompt, "search[", span=goal) for _ in range(20)]
    frees = [free._generate_text(prompt, "search[") for _ in range(20)]
    # only the token limit may cut a word: every word but the last is one of the goal's,
    # in the goal's order, and the last begins one of them
    for text in spans:
        assert text.strip() and goal.lower().find(text.strip().lower()) >= 0, text
        *head, last = text.split()
        assert not head or _is_span(" ".join(head), goal), text
        assert any(w.startswith(last.lower()) for w in goal.lower().split()), text
    assert not all(goal.lower().find(t.strip().lower()) >= 0 and t.strip() for t in frees)
    # the whole path: on a goal page, a drawn search is a span of the goal
    obs = home_obs(0, goal=goal)
    span.reset(0, goal)
    p = span._prompt(obs, span.slots[0])
    for _ in range(5):
        action = span._choose(p, obs, ["search[<text>]", "stop"], [0.0, -50.0], span.slots[0])
        assert action.startswith("search[") and goal.lower().find(action[7:-1].lower()) >= 0
    with pytest.raises(ConfigError, match="goal_search"):
        LLMPolicy(model=model, tokenizer=tok, goal_search="copy")


def test_checkout_fields_autofill_from_a_per_episode_profile(fresh):
    from agents.profile import CHECKOUT_FIELDS

    tok, model = fresh
    url = "/s/demo/checkout"
    text = "\n".join(["Checkout", url] + [f'[{f}] textbox "{f[6:].title()}" value=""'
                                          for f in CHECKOUT_FIELDS]
                     + ['[place-order] button "Place order"'])
    obs = {"text": text, "url": url, "goal": "", "persona": 1, "last_action_error": ""}
    cands = [c for c in candidate_actions(obs) if c.startswith("type[field-email]")]
    assert cands == ["type[field-email][<text>]"]

    def emails(policy: LLMPolicy, n: int) -> list[str]:
        out = []
        for _ in range(n):
            policy.reset(1, "")
            policy._generate_text = lambda prompt, prefix, span=None: "not an address"
            out.append(policy._choose([1, 2], obs, cands, [0.0], policy.slots[0]))
        return out

    filled = emails(LLMPolicy(model=model, tokenizer=tok, seed=3), 3)
    assert filled == emails(LLMPolicy(model=model, tokenizer=tok, seed=3), 3)  # seeded
    assert len(set(filled)) > 1  # a new buyer profile per episode
    for action in filled:
        assert action.endswith("@example.com]") and is_valid_action(action, obs)
    # off: the model's own text is typed
    assert emails(LLMPolicy(model=model, tokenizer=tok, seed=3, autofill=False), 1) == [
        "type[field-email][not an address]"]


def test_prompt_persona_policy(fresh, tmp_path):
    from agents.model import save_agent

    tok, model = fresh
    desc = {0: "leaves at once", 1: "browses one product", 2: "adds to cart"}
    save_agent(tmp_path, model, tok, AgentMeta(n_personas=3, persona_mode="text",
                                               descriptions={str(k): v for k, v in desc.items()}))
    policy = PromptPersonaPolicy(tmp_path, seed=0)
    policy.reset(1, "")
    prompt = tok.decode(policy._prompt(home_obs(1), policy.slots[0]))
    assert prompt.startswith("persona: browses one product\n") and "<persona_" not in prompt
    assert is_valid_action(policy.act(home_obs(1)), home_obs(1))
    with pytest.raises(ConfigError, match="description"):
        PromptPersonaPolicy(tmp_path, descriptions={0: "x"}).reset(2, "")
    policy.reset(-1, "")  # no type: no persona line
    assert tok.decode(policy._prompt({**home_obs(0), "persona": -1}, policy.slots[0])).startswith("url:")


def test_type_profiles(tmp_path):
    with pytest.raises(ConfigError, match="view_to_cart"):
        TypeProfile(view_to_cart=1.5)
    p = TypeProfile.from_features({"n_sessions": 2, "n_product_views": 8, "view_to_cart": 0.25,
                                   "cart_to_purchase": 0.5, "search_share": 0.1, "bounced": 0.3})
    assert (p.views_per_session, p.view_to_cart, p.cart_to_purchase, p.bounce) == (4.0, 0.25, 0.5, 0.3)
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"0": {"views_per_session": 1, "view_to_cart": 0.0},
                                "1": {"n_sessions": 1, "n_product_views": 3, "view_to_cart": 0.5}}))
    profiles = load_profiles(path)
    assert profiles[0].views_per_session == 1 and profiles[1].view_to_cart == 0.5
    buyer = RuleBasedBuyer(path, seed=0)
    with pytest.raises(UnknownNameError, match="buyer type '5'"):
        buyer.reset(5, "")
    # statistics drive behaviour: a type that never carts never clicks add-to-cart
    never = RuleBasedBuyer({0: TypeProfile(views_per_session=5, view_to_cart=0.0, bounce=0)}, seed=1)
    always = RuleBasedBuyer({0: TypeProfile(views_per_session=5, view_to_cart=1.0, bounce=0)}, seed=1)
    for b in (never, always):
        b.reset(0, "")
    assert never.act(product_obs(0, "mug-red")) != "click[add-to-cart]"
    assert always.act(product_obs(0, "mug-red")) == "click[add-to-cart]"


def test_policy_configs_instantiate(trained_agent, tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from simpersona_env.config import CONFIG_DIR

    profiles = tmp_path / "p.json"
    profiles.write_text(json.dumps({"0": {"views_per_session": 2}}))
    values = {"rule_based": {"profiles": str(profiles)},
              "llm": {"checkpoint": str(trained_agent["dir"])},
              "openai": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}
    names = sorted(p.stem for p in (CONFIG_DIR / "policy").glob("*.yaml"))
    assert {"random", "rule_based", "llm", "prompt_persona", "openai"} <= set(names)
    for name in ["random", "rule_based", "llm", "openai"]:
        cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "policy" / f"{name}.yaml"),
                              values.get(name, {}))
        policy = instantiate(cfg)
        assert isinstance(policy, Policy), name


def test_action_forms_and_trained_support(fresh):
    from agents.policies.base import action_form

    assert [action_form(a) for a in ["click[product-42]", "click[collection-tv-audio]",
                                     "type[field-email][a@b.c]", "search[red mug]", "stop",
                                     "click[row-17]", "click[nav-collection-kids]"]] == [
        "click[product-*]", "click[collection-*]", "type[field-email]", "search[*]", "stop",
        "click[row-#]", "click[nav-collection-*]"]
    tok, model = fresh
    obs = product_obs(1, "cap-green")
    offered = candidate_actions(obs)
    assert "type[quantity][<text>]" in offered
    meta = AgentMeta(n_personas=3, action_forms=["click[add-to-cart]", "click[nav-home]", "stop"])
    policy = LLMPolicy(model=model, tokenizer=tok, meta=meta, seed=0)
    assert policy.candidates(obs, False) == ["click[nav-home]", "click[add-to-cart]", "stop"]
    policy.reset(1, "")
    assert all(policy.act(obs) in {"click[nav-home]", "click[add-to-cart]", "stop"}
               for _ in range(10))
    # a page with no trained form offers everything; `all` never restricts
    cart_only = LLMPolicy(model=model, tokenizer=tok,
                          meta=AgentMeta(n_personas=3, action_forms=["click[add-to-cart]"]))
    assert cart_only.candidates(home_obs(1), True) == candidate_actions(home_obs(1))
    free = LLMPolicy(model=model, tokenizer=tok, meta=meta, action_support="all")
    assert free.candidates(obs, True) == offered
    with pytest.raises(ConfigError, match="action_support"):
        LLMPolicy(model=model, tokenizer=tok, meta=meta, action_support="some")


def test_rule_based_checkout_profile_per_buyer_and_reseedable():
    """Each buyer fills checkout with its own fake profile; reseeding replays the same one."""
    from agents.policies.rule_based import RuleBasedBuyer, TypeProfile

    buyer = RuleBasedBuyer({0: TypeProfile()}, seed=0)
    buyer.seed(5)
    buyer.reset(0, "")
    first = dict(buyer.contact)
    buyer.reset(0, "")
    assert buyer.contact != first and first["field-email"].endswith("@example.com")
    buyer.seed(7)
    buyer.reset(0, "")
    buyer.seed(5)
    buyer.reset(0, "")
    assert buyer.contact == first


def test_next_actions_are_what_an_episode_would_do_and_leave_it_alone(fresh):
    """Teacher-forced next actions: on a first page (no history), greedy, they are the
    actions act_batch takes after reset_batch with the same types and goals; the running
    episodes' state is untouched; a length mismatch is a clear error."""
    tok, model = fresh
    obs = [home_obs(0), product_obs(1, "mug-red"), home_obs(2, goal="a red mug")]
    probe = LLMPolicy(model=model, tokenizer=tok, seed=0)
    probe.reset_batch([2, 0], ["", "a blue mug"])
    before = [(s.persona, s.goal, list(s.history)) for s in probe.slots]
    choices = probe.next_actions(obs, [[], [], []], personas=[0, 1, 2], goals=["", "", "a red mug"])
    assert [(s.persona, s.goal, list(s.history)) for s in probe.slots] == before
    episode = LLMPolicy(model=model, tokenizer=tok, seed=0)
    episode.reset_batch([0, 1, 2], ["", "", "a red mug"])
    assert [c.action for c in choices] == episode.act_batch(obs)
    for c, o in zip(choices, obs):
        assert c.candidates == episode.candidates(o, False) and len(c.logprobs) == len(c.candidates)
        assert is_valid_action(c.action, o)
    # a history changes the prompt (and offers `back`)
    after = probe.next_actions(obs[:1], [["click[product-mug-red]", "back"]], personas=[0])[0]
    assert "back" in after.candidates
    with pytest.raises(ConfigError, match="one history"):
        probe.next_actions(obs, [[]])
