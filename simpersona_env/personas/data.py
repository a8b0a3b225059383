"""Buyer tables in, model arrays out: loading, validation and feature standardization.

Reads buyer representations (``simpersona_env/buyers/spec.py``) and turns them into the
dense numpy arrays the VQ-VAE and the k-means baseline share, so that both see exactly the
same standardized aggregates. No torch here: the baseline, the report and the populations
use this module without loading it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from simpersona_env.buyers.spec import (
    FEATURE_NAMES,
    OUTCOME_COLUMNS,
    SCHEMA_VERSION,
    TOKEN_CHANNELS,
    token_column,
)
from simpersona_env.errors import ConfigError, DataError, SchemaError

__all__ = [
    "LOG_FEATURES",
    "FeatureScaler",
    "BuyerArrays",
    "check_buyers",
    "check_enough_buyers",
    "to_arrays",
    "find_buyer_tables",
    "load_buyers",
    "find_events",
]

#: Heavy-tailed counts, durations and values: ``log1p`` before standardizing, so that a few
#: power users do not become the only thing a distance-based clustering sees.
LOG_FEATURES: tuple[str, ...] = ("n_sessions", "n_events", "events_per_session",
                                 "session_duration_s", "n_product_views", "order_value",
                                 "recency_days")


@dataclasses.dataclass
class FeatureScaler:
    """``log1p`` on :data:`LOG_FEATURES`, then per-feature mean / std from the training buyers.

    Saved in the checkpoint, so assignment standardizes new buyers exactly as training did.

    Example:
        >>> df = pl.DataFrame({n: [0.0, 1.0, 3.0] for n in FEATURE_NAMES})
        >>> FeatureScaler.fit(df).transform(df).shape
        (3, 16)
    """

    names: list[str]
    log: list[bool]
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, df: pl.DataFrame, names: tuple[str, ...] = FEATURE_NAMES) -> FeatureScaler:
        """Statistics of ``df``'s features (a constant feature gets std 1, not 0)."""
        log = [n in LOG_FEATURES for n in names]
        x = _raw(df, names, log)
        std = x.std(axis=0)
        return cls(names=list(names), log=log, mean=x.mean(axis=0).tolist(),
                   std=np.where(std > 1e-8, std, 1.0).tolist())

    def transform(self, df: pl.DataFrame) -> np.ndarray:
        """Standardized features, ``float32`` of shape (rows, features)."""
        x = _raw(df, tuple(self.names), self.log)
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the checkpoint config)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureScaler:
        """Inverse of :meth:`to_dict`."""
        return cls(names=list(d["names"]), log=list(d["log"]), mean=list(d["mean"]),
                   std=list(d["std"]))


def _raw(df: pl.DataFrame, names: tuple[str, ...], log: list[bool]) -> np.ndarray:
    x = df.select(list(names)).to_numpy().astype(np.float64)
    lx = np.asarray(log)
    # Why clip at 0: log1p of a (never expected) negative count would be NaN.
    x[:, lx] = np.log1p(np.clip(x[:, lx], 0.0, None))
    return x


@dataclasses.dataclass
class BuyerArrays:
    """The model's view of a buyer table (row order preserved).

    Attributes:
        tokens: ``uint8`` (N, channels, max_len), 0 = padding, channels in TOKEN_CHANNELS order.
        seq_len: ``int64`` (N,), 1..max_len.
        features: ``float32`` (N, features), standardized.
        outcomes: ``float32`` (N, len(OUTCOME_COLUMNS)), 0/1.
    """

    tokens: np.ndarray
    seq_len: np.ndarray
    features: np.ndarray
    outcomes: np.ndarray

    def __len__(self) -> int:
        return len(self.seq_len)

    def take(self, idx: np.ndarray) -> BuyerArrays:
        """The rows ``idx``."""
        return BuyerArrays(self.tokens[idx], self.seq_len[idx], self.features[idx],
                           self.outcomes[idx])


def check_buyers(df: pl.DataFrame, feature_names: tuple[str, ...] | list[str] = FEATURE_NAMES,
                 where: str = "buyer table") -> None:
    """Refuse a table the model cannot read, naming what is wrong and how to fix it.

    Raises:
        SchemaError: a missing column (another schema version, or not a buyer table).
        DataError: NaN or infinite feature values, or an empty table.
    """
    need = (["merchant_id", "buyer_id", "seq_len"] + [token_column(c) for c in TOKEN_CHANNELS]
            + list(feature_names) + list(OUTCOME_COLUMNS))
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SchemaError(f"{where} lacks column(s) {missing} of buyer schema version "
                          f"{SCHEMA_VERSION}; rebuild it with `simpersona ingest` "
                          "(or simpersona_env.buyers.build_buyers)")
    if df.height == 0:
        raise DataError(f"{where} has no buyers; check the ingest output or the split filter")
    x = df.select(list(feature_names)).to_numpy().astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        cols = {feature_names[j]: int(bad[:, j].sum()) for j in np.nonzero(bad.any(0))[0]}
        raise DataError(f"{where} has NaN or infinite feature values (column: rows) {cols}; "
                        "the buyer contract forbids them (an undefined rate is 0): rebuild it "
                        "with build_buyers, or fill them, e.g. df.fill_nan(0.0)")


def check_enough_buyers(n: int, k: int, per_code: int = 8, where: str = "training") -> None:
    """Refuse to learn ``k`` types from fewer than ``per_code * k`` buyers.

    Raises:
        ConfigError: naming both numbers and the two fixes.
    """
    if k < 2:
        raise ConfigError(f"k={k} buyer types is too few; use k >= 2 (default 16)")
    if n < per_code * k:
        raise ConfigError(f"{where} has {n} buyers, too few for k={k} types (need at least "
                          f"{per_code * k} = {per_code} per type); lower k (e.g. "
                          f"k={max(2, n // per_code)}) or add data")


def to_arrays(df: pl.DataFrame, scaler: FeatureScaler, max_len: int) -> BuyerArrays:
    """Dense arrays of a checked buyer table (sequences cut to their last ``max_len`` events).

    Raises:
        DataError: a ``seq_len`` below 1 or not matching its token lists.
    """
    n = df.height
    seq_len = df["seq_len"].to_numpy().astype(np.int64)
    if n and seq_len.min() < 1:
        raise DataError(f"{int((seq_len < 1).sum())} buyers have seq_len < 1; every buyer has "
                        "at least one event: rebuild the table with build_buyers")
    tokens = np.zeros((n, len(TOKEN_CHANNELS), max_len), dtype=np.uint8)
    for c, channel in enumerate(TOKEN_CHANNELS):
        col = df[token_column(channel)]
        lens = col.list.len().to_numpy().astype(np.int64)
        if not np.array_equal(lens, seq_len):
            raise DataError(f"{token_column(channel)} lengths differ from seq_len on "
                            f"{int((lens != seq_len).sum())} buyers; rebuild the table")
        flat = col.explode().to_numpy().astype(np.uint8)
        # Keep the last max_len tokens (the spec keeps the most recent events), left-aligned.
        keep = np.minimum(lens, max_len)
        start = np.cumsum(lens) - lens + (lens - keep)
        row = np.repeat(np.arange(n), keep)
        pos = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
        tokens[row, c, pos] = flat[np.repeat(start, keep) + pos]
    return BuyerArrays(
        tokens=tokens,
        seq_len=np.minimum(seq_len, max_len),
        features=scaler.transform(df),
        outcomes=df.select(list(OUTCOME_COLUMNS)).to_numpy().astype(np.float32),
    )


def find_buyer_tables(path: str | Path) -> list[Path]:
    """Buyer-table folders (with ``manifest.json``) at or under ``path``.

    ``path`` may be a ``buyers.parquet`` file, its folder, or an ingest output folder holding
    one or more buyer tables (e.g. ``runs/ingest`` with ``rees46/buyers`` and ``taobao/buyers``).
    """
    from simpersona_env.buyers.represent import BUYERS_FILE, MANIFEST_FILE

    p = Path(path).expanduser()
    if p.is_file():
        return [p.parent]
    if (p / MANIFEST_FILE).exists() and (p / BUYERS_FILE).exists():
        return [p]
    if p.is_dir():
        return sorted(m.parent for m in p.rglob(MANIFEST_FILE) if (m.parent / BUYERS_FILE).exists())
    return []


def load_buyers(data: str | Path) -> pl.DataFrame:
    """Read one or more buyer tables (comma-separated paths), checking their schema version.

    Raises:
        DataError: when no buyer table is found.
        SchemaError: a table of another schema version (from ``read_buyers``).
    """
    from simpersona_env.buyers.represent import read_buyers

    frames = []
    for part in str(data).split(","):
        tables = find_buyer_tables(part.strip())
        if not tables:
            raise DataError(f"no buyer table (buyers.parquet + manifest.json) at or under "
                            f"{part.strip()!r}; run `simpersona ingest` first, or pass "
                            "data=synthetic for generated buyers")
        frames += [read_buyers(t) for t in tables]
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def find_events(data: str | Path) -> list[Path]:
    """Canonical event Parquet files beside the buyer tables found under ``data``.

    An ingest output folder holds ``events/`` next to ``buyers/``; the report reads them for
    top categories. Returns an empty list when there are none.
    """
    out: list[Path] = []
    for part in str(data).split(","):
        for table in find_buyer_tables(part.strip()):
            for root in (table.parent, table):
                ev = root / "events"
                if ev.is_dir():
                    out += sorted(ev.rglob("*.parquet"))
                elif ev.with_suffix(".parquet").is_file():
                    out.append(ev.with_suffix(".parquet"))
    return sorted(set(out))
