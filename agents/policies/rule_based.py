"""The rule-based buyer: a non-LLM persona baseline driven by its type's statistics.

Each buyer type gets a :class:`TypeProfile` (browse depth, search share, bounce, cart and
purchase propensities), e.g. from the per-type means of the buyer features in the persona
report (:meth:`TypeProfile.from_features`). The buyer then browses the bundled shop with
simple rules: look at products (by collection or by search) until its sampled browse depth
is reached, add a viewed product to the cart with probability ``view_to_cart``, and on the
cart page go to checkout with probability ``cart_to_purchase``, filling the checkout form
from a per-episode buyer profile (:func:`agents.profile.checkout_details`, the generator the
replay and the LLM policy use).

Example:
    >>> profiles = {0: TypeProfile(views_per_session=1, view_to_cart=0.0),
    ...             1: TypeProfile(views_per_session=4, view_to_cart=0.5, cart_to_purchase=0.8)}
    >>> buyer = RuleBasedBuyer(profiles, seed=0)
    >>> buyer.reset(persona=1, goal="")
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.policies.base import page_elements, page_kind
from agents.profile import ProfileStream
from simpersona_env.errors import ConfigError, UnknownNameError

__all__ = ["RuleBasedBuyer", "TypeProfile", "load_profiles"]


@dataclass
class TypeProfile:
    """The behaviour statistics of one buyer type (rates per session)."""

    views_per_session: float = 3.0  # mean product views in a session (browse depth)
    view_to_cart: float = 0.1  # P(add to cart | product viewed)
    cart_to_purchase: float = 0.3  # P(buy | reached the cart with items)
    search_share: float = 0.2  # P(search rather than open a collection) when looking
    bounce: float = 0.1  # P(leave on the first page)

    def __post_init__(self) -> None:
        for name in ("view_to_cart", "cart_to_purchase", "search_share", "bounce"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"TypeProfile.{name}={v} is a probability; it must be in [0, 1]")
        if self.views_per_session < 0:
            raise ConfigError(f"TypeProfile.views_per_session={self.views_per_session} must be >= 0")

    @classmethod
    def from_features(cls, features: Mapping[str, float]) -> TypeProfile:
        """From a type's mean buyer features (``simpersona_env.buyers.spec.FEATURE_NAMES``).

        Uses ``n_product_views``/``n_sessions``, ``view_to_cart``, ``cart_to_purchase``,
        ``search_share`` and, when present, the ``bounced`` outcome rate.
        """
        n_sessions = max(float(features.get("n_sessions", 1.0)), 1.0)
        clip = lambda v: min(max(float(v), 0.0), 1.0)
        return cls(views_per_session=float(features.get("n_product_views", 3.0)) / n_sessions,
                   view_to_cart=clip(features.get("view_to_cart", 0.1)),
                   cart_to_purchase=clip(features.get("cart_to_purchase", 0.3)),
                   search_share=clip(features.get("search_share", 0.2)),
                   bounce=clip(features.get("bounced", 0.1)))


def describe_profile(p: TypeProfile) -> str:
    """A plain-words description of a type, for the prompt-persona baseline.

    Example:
        >>> describe_profile(TypeProfile(views_per_session=1, view_to_cart=0.0, bounce=0.5))
        'Often leaves on the first page (50% of visits). Looks at about 1 product per visit. Rarely adds anything to the cart (0% of viewed products). Buys what is in the cart 30% of the time. Usually browses collections rather than searching.'
    """
    def often(x: float) -> str:
        return "Often" if x >= 0.3 else "Sometimes" if x >= 0.1 else "Almost never"

    cart = "Rarely adds" if p.view_to_cart < 0.1 else "Sometimes adds" if p.view_to_cart < 0.4 else "Readily adds"
    views = round(p.views_per_session)
    return (f"{often(p.bounce)} leaves on the first page ({p.bounce:.0%} of visits). "
            f"Looks at about {views} product{'s' if views != 1 else ''} per visit. "
            f"{cart} anything to the cart ({p.view_to_cart:.0%} of viewed products). "
            f"Buys what is in the cart {p.cart_to_purchase:.0%} of the time. "
            + ("Usually searches for what it wants." if p.search_share >= 0.5 else
               "Usually browses collections rather than searching."))


def load_profiles(path: str | Path) -> dict[int, TypeProfile]:
    """Read ``{"<type>": {profile fields or buyer features}}`` from JSON."""
    data = json.loads(Path(path).read_text())
    names = set(TypeProfile.__dataclass_fields__)
    return {int(k): TypeProfile(**v) if set(v) <= names else TypeProfile.from_features(v)
            for k, v in data.items()}


class RuleBasedBuyer:
    """A scripted buyer whose propensities come from its type's :class:`TypeProfile`.

    Args:
        profiles: type index -> profile; a JSON path is read with :func:`load_profiles`.
        seed: seeds every draw (not reseeded at ``reset``).
        default: the profile for persona -1 (no type); None makes -1 an error.
        max_steps: leave after this many actions whatever happens (guards against loops).
    """

    def __init__(self, profiles: Mapping[int, TypeProfile] | str | Path, seed: int = 0,
                 default: TypeProfile | None = None, max_steps: int = 40):
        if isinstance(profiles, (str, Path)):
            profiles = load_profiles(profiles)
        self.profiles = {int(k): (v if isinstance(v, TypeProfile) else TypeProfile(**v))
                         for k, v in profiles.items()}
        self.default = default if default is not None else TypeProfile()
        self.rng = random.Random(seed)
        self._contacts = ProfileStream("rule", seed)  # each episode its own checkout profile
        self.max_steps = max_steps
        self.reset(-1, "")

    def seed(self, seed: int) -> None:
        """Restart the random stream (and the checkout profiles) at ``seed``: a runner that
        reseeds the policy for each buyer gets the same buyer whatever ran before it."""
        self.rng.seed(seed)
        self._contacts.reseed(seed)

    def reset(self, persona: int, goal: str) -> None:
        persona = int(persona)
        if persona >= 0 and persona not in self.profiles:
            raise UnknownNameError("buyer type", str(persona), map(str, self.profiles))
        self.profile = self.profiles.get(persona, self.default)
        self.goal = goal
        p = self.profile
        # browse depth ~ Poisson(views_per_session): mean matches the type's statistic
        self.depth = _poisson(self.rng, p.views_per_session)
        self.bounced = self.rng.random() < p.bounce and not goal
        self.viewed: list[str] = []
        self.carted = False
        self.buy: bool | None = None  # decided once, on reaching the cart
        self.filled: set[str] = set()
        self.searched = False
        self.steps = 0
        # hash-based, so the draws above (and every figure) do not depend on it
        self.contact, self.country = self._contacts.next()

    def act(self, observation: Mapping[str, Any]) -> str:
        self.steps += 1
        if self.steps > self.max_steps or (self.steps == 1 and self.bounced):
            return "stop"
        kind = page_kind(observation)
        els = page_elements(observation)
        if kind == "order":
            return "stop"
        if kind == "checkout":
            return self._checkout(els)
        if kind == "cart":
            return self._cart(els)
        if kind == "product":
            return self._product(observation, els)
        return self._listing(els)

    # -- pages ---------------------------------------------------------------------------
    def _want_more(self) -> bool:
        return len(self.viewed) < self.depth

    def _listing(self, els: Mapping[str, Any]) -> str:
        if not self._want_more() or (self.goal and self.carted):
            return self._to_cart_or_leave(els)
        products = [e for e in els if e.startswith("product-") and e[8:] not in self.viewed]
        if self.goal and not self.searched and "search-input" in els:
            self.searched = True
            return f"search[{self.goal}]"
        if products and (self.goal or self.rng.random() >= self.profile.search_share
                         or self.searched):
            return f"click[{products[0] if self.goal else self.rng.choice(products)}]"
        if "search-input" in els and not self.searched:
            self.searched = True
            labels = [els[p][1] for p in els if p.startswith("product-")] or ["gift"]
            return f"search[{self.rng.choice(labels).split()[0]}]"
        collections = [e for e in els if e.startswith(("collection-", "nav-collection-"))]
        if collections:
            return f"click[{self.rng.choice(collections)}]"
        if products:
            return f"click[{products[0]}]"
        return "click[nav-home]" if "nav-home" in els and self.steps < 3 else "stop"

    def _product(self, observation: Mapping[str, Any], els: Mapping[str, Any]) -> str:
        pid = str(observation.get("url", "")).rstrip("/").rsplit("/", 1)[-1]
        if pid not in self.viewed:
            self.viewed.append(pid)
            want = 1.0 if self.goal else self.profile.view_to_cart
            if "add-to-cart" in els and self.rng.random() < want:
                self.carted = True
                return "click[add-to-cart]"
        if self.goal and self.carted:
            return self._to_cart_or_leave(els)
        return "back" if self._want_more() else self._to_cart_or_leave(els)

    def _to_cart_or_leave(self, els: Mapping[str, Any]) -> str:
        if self.carted and self.buy is not False and "nav-cart" in els:
            return "click[nav-cart]"
        return "stop"

    def _cart(self, els: Mapping[str, Any]) -> str:
        has_items = "checkout" in els
        self.carted = self.carted or has_items
        if has_items and self.buy is None:
            self.buy = bool(self.goal) or self.rng.random() < self.profile.cart_to_purchase
        if has_items and self.buy:
            return "click[checkout]"
        if self._want_more() and "nav-home" in els:
            return "click[nav-home]"
        return "stop"

    def _checkout(self, els: Mapping[str, Any]) -> str:
        for fid, value in self.contact.items():
            if fid in els and fid not in self.filled:
                self.filled.add(fid)
                return f"type[{fid}][{value}]"
        country = els.get("field-country")
        if country and "field-country" not in self.filled:
            self.filled.add("field-country")
            # skip a placeholder such as "Select a country"; prefer the shop's first real one
            real = [o for o in country[2] if o and not o.lower().startswith(("select", "choose", "-"))]
            if real:
                return f"select[field-country][{self.country if self.country in real else real[0]}]"
        if "place-order" in els and "place-order" not in self.filled:
            self.filled.add("place-order")
            return "click[place-order]"
        return "stop"  # the order was refused (form errors): this buyer gives up

    def __repr__(self) -> str:
        return f"RuleBasedBuyer({ {k: asdict(v) for k, v in self.profiles.items()} })"


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson draw (small means), with the seeded ``random.Random``."""
    if lam <= 0:
        return 0
    threshold, k, p = math.exp(-min(lam, 50.0)), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1
