"""Errors the bundled shop raises on purpose.

``storefront_mock`` must not import ``simpersona_env`` (which imports gymnasium), so the
shop keeps its own tiny hierarchy. The classes mirror ``simpersona_env.errors`` by name and
by base (``ValueError``, ``KeyError``) so that callers can catch either; the library
re-raises them as its own where it needs one hierarchy.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["StorefrontError", "UnknownNameError", "DataMissingError", "CatalogError",
           "did_you_mean"]


class StorefrontError(Exception):
    """Base class of every error the shop raises on purpose."""


class UnknownNameError(StorefrontError, ValueError, KeyError):
    """An unknown store preset, theme, product or collection; the message names the choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices)}"
                         f"{did_you_mean(name, self.choices)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DataMissingError(StorefrontError, FileNotFoundError):
    """A data-backed store was asked for and its file is not there."""


class CatalogError(StorefrontError, ValueError):
    """A catalog file or event log cannot be read as a catalog (missing columns, bad values)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
