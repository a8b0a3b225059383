"""Adapters that put outside agents into the env: any callable, any OpenAI-compatible endpoint.

:class:`CallablePolicy` wraps a function ``fn(observation) -> action`` (or one that also takes
the persona, goal and history as keywords). :class:`OpenAIChatPolicy` sends each observation
to a chat-completions endpoint (OpenAI, vLLM, llama.cpp server, Ollama, ...; base URL and
model name in config) with a system prompt generated from the env's own action table
(:func:`simpersona_env.env.actions.describe_actions`), and parses the first action in the
reply. A reply with no recognisable action is passed on as it is: the env reports it in
``last_action_error`` (an agent mistake is an observation, not an exception).

Example:
    >>> policy = CallablePolicy(lambda obs: "stop")
    >>> policy.reset(persona=-1, goal="")
    >>> policy.act({"text": "", "url": "/"})
    'stop'
    >>> chat = OpenAIChatPolicy(base_url="http://127.0.0.1:8000/v1", model="my-model")  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from simpersona_env.errors import ConfigError, UnreachableURLError

__all__ = ["CallablePolicy", "OpenAIChatPolicy", "parse_reply", "system_prompt", "user_prompt"]


class CallablePolicy:
    """Any function as a policy.

    Args:
        fn: ``fn(observation) -> str``; if it accepts ``persona``, ``goal`` or ``history``
            keywords they are passed too.
        on_reset: optional ``on_reset(persona, goal)`` called at each episode start.
    """

    def __init__(self, fn: Callable[..., str], on_reset: Callable[[int, str], None] | None = None):
        if not callable(fn):
            raise ConfigError(f"CallablePolicy needs a callable, got {type(fn).__name__}")
        self.fn, self.on_reset = fn, on_reset
        params = inspect.signature(fn).parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self._extra = {k for k in ("persona", "goal", "history") if var_kw or k in params}
        self.persona, self.goal, self.history = -1, "", []

    def reset(self, persona: int, goal: str) -> None:
        self.persona, self.goal, self.history = int(persona), goal, []
        if self.on_reset is not None:
            self.on_reset(int(persona), goal)

    def act(self, observation: Mapping[str, Any]) -> str:
        extra = {"persona": self.persona, "goal": self.goal, "history": list(self.history)}
        action = str(self.fn(observation, **{k: v for k, v in extra.items() if k in self._extra}))
        self.history.append(action)
        return action


_ACTION_RE = re.compile(r"\b(click|type|search|select)\s*\[[^\n]*\]|\b(back|stop)\b", re.IGNORECASE)


def parse_reply(reply: str) -> str:
    """The action in a model's reply: the first line that parses, else the first action-like
    span, else the reply itself (stripped), so that the env reports what went wrong.

    Example:
        >>> parse_reply("I will open the cart.\\nAction: click[nav-cart]")
        'click[nav-cart]'
        >>> parse_reply("```\\nstop\\n```")
        'stop'
    """
    from simpersona_env.env.actions import ActionError, parse_action

    text = reply.strip().strip("`").strip()
    for line in text.splitlines():
        line = line.strip().strip("`").strip()
        line = re.sub(r"^(action|next action)\s*:\s*", "", line, flags=re.IGNORECASE)
        try:
            return str(parse_action(line)) if line else ""
        except ActionError:
            continue
    m = _ACTION_RE.search(text)
    return m.group(0) if m else text


def system_prompt(description: str | None = None) -> str:
    """The instructions: the shop, the action table (from the env's grammar), the reply form."""
    from simpersona_env.env.actions import describe_actions

    who = f"You are this kind of buyer: {description}\n" if description else ""
    return ("You are a shopper browsing an online shop through a text view of each page. "
            "Interactive elements appear as [id] role \"label\".\n" + who +
            "Reply with exactly one action on one line, nothing else. The actions:\n"
            + describe_actions())


def user_prompt(observation: Mapping[str, Any], history: list[str], goal: str) -> str:
    """The page as the model sees it each step."""
    parts = []
    if goal:
        parts.append(f"Goal: {goal}")
    if history:
        parts.append("Your last actions: " + " ; ".join(history[-5:]))
    error = str(observation.get("last_action_error") or "")
    if error:
        parts.append(f"Your last action failed: {error}")
    parts += [f"URL: {observation.get('url', '')}", str(observation.get("text", "")),
              "Next action:"]
    return "\n".join(parts)


class OpenAIChatPolicy:
    """A hosted or local chat model behind an OpenAI-compatible ``/chat/completions`` API.

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: the model name the endpoint expects.
        api_key_env: environment variable holding the API key (none sent when unset).
        temperature: sampling temperature sent to the endpoint.
        max_tokens: reply length limit.
        seed: sent as ``seed`` (endpoints that support it sample reproducibly).
        timeout: seconds per request.
        descriptions: type index -> text, to tell the model which buyer it plays.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 0.0, max_tokens: int = 64, seed: int | None = 0,
                 timeout: float = 60.0, descriptions: Mapping[int, str] | None = None):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"policy.base_url={base_url!r} must be an http(s) URL such as "
                              "http://127.0.0.1:8000/v1")
        if not model:
            raise ConfigError("policy.model is empty; set it to the model name the endpoint serves")
        headers = {}
        key = os.environ.get(api_key_env or "", "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.max_tokens, self.seed = model, temperature, max_tokens, seed
        self.descriptions = {int(k): v for k, v in (descriptions or {}).items()}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.persona, self.goal, self.history = -1, "", []

    def reset(self, persona: int, goal: str) -> None:
        self.persona, self.goal, self.history = int(persona), goal, []

    def act(self, observation: Mapping[str, Any]) -> str:
        import httpx

        goal = str(observation.get("goal") or "") or self.goal
        body: dict[str, Any] = {
            "model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": system_prompt(self.descriptions.get(self.persona))},
                {"role": "user", "content": user_prompt(observation, self.history, goal)}]}
        if self.seed is not None:
            body["seed"] = self.seed
        try:
            resp = self.client.post(self.url, json=body)
        except httpx.TransportError as exc:
            raise UnreachableURLError(f"chat endpoint {self.url} did not answer ({exc}); check "
                                      "policy.base_url and that the server is running") from exc
        if resp.status_code >= 400:
            raise ConfigError(f"chat endpoint {self.url} answered {resp.status_code}: "
                              f"{resp.text[:300]} (check policy.model and the API key in "
                              "the policy.api_key_env variable)")
        try:
            reply = resp.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            reply = resp.text  # not the protocol: let the env report it as a bad action
        action = parse_reply(reply)
        self.history.append(action)
        return action

    def close(self) -> None:
        self.client.close()
