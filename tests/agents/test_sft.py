"""A tiny SFT run for real: the loss falls, every parameter and the persona embeddings move."""

from __future__ import annotations

import json

import pytest
import torch

from agents.tokens import persona_tokens


def test_sft_loss_falls_and_all_parameters_change(trained_agent):
    result, model, tok = trained_agent["result"], trained_agent["model"], trained_agent["tokenizer"]
    assert result.train_loss_last < 0.7 * result.train_loss_first
    assert result.eval_loss is not None and result.eval_loss < result.eval_loss_before
    assert result.n_train_examples > 0 and result.n_eval_examples > 0
    before = trained_agent["before"]
    unchanged = [n for n, p in model.named_parameters()
                 if torch.equal(p.detach().cpu(), before[n])]
    assert unchanged == []
    emb = model.get_input_embeddings().weight.detach().cpu()
    old = before["model.embed_tokens.weight"]
    for tid in tok.convert_tokens_to_ids(persona_tokens(3)):
        assert not torch.allclose(emb[tid], old[tid]), "persona token embedding did not train"


def test_sft_checkpoint_learned_the_types(trained_agent):
    """On the same home page, type 0 leaves and types 1, 2 open a product: the token matters."""
    from agent_helpers import home_obs

    from agents.policies.llm import LLMPolicy

    policy = LLMPolicy(trained_agent["dir"], temperature=0, n_personas=3)
    policy.reset_batch([0, 1, 2], ["", "", ""])
    actions = policy.act_batch([home_obs(0), home_obs(1), home_obs(2)])
    assert actions[0] == "stop" and actions[1] != "stop"
    for k, choice in enumerate(policy.last_choices):
        lp = dict(zip(choice.candidates, choice.logprobs))
        product = torch.logsumexp(torch.tensor([v for a, v in lp.items()
                                                if a.startswith("click[product-")]), 0)
        assert (lp["stop"] > product) == (k == 0), (k, lp["stop"], float(product))


@pytest.mark.slow
def test_agent_train_command_writes_checkpoint(tmp_path, episodes):
    """`simpersona agent train` end to end (token and no-persona variants)."""
    from agents.model import AgentMeta, load_agent
    from agents.traces import write_episodes
    from simpersona_env.cli import main

    traces = tmp_path / "traces.jsonl"
    write_episodes(episodes[:30], traces)
    for variant, balance in (("token", 0.5), ("none", 0.0)):
        out = tmp_path / variant
        # the token variant also aliases product ids and groups batches by length
        extra = (["sft.alias_items=true", "sft.group_by_length=true"] if balance
                 else ["sft.alias_items=false"])
        code = main(["agent", "train", f"traces={traces}", f"out={out}", "agent=tiny",
                     "sft.epochs=1", f"sft.persona={variant}", "sft.batch_size=16",
                     f"sft.balance={balance}", *extra])
        assert code == 0
        assert json.loads((out / "metrics.json").read_text())["config"]["sft"]["alias_items"] \
            is bool(balance)
        meta = AgentMeta.read(out)
        assert meta.n_personas == 3 and meta.persona_mode == variant
        # a balanced agent remembers how much more often each form was shown
        if balance:
            assert meta.action_log_weights["click[add-to-cart]"] > 0 > meta.action_log_weights[
                "click[product-*]"]
        else:
            assert meta.action_log_weights == {}
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["eval_loss"] is not None and metrics["n_train_examples"] > 0
        # where the flush reached (this test process started torch's threads long before)
        assert metrics["flush_denormals"] in ("all threads", "this thread", "unsupported")
        if variant == "token":  # one number for the persona swap, the matrix's off-diagonal mean
            js = metrics["quality"]["persona_swap_js_bits"]
            off = [v for i, row in enumerate(js) for j, v in enumerate(row) if i != j]
            assert metrics["quality"]["persona_swap_js_bits_mean"] == pytest.approx(
                sum(off) / len(off))
        assert (out / "loss.png").stat().st_size > 0
        tok, model, _ = load_agent(out, n_personas=3, device="cpu")
        assert len(tok) == model.get_input_embeddings().weight.shape[0]


def test_agent_train_bad_configs(tmp_path, episodes, capsys):
    from agents.traces import write_episodes
    from simpersona_env.cli import main

    traces = tmp_path / "t.jsonl"
    write_episodes(episodes[:6], traces)
    assert main(["agent", "train", f"out={tmp_path / 'o'}"]) == 2  # traces not set
    assert "traces" in capsys.readouterr().err
    assert main(["agent", "train", f"traces={traces}", "agent.model=/no/such/model",
                 f"out={tmp_path / 'o'}"]) == 2
    assert "/no/such/model" in capsys.readouterr().err
    assert main(["agent", "train", f"traces={traces}", "n_personas=2", "agent=tiny",
                 f"out={tmp_path / 'o'}"]) == 2
    assert "n_personas=2" in capsys.readouterr().err
    assert main(["agent", "train", f"traces={tmp_path / 'missing.jsonl'}", "agent=tiny"]) == 2
    assert "no trace file" in capsys.readouterr().err


def test_quality_metrics(trained_agent, episodes):
    """Next-action match per type and the persona-swap divergence on the trained agent."""
    from agents.evaluate import next_action_match, persona_swap_divergence
    from agents.policies.llm import LLMPolicy
    from agents.sft import split_episodes

    _, held = split_episodes(episodes, 0.2, seed=0)
    policy = LLMPolicy(trained_agent["dir"], n_personas=3)
    q = next_action_match(policy, held)
    assert q["n"] == sum(len(e.steps) for e in held) and set(q["per_type"]) <= {0, 1, 2}
    assert q["per_type"][0] == 1.0  # type 0 always leaves at once: learned exactly
    assert policy.temperature == 1.0  # restored
    # the same match split by another key: the per-key shares recombine into the overall one
    by_action = next_action_match(policy, held, group=lambda ep, step: step.action)
    assert sum(by_action["n_per_group"].values()) == q["n"]
    assert by_action["overall"] == q["overall"]
    assert sum(by_action["per_group"][k] * by_action["n_per_group"][k]
               for k in by_action["per_group"]) == pytest.approx(q["overall"] * q["n"])
    js = persona_swap_divergence(policy, held, 3, max_steps=6)
    assert all(js[k][k] == pytest.approx(0, abs=1e-9) for k in range(3))
    assert js[0][1] > 0.5 and js[0][1] == pytest.approx(js[1][0])  # the token changes the choice
    blind = LLMPolicy(trained_agent["dir"], n_personas=3, persona_mode="none")
    assert max(max(row) for row in persona_swap_divergence(blind, held, 3, max_steps=4)) < 1e-9


def test_agent_train_from_any_local_causal_lm(tmp_path, episodes):
    """agent.model=<folder>: a plain Hugging Face model (untied head, no persona tokens) is
    fine-tuned by the same command; the persona tokens are added and trained."""
    from agents.model import AgentModelConfig, build_llama, load_agent
    from agents.tokenizer import train_tokenizer
    from agents.traces import write_episodes
    from simpersona_env.cli import main

    base_dir = tmp_path / "base"
    tok = train_tokenizer(["click[product-mug-red] stop url: page:"] * 20, n_personas=1,
                          vocab_size=300)
    base = build_llama(AgentModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                        intermediate_size=32, tie_embeddings=False), tok)
    base.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    traces = tmp_path / "t.jsonl"
    write_episodes(episodes[:12], traces)
    out = tmp_path / "agent"
    assert main(["agent", "train", f"traces={traces}", f"out={out}", "agent=pretrained",
                 f"agent.model={base_dir}", "sft.max_steps=3", "quality_steps=0"]) == 0
    tok2, model, meta = load_agent(out, n_personas=3, device="cpu")
    assert meta.base_model == str(base_dir)
    assert model.get_output_embeddings().weight.shape[0] == len(tok2) > len(tok)
    start = base.get_input_embeddings().weight.detach().mean(0)  # its mean-of-rows init
    row = model.get_input_embeddings().weight.detach()[tok2.convert_tokens_to_ids("<persona_2>")]
    assert not torch.allclose(row, start)  # trained away from the init


def test_typed_sessions_train_without_their_hindsight_goal():
    from agent_helpers import home_obs

    from agents.sft import build_examples
    from agents.traces import Episode, Step

    goal = "Buy a mug, price lower than 10.00."
    typed = Episode(persona=2, merchant_id="m", goal=goal,
                    steps=[Step({**home_obs(2), "goal": goal}, "stop")])
    demo = Episode(persona=-1, merchant_id="builtin", goal=goal,
                   steps=[Step({**home_obs(-1), "goal": goal}, "stop")])
    kept = build_examples([typed, demo])
    assert all("goal: " + goal in ex.prompt for ex in kept)
    dropped = build_examples([typed, demo], typed_goals=False)
    assert "goal:" not in dropped[0].prompt and "<persona_2>" in dropped[0].prompt
    assert "goal: " + goal in dropped[1].prompt  # a goal demonstration keeps its goal


def test_steering_words_split_at_the_threshold_and_doctests_run():
    import doctest

    import agents.evaluate as ev

    assert doctest.testmod(ev, optionflags=doctest.ELLIPSIS).failed == 0
    assert "barely steers" in ev.steering_words(ev.STEERS_BITS / 10)
    assert "barely" not in ev.steering_words(ev.STEERS_BITS)
