"""The scripted buyer that solves every task on the bundled shop (a task's oracle).

It reads only the observation (the page text) plus the goal it was given at ``reset``; with a
structured goal (:class:`~simpersona_env.env.tasks.Goal`) it searches for the goal's product,
picks the goal's options, adds it to the cart and checks out; with no goal it buys the first
product it sees. It follows the policy protocol (``reset(persona, goal)``,
``act(observation) -> action``), so it doubles as a scripted policy.

Example:
    >>> import gymnasium as gym, simpersona_env
    >>> env = gym.make("simpersona/Storefront-v0", task="goal")
    >>> obs, info = env.reset(seed=0)
    >>> oracle = ShopOracle(); oracle.reset(-1, info["goal_spec"])
    >>> while True:
    ...     obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
    ...     if terminated or truncated:
    ...         break
    >>> reward
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simpersona_env.env.actions import ELEMENT_LINE, element_values, fill_form
from simpersona_env.env.tasks import Goal

__all__ = ["CHECKOUT_DETAILS", "ShopOracle"]

#: What the oracle types at checkout: field id -> text (the country is selected by its label).
CHECKOUT_DETAILS: dict[str, str] = {
    "field-email": "alex.buyer@example.com",
    "field-name": "Alex Buyer",
    "field-address": "1 Market Street",
    "field-city": "Springfield",
    "field-postcode": "12345",
}
_COUNTRY = "United States"
_PATH = re.compile(r"^path: (\S*)", re.MULTILINE)


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())) or "x"


class ShopOracle:
    """Scripted buyer for the bundled shop (see the module docstring).

    Args:
        max_pages: result pages looked through before giving up.
        checkout: field id -> text it types at checkout (default :data:`CHECKOUT_DETAILS`).
        country: the country option it selects.
    """

    def __init__(self, max_pages: int = 5, *, checkout: Mapping[str, str] | None = None,
                 country: str = _COUNTRY):
        self.max_pages = max_pages
        self.checkout = dict(CHECKOUT_DETAILS if checkout is None else checkout)
        self.country = country
        self.reset()

    def reset(self, persona: int = -1, goal: Goal | Mapping[str, Any] | str | None = None) -> None:
        self.goal = Goal.from_any(goal) if goal not in (None, "") else None
        self.searched = False
        self.added = False
        self.pages_seen = 0

    def act(self, observation: Mapping[str, Any]) -> str:
        text = observation["text"]
        m = _PATH.search(text)
        path = m.group(1).split("?")[0] if m else ""
        els = {e.group("id"): (e.group("role"), e.group("extra"))
               for e in ELEMENT_LINE.finditer(text)}
        target = self.goal.product_id if self.goal else None

        if "/orders/" in path:
            return "stop"
        if path.endswith("/checkout"):
            return self._checkout(text)
        if path.endswith("/cart"):
            if any(k.startswith("cart-qty-") for k in els) and "checkout" in els:
                return "click[checkout]"
            return self._find(els)
        if "/products/" in path:
            here = path.rsplit("/", 1)[-1]
            if target is None or here == target:
                values = element_values(text)
                for name, value in (self.goal.options.items() if self.goal else ()):
                    sid = f"option-{_slug(name)}"
                    if sid in values and values[sid] != value:
                        return f"select[{sid}][{value}]"
                if not self.added:
                    self.added = True
                    return "click[add-to-cart]"
                return "click[nav-cart]"
        return self._find(els)

    def _find(self, els: Mapping[str, tuple[str, str]]) -> str:
        if self.added:
            return "click[nav-cart]"
        target = self.goal.product_id if self.goal else None
        if target is None:
            first = next((k for k in els if k.startswith("product-")), None)
            if first:
                return f"click[{first}]"
        elif f"product-{target}" in els:
            return f"click[product-{target}]"
        if not self.searched and self.goal is not None:
            self.searched = True
            return f"search[{self.goal.product_title or self.goal.product_type}]"
        if "page-next" in els and self.pages_seen < self.max_pages:
            self.pages_seen += 1
            return "click[page-next]"
        if target is None:
            return "click[nav-home]" if "nav-home" in els else "stop"
        return "stop"  # the product cannot be found: give up rather than wander

    def _checkout(self, text: str) -> str:
        todo = fill_form(text, self.checkout, self.country)
        return todo[0] if todo else "click[place-order]"
