"""Training of the buyer-type VQ-VAE: pre-train as a plain autoencoder, k-means-initialise the
codebook on every training buyer's latent, then train with quantization.

Why two phases: a codebook seeded on the latents of an untrained encoder, or on one batch of
a population where most buyers bounce, collapses onto a few codes; seeding it on the
pre-trained latents of all training buyers gives every code a region of real buyers.

Example:
    >>> from simpersona_env.synthetic import generate_events
    >>> from simpersona_env.buyers import build_buyers
    >>> buyers = build_buyers(generate_events(600, seed=0).events)
    >>> typer = train_personas(buyers, PersonaVQVAEConfig(k=4), TrainConfig(epochs=2))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simpersona_env.config import field
from simpersona_env.personas.data import (
    FeatureScaler,
    check_buyers,
    check_enough_buyers,
    to_arrays,
)

if TYPE_CHECKING:
    import polars as pl

    from simpersona_env.personas.assign import PersonaModel
    from simpersona_env.personas.model import PersonaVQVAEConfig

__all__ = ["TrainConfig", "train_personas", "plot_curves", "LOSS_TERMS"]

#: Named loss terms logged per epoch (fields of ``VQVAEOutput``).
LOSS_TERMS: tuple[str, ...] = ("loss", "features", "sequence", "outcomes", "funnel",
                                "commitment")


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings of the VQ-VAE."""

    seed: int = field(0, help="seeds torch, the batch order and the codebook k-means")
    epochs_pretrain: int = field(6, help="epochs without quantization before the codebook init")
    epochs: int = field(20, help="epochs with quantization")
    batch_size: int = field(256, help="buyers per optimisation step")
    lr: float = field(1e-3, help="AdamW learning rate")
    vq_lr_scale: float = field(0.1, help="learning-rate factor after the codebook init (a gentler "
                                         "phase keeps the pre-trained structure the codes sit on)")
    weight_decay: float = field(1e-4, help="AdamW weight decay")
    min_buyers_per_type: int = field(8, help="refuse to train with fewer training buyers per type")
    train_split_only: bool = field(True, help="fit on split == 'train' buyers only (the held-out "
                                              "half stays unseen for the quality check)")
    progress: bool = field(True, help="show a progress bar")


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]


def _tensors(arr, idx, torch):
    """One batch as tensors, sequences cut to the batch's longest (most are 1-3 events)."""
    lens = arr.seq_len[idx]
    length = int(lens.max())
    return (torch.from_numpy(arr.tokens[idx, :, :length].astype(np.int64)),
            torch.from_numpy(lens), torch.from_numpy(arr.features[idx]),
            torch.from_numpy(arr.outcomes[idx]))


def _perplexity(codes: np.ndarray, k: int) -> float:
    p = np.bincount(codes, minlength=k) / max(len(codes), 1)
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def train_personas(buyers: pl.DataFrame, model_cfg: PersonaVQVAEConfig,
                   cfg: TrainConfig | None = None,
                   on_epoch: Callable[[dict[str, Any], PersonaModel], None] | None = None
                   ) -> PersonaModel:
    """Fit the VQ-VAE on a buyer table and return the model with its feature scaler.

    Args:
        buyers: a buyer table (``simpersona_env.buyers.build_buyers`` / ``read_buyers``).
        model_cfg: architecture; ``max_len`` caps the sequence read.
        cfg: optimisation settings.
        on_epoch: called after each epoch with its history row and the model so far
            (for diagnostics; the model is left in train mode afterwards).

    Returns:
        A :class:`~simpersona_env.personas.assign.PersonaModel` (model, scaler, history).

    Raises:
        ConfigError: too few training buyers for ``model_cfg.k``.
        SchemaError, DataError: a table the model cannot read (missing columns, NaNs).
    """
    import polars as pl
    import torch
    from tqdm.auto import tqdm

    from simpersona_env.buyers.spec import SCHEMA_VERSION
    from simpersona_env.personas.assign import PersonaModel
    from simpersona_env.personas.model import PersonaVQVAE

    cfg = cfg or TrainConfig()
    check_buyers(buyers, where="training buyer table")
    train_df = buyers
    if cfg.train_split_only and "split" in buyers.columns:
        train_df = buyers.filter(pl.col("split") == "train")
    check_enough_buyers(train_df.height, model_cfg.k, cfg.min_buyers_per_type)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    scaler = FeatureScaler.fit(train_df)
    arr = to_arrays(train_df, scaler, model_cfg.max_len)
    model = PersonaVQVAE(model_cfg)
    typer = PersonaModel(model=model, scaler=scaler, history=[],
                         info={"schema_version": SCHEMA_VERSION, "train_buyers": train_df.height,
                               "merchants": int(train_df["merchant_id"].n_unique()),
                               "train": dataclasses.asdict(cfg)})
    history = typer.history
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs_pretrain + cfg.epochs
    bar = tqdm(range(total), desc="personas train", disable=not cfg.progress, unit="epoch")
    for epoch in bar:
        quantize = epoch >= cfg.epochs_pretrain
        if quantize and epoch == cfg.epochs_pretrain:
            model.init_codebook(_latents(model, arr, torch))
            for group in opt.param_groups:
                group["lr"] = cfg.lr * cfg.vq_lr_scale
        model.train()
        sums = dict.fromkeys(LOSS_TERMS, 0.0)
        codes, n_seen = [], 0
        for idx in _batches(len(arr), cfg.batch_size, rng):
            if len(idx) < 2:  # a batch of one gives no k-means / EMA signal
                continue
            out = model(*_tensors(arr, idx, torch), quantize=quantize)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            for term in LOSS_TERMS:
                sums[term] += float(getattr(out, term).detach()) * len(idx)
            n_seen += len(idx)
            if quantize:
                codes.append(out.codes.numpy())
        row: dict[str, Any] = {"epoch": epoch, "phase": "vq" if quantize else "pretrain"}
        row.update({t: sums[t] / max(n_seen, 1) for t in LOSS_TERMS})
        if quantize:
            c = np.concatenate(codes)
            row["perplexity"] = _perplexity(c, model_cfg.k)
            row["codes_used"] = int(len(np.unique(c)))
        history.append(row)
        bar.set_postfix({k: round(v, 3) for k, v in row.items()
                         if k in ("loss", "outcomes", "perplexity")})
        if on_epoch is not None and quantize:
            on_epoch(row, typer)
    model.eval()
    return typer


def _latents(model, arr, torch, batch_size: int = 4096):
    model.eval()
    with torch.no_grad():
        out = [model.encode(*_tensors(arr, idx, torch)[:3])
               for idx in _batches(len(arr), batch_size, None)]
    return torch.cat(out)


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Training curves (each loss term, and codebook perplexity) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for term in LOSS_TERMS:
        ax.plot(epochs, [h[term] for h in history], label=term, lw=2 if term == "loss" else 1)
    vq = [h for h in history if h["phase"] == "vq"]
    if vq and len(vq) < len(history):
        for a in (ax, ax2):
            a.axvline(vq[0]["epoch"] - 0.5, color="grey", ls=":", lw=1)
        ax.text(vq[0]["epoch"], ax.get_ylim()[1] * 0.95, " codebook init", color="grey",
                va="top", fontsize=8)
    ax.set(xlabel="epoch", ylabel="loss (per buyer)", title="loss terms", yscale="log")
    ax.legend(fontsize=8)
    ax2.plot([h["epoch"] for h in vq], [h["perplexity"] for h in vq], label="perplexity")
    ax2.plot([h["epoch"] for h in vq], [h["codes_used"] for h in vq], label="codes used", ls="--")
    ax2.set(xlabel="epoch", title="codebook usage", xlim=ax.get_xlim())
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
