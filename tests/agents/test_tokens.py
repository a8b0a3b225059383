"""Persona tokens, rendering, the loss mask and add_persona_tokens (real tokenizers/models)."""

from __future__ import annotations

import pytest
import torch
from agent_helpers import home_obs, tiny_tokenizer_and_model

from agents.tokens import (
    ACTION_TOKEN,
    EOS_TOKEN,
    add_persona_tokens,
    count_persona_tokens,
    encode,
    persona_index,
    persona_token,
    persona_tokens,
    render_step,
)
from simpersona_env.errors import CheckpointError, ConfigError


def test_persona_token_strings():
    assert persona_token(0) == "<persona_0>"
    assert persona_tokens(3) == ["<persona_0>", "<persona_1>", "<persona_2>"]
    assert persona_index("<persona_17>") == 17 and persona_index("persona_1") is None
    with pytest.raises(ConfigError, match="negative"):
        persona_token(-1)
    with pytest.raises(ConfigError, match=">= 1"):
        persona_tokens(0)


def test_render_exact_layout():
    obs = {"text": "# Cart\n[checkout] button \"Checkout\"", "url": "/s/a/cart",
           "goal": "a red mug", "persona": 2, "last_action_error": "no element 'x'"}
    history = [f"click[a{i}]" for i in range(7)]
    r = render_step(obs, history, "click[checkout]", n_history=3)
    assert r.prompt == ("<persona_2>\ngoal: a red mug\nhistory: click[a4] ; click[a5] ; click[a6]\n"
                        "url: /s/a/cart\nerror: no element 'x'\npage:\n# Cart\n"
                        "[checkout] button \"Checkout\"\n<persona_2>\n" + ACTION_TOKEN)
    assert r.completion == "click[checkout]"
    none = render_step(obs, history, persona="none", n_history=0)
    assert none.prompt.startswith("goal: a red mug\nurl:")
    text = render_step(obs, [], persona="text", description="Browses  a lot,\nrarely buys.")
    assert text.prompt.startswith("persona: Browses a lot, rarely buys.\ngoal:")
    assert text.prompt.endswith("\npersona: Browses a lot, rarely buys.\n" + ACTION_TOKEN)
    cut = render_step({**obs, "text": "x" * 50}, [], max_obs_chars=10)
    assert "\n" + "x" * 10 + "…\n<persona_2>\n" + ACTION_TOKEN in cut.prompt
    no_type = render_step({**obs, "persona": -1}, [])
    assert no_type.prompt.startswith("goal:") and "persona" not in no_type.prompt
    with pytest.raises(ConfigError, match="description"):
        render_step(obs, [], persona="text")
    with pytest.raises(ConfigError, match="persona mode"):
        render_step(obs, [], persona="bogus")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tok_model():
    torch.manual_seed(0)
    return tiny_tokenizer_and_model(3)


def test_encode_loss_mask_is_completion_only(tok_model):
    tok, _ = tok_model
    r = render_step(home_obs(1), ["click[nav-home]"], "click[product-mug-red]")
    enc = encode(tok, r.prompt, r.completion)
    p = tok(r.prompt, add_special_tokens=False)["input_ids"]
    c = tok(r.completion, add_special_tokens=False)["input_ids"]
    assert enc.input_ids == p + c + [tok.convert_tokens_to_ids(EOS_TOKEN)]
    assert enc.completion_mask == [0] * len(p) + [1] * (len(c) + 1)
    # the prompt ends on the action marker, so the joint text tokenizes the same way
    assert tok(r.prompt + r.completion, add_special_tokens=False)["input_ids"] == p + c
    assert tok.decode([i for i, m in zip(enc.input_ids, enc.completion_mask) if m],
                      skip_special_tokens=True) == r.completion


def test_encode_truncates_prompt_keeping_special_tokens(tok_model):
    tok, _ = tok_model
    r = render_step(home_obs(2), [], "stop")
    full = encode(tok, r.prompt, r.completion)
    short = encode(tok, r.prompt, r.completion, max_length=20)
    assert len(short.input_ids) == 20 < len(full.input_ids)
    assert short.input_ids[0] == tok.convert_tokens_to_ids("<persona_2>")
    assert tok.convert_tokens_to_ids(ACTION_TOKEN) in short.input_ids
    assert short.input_ids[-sum(short.completion_mask):] == full.input_ids[-sum(full.completion_mask):]
    with pytest.raises(ConfigError, match="max_length"):
        encode(tok, r.prompt, "click[" + "x" * 200 + "]", max_length=10)


@pytest.mark.parametrize("tie", [True, False])
def test_add_persona_tokens_mean_init(tie):
    from agents.model import AgentModelConfig, build_llama
    from agents.tokenizer import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(["click[nav-home] search[red mug] stop"] * 20, n_personas=2, vocab_size=300)
    model = build_llama(AgentModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                         intermediate_size=32, tie_embeddings=tie), tok)
    old_emb = model.get_input_embeddings().weight.detach().clone()
    old_head = model.get_output_embeddings().weight.detach().clone()
    ids = add_persona_tokens(tok, model, 5)
    assert tok.convert_ids_to_tokens(ids) == persona_tokens(5)
    assert ids[:2] == tok.convert_tokens_to_ids(persona_tokens(2))  # existing ids kept
    emb = model.get_input_embeddings().weight.detach()
    assert emb.shape[0] == len(tok) == old_emb.shape[0] + 3
    assert torch.equal(emb[: old_emb.shape[0]], old_emb)
    for new_id in ids[2:]:
        torch.testing.assert_close(emb[new_id], old_emb.mean(0))
    head = model.get_output_embeddings().weight.detach()
    if not tie:
        assert head.data_ptr() != emb.data_ptr()
        for new_id in ids[2:]:
            torch.testing.assert_close(head[new_id], old_head.mean(0))
    assert count_persona_tokens(tok) == 5
    assert add_persona_tokens(tok, model, 5) == ids  # idempotent
    with pytest.raises(CheckpointError, match="K"):
        add_persona_tokens(tok, model, 3)
    # the grown model runs on a persona token
    out = model(input_ids=torch.tensor([[ids[4], tok.eos_token_id]]))
    assert out.logits.shape == (1, 2, len(tok))


def test_render_drops_the_shop_chrome_before_the_cut():
    text = "\n".join(["# Mug · Store a", "path: /s/a/products/1", '[nav-home] link "Store a"',
                      '[search-input] textbox "Search products" value=""',
                      '[search-submit] button "Search"', '[nav-collection-kitchen] link "Kitchen"',
                      '[nav-cart] link "Cart (1)"', "Price: $9.50",
                      '[add-to-cart] button "Add to cart"'])
    obs = {"text": text, "url": "/s/a/products/1", "goal": "", "persona": -1,
           "last_action_error": ""}
    kept = render_step(obs, [], drop_chrome=True, max_obs_chars=80).prompt
    assert "nav-home" not in kept and "search-input" not in kept and "path:" not in kept
    assert "nav-collection" not in kept and "[nav-cart]" in kept  # the cart count stays
    assert "Price: $9.50" in kept and "[add-to-cart]" in kept  # within the cut now
    assert "[add-to-cart]" not in render_step(obs, [], max_obs_chars=80).prompt
    # a page without the shop's header is left as it is
    other = {**obs, "text": '[row-1] link "First"\n[row-2] link "Second"'}
    assert render_step(other, [], drop_chrome=True).prompt == render_step(other, []).prompt


def test_encode_cuts_the_page_before_the_goal_and_history(tok_model):
    """A prompt too long loses the end of its page first: goal, history and url survive."""
    tok, _ = tok_model
    goal = "a red mug under $20"
    r = render_step(home_obs(1, goal=goal), ["click[nav-home]", "search[mug]"], "stop")
    full = encode(tok, r.prompt, r.completion)
    short = encode(tok, r.prompt, r.completion, max_length=len(full.input_ids) - 15)
    assert len(short.input_ids) == len(full.input_ids) - 15
    text = tok.decode(short.input_ids, skip_special_tokens=False)
    for kept in (f"goal: {goal}", "history: click[nav-home] ; search[mug]", "url: /s/demo/",
                 "page:\nDemo shop"):
        assert kept in text
    assert "Sock Pair" in r.prompt and "Sock Pair" not in text  # the page's last listing went
    assert text.rstrip().endswith("<persona_1>\n<|act|>stop<|eos|>")
