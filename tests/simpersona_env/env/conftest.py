"""Fixtures of the env tests (kept here, not in tests/conftest.py: a conftest at tests/ puts
tests/ on sys.path, where tests/agents and tests/simpersona_env would shadow the packages).

* ``chromium``: the process's one shared headless Chromium (session-scoped); browser envs in
  the tests take their contexts from it.
* ``shop_app``: one bundled-shop app (builtin store, 60 products) for the session.
* ``served_shop``: that app served on 127.0.0.1 at an ephemeral port (``.url``, ``.app``).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chromium():
    from simpersona_env.env.browser import shared_browser

    return shared_browser()


@pytest.fixture(scope="session")
def shop_app():
    from storefront_mock import create_app, make_stores

    return create_app(make_stores("builtin", n_products=60))


@pytest.fixture(scope="session")
def served_shop(shop_app):
    from simpersona_env.env.serving import serve_shared

    return serve_shared(shop_app)
