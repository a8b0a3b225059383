"""A text space for web pages and actions.

Gymnasium's :class:`~gymnasium.spaces.Text` checks every character against a charset and
rejects real pages (HTML, prices, accents); like MiniWoB++ and BrowserGym, this one checks
only the type and the length.

Example:
    >>> space = AnyText(max_length=10)
    >>> space.contains("€ 9.99 <b>"), space.contains("x" * 11), space.contains(3)
    (True, False, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Space

__all__ = ["AnyText"]

_SAMPLE_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789[]-_ "))


class AnyText(Space[str]):
    """Any ``str`` of at most ``max_length`` characters."""

    def __init__(self, max_length: int = 2**20, seed: int | np.random.Generator | None = None):
        self.max_length = int(max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A short random string (not a meaningful page or action)."""
        n = int(self.np_random.integers(0, min(self.max_length, 32) + 1))
        return "".join(self.np_random.choice(_SAMPLE_CHARS, size=n))

    def __repr__(self) -> str:
        return f"AnyText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and other.max_length == self.max_length

    def to_jsonable(self, sample_n: Any) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        return list(sample_n)
