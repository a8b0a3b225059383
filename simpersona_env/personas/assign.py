"""A trained buyer-type model (VQ-VAE + feature scaler), its checkpoint, and one-pass assignment.

A checkpoint is a folder with ``personas.safetensors`` (the weights and codebook buffers, no
pickle) and ``personas.json`` (the model config, K, feature names and standardization
statistics, the buyer schema version, the training history). Loading refuses a checkpoint
that does not match what the caller expects, with :class:`~simpersona_env.errors.CheckpointError`.

Example:
    >>> typer = load_checkpoint("runs/personas/model")  # doctest: +SKIP
    >>> types = typer.assign(read_buyers("runs/ingest/rees46/buyers"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simpersona_env.buyers.spec import FEATURE_NAMES, SCHEMA_VERSION, TOKEN_CHANNELS
from simpersona_env.errors import CheckpointError
from simpersona_env.personas.data import FeatureScaler, check_buyers, to_arrays

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PersonaModel", "load_checkpoint", "WEIGHTS_FILE", "CONFIG_FILE", "CHECKPOINT_FORMAT"]

WEIGHTS_FILE = "personas.safetensors"
CONFIG_FILE = "personas.json"
#: Bumped when the checkpoint layout changes (2: the funnel-aware latent, ``to_funnel``).
CHECKPOINT_FORMAT = 2


@dataclasses.dataclass
class PersonaModel:
    """A trained VQ-VAE with the scaler that standardizes its input features.

    Attributes:
        model: the ``PersonaVQVAE`` (torch module, eval mode).
        scaler: feature standardization fitted on the training buyers.
        history: per-epoch loss terms and codebook usage.
        info: training metadata (buyers, merchants, schema version, train config).
    """

    model: Any
    scaler: FeatureScaler
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of buyer types."""
        return int(self.model.cfg.k)

    def latents(self, buyers: pl.DataFrame, batch_size: int = 1024) -> np.ndarray:
        """Encoder latents (N, D) of a buyer table, in row order."""
        return self._run(buyers, batch_size, latent=True)

    def assign(self, buyers: pl.DataFrame, batch_size: int = 1024) -> np.ndarray:
        """Buyer type (0..K-1, ``int64``) of every row of a buyer table, in row order.

        One encoder pass per batch; buyers are batched by sequence length so that the many
        one-event buyers are not padded to the longest sequence. Works for any merchant,
        seen in training or not. Why 1024 per batch: the activations stay in cache; larger
        batches measured slower on CPU.

        Raises:
            SchemaError, DataError: a table the model cannot read (missing columns, NaNs).
        """
        return self._run(buyers, batch_size, latent=False)

    def _run(self, buyers: pl.DataFrame, batch_size: int, latent: bool) -> np.ndarray:
        import torch

        check_buyers(buyers, tuple(self.scaler.names), where="buyer table to assign")
        arr = to_arrays(buyers, self.scaler, self.model.cfg.max_len)
        order = np.argsort(arr.seq_len, kind="stable")
        out = (np.zeros((len(arr), self.model.cfg.latent_dim), np.float32) if latent
               else np.zeros(len(arr), np.int64))
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, len(arr), batch_size):
                idx = order[s:s + batch_size]
                length = int(arr.seq_len[idx].max())
                args = (torch.from_numpy(arr.tokens[idx, :, :length]),
                        torch.from_numpy(arr.seq_len[idx]), torch.from_numpy(arr.features[idx]))
                res = self.model.encode(*args) if latent else self.model.assign(*args)
                out[idx] = res.numpy()
        return out

    def codebook(self) -> np.ndarray:
        """The K code vectors (K, D)."""
        return self.model.vq.codebook.detach().cpu().numpy().copy()

    def save(self, out_dir: str | Path) -> Path:
        """Write ``personas.safetensors`` + ``personas.json`` into ``out_dir`` (created)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "simpersona-personas"})
        meta = {
            "format": CHECKPOINT_FORMAT,
            "kind": "simpersona-personas-vqvae",
            "k": self.k,
            "schema_version": SCHEMA_VERSION,
            "feature_names": list(self.scaler.names),
            "token_channels": dict(self.model.cfg.channel_vocab),
            "model": dataclasses.asdict(self.model.cfg),
            "scaler": self.scaler.to_dict(),
            "info": self.info,
            "history": self.history,
        }
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return out


def load_checkpoint(path: str | Path, *, expect_k: int | None = None,
                    expect_features: tuple[str, ...] | list[str] | None = FEATURE_NAMES
                    ) -> PersonaModel:
    """Load a checkpoint folder written by :meth:`PersonaModel.save`.

    Args:
        path: the folder (or either of its two files).
        expect_k: refuse a checkpoint with another number of types (None: any).
        expect_features: refuse a checkpoint trained on other aggregate features (default:
            this code's ``FEATURE_NAMES``; None: any).

    Raises:
        CheckpointError: missing files, another format or buyer schema version, another K or
            feature set, or weights that do not fit the stored config.
    """
    from safetensors.torch import load_file

    from simpersona_env.personas.model import PersonaVQVAE, PersonaVQVAEConfig

    p = Path(path)
    folder = p.parent if p.is_file() else p
    cfg_file, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_file.exists() or not weights.exists():
        raise CheckpointError(f"no persona checkpoint in {folder} (need {CONFIG_FILE} and "
                              f"{WEIGHTS_FILE}); train one with `simpersona personas train`")
    meta = json.loads(cfg_file.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("kind") != "simpersona-personas-vqvae":
        raise CheckpointError(f"{cfg_file} is not a persona checkpoint of format "
                              f"{CHECKPOINT_FORMAT} (it says format {meta.get('format')!r}, "
                              f"kind {meta.get('kind')!r}); retrain with `simpersona personas "
                              "train`")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"{folder} was trained on buyer schema version "
                              f"{meta.get('schema_version')}, this code reads version "
                              f"{SCHEMA_VERSION}; retrain it on buyers rebuilt by `simpersona ingest`")
    if expect_k is not None and int(meta["k"]) != int(expect_k):
        raise CheckpointError(f"{folder} has k={meta['k']} buyer types but k={expect_k} was "
                              f"asked for; pass k={meta['k']} or train a model with k={expect_k}")
    if expect_features is not None and list(meta["feature_names"]) != list(expect_features):
        raise CheckpointError(
            f"{folder} was trained on features {meta['feature_names']} but the buyers have "
            f"{list(expect_features)}; retrain it on this feature set")
    if dict(meta.get("token_channels", {})) != dict(TOKEN_CHANNELS):
        raise CheckpointError(f"{folder} was trained on token channels {meta.get('token_channels')}"
                              f", the buyer schema has {dict(TOKEN_CHANNELS)}; retrain it")
    model = PersonaVQVAE(PersonaVQVAEConfig(**meta["model"]))
    state = load_file(str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not fit the config in {cfg_file} ({exc}); the two "
                              "files come from different runs: retrain or restore the pair") from exc
    if not bool(model.vq._codebook.initted):
        raise CheckpointError(f"{folder} holds an uninitialised codebook; retrain it")
    model.eval()
    return PersonaModel(model=model, scaler=FeatureScaler.from_dict(meta["scaler"]),
                        history=list(meta.get("history", [])), info=dict(meta.get("info", {})))
