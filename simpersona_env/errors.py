"""The one small hierarchy of programmer-facing errors.

Agent mistakes (a bad action string) are observations, never exceptions. Everything a
*user* of the library can get wrong (a bad config value, an unknown id, a missing browser,
malformed input in strict mode) raises one of these, with a message that names the value
and the fix, and "did you mean" for ids.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "SimPersonaError",
    "ConfigError",
    "UnknownNameError",
    "DataError",
    "SchemaError",
    "BrowserNotFoundError",
    "UnreachableURLError",
    "CheckpointError",
    "did_you_mean",
]


class SimPersonaError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SimPersonaError, ValueError):
    """A config value is missing or invalid; the message names the key and the fix."""


class UnknownNameError(ConfigError, KeyError):
    """An id or choice (store, task, backend, data source, ...) that does not exist."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices)}"
                         f"{did_you_mean(name, self.choices)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DataError(SimPersonaError, ValueError):
    """Input data is malformed in a way that cannot be quarantined (e.g. strict mode)."""


class SchemaError(DataError):
    """Input lacks required columns, or a file is of another schema version."""


class BrowserNotFoundError(SimPersonaError, RuntimeError):
    """No Chromium could be launched; the message says how to install one."""


class UnreachableURLError(SimPersonaError, ConnectionError):
    """A storefront URL did not answer."""


class CheckpointError(SimPersonaError, ValueError):
    """A checkpoint does not match what it is loaded into (K, features, schema version)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
