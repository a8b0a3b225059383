"""Shared by every test package: loading a benchmark script of ``bench/`` as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench_script():
    """``bench_script("alignment_ceiling")``: that ``bench/*.py`` script as a module (the
    scripts are not a package; their ``main(argv)`` runs them)."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        assert spec and spec.loader, name
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
