"""Outside policies: any callable, and an OpenAI-compatible endpoint served for real on
127.0.0.1 (a small Starlette app speaking the chat-completions protocol)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from agent_helpers import home_obs, product_obs

from agents.policies.external import CallablePolicy, OpenAIChatPolicy, parse_reply
from simpersona_env.errors import ConfigError, UnreachableURLError


def test_callable_policy_passes_what_it_asks_for():
    seen = []

    def fn(obs, persona, history):
        seen.append((persona, list(history)))
        return "stop" if history else "click[nav-cart]"

    p = CallablePolicy(fn)
    p.reset(2, "a mug")
    assert p.act(home_obs(2)) == "click[nav-cart]"
    assert p.act(home_obs(2)) == "stop"
    assert seen == [(2, []), (2, ["click[nav-cart]"])]
    assert CallablePolicy(lambda obs: "back").act(home_obs(0)) == "back"
    with pytest.raises(ConfigError, match="callable"):
        CallablePolicy("stop")  # type: ignore[arg-type]


@pytest.mark.parametrize("reply,action", [
    ("click[nav-cart]", "click[nav-cart]"),
    ("I'll look at the cart.\nAction: click[nav-cart]", "click[nav-cart]"),
    ("```\nsearch[red mug]\n```", "search[red mug]"),
    ("Sure! I would type[field-email][a@b.c] now.", "type[field-email][a@b.c]"),
    ("I think I should leave, stop.", "stop"),
    ("no idea", "no idea"),  # passed on: the env reports it in last_action_error
])
def test_parse_reply(reply, action):
    assert parse_reply(reply) == action


class _ChatServer:
    """A real HTTP server on an ephemeral port speaking /v1/chat/completions."""

    def __init__(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.requests: list[dict] = []

        async def chat(request: Request):
            body = await request.json()
            self.requests.append({"body": body, "auth": request.headers.get("authorization")})
            if body.get("model") != "shop-model":
                return JSONResponse({"error": {"message": "model not found"}}, status_code=404)
            page = body["messages"][-1]["content"]
            if re.search(r"^\[add-to-cart\]", page, re.MULTILINE):
                content = "The product looks good.\nAction: click[add-to-cart]"
            elif m := re.search(r"^\[(product-[^\]]+)\]", page, re.MULTILINE):
                content = "click[" + m.group(1) + "]"
            else:
                content = "hmm"
            return JSONResponse({"id": "c1", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}]})

        import uvicorn

        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "chat server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def chat_server():
    server = _ChatServer()
    yield server
    server.close()


def test_openai_chat_policy_against_local_server(chat_server, monkeypatch):
    monkeypatch.setenv("SHOP_KEY", "sk-test")
    p = OpenAIChatPolicy(chat_server.base_url, "shop-model", api_key_env="SHOP_KEY",
                         descriptions={1: "a bargain hunter"})
    p.reset(1, "")
    assert p.act(home_obs(1)) == "click[product-mug-red]"
    assert p.act(product_obs(1, "mug-red")) == "click[add-to-cart]"
    assert p.act({"text": "# Empty", "url": "/s/demo/cart"}) == "hmm"  # env will report it
    req = chat_server.requests[0]
    assert req["auth"] == "Bearer sk-test"
    system, user = req["body"]["messages"]
    assert "click[id]" in system["content"] and "a bargain hunter" in system["content"]
    assert "[nav-cart] link" in user["content"]
    assert "Your last actions: click[product-mug-red]" in chat_server.requests[1]["body"]["messages"][1]["content"]
    p.close()


def test_openai_chat_policy_in_env(chat_server):
    """The adapter drives the real env; an unparsable reply becomes an env error, not a crash."""
    gym = pytest.importorskip("gymnasium")
    import simpersona_env  # noqa: F401

    env = gym.make("simpersona/Storefront-v0", store="builtin", backend="http", max_episode_steps=4)
    p = OpenAIChatPolicy(chat_server.base_url, "shop-model")
    obs, _ = env.reset(seed=0)
    p.reset(-1, "")
    errors = []
    done = False
    while not done:
        obs, _, term, trunc, _ = env.step(p.act(obs))
        errors.append(obs["last_action_error"])
        done = term or trunc
    assert p.history[0].startswith("click[product-") and errors[0] == ""
    env.close()


def test_openai_chat_policy_errors(chat_server):
    with pytest.raises(ConfigError, match="http"):
        OpenAIChatPolicy("127.0.0.1:1/v1", "m")
    p = OpenAIChatPolicy(chat_server.base_url, "other-model")
    p.reset(-1, "")
    with pytest.raises(ConfigError, match="404"):
        p.act(home_obs(0))
    dead = OpenAIChatPolicy("http://127.0.0.1:9/v1", "shop-model", timeout=2)
    dead.reset(-1, "")
    with pytest.raises(UnreachableURLError, match="127.0.0.1:9"):
        dead.act(home_obs(0))
