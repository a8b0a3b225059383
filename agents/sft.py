"""Traces -> SFT examples -> TRL ``SFTTrainer``.

Each step of each episode becomes one example (:func:`agents.tokens.render_step`), tokenized
with the one loss mask of :func:`agents.tokens.encode` (loss on the action and its end token
only). The dataset handed to TRL is pre-tokenized (``input_ids`` + ``completion_mask``,
TRL's documented pre-tokenized prompt/completion form, which it turns into labels when
``completion_only_loss=True``) so that training and the policy's scoring of candidate
actions use exactly the same token ids and the same truncation.

Held-out traces are split off *by episode* (never a step of a training episode in eval).

Example:
    >>> examples = build_examples(read_episodes("traces.jsonl"), persona="token")  # doctest: +SKIP
    >>> result = train_sft(tokenizer, model, train, held_out, SFTSettings(), "runs/agent")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.tokens import Rendered, encode, render_step
from agents.traces import Episode, Step
from simpersona_env.config import field
from simpersona_env.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "SFTResult",
    "SFTSettings",
    "alias_items",
    "balance_examples",
    "build_examples",
    "plot_losses",
    "split_episodes",
    "tokenize_examples",
    "train_sft",
]

_PERSONA_MODES = ("token", "none", "text")


@dataclass
class SFTSettings:
    """Supervised fine-tuning settings (CPU-safe defaults)."""

    persona: str = field("token", help="how the prompt carries the buyer type: token "
                         "(<persona_k>), none (the no-persona variant), text (prompt-persona "
                         "baseline, needs descriptions)")
    epochs: float = field(3.0, help="passes over the training examples")
    max_steps: int = field(-1, help="stop after this many optimizer steps (-1: use epochs)")
    learning_rate: float = field(1e-3, help="AdamW peak learning rate (1e-3 suits the small "
                                 "model trained from scratch; ~2e-5 for a pretrained one)")
    batch_size: int = field(8, help="examples per device batch")
    grad_accum: int = field(1, help="gradient accumulation steps")
    weight_decay: float = field(0.0, help="AdamW weight decay")
    warmup: float = field(0.0, help="warmup: steps, or a ratio of all steps when < 1")
    lr_scheduler: str = field("linear", help="learning-rate schedule (transformers names: "
                              "linear, cosine, constant, constant_with_warmup, ...)")
    max_length: int = field(1024, help="longest example in tokens; longer prompts lose their "
                            "oldest non-special tokens")
    n_history: int = field(5, help="past actions shown in the prompt")
    max_obs_chars: int = field(1500, help="page text cut to this many characters")
    typed_goals: bool = field(False, help="keep the hindsight goal of typed buyers' purchase "
                              "sessions in the prompt (false: trained as the population "
                              "simulation runs them, without a goal; goal demonstrations keep "
                              "theirs)")
    drop_chrome: bool = field(True, help="leave the bundled shop's header (nav links, search "
                              "box; the same on every page) out of the page text before the "
                              "cut, so the cut keeps prices, options and checkout fields")
    balance: float = field(0.0, help="resample the training steps so rare action forms (add to "
                           "cart, checkout) are seen more often: form c is drawn in proportion "
                           "to n_c^(1 - balance); 0: as in the traces, 1: every form equally "
                           "often. The agent undoes the resampling when it acts (agent.json "
                           "action_log_weights), so its action rates stay those of the traces")
    alias_items: bool = field(True, help="give every product id a fresh random alias in each "
                              "episode (page text, url, actions, alike), so the model cannot "
                              "tie an action to one product of the training merchants (a "
                              "product many buyers bought) and must learn it from the buyer "
                              "type and the page, as it needs to on merchants it never saw "
                              "(docs/agents.md, 'Product aliases')")
    group_by_length: bool = field(False, help="batch examples of similar length together "
                                  "(transformers' length-grouped sampler: random groups of 50 "
                                  "batches, sorted by length within): a quarter less padding and "
                                  "time per step on the demo's traces, but similar pages share "
                                  "a batch and the model learns less per step (docs/agents.md)")
    eval_fraction: float = field(0.1, help="share of episodes held out for the eval loss "
                                 "(when no eval_traces file is given)")
    logging_steps: int = field(10, help="log the training loss every N steps")
    seed: int = field(0, help="seed of the split, the init and the data order")
    bf16: bool = field(False, help="bfloat16 mixed precision (GPU only; keep False on CPU)")
    activation_checkpointing: bool = field(False, help="activation checkpointing (large models "
                                         "only; slower, off for the small ones)")


@dataclass
class SFTResult:
    """What a training run produced (also written to ``metrics.json`` in its folder)."""

    train_loss_first: float
    train_loss_last: float
    eval_loss: float | None
    eval_loss_before: float | None
    n_train_examples: int
    n_eval_examples: int
    train_tokens: int
    seconds: float
    log_history: list[dict[str, Any]]
    # subnormal floats treated as zero: "all threads", "this thread", "unsupported", or
    # "off" on an accelerator (simpersona_env.cpu.flush_denormals)
    flush_denormals: str = "off"


def build_examples(episodes: Iterable[Episode], *, persona: str = "token",
                   descriptions: Mapping[int, str] | None = None, n_history: int = 5,
                   max_obs_chars: int = 1500, drop_chrome: bool = False,
                   typed_goals: bool = True) -> list[Rendered]:
    """One (prompt, completion) example per step of every episode.

    Args:
        episodes: the traces.
        persona: ``token``, ``none`` (the no-persona variant) or ``text``.
        descriptions: type index -> text, for ``persona="text"``.
        n_history: past actions shown.
        max_obs_chars: page text cut.
        drop_chrome: leave the shop's repeated header out of the page text
            (:func:`agents.tokens.render_step`).
        typed_goals: keep the goal of a typed buyer's episode (``persona >= 0``). A real
            session that ends in a purchase is replayed with the hindsight goal of what it
            bought; shown to the model, that line announces the purchase, and the
            population simulation (typed buyers, no goal) never shows it. ``False`` trains
            typed sessions without it; untyped episodes (goal demonstrations) keep theirs.

    Raises:
        ConfigError: an unknown persona mode, or a type without a description in text mode.
    """
    if persona not in _PERSONA_MODES:
        raise ConfigError(f"sft.persona={persona!r} is not one of {', '.join(_PERSONA_MODES)}")
    out: list[Rendered] = []
    for ep in episodes:
        desc, mode = None, persona
        if persona == "text" and int(ep.persona) < 0:
            mode = "none"  # a buyer without a type gets no persona line
        elif persona == "text":
            desc = (descriptions or {}).get(int(ep.persona))
            if desc is None:
                raise ConfigError(f"persona=text: no description for buyer type {ep.persona}; "
                                  f"descriptions cover {sorted(descriptions or {})}")
        history: list[str] = []
        for step in ep.steps:
            obs = dict(step.observation)
            obs.setdefault("persona", ep.persona)
            obs.setdefault("goal", ep.goal)
            if not typed_goals and int(ep.persona) >= 0:
                obs["goal"] = ""
            out.append(render_step(obs, history, step.action, persona=mode,  # type: ignore[arg-type]
                                   description=desc, n_history=n_history,
                                   max_obs_chars=max_obs_chars, drop_chrome=drop_chrome))
            history.append(step.action)
    return out


def balance_examples(examples: Sequence[Rendered], power: float, seed: int = 0,
                     ) -> tuple[list[Rendered], dict[str, float]]:
    """Resample steps so rare action forms weigh more, and the log-weights that undo it.

    A form (:func:`agents.policies.base.action_form`) with ``n_c`` of the ``N`` steps gets
    ``m_c = N n_c^(1-power) / sum_c' n_c'^(1-power)`` of them in the output (each example
    repeated ``m_c // n_c`` times, the remainder drawn without replacement, seeded), so the
    output has about ``N`` steps. Training on it multiplies the odds of each form by
    ``w_c = m_c / n_c`` whatever the page, so the model learns ``p(c | page) w_c``
    (normalized); the policy subtracts ``log w_c`` from each candidate's score to recover
    ``p(c | page)`` (logit adjustment, Menon et al. 2021, "Long-tail learning via logit
    adjustment"). A form seen 64 times in 15,062 training steps (adding to cart, in the
    demo's traces) is then shown ~6x as often (``power=0.5``).

    Args:
        examples: the training steps (their completion is the action).
        power: 0 returns the examples unchanged (weights 0); 1 gives every form the same share.
        seed: seed of the remainder draws and the final shuffle.

    Returns:
        The resampled examples and ``{form: log w_c}``.

    Example:
        >>> ex = [Rendered("p", "stop")] * 90 + [Rendered("p", "click[add-to-cart]")] * 10
        >>> out, logw = balance_examples(ex, 1.0)
        >>> sum(e.completion == "stop" for e in out), round(logw["stop"], 3)
        (50, -0.588)
    """
    from agents.policies.base import action_form

    if not 0 <= power <= 1:
        raise ConfigError(f"sft.balance={power} must be in [0, 1] (0: no resampling, 1: every "
                          "action form equally often)")
    by_form: dict[str, list[Rendered]] = {}
    for ex in examples:
        by_form.setdefault(action_form(ex.completion), []).append(ex)
    if power == 0 or not examples:
        return list(examples), {c: 0.0 for c in by_form}
    rng = random.Random(seed)
    mass = {c: len(v) ** (1 - power) for c, v in by_form.items()}
    total = sum(mass.values())
    out: list[Rendered] = []
    logw: dict[str, float] = {}
    for c, items in sorted(by_form.items()):
        m = max(1, round(len(examples) * mass[c] / total))
        reps, rest = divmod(m, len(items))
        out += items * reps + rng.sample(items, rest)
        logw[c] = math.log(m / len(items))
    rng.shuffle(out)
    return out, logw


def alias_items(episodes: Iterable[Episode], seed: int = 0) -> list[Episode]:
    """The episodes with every product id replaced by an alias drawn for that episode.

    The ids are those of the ``product-<id>`` elements the pages show and the actions name
    (4 characters or more; shorter ones could be other numbers on the page). Each is
    replaced wherever it stands as a whole word in the episode's page texts, urls, goals and
    actions, by an id of the same shape (a digit for a digit, a letter of the same case for a
    letter), the same one throughout the episode and a different one in the next. The model
    still learns to copy the ids a page shows (it must on any merchant); it can no longer
    learn what to do from which product it is (entity anonymization, as in Hermann et al.
    2015, "Teaching Machines to Read and Comprehend").

    Example:
        >>> from agents.traces import Step
        >>> ep = Episode(1, "m", steps=[Step({"text": '[product-1234] link "Mug 1234"\\n$12',
        ...     "url": "/p/1234"}, "click[product-1234]")])
        >>> out = alias_items([ep])[0]
        >>> a = out.steps[0].action[len("click[product-"):-1]
        >>> a != "1234", out.steps[0].observation == {
        ...     "text": f'[product-{a}] link "Mug {a}"\\n$12', "url": f"/p/{a}"}
        (True, True)
    """
    rng = random.Random(seed)
    return [_alias_episode(ep, rng) for ep in episodes]


def _product_ids(step: Step) -> list[str]:
    """The product ids a step's page shows and its action names (page order)."""
    from agents.policies.base import page_elements
    from simpersona_env.env.actions import ActionError, parse_action

    eids = list(page_elements(step.observation))
    try:
        eids += [str(parse_action(step.action).args[0])]
    except (ActionError, IndexError):
        pass  # back, stop, or an action that does not parse: no id
    return [e[len("product-"):] for e in eids
            if e.startswith("product-") and len(e) >= len("product-") + 4]


def _alias_episode(ep: Episode, rng: random.Random) -> Episode:
    import string

    ids = dict.fromkeys(i for st in ep.steps for i in _product_ids(st))
    if not ids:
        return ep
    alias: dict[str, str] = {}
    taken = set(ids)
    for old in ids:
        while (new := "".join(rng.choice(string.digits) if ch.isdigit()
                              else rng.choice(string.ascii_uppercase) if ch.isupper()
                              else rng.choice(string.ascii_lowercase) if ch.isalpha() else ch
                              for ch in old)) in taken:
            pass
        alias[old] = new
        taken.add(new)
    # longest first, whole words only: "1234" never rewrites part of "12345"
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(
        re.escape(i) for i in sorted(alias, key=len, reverse=True)) + r")(?![A-Za-z0-9])")

    def sub(text: Any) -> Any:
        return pattern.sub(lambda m: alias[m.group(1)], text) if isinstance(text, str) else text

    return Episode(persona=ep.persona, merchant_id=ep.merchant_id, goal=sub(ep.goal),
                   steps=[Step({k: sub(v) for k, v in st.observation.items()}, sub(st.action))
                          for st in ep.steps])


def split_episodes(episodes: Sequence[Episode], eval_fraction: float, seed: int = 0,
                   ) -> tuple[list[Episode], list[Episode]]:
    """Seeded split by episode; at least one episode on each side when there are two or more."""
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"sft.eval_fraction={eval_fraction} must be in [0, 1)")
    order = list(range(len(episodes)))
    random.Random(seed).shuffle(order)
    n_eval = 0 if eval_fraction == 0 else max(1, round(eval_fraction * len(episodes)))
    n_eval = min(n_eval, len(episodes) - 1) if len(episodes) > 1 else 0
    held = set(order[:n_eval])
    return ([e for i, e in enumerate(episodes) if i not in held],
            [e for i, e in enumerate(episodes) if i in held])


def tokenize_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Rendered],
                      max_length: int) -> Any:
    """A ``datasets.Dataset`` of ``input_ids`` and ``completion_mask`` (the loss mask)."""
    from datasets import Dataset

    cols: dict[str, list[list[int]]] = {"input_ids": [], "completion_mask": []}
    for ex in examples:
        enc = encode(tokenizer, ex.prompt, ex.completion, max_length=max_length)
        cols["input_ids"].append(enc.input_ids)
        cols["completion_mask"].append(enc.completion_mask)
    return Dataset.from_dict(cols)


def train_sft(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel,
              train: Sequence[Rendered], held_out: Sequence[Rendered], settings: SFTSettings,
              out_dir: str | Path) -> SFTResult:
    """Fine-tune ``model`` on the examples with TRL's ``SFTTrainer`` (completion-only loss).

    The trainer is :class:`agents.sft_trainer.CompletionSFTTrainer`: TRL's, with the loss
    projecting only the action tokens onto the vocabulary (the same loss, twice the speed).

    Trainer checkpoints go to ``out_dir/trainer``; the caller saves the final agent (see
    :func:`agents.model.save_agent`). Shows a progress bar; evaluates the held-out loss before
    training and after each epoch.
    """
    import time

    from trl import SFTConfig

    from agents.sft_trainer import CompletionSFTTrainer
    from simpersona_env.cpu import flush_denormals

    if not train:
        raise DataError("no training examples: the trace file has no steps")
    out_dir = Path(out_dir)
    train_ds = tokenize_examples(tokenizer, train, settings.max_length)
    eval_ds = tokenize_examples(tokenizer, held_out, settings.max_length) if held_out else None
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup,
        lr_scheduler_type=settings.lr_scheduler,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        eval_strategy="epoch" if eval_ds is not None else "no",
        save_strategy="no",  # the final agent is saved once, with its tokenizer and agent.json
        seed=settings.seed,
        data_seed=settings.seed,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        # CPU-safe: no bf16 on CPU; activation checkpointing only costs time on small models.
        bf16=settings.bf16,
        fp16=False,
        activation_checkpointing=settings.activation_checkpointing,
        max_length=settings.max_length,  # examples already fit (encode truncates the prompt)
        completion_only_loss=True,
        packing=False,
        report_to="none",
        push_to_hub=False,
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )
    # on CPU, subnormal floats as zero: a trained model's backward passes slow down
    # severalfold on them (simpersona_env.cpu); best set earlier, before torch's threads start
    flush = (flush_denormals() if next(model.parameters()).device.type == "cpu" else "off")
    trainer = CompletionSFTTrainer(model=model, args=args, train_dataset=train_ds,
                                   eval_dataset=eval_ds, processing_class=tokenizer)
    eval_before = trainer.evaluate()["eval_loss"] if eval_ds is not None else None
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    eval_after = trainer.evaluate()["eval_loss"] if eval_ds is not None else None
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    n_tokens = sum(len(ids) for ids in train_ds["input_ids"])
    epochs_done = trainer.state.epoch or settings.epochs
    result = SFTResult(
        train_loss_first=float(losses[0]) if losses else math.nan,
        train_loss_last=float(losses[-1]) if losses else math.nan,
        eval_loss=eval_after, eval_loss_before=eval_before,
        n_train_examples=len(train_ds), n_eval_examples=len(eval_ds) if eval_ds is not None else 0,
        train_tokens=int(n_tokens * epochs_done), seconds=seconds,
        log_history=list(trainer.state.log_history), flush_denormals=flush)
    return result


def plot_losses(result: SFTResult, path: str | Path) -> Path:
    """Training and held-out loss against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = result.log_history
    fig, ax = plt.subplots(figsize=(6, 3.5))
    tr = [(h["step"], h["loss"]) for h in hist if "loss" in h]
    ev = [(h["step"], h["eval_loss"]) for h in hist if "eval_loss" in h]
    if tr:
        ax.plot(*zip(*tr), label="train loss (action tokens)")
    if ev:
        ax.plot(*zip(*ev), "o-", label="held-out loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.set_title("agent SFT")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_metrics(result: SFTResult, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """``metrics.json``: the result fields plus ``extra`` (the run's settings)."""
    import dataclasses

    data = dataclasses.asdict(result) | dict(extra or {})
    Path(path).write_text(json.dumps(data, indent=2, default=str))
