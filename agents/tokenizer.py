"""The built-in tokenizer: byte-level BPE trained offline on the trace corpus.

Byte-level, so any page text (any language, any symbol) encodes without unknown tokens; the
agent's special tokens and the K persona tokens (:mod:`agents.tokens`) are whole tokens with
the first ids. Wrapped as a ``PreTrainedTokenizerFast`` so the rest of the code (TRL, the
policies) treats it like any Hugging Face tokenizer, and saved/loaded with
``save_pretrained``/``from_pretrained`` without a hub.

Example:
    >>> tok = train_tokenizer(["click[nav-home]", "search[red mug]"], n_personas=4,
    ...                       vocab_size=300)  # doctest: +SKIP
    >>> tok.convert_ids_to_tokens(tok("<persona_2>")["input_ids"])  # doctest: +SKIP
    ['<persona_2>']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agents.tokens import EOS_TOKEN, PAD_TOKEN, agent_special_tokens
from simpersona_env.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["train_tokenizer"]


def train_tokenizer(texts: Iterable[str], n_personas: int, vocab_size: int = 2048,
                    min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` with the agent's special tokens.

    Args:
        texts: the corpus (the rendered prompts and actions of the training traces).
        n_personas: K; ``<persona_0>`` .. ``<persona_{K-1}>`` are added as special tokens.
        vocab_size: the target vocabulary size, special tokens and the 256 bytes included.
        min_frequency: merges seen fewer times are not learned.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``eos_token`` = ``<|eos|>`` and ``pad_token`` =
        ``<|pad|>``, no BOS, left untouched by ``add_persona_tokens`` (it already has them).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = agent_special_tokens(n_personas)
    floor = 256 + len(special)
    if vocab_size < floor:
        raise ConfigError(f"agent.vocab_size={vocab_size} is below the 256 bytes plus "
                          f"{len(special)} special tokens; use at least {floor}")
    tok = Tokenizer(models.BPE())
    # GPT-2's byte-level pre-tokenizer: splits on spaces/punctuation before merging, so a
    # newline always ends a token (render_step's line layout is a token boundary).
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   extra_special_tokens=[t for t in special
                                                         if t not in (EOS_TOKEN, PAD_TOKEN)])
    fast.model_max_length = 1 << 30  # the model's context is checked in encode(), not here
    return fast
