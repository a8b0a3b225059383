"""``simpersona agent train``: traces -> a persona-token agent checkpoint.

Reads top to bottom: config -> seed -> traces -> examples -> tokenizer and model -> SFT ->
save. The folder it writes (``out``) holds the model, its tokenizer, ``agent.json``,
``metrics.json`` and ``loss.png``; load it with :class:`agents.policies.LLMPolicy`.

Example (shell)::

    simpersona agent train traces=runs/traces.jsonl out=runs/agent
    simpersona agent train traces=runs/traces.jsonl out=runs/agent-nopersona sft.persona=none agent=large
    simpersona agent train traces=runs/traces.jsonl agent.model=/models/my-llama sft.learning_rate=2e-5
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig

from agents.model import AgentModelConfig
from agents.sft import SFTSettings
from simpersona_env.config import field, register, to_object
from simpersona_env.errors import ConfigError

__all__ = ["AgentTrainConfig", "train"]


@dataclass
class AgentTrainConfig:
    """Settings of ``simpersona agent train``."""

    traces: str = field("???", help="JSONL of training episodes (agents.traces.Episode), or "
                        "a folder: every *.jsonl in it (e.g. replayed sessions and goal "
                        "demonstrations)")
    eval_traces: str = field("", help="JSONL (or folder) of held-out episodes; empty: hold out "
                             "sft.eval_fraction of the training episodes")
    out: str = field("runs/agent", help="folder for the checkpoint, metrics.json and loss.png")
    n_personas: int = field(-1, help="K, the number of buyer types of the population; -1: "
                            "1 + the largest persona in the traces")
    descriptions: str = field("", help="JSON {type index: text} describing each type, for "
                              "sft.persona=text (the prompt-persona baseline)")
    quality_steps: int = field(300, help="held-out steps scored for next-action match per type "
                               "and the persona-swap divergence after training (0: skip)")
    agent: AgentModelConfig = field(default_factory=AgentModelConfig,
                                    help="the causal LM (agent=small|large|tiny, agent.model=...)")
    sft: SFTSettings = field(default_factory=SFTSettings, help="fine-tuning settings")


register("agent_train_schema", AgentTrainConfig)


def _log(msg: str) -> None:
    print(f"[agent train] {msg}", flush=True)


def train(cfg: DictConfig) -> int:
    """Fine-tune a persona-token agent on traces with TRL SFT (completion-only loss)."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from simpersona_env.cpu import flush_denormals

    flush_denormals()  # before torch's worker threads start: they inherit it (simpersona_env.cpu)
    from agents.model import AgentMeta, build_agent, save_agent
    from agents.policies.base import action_form
    from agents.sft import (
        alias_items,
        balance_examples,
        build_examples,
        plot_losses,
        split_episodes,
        train_sft,
        write_metrics,
    )
    from agents.traces import read_episodes

    c = to_object(cfg, AgentTrainConfig)
    c.agent = to_object(cfg.agent, AgentModelConfig) if not isinstance(c.agent, AgentModelConfig) else c.agent
    c.sft = to_object(cfg.sft, SFTSettings) if not isinstance(c.sft, SFTSettings) else c.sft
    from transformers import set_seed

    set_seed(c.sft.seed)

    episodes = read_episodes(c.traces)
    if c.eval_traces:
        train_eps, eval_eps = episodes, read_episodes(c.eval_traces)
    else:
        train_eps, eval_eps = split_episodes(episodes, c.sft.eval_fraction, c.sft.seed)
    top = max((e.persona for e in [*train_eps, *eval_eps]), default=-1)
    k = c.n_personas if c.n_personas > 0 else top + 1
    if k < 1 and c.sft.persona == "token":
        raise ConfigError(f"no persona in {c.traces} (all -1) and n_personas not set; set "
                          "n_personas=K, or train the no-persona variant with sft.persona=none")
    k = max(k, 1)
    if top >= k:
        raise ConfigError(f"the traces hold buyer type {top} but n_personas={k}; set n_personas "
                          "to the population's K (the codebook size of the buyer-type model)")
    _log(f"{len(train_eps)} training and {len(eval_eps)} held-out episodes, K={k}, "
         f"persona={c.sft.persona}")

    descriptions: dict[int, str] = {}
    if c.descriptions:
        descriptions = {int(a): str(b) for a, b in json.loads(Path(c.descriptions).read_text()).items()}
    if c.sft.alias_items:
        train_eps, eval_eps = alias_items(train_eps, c.sft.seed), alias_items(eval_eps, c.sft.seed + 1)
    kw = {"persona": c.sft.persona, "descriptions": descriptions,
          "n_history": c.sft.n_history, "max_obs_chars": c.sft.max_obs_chars,
          "drop_chrome": c.sft.drop_chrome, "typed_goals": c.sft.typed_goals}
    train_ex, eval_ex = build_examples(train_eps, **kw), build_examples(eval_eps, **kw)
    _log(f"{len(train_ex)} training and {len(eval_ex)} held-out steps")
    corpus = [ex.prompt + ex.completion for ex in train_ex]
    train_ex, log_weights = balance_examples(train_ex, c.sft.balance, c.sft.seed)
    if c.sft.balance:
        boosted = sorted(log_weights.items(), key=lambda kv: -kv[1])[:3]
        _log(f"balance={c.sft.balance}: {len(train_ex)} resampled steps; most upweighted "
             + ", ".join(f"{f} x{math.exp(w):.1f}" for f, w in boosted))

    tokenizer, model = build_agent(c.agent, k, corpus=corpus)
    n_params = sum(p.numel() for p in model.parameters())
    _log(f"model {c.agent.model}: {n_params / 1e6:.2f}M parameters, vocabulary {len(tokenizer)}")

    out = Path(c.out)
    t0 = time.perf_counter()
    result = train_sft(tokenizer, model, train_ex, eval_ex, c.sft, out)
    if result.flush_denormals == "this thread":
        _log("subnormal floats were flushed on the main thread only (torch's worker threads "
             "started before; simpersona_env.cpu): late SFT steps may have run slower")
    meta = AgentMeta(n_personas=k, persona_mode=c.sft.persona, n_history=c.sft.n_history,
                     max_obs_chars=c.sft.max_obs_chars, drop_chrome=c.sft.drop_chrome,
                     max_length=c.sft.max_length,
                     base_model=c.agent.model, descriptions={str(a): b for a, b in descriptions.items()},
                     action_forms=sorted({action_form(s.action) for ep in train_eps for s in ep.steps}),
                     action_log_weights=log_weights if c.sft.balance else {})
    save_agent(out, model, tokenizer, meta)
    write_metrics(result, out / "metrics.json",
                  {"config": {"traces": c.traces, "agent": asdict(c.agent), "sft": asdict(c.sft)},
                   "n_parameters": n_params, "train_tokens_per_s": result.train_tokens / max(result.seconds, 1e-9),
                   "wall_s": time.perf_counter() - t0})
    plot_losses(result, out / "loss.png")
    quality = _quality(model, tokenizer, meta, eval_eps, c.quality_steps, out)
    if quality:
        metrics = json.loads((out / "metrics.json").read_text())
        (out / "metrics.json").write_text(json.dumps({**metrics, "quality": quality}, indent=2))
        _log(f"held-out next-action match {quality['next_action']['overall']:.3f} over "
             f"{quality['next_action']['n']} steps; per type {quality['next_action']['per_type']}")
        if "persona_swap_js_bits_mean" in quality:
            from agents.evaluate import steering_words

            _log(f"{steering_words(quality['persona_swap_js_bits_mean'])} (mean over type pairs)")
    _log(f"train loss {result.train_loss_first:.3f} -> {result.train_loss_last:.3f}; held-out "
         f"loss {result.eval_loss_before} -> {result.eval_loss}; saved {out}")
    return 0


def _quality(model, tokenizer, meta, episodes, max_steps: int, out: Path) -> dict:
    """Next-action match per type and (token mode) the persona-swap divergence matrix."""
    if not episodes or max_steps <= 0:
        return {}
    from agents.evaluate import next_action_match, persona_swap_divergence, plot_divergence
    from agents.policies.llm import LLMPolicy

    policy = LLMPolicy(model=model, tokenizer=tokenizer, meta=meta, temperature=0)
    quality: dict = {"next_action": next_action_match(policy, episodes, max_steps=max_steps)}
    if meta.persona_mode == "token" and meta.n_personas > 1:
        matrix = persona_swap_divergence(policy, episodes, meta.n_personas,
                                         max_steps=min(max_steps, 32))
        quality["persona_swap_js_bits"] = matrix
        off = [v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j]
        # one number for "does the token steer" (agents.evaluate.STEERS_BITS)
        quality["persona_swap_js_bits_mean"] = sum(off) / len(off)
        plot_divergence(matrix, out / "persona_divergence.png")
    return quality
