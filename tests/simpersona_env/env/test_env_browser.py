"""The browser backend: parity with the http backend, the oracle in Chromium, typed errors for
a missing browser and an unreachable URL, a site that is not the bundled shop, envs in threads
sharing the one browser."""

from __future__ import annotations

import functools
import http.server
import json
import re
import socket
import threading
from urllib.parse import urlsplit

import gymnasium as gym
import pytest

import simpersona_env  # noqa: F401 (registers the ids)
from simpersona_env.env import ShopOracle
from simpersona_env.errors import BrowserNotFoundError, UnreachableURLError
from storefront_mock import create_app, make_stores

pytestmark = pytest.mark.browser
ENV_ID = "simpersona/Storefront-v0"


def _first(text: str, prefix: str) -> str:
    return re.search(rf"^\[({re.escape(prefix)}[^\]]*)\]", text, re.M).group(1)


def _options(text: str, sid: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"[{sid}] "))
    return json.loads(line.split(" options=", 1)[1])


def scripted(step: int, obs: dict) -> str:
    """The parity episode: search, collection (sort), product (option, quantity), add, cart
    (update), back, checkout with an invalid then a valid email, order."""
    text = obs["text"]
    script = [
        lambda: "search[linen dress]",
        lambda: "click[nav-collection-apparel]",
        lambda: "select[sort][Price: high to low]",
        lambda: "type[filter-max-price][150]",
        lambda: "click[filter-apply]",
        lambda: f"click[{_first(text, 'product-')}]",
        lambda: f"select[option-size][{_options(text, 'option-size')[-1]}]",
        lambda: "type[quantity][2]",
        lambda: "click[add-to-cart]",
        lambda: f"type[{_first(text, 'cart-qty-')}][3]",
        lambda: f"click[{_first(text, 'cart-update-')}]",
        lambda: "back",
        lambda: "click[nav-cart]",
        lambda: "click[checkout]",
        lambda: "type[field-email][not-an-email]",
        lambda: "type[field-name][Ann Lee]",
        lambda: "type[field-address][1 Main Street]",
        lambda: "type[field-city][Springfield]",
        lambda: "type[field-postcode][12345]",
        lambda: "select[field-country][Germany]",
        lambda: "click[place-order]",  # -> the email error, the typed values kept
        lambda: "type[field-email][ann@example.com]",
        lambda: "click[place-order]",
    ]
    return script[step]()


def _episode(backend: str) -> list[tuple]:
    env = gym.make(ENV_ID, backend=backend, n_products=40)
    try:
        obs, info = env.reset(seed=5, options={"persona": 2})
        out = [(obs["text"], obs["goal"], int(obs["persona"]), obs["last_action_error"],
                urlsplit(obs["url"]).path, info["stage"], info["events"])]
        for i in range(23):
            action = scripted(i, obs)
            obs, reward, terminated, truncated, info = env.step(action)
            # the URL's host differs (no socket on http); everything else must not
            out.append((action, obs["text"], obs["goal"], int(obs["persona"]),
                        obs["last_action_error"], urlsplit(obs["url"]).path,
                        urlsplit(obs["url"]).query, reward, terminated, truncated,
                        info["stage"], info["events"], info["cart_value"], info["purchased"]))
        return out
    finally:
        env.close()


def test_parity_of_a_scripted_episode():
    http, browser = _episode("http"), _episode("playwright")
    for i, (a, b) in enumerate(zip(http, browser)):
        assert a == b, f"step {i} differs"
    assert len(http) == len(browser) == 24
    # the episode did what it says: an error shown then fixed, and a purchase
    texts = [row[1] for row in http[1:]]
    assert any('data-sp-error' not in t and "valid email" in t and 'value="Ann Lee"' in t
               for t in texts)
    assert http[-1][8] is True and http[-1][7] == 1.0 and http[-1][10] == "purchase"
    assert all(row[4] == "" for row in http[1:]), [row[4] for row in http[1:] if row[4]]


def test_goal_oracle_in_the_browser():
    env = gym.make(ENV_ID, backend="playwright", task="goal")
    try:
        obs, info = env.reset(seed=4)
        oracle = ShopOracle()
        oracle.reset(-1, info["goal_spec"])
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
            if terminated or truncated:
                break
        assert reward == 1.0 and info["stage"] == "purchase"
        assert info["purchased"] == [info_goal_pid(env)]
    finally:
        env.close()


def info_goal_pid(env) -> str:
    return env.unwrapped._goal.product_id


def test_missing_browser_gives_an_install_hint():
    with pytest.raises(BrowserNotFoundError, match="playwright install chromium"):
        gym.make(ENV_ID, backend="playwright", browser_path="/nonexistent/chrome")
    with pytest.raises(BrowserNotFoundError, match="could not launch.*playwright install"):
        gym.make(ENV_ID, backend="playwright", browser_path="/bin/false")


def test_unreachable_url_raises(chromium):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = gym.make(ENV_ID, store=f"http://127.0.0.1:{port}/", backend="playwright")
    try:
        with pytest.raises(UnreachableURLError, match=f"127.0.0.1:{port}"):
            env.reset(seed=0)
    finally:
        env.close()


TINY_SHOP = {
    "index.html": """<html><head><title>Tiny Shop</title></head><body><h1>Tiny Shop</h1>
<form action="/search.html"><input type="search" name="q" placeholder="Find"><button>Find</button></form>
<ul><li><a href="/teapot.html">Teapot</a> $20</li><li><a href="/cup.html">Cup</a> $5</li></ul></body></html>""",
    "search.html": """<html><head><title>Results</title></head><body><a href="/teapot.html">Teapot</a></body></html>""",
    "teapot.html": """<html><head><title>Teapot</title></head><body><h1>Teapot</h1><p>$20</p>
<form action="/done.html" method="get"><select name="colour"><option>Red</option><option>Blue</option></select>
<button type="submit">Buy now</button></form><a href="/">Back home</a></body></html>""",
    "done.html": """<html><head><title>Done</title></head><body><p>Paid, see you soon.</p></body></html>""",
}


@pytest.fixture
def tiny_shop(tmp_path):
    for name, html in TINY_SHOP.items():
        (tmp_path / name).write_text(html)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def test_other_site_ids_from_the_dom_and_conversion_by_url(tiny_shop, chromium):
    env = gym.make(ENV_ID, store=tiny_shop + "/index.html", backend="playwright",
                   conversion_url_patterns=[r"/done\.html"], conversion_text_patterns=[])
    try:
        obs, info = env.reset(seed=0)
        assert '[e0] textbox "Find" value=""' in obs["text"]
        assert '[e2] link "Teapot"' in obs["text"] and info["events"] == []
        obs, *_ = env.step("search[teapot]")  # the page's search box, found by type=search
        assert obs["url"].endswith("/search.html?q=teapot")
        obs, *_ = env.step("click[e0]")
        assert "# Teapot" in obs["text"]
        obs, *_ = env.step("select[e0][Blue]")
        assert '[e0] combobox "colour" value="Blue"' in obs["text"]
        obs, reward, terminated, _, info = env.step("click[e1]")
        assert obs["url"].endswith("/done.html?colour=Blue")
        assert terminated and reward == 1.0 and info["converted"] and info["stage"] == "purchase"
    finally:
        env.close()


def test_other_site_without_a_match_does_not_convert(tiny_shop, chromium):
    env = gym.make(ENV_ID, store=tiny_shop + "/teapot.html", backend="playwright")
    try:
        env.reset(seed=0)
        obs, reward, terminated, _, info = env.step("click[e1]")  # default patterns: no match
        assert obs["url"].endswith("/done.html?colour=Red")
        assert not terminated and reward == 0.0 and info["stage"] == "visit"
    finally:
        env.close()


def test_browser_envs_in_threads_share_one_browser_and_shop(chromium):
    app = create_app(make_stores("builtin", n_products=30))
    pids = [p.product_id for p in app.state.shop.stores["builtin"].catalog.featured(4)]
    results, errors = {}, []

    def shop(i: int) -> None:
        try:
            env = gym.make(ENV_ID, app=app, backend="playwright")
            _, info = env.reset(seed=500 + i)
            env.step(f"click[product-{pids[i]}]")
            obs, _, _, _, step = env.step("click[add-to-cart]")
            results[i] = (info["visitor_id"], obs["text"], step["cart_value"])
            env.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shop, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    shop_state = app.state.shop
    for i, (vid, text, _) in results.items():
        assert [ln.product_id for ln in shop_state.visitors[vid].carts["builtin"].values()] == [pids[i]]
        assert "Cart (1)" in text
    assert len({vid for vid, _, _ in results.values()}) == 4
