"""Fixtures for the bundled shop's tests: real catalogs, the real app, real clients."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

# A conftest in tests/ puts tests/ on sys.path, where tests/storefront_mock (no __init__) would
# be taken for the package as a namespace package unless the repository root is searchable
# too: a regular package anywhere on sys.path wins over a namespace portion.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

import pytest
from starlette.testclient import TestClient

from storefront_mock import create_app, make_stores
from storefront_mock.canonical import default_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder; tests that need it skip with a clear message when it is absent."""
    root = default_data_dir()
    if not (root / "catalogs").is_dir():
        pytest.skip(f"real data not found at {root} (set SIMPERSONA_DATA_DIR to the data folder)")
    return root


@pytest.fixture(scope="session")
def builtin_stores():
    return make_stores("builtin", n_products=100)


class StepClock:
    """A clock that advances a fixed step per call: event timestamps are then exact."""

    def __init__(self, start: float = 1_767_225_600.0, step: float = 1.0):  # 2026-01-01 UTC
        self._count = itertools.count()
        self.start, self.step = start, step
        self.offset = 0.0

    def __call__(self) -> float:
        return self.start + self.offset + next(self._count) * self.step


@pytest.fixture
def app(builtin_stores):
    return create_app(builtin_stores)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://shop.test") as c:
        yield c


@pytest.fixture
def make_client():
    """Factory of independent visitors (own cookie jar), optionally with a chosen visitor id."""
    made = []

    def make(app, visitor: str | None = None) -> TestClient:
        c = TestClient(app, base_url="http://shop.test")
        if visitor:
            c.cookies.set("sp_visitor", visitor)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def step_clock():
    return StepClock
