"""The policy protocol and the helpers every policy shares.

A policy is anything with ``reset(persona, goal)`` and ``act(observation) -> action``
(:class:`Policy`); the env never imports one. Policies that can act for several envs at once
also implement :class:`BatchPolicy` (``reset_batch`` / ``act_batch``).

The actions a policy may take on a page come from the env's own grammar
(:func:`simpersona_env.env.actions.valid_actions`): concrete actions such as
``click[add-to-cart]`` and templates whose free text is to be filled in, such as
``search[<text>]`` (see :data:`TEXT_SLOT`, :func:`fill`).

Example:
    >>> obs = {"text": '[nav-cart] link "Cart"', "url": "/s/a/"}
    >>> candidate_actions(obs)
    ['click[nav-cart]', 'search[<text>]', 'back', 'stop']
    >>> fill("search[<text>]", "red mug")
    'search[red mug]'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

__all__ = [
    "TEXT_SLOT",
    "BatchPolicy",
    "Policy",
    "action_form",
    "candidate_actions",
    "fill",
    "is_template",
    "is_valid_action",
    "page_elements",
    "page_kind",
    "template_prefix",
]

#: The placeholder for free text in an action template (``type[id][<text>]``, ``search[<text>]``).
TEXT_SLOT = "<text>"


@runtime_checkable
class Policy(Protocol):
    """What the env needs from an agent: start an episode, then one action per observation."""

    def reset(self, persona: int, goal: str) -> None:
        """Start an episode as buyer type ``persona`` (-1: none) with ``goal`` ("" : none)."""

    def act(self, observation: Mapping[str, Any]) -> str:
        """The next action string for this observation."""


@runtime_checkable
class BatchPolicy(Policy, Protocol):
    """A policy that acts for ``n`` envs at once (slot ``i`` is env ``i``)."""

    def reset_batch(self, personas: Sequence[int], goals: Sequence[str]) -> None:
        """Start ``len(personas)`` episodes, one per slot."""

    def act_batch(self, observations: Sequence[Mapping[str, Any]]) -> list[str]:
        """One action per slot, in slot order."""


def candidate_actions(observation: Mapping[str, Any]) -> list[str]:
    """The actions valid on this page (the env's ``valid_actions``), templates included."""
    from simpersona_env.env.actions import valid_actions

    return valid_actions(observation)


# ids whose tail names one item of many (docs/storefront.md): the form keeps the prefix only
_ITEM_PREFIXES = ("nav-collection-", "collection-", "product-", "cart-qty-", "cart-update-",
                  "cart-remove-", "cart-item-", "option-", "store-")


def action_form(action: str) -> str:
    """The form of an action: its verb and the kind of element, without item ids or text.

    ``click[product-123]`` -> ``click[product-*]``, ``search[red mug]`` -> ``search[*]``,
    ``type[field-email][a@b.c]`` -> ``type[field-email]``, ``stop`` -> ``stop``. Ids of one
    item among many (products, collections, cart lines; docs/storefront.md) keep their prefix;
    on other sites, runs of digits become ``#``.

    Example:
        >>> [action_form(a) for a in ["click[product-123]", "search[mug]", "back"]]
        ['click[product-*]', 'search[*]', 'back']
    """
    if "[" not in action:
        return action.strip()
    verb, rest = action.split("[", 1)
    if verb == "search":
        return "search[*]"
    eid = rest.split("]", 1)[0]
    for prefix in _ITEM_PREFIXES:
        if eid.startswith(prefix):
            return f"{verb}[{prefix}*]"
    return f"{verb}[{re.sub(r'[0-9]+', '#', eid)}]"


def is_template(action: str) -> bool:
    """Whether an action has free text still to fill in."""
    return TEXT_SLOT in action


def template_prefix(template: str) -> str:
    """The part of a template before its free text: ``type[field-email][``."""
    return template[: template.index(TEXT_SLOT)]


def fill(template: str, text: str) -> str:
    """Put ``text`` into a template's free-text slot (newlines and ``]`` become spaces)."""
    clean = " ".join(text.replace("]", " ").split())
    return template.replace(TEXT_SLOT, clean, 1)


def page_kind(observation: Mapping[str, Any]) -> str:
    """The kind of page of the bundled shop from its URL (docs/storefront.md), else ``other``.

    One of ``home``, ``collection``, ``search``, ``product``, ``cart``, ``checkout``,
    ``order``, ``other``.
    """
    parts = [p for p in urlsplit(str(observation.get("url", ""))).path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "s":
        rest = parts[2:]
        if not rest:
            return "home"
        return {"collections": "collection", "search": "search", "products": "product",
                "cart": "cart", "checkout": "checkout", "orders": "order"}.get(rest[0], "other")
    return "other"


def page_elements(observation: Mapping[str, Any]) -> dict[str, tuple[str, str, list[str]]]:
    """Element id -> (role, label, options) for every interactive element on the page."""
    from simpersona_env.env.actions import ELEMENT_LINE

    out: dict[str, tuple[str, str, list[str]]] = {}
    for m in ELEMENT_LINE.finditer(str(observation.get("text", ""))):
        extra = m.group("extra")
        options: list[str] = []
        if "options=" in extra:
            try:
                options = json.loads(extra[extra.index("options=") + 8:].strip())
            except json.JSONDecodeError:
                options = []
        out[m.group("id")] = (m.group("role"), json.loads(m.group("label")), options)
    return out


def is_valid_action(action: str, observation: Mapping[str, Any]) -> bool:
    """Whether ``action`` parses and names only ids (and options) present on this page."""
    from simpersona_env.env.actions import ActionError, parse_action

    try:
        parsed = parse_action(action)
    except ActionError:
        return False
    if parsed.name in {"back", "stop"}:
        return True
    if parsed.name == "search":
        return bool(parsed.args[0].strip())
    elements = page_elements(observation)
    eid = parsed.args[0]
    if eid not in elements:
        return False
    role, _, options = elements[eid]
    if parsed.name == "click":
        return role in {"link", "button", "checkbox", "radio"}
    if parsed.name == "type":
        return role == "textbox"
    if parsed.name == "select":
        return role == "combobox" and parsed.args[1] in options
    return False
