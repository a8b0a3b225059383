"""The examples in the simulation and evaluation docstrings run."""

import doctest
import importlib

import pytest

MODULES = ["simpersona_env.simulation.population", "simpersona_env.simulation.episodes",
           "simpersona_env.simulation.runner", "simpersona_env.evaluation.measure",
           "simpersona_env.evaluation.goal", "simpersona_env.evaluation.population",
           "simpersona_env.evaluation.alignment"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
