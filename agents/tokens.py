"""Persona tokens, the agent's special tokens, the training-text rendering and the loss mask.

This is the one place that defines how an agent *sees* a step (STYLE.md item 9, after
karpathy/nanochat ``tokenizer.py``):

- :func:`persona_token` / :func:`persona_tokens`: the K strings ``<persona_0>`` ...
  ``<persona_{K-1}>``, one per learned buyer type (the VQ-VAE code index);
- :data:`SPECIAL_TOKENS`: the few other special tokens (padding, end of action, and the
  marker that separates the prompt from the action);
- :func:`add_persona_tokens`: adds all of them to any Hugging Face tokenizer and resizes the
  model's embeddings, new rows initialised to the mean of the old ones;
- :func:`render_step`: one episode step -> ``(prompt, completion)``;
- :func:`encode`: ``(prompt, completion)`` -> token ids and the loss mask (completion only),
  used both for SFT and for scoring candidate actions at inference, so the two cannot drift.

The prompt layout::

    <persona_3>
    goal: a red mug under $20
    history: click[nav-home] ; search[mug]
    url: /s/acme/search?q=mug
    error: no element with id 'x'
    page:
    <observation text>
    <persona_3>
    <|act|>

and the completion is the next action, e.g. ``click[product-123]``, followed by ``<|eos|>``.
The ``goal``/``error`` lines appear only when non-empty. The persona line is the prompt's
prefix (the paper's form) and is restated right before the action marker: a small model then
need not carry the type across a long page (measured on the test traces: a 2-layer model with
the token only as a prefix barely separates the types after 15 epochs; restated, it separates
them cleanly). It is left out in the no-persona variant and is ``persona: <description>`` in
the prompt-persona baseline (also at both places, so the comparison is like for like).

Example:
    >>> persona_token(3)
    '<persona_3>'
    >>> r = render_step({"text": "Home", "url": "/s/a/", "goal": "", "persona": 3,
    ...                  "last_action_error": ""}, history=[], action="stop")
    >>> r.prompt.splitlines()[0], r.completion
    ('<persona_3>', 'stop')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from simpersona_env.errors import ConfigError

if TYPE_CHECKING:  # heavy: only for annotations
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    # persona tokens
    "PERSONA_TOKEN_FORMAT",
    "persona_token",
    "persona_tokens",
    "persona_index",
    # other special tokens
    "PAD_TOKEN",
    "EOS_TOKEN",
    "ACTION_TOKEN",
    "SPECIAL_TOKENS",
    "agent_special_tokens",
    "add_persona_tokens",
    "count_persona_tokens",
    # rendering and the loss mask
    "PersonaMode",
    "Rendered",
    "render_step",
    "Encoded",
    "encode",
]

#: Format of the persona token of buyer type ``k`` (the VQ-VAE code index).
PERSONA_TOKEN_FORMAT: Final[str] = "<persona_{k}>"
_PERSONA_RE: Final = re.compile(r"^<persona_(\d+)>$")

#: Padding (never trained on; the loss mask excludes it).
PAD_TOKEN: Final[str] = "<|pad|>"
#: Ends every completion: the model learns where an action stops, so scoring a candidate
#: action includes "and then nothing more" and a prefix of a longer action is not favoured.
EOS_TOKEN: Final[str] = "<|eos|>"
#: Ends every prompt: the boundary between context and action is always a token boundary,
#: whatever the tokenizer, so prompt ids + completion ids == ids of prompt + completion.
ACTION_TOKEN: Final[str] = "<|act|>"
#: The non-persona special tokens, in the order they get ids in the built-in tokenizer.
SPECIAL_TOKENS: Final[tuple[str, ...]] = (PAD_TOKEN, EOS_TOKEN, ACTION_TOKEN)

#: How a prompt carries the buyer type: its token, nothing (the no-persona variant), or a
#: hand-written text description (the prompt-persona baseline).
PersonaMode = Literal["token", "none", "text"]


def persona_token(k: int) -> str:
    """The persona token of buyer type ``k``.

    Example:
        >>> persona_token(0)
        '<persona_0>'
    """
    if int(k) < 0:
        raise ConfigError(f"persona index {k} is negative; -1 means 'no persona' and has no token")
    return PERSONA_TOKEN_FORMAT.format(k=int(k))


def persona_tokens(n: int) -> list[str]:
    """The ``n`` persona tokens ``<persona_0>`` ... ``<persona_{n-1}>``.

    Example:
        >>> persona_tokens(2)
        ['<persona_0>', '<persona_1>']
    """
    if int(n) < 1:
        raise ConfigError(f"the number of persona tokens must be >= 1, got {n}; it is the "
                          "codebook size K of the buyer-type model")
    return [persona_token(k) for k in range(int(n))]


def persona_index(token: str) -> int | None:
    """The type index of a persona token string, or None if it is not one.

    Example:
        >>> persona_index("<persona_12>"), persona_index("<|eos|>")
        (12, None)
    """
    m = _PERSONA_RE.match(token)
    return int(m.group(1)) if m else None


def agent_special_tokens(n_personas: int) -> list[str]:
    """Every special token the agent needs: :data:`SPECIAL_TOKENS` then the persona tokens."""
    return [*SPECIAL_TOKENS, *persona_tokens(n_personas)]


def count_persona_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """How many persona tokens a tokenizer holds (K), checking they are ``0..K-1``.

    Raises:
        CheckpointError: if the persona tokens are not exactly ``<persona_0>`` ..
            ``<persona_{K-1}>`` (a tokenizer edited by hand, or two models mixed).
    """
    from simpersona_env.errors import CheckpointError

    found = sorted(k for tok in tokenizer.get_vocab() if (k := persona_index(tok)) is not None)
    if found != list(range(len(found))):
        raise CheckpointError(f"the tokenizer's persona tokens are not <persona_0>..<persona_K-1>: "
                              f"found indices {found[:10]}...; rebuild it with add_persona_tokens")
    return len(found)


def add_persona_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None,
                       n_personas: int) -> list[int]:
    """Add the K persona tokens (and the agent's other special tokens) to a tokenizer and model.

    Works for any Hugging Face tokenizer and causal LM. Tokens already present keep their ids
    (so calling it twice is harmless). The model's input embeddings grow to the new vocabulary
    size; each new row is the mean of the old rows, a neutral start that keeps the initial
    loss where it was (Hewitt 2021, "Initializing new word embeddings"). An untied LM head is
    resized and initialised the same way; a tied one follows the embeddings.

    A tokenizer without a padding token gets :data:`PAD_TOKEN`; the end of an action is
    always :data:`EOS_TOKEN` (set as the tokenizer's ``eos_token``), so that completions end
    the same way whatever the base model.

    Args:
        tokenizer: any ``PreTrainedTokenizerBase``; modified in place.
        model: the causal LM whose embeddings to resize, or None for the tokenizer only.
        n_personas: K, the number of buyer types.

    Returns:
        The ids of the persona tokens, in type order (``ids[k]`` is ``<persona_k>``).

    Example:
        >>> ids = add_persona_tokens(tokenizer, model, 8)  # doctest: +SKIP
        >>> tokenizer.convert_ids_to_tokens(ids[:2])  # doctest: +SKIP
        ['<persona_0>', '<persona_1>']
    """
    wanted = agent_special_tokens(n_personas)
    vocab = tokenizer.get_vocab()
    have = count_persona_tokens(tokenizer)
    if have > n_personas:
        from simpersona_env.errors import CheckpointError

        raise CheckpointError(f"the tokenizer already has {have} persona tokens but {n_personas} were "
                              "asked for; the buyer-type model (K) and the agent checkpoint differ: "
                              "train the agent on traces of this population")
    new = [t for t in wanted if t not in vocab]
    if new:
        tokenizer.add_special_tokens({"extra_special_tokens": new},
                                     replace_extra_special_tokens=False)
    tokenizer.eos_token = EOS_TOKEN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN
    if model is not None:
        _resize_mean(model, len(tokenizer))
        model.config.eos_token_id = tokenizer.eos_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer.convert_tokens_to_ids(persona_tokens(n_personas))


def _resize_mean(model: PreTrainedModel, vocab_size: int) -> None:
    """Resize input (and untied output) embeddings to ``vocab_size``, new rows = old mean."""
    import torch

    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return  # rows past len(tokenizer) (padding to a multiple) are never used: leave them
    # mean_resizing=False: transformers' own "mean" samples around the mean with the old
    # covariance; we want exactly the mean (deterministic, and the test checks it).
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight  # (V_new, d)
        emb[old:] = emb[:old].mean(dim=0, keepdim=True)
        head = model.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != emb.data_ptr():  # untied LM head
            head.weight[old:] = head.weight[:old].mean(dim=0, keepdim=True)
            if getattr(head, "bias", None) is not None:
                head.bias[old:] = head.bias[:old].mean()


class Rendered(NamedTuple):
    """One training example: the context the agent sees and the action it took."""

    prompt: str
    completion: str


def _as_int(value: Any, default: int = -1) -> int:
    try:
        return int(value)  # numpy scalars and 0-d arrays from a gymnasium Dict space
    except (TypeError, ValueError):
        return default


# the bundled shop's header (docs/storefront.md), repeated on every page
_CHROME_LINE = re.compile(r"^(path: |\[(nav-home|nav-collections|nav-collection-[^\]]*|"
                          r"search-input|search-submit)\] )")


def render_step(observation: Mapping[str, Any], history: Sequence[str], action: str = "", *,
                persona: PersonaMode = "token", description: str | None = None,
                n_history: int = 5, max_obs_chars: int = 1500,
                drop_chrome: bool = False) -> Rendered:
    """Render one step into the training prompt and completion (see the module docstring).

    Args:
        observation: the env observation (``text``, ``url``, ``goal``, ``persona``,
            ``last_action_error``).
        history: the actions taken so far in the episode, oldest first; the last
            ``n_history`` are shown.
        action: the next action (the completion); empty at inference.
        persona: ``"token"`` puts ``<persona_k>`` first (nothing when the observation's
            persona is -1), ``"none"`` leaves it out, ``"text"`` writes ``description``.
        description: the hand-written description of the type, for ``persona="text"``.
        n_history: how many past actions to show.
        max_obs_chars: the page text is cut to this many characters (marked with ``…``) so
            that a long listing cannot push the action out of the model's context.
        drop_chrome: leave out the bundled shop's site chrome before cutting: the ``path:``
            line (the prompt has the url) and the header elements repeated on every page
            (``nav-home``, ``nav-collection-*``, ``nav-collections``, ``search-input``,
            ``search-submit``; docs/storefront.md). They are still actions the policy may
            take; ``nav-cart`` stays (its label counts the cart). On other sites no line
            matches. The header takes 200-700 characters, so without this a short cut hides
            the price, the options and the checkout fields.

    Example:
        >>> obs = {"text": "Cart\\n[checkout] button \\"Checkout\\"", "url": "/s/a/cart",
        ...        "goal": "", "persona": -1, "last_action_error": ""}
        >>> print(render_step(obs, ["click[nav-cart]"], "click[checkout]").prompt)
        history: click[nav-cart]
        url: /s/a/cart
        page:
        Cart
        [checkout] button "Checkout"
        <|act|>
    """
    lines: list[str] = []
    persona_line = ""
    if persona == "token":
        k = _as_int(observation.get("persona", -1))
        if k >= 0:
            persona_line = persona_token(k)
    elif persona == "text":
        if not description:
            raise ConfigError("persona='text' needs a description of the buyer type "
                              "(policy.descriptions maps each type index to a sentence)")
        persona_line = f"persona: {' '.join(description.split())}"
    elif persona != "none":
        raise ConfigError(f"unknown persona mode {persona!r}; valid: 'token', 'none', 'text'")
    if persona_line:
        lines.append(persona_line)
    goal = str(observation.get("goal") or "").strip()
    if goal:
        lines.append(f"goal: {goal}")
    shown = list(history)[-n_history:] if n_history > 0 else []
    if shown:
        lines.append("history: " + " ; ".join(shown))
    lines.append(f"url: {observation.get('url', '')}")
    error = str(observation.get("last_action_error") or "").strip()
    if error:
        lines.append(f"error: {error}")
    text = str(observation.get("text") or "")
    if drop_chrome:
        text = "\n".join(line for line in text.split("\n") if not _CHROME_LINE.match(line))
    if len(text) > max_obs_chars:
        text = text[:max_obs_chars] + "…"
    lines += ["page:", text]
    if persona_line:  # restated next to the action (see the module docstring)
        lines.append(persona_line)
    lines.append(ACTION_TOKEN)
    return Rendered("\n".join(lines), action)


class Encoded(NamedTuple):
    """Token ids of ``prompt + completion + <|eos|>`` and the loss mask (1 on the completion)."""

    input_ids: list[int]
    completion_mask: list[int]


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str,
           max_length: int | None = None) -> Encoded:
    """Tokenize a rendered example; the loss mask covers the completion and its end token.

    The prompt and the completion are tokenized separately and concatenated (the prompt ends
    on :data:`ACTION_TOKEN`, a special token, so this is also how the joint text would split).
    A BOS token is prepended when the tokenizer has one. When the whole is longer than
    ``max_length``, the page text loses tokens from its end first (the page is already cut
    to its top by ``max_obs_chars``), so the goal, the history and the url survive; only if
    that is not enough are tokens dropped from the start of the prompt, except special
    tokens (the persona token and the action marker). A prompt that fits is tokenized whole;
    one that is cut is tokenized in three parts (before the page, the page, after it), the
    same way at training and at inference.

    Example:
        >>> enc = encode(tokenizer, r.prompt, r.completion)  # doctest: +SKIP
        >>> sum(enc.completion_mask) == len(tokenizer(r.completion)["input_ids"]) + 1  # doctest: +SKIP
        True
    """
    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt_ids = bos + ids(prompt)
    completion_ids = ids(completion) + [tokenizer.convert_tokens_to_ids(EOS_TOKEN)]
    parts = _page_parts(prompt)
    if (max_length is not None and parts is not None
            and len(prompt_ids) + len(completion_ids) > max_length):
        head, page, tail = (ids(x) for x in parts)
        excess = len(bos) + len(head) + len(page) + len(tail) + len(completion_ids) - max_length
        page = page[:max(0, len(page) - excess)]
        prompt_ids = bos + head + page + tail
    if max_length is not None and len(prompt_ids) + len(completion_ids) > max_length:
        excess = len(prompt_ids) + len(completion_ids) - max_length
        keep = set(tokenizer.all_special_ids)
        kept: list[int] = []
        for tok in prompt_ids:
            if excess > 0 and tok not in keep:
                excess -= 1
                continue
            kept.append(tok)
        if excess > 0:
            raise ConfigError(f"an action of {len(completion_ids)} tokens does not fit in "
                              f"max_length={max_length}; raise sft.max_length")
        prompt_ids = kept
    return Encoded(prompt_ids + completion_ids, [0] * len(prompt_ids) + [1] * len(completion_ids))


def _page_parts(prompt: str) -> tuple[str, str, str] | None:
    r"""``(before the page text, the page text, after it)`` of a rendered prompt, else None.

    The page text runs from the line after ``page:`` to the restated persona line (the
    prompt's first line, when it comes again just before the action marker) or the marker.

    Example:
        >>> _page_parts("<persona_1>\nurl: /s/a/\npage:\nHome\nMore\n<persona_1>\n<|act|>")
        ('<persona_1>\nurl: /s/a/\npage:\n', 'Home\nMore', '\n<persona_1>\n<|act|>')
    """
    lines = prompt.split("\n")
    if "page:" not in lines or lines[-1] != ACTION_TOKEN:
        return None
    start = lines.index("page:") + 1
    end = len(lines) - 1
    if start > 1 and end - 1 >= start and lines[end - 1] == lines[0]:
        end -= 1  # the persona line restated before the marker
    return ("\n".join(lines[:start]) + "\n", "\n".join(lines[start:end]),
            "\n" + "\n".join(lines[end:]))
