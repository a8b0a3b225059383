"""The examples in the env's docstrings run (browser examples are marked +SKIP there)."""

import doctest
import importlib

import pytest

MODULES = ["actions", "render", "spaces", "tasks", "oracle", "wrappers", "serving", "settings",
           "storefront_env", "backends.http_backend", "browser", "bench"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"simpersona_env.env.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
