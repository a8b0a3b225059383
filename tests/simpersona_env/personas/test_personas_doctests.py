"""The examples in the persona modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["simpersona_env.synthetic", "simpersona_env.personas.data",
           "simpersona_env.personas.model", "simpersona_env.personas.population",
           "simpersona_env.personas.quality", "simpersona_env.personas.baselines"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
