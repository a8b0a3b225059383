"""The agent's causal LM: the built-in small Llama, any Hugging Face model, and checkpoints.

``AgentModelConfig.model`` picks the model:

- ``"builtin"`` (default): a byte-level BPE tokenizer trained on the trace corpus
  (:func:`agents.tokenizer.train_tokenizer`) and a Llama-style causal LM built from the
  sizes in this config (``configs/agent/small.yaml``; ``large.yaml`` is ~8x the parameters
  of the transformer blocks, for the no-persona baseline). Nothing is downloaded.
- any other value: a Hugging Face causal LM name (from the local cache: the hub is off) or a
  local folder, loaded with ``AutoModelForCausalLM``; the persona tokens are added the same
  way (:func:`agents.tokens.add_persona_tokens`).

A trained agent is a folder holding the model, its tokenizer and ``agent.json``
(:class:`AgentMeta`: K, the persona mode and the rendering settings), written by
:func:`save_agent` and read by :func:`load_agent`, which checks K against the population.

Example:
    >>> cfg = AgentModelConfig(hidden_size=64, num_layers=2, num_heads=4)
    >>> tok, model = build_agent(cfg, n_personas=8, corpus=texts)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpersona_env.config import field
from simpersona_env.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "AGENT_META_FILE",
    "BUILTIN",
    "AgentMeta",
    "AgentModelConfig",
    "build_agent",
    "build_llama",
    "load_agent",
    "save_agent",
]

#: ``agent.model`` value that selects the built-in tokenizer + small Llama.
BUILTIN = "builtin"
#: The metadata file in an agent checkpoint folder.
AGENT_META_FILE = "agent.json"


@dataclass
class AgentModelConfig:
    """Which causal LM the agent is, and the sizes of the built-in one."""

    model: str = field(BUILTIN, help="'builtin' (local tokenizer + Llama from the sizes below), "
                       "a Hugging Face model name in the local cache, or a local folder")
    vocab_size: int = field(2048, help="built-in tokenizer: BPE vocabulary size (bytes and "
                            "special tokens included)")
    hidden_size: int = field(128, help="built-in model: width of the residual stream")
    num_layers: int = field(2, help="built-in model: transformer blocks")
    num_heads: int = field(4, help="built-in model: attention heads (hidden_size must divide)")
    intermediate_size: int = field(344, help="built-in model: MLP width (SwiGLU)")
    max_position_embeddings: int = field(1024, help="built-in model: longest context, tokens")
    tie_embeddings: bool = field(True, help="built-in model: share input embeddings and LM head")
    dtype: str = field("float32", help="weights dtype: float32 (CPU-safe), bfloat16, float16")


@dataclass
class AgentMeta:
    """What an agent checkpoint must remember besides its weights (``agent.json``)."""

    n_personas: int
    persona_mode: str = "token"  # "token", "none" or "text" (see agents.tokens.PersonaMode)
    n_history: int = 5
    max_obs_chars: int = 1500
    drop_chrome: bool = False  # page rendering of the training prompts (agents.tokens.render_step)
    max_length: int = 1024
    base_model: str = BUILTIN
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)  # for "text" mode
    # the action forms of the training traces (agents.policies.base.action_form); the policy
    # offers only these when the page has any (empty: every action the page offers)
    action_forms: list[str] = dataclasses.field(default_factory=list)
    # log of how much more often SFT showed each action form than the traces hold
    # (agents.sft.balance_examples); the policy subtracts it from the candidates' scores
    action_log_weights: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | Path) -> AgentMeta:
        path = Path(folder) / AGENT_META_FILE
        if not path.is_file():
            raise CheckpointError(f"{str(folder)!r} is not an agent checkpoint (no {AGENT_META_FILE}); "
                                  "train one with `simpersona agent train`")
        data = json.loads(path.read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def write(self, folder: str | Path) -> None:
        Path(folder, AGENT_META_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2))


def _dtype(name: str) -> Any:
    import torch

    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"agent.dtype={name!r} is not one of float32, bfloat16, float16") from None


def build_llama(cfg: AgentModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A freshly initialised Llama-style causal LM sized by ``cfg`` for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"agent.hidden_size={cfg.hidden_size} is not a multiple of "
                          f"agent.num_heads={cfg.num_heads}")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    return model.to(_dtype(cfg.dtype))


def build_agent(cfg: AgentModelConfig, n_personas: int, corpus: Iterable[str] | None = None,
                ) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The tokenizer and model to fine-tune, persona tokens included.

    Args:
        cfg: which model (``builtin`` or a Hugging Face name/path) and the built-in sizes.
        n_personas: K, the number of buyer types.
        corpus: texts to train the built-in tokenizer on (ignored for a pretrained model).

    Raises:
        ConfigError: an unknown model name/path, or the built-in model without a corpus.
    """
    from agents.tokens import add_persona_tokens

    if cfg.model == BUILTIN:
        from agents.tokenizer import train_tokenizer

        if corpus is None:
            raise ConfigError("the built-in model trains its tokenizer on the traces; pass a corpus")
        tokenizer = train_tokenizer(corpus, n_personas, vocab_size=cfg.vocab_size)
        model = build_llama(cfg, tokenizer)
    else:
        if (Path(cfg.model) / AGENT_META_FILE).is_file():  # continuing from an agent checkpoint
            k = AgentMeta.read(cfg.model).n_personas
            if k != n_personas:
                raise CheckpointError(
                    f"agent.model={cfg.model!r} is an agent trained with K={k} persona tokens "
                    f"but these traces need K={n_personas}; start from its base model or "
                    "label the traces with the same buyer-type model")
        tokenizer, model = _load_pretrained(cfg.model, _dtype(cfg.dtype))
    add_persona_tokens(tokenizer, model, n_personas)
    return tokenizer, model


def _load_pretrained(name: str, dtype: Any) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(name).exists() else "name (not a local folder)"
        raise ConfigError(
            f"agent.model={name!r}: cannot load a causal LM from this {where}: {exc}\n"
            "Use agent.model=builtin for the locally built model, a folder holding a saved "
            "model and tokenizer, or a hub name already in the local cache (the hub is offline: "
            "HF_HUB_OFFLINE=1)") from exc
    return tokenizer, model


def save_agent(folder: str | Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
               meta: AgentMeta) -> Path:
    """Save model, tokenizer and :class:`AgentMeta` into ``folder`` (a loadable checkpoint)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta.write(folder)
    return folder


def load_agent(folder: str | Path, n_personas: int | None = None, device: str | None = None,
               ) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, AgentMeta]:
    """Load an agent checkpoint for inference (eval mode).

    Args:
        folder: a folder written by :func:`save_agent` (``simpersona agent train``).
        n_personas: K of the population the agent will play; must equal the checkpoint's.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when available.

    Raises:
        CheckpointError: not a checkpoint, or K differs from the population's.

    Example:
        >>> tok, model, meta = load_agent("runs/agent", n_personas=8)  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.tokens import count_persona_tokens

    meta = AgentMeta.read(folder)
    if n_personas is not None and meta.persona_mode == "token" and n_personas != meta.n_personas:
        raise CheckpointError(
            f"the agent checkpoint {str(folder)!r} was trained with K={meta.n_personas} persona "
            f"tokens but the population has K={n_personas} buyer types; train the agent on traces "
            "labelled by this buyer-type model, or use the population it was trained for")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    k = count_persona_tokens(tokenizer)
    if k != meta.n_personas:
        raise CheckpointError(f"{folder}: tokenizer has {k} persona tokens but {AGENT_META_FILE} "
                              f"says {meta.n_personas}; the checkpoint is inconsistent")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    return tokenizer, model, meta
