"""Per-merchant buyer populations: counts and shares over the K buyer types, and seeded sampling.

A population is what a merchant's simulation draws personas from: ``k ~ p_m``.

Example:
    >>> pop = Population("shop-1", [6, 3, 1, 0])
    >>> pop.shares
    [0.6, 0.3, 0.1, 0.0]
    >>> pop.sample(5, seed=0).tolist() == pop.sample(5, seed=0).tolist()
    True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simpersona_env.errors import ConfigError, DataError

__all__ = ["Population", "populations_from_types", "write_populations", "read_populations",
           "ALL_MERCHANTS"]

#: Key of the population over all merchants together in :func:`populations_from_types`.
ALL_MERCHANTS = "__all__"


@dataclasses.dataclass
class Population:
    """A merchant's buyers counted by type.

    Attributes:
        merchant_id: the merchant (or :data:`ALL_MERCHANTS`).
        counts: buyers of each type, length K.
    """

    merchant_id: str
    counts: list[int]

    @property
    def k(self) -> int:
        """Number of types."""
        return len(self.counts)

    @property
    def n(self) -> int:
        """Number of buyers."""
        return int(sum(self.counts))

    @property
    def shares(self) -> list[float]:
        """Share of each type (sums to 1; all 0 for an empty population)."""
        n = self.n
        return [c / n if n else 0.0 for c in self.counts]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Draw ``n`` buyer types i.i.d. from the shares, reproducibly.

        Raises:
            ConfigError: ``n < 0``.
            DataError: an empty population (no buyers to take shares from).
        """
        if n < 0:
            raise ConfigError(f"cannot sample n={n} personas; pass n >= 0")
        if self.n == 0:
            raise DataError(f"population of {self.merchant_id!r} is empty; assign its buyers "
                            "first (`simpersona personas assign`)")
        rng = np.random.default_rng(seed)
        return rng.choice(self.k, size=n, p=np.asarray(self.shares))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: merchant, n, counts and shares."""
        return {"merchant_id": self.merchant_id, "n": self.n, "counts": list(self.counts),
                "shares": self.shares}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Population:
        """Inverse of :meth:`to_dict` (shares are recomputed from counts)."""
        return cls(merchant_id=str(d["merchant_id"]), counts=[int(c) for c in d["counts"]])


def populations_from_types(merchant_ids: Sequence[str] | np.ndarray, types: np.ndarray,
                           k: int) -> dict[str, Population]:
    """One :class:`Population` per merchant, plus :data:`ALL_MERCHANTS` over everyone.

    Raises:
        DataError: a type outside ``0..k-1`` or mismatched lengths.
    """
    m = np.asarray(merchant_ids).astype(str)
    t = np.asarray(types).astype(np.int64)
    if len(m) != len(t):
        raise DataError(f"{len(m)} merchant ids but {len(t)} types; pass one type per buyer")
    if len(t) and (t.min() < 0 or t.max() >= k):
        raise DataError(f"types must be in 0..{k - 1}, got {t.min()}..{t.max()}; "
                        "assign them with the same model (k) as the population")
    out = {ALL_MERCHANTS: Population(ALL_MERCHANTS, np.bincount(t, minlength=k).tolist())}
    for merchant in sorted(set(m.tolist())):
        out[merchant] = Population(merchant, np.bincount(t[m == merchant], minlength=k).tolist())
    return out


def write_populations(pops: dict[str, Population], path: str | Path,
                      meta: dict[str, Any] | None = None) -> Path:
    """Save populations as JSON: ``{"k", "meta", "populations": {merchant: {...}}}``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    k = next(iter(pops.values())).k if pops else 0
    doc = {"k": k, "meta": meta or {}, "populations": {m: v.to_dict() for m, v in pops.items()}}
    p.write_text(json.dumps(doc, indent=2) + "\n")
    return p


def read_populations(path: str | Path) -> dict[str, Population]:
    """Load populations written by :func:`write_populations`.

    Raises:
        DataError: not a populations file.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        return {m: Population.from_dict(v) for m, v in doc["populations"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{p} is not a populations file ({exc}); write it with "
                        "`simpersona personas assign`") from exc
