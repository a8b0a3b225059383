"""The built-in tokenizer and model: offline round trips, pretrained folders, clear errors."""

from __future__ import annotations

import pytest
import torch
from agent_helpers import TINY, tiny_tokenizer_and_model

from agents.model import AgentMeta, AgentModelConfig, build_agent, load_agent, save_agent
from agents.tokens import persona_tokens
from simpersona_env.errors import CheckpointError, ConfigError


def test_tokenizer_and_model_round_trip_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    tok, model = tiny_tokenizer_and_model(3)
    text = "<persona_2>\nurl: /s/demo/\npage:\nDemo shop 😀 é\n<|act|>click[nav-cart]"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: lossless, no unknown tokens
    assert tok.convert_ids_to_tokens(ids[0]) == "<persona_2>"
    save_agent(tmp_path, model, tok, AgentMeta(n_personas=3))
    tok2, model2, meta = load_agent(tmp_path, n_personas=3, device="cpu")
    assert tok2(text, add_special_tokens=False)["input_ids"] == ids
    assert meta.n_personas == 3 and tok2.eos_token == tok.eos_token and tok2.pad_token == tok.pad_token
    x = torch.tensor([ids])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(input_ids=x).logits, model2(input_ids=x).logits)


def test_large_config_is_about_8x_small():
    import agents.commands  # noqa: F401  (registers the agent_train schema)
    from agents.model import build_llama
    from simpersona_env.config import compose, to_object

    small, large = (to_object(compose("agent_train", ["traces=x", f"agent={size}"]).agent,
                              AgentModelConfig) for size in ("small", "large"))
    tok, _ = tiny_tokenizer_and_model(3)

    def blocks(cfg):
        m = build_llama(cfg, tok)
        return sum(p.numel() for n, p in m.named_parameters() if ".layers." in n)

    ratio = blocks(large) / blocks(small)
    assert 7 <= ratio <= 9


def test_any_local_causal_lm_gets_persona_tokens(tmp_path):
    """A plain HF model folder (no persona tokens) works through agent.model=<path>."""
    from agents.model import build_llama
    from agents.tokenizer import train_tokenizer

    base_tok = train_tokenizer(["click[nav-home] stop search[mug]"] * 10, n_personas=1, vocab_size=300)
    base = build_llama(AgentModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                        intermediate_size=32), base_tok)
    base.save_pretrained(tmp_path)
    base_tok.save_pretrained(tmp_path)
    tok, model = build_agent(AgentModelConfig(model=str(tmp_path)), n_personas=4)
    ids = tok.convert_tokens_to_ids(persona_tokens(4))
    assert all(i < model.get_input_embeddings().weight.shape[0] for i in ids)
    assert len(set(ids)) == 4 and tok.unk_token_id not in ids


def test_unknown_model_path_is_a_config_error():
    with pytest.raises(ConfigError, match="(?s)agent.model='/no/such/model-dir'.*builtin"):
        build_agent(AgentModelConfig(model="/no/such/model-dir"), n_personas=2)
    with pytest.raises(ConfigError, match="hidden_size"):
        build_agent(AgentModelConfig(**{**TINY, "hidden_size": 30, "num_heads": 4}), 2, corpus=["a b"])


def test_k_mismatch_between_checkpoint_and_population(tmp_path):
    tok, model = tiny_tokenizer_and_model(3)
    save_agent(tmp_path, model, tok, AgentMeta(n_personas=3))
    with pytest.raises(CheckpointError, match="K=3.*K=5"):
        load_agent(tmp_path, n_personas=5, device="cpu")
    from agents.policies.llm import LLMPolicy

    with pytest.raises(CheckpointError, match="K=3"):
        LLMPolicy(tmp_path, n_personas=4)
    policy = LLMPolicy(tmp_path, n_personas=3)
    with pytest.raises(CheckpointError, match="buyer type 7"):
        policy.reset(7, "")
    with pytest.raises(CheckpointError, match="not an agent checkpoint"):
        load_agent(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="K=3.*K=4"):  # fine-tuning it for another K
        build_agent(AgentModelConfig(model=str(tmp_path)), n_personas=4)
    tok2, _ = build_agent(AgentModelConfig(model=str(tmp_path)), n_personas=3)  # same K: fine
    assert len(tok2) == len(tok)
