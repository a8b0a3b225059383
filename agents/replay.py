"""Real clickstreams replayed in the storefront env: (observation, action) traces and coverage.

Each real session (canonical events, ordered by ``ts``) is replayed at its merchant's
storefront (the catalog of the products that merchant's log shows) through the browserless
``http`` backend. Every canonical event becomes the actions a buyer would take in the shop:

* ``product_view`` -> the navigation that reaches the product: a click when the page links it
  (listing, related products, cart line), else a search for its brand and type when that
  finds it on the first result page, else its collection (the shortest route over top- and
  second-level collections) and pagination, else a search for its full title; then
  ``click[product-<id>]``. Viewing the open product again is ``back`` and the same click.
* ``add_to_cart`` -> ``click[add-to-cart]`` on its product page (navigating there first when
  the log skipped the view); ``remove_from_cart`` -> ``click[cart-remove-<line>]`` on the
  cart (adding first when the product is not in the cart).
* ``checkout_start`` -> ``click[checkout]`` on the cart.
* ``purchase`` (a run of purchase rows is one order) -> add what the log bought and did not
  cart, remove what is in the cart but was not bought, ``click[checkout]``, fill the form with
  deterministic fake but valid details (a real buyer's contact details do not exist), select a
  country, ``click[place-order]``. The env ends an episode on a completed purchase, so a session
  that goes on after a purchase continues in a new episode (a new visitor on the home page).
* ``search`` -> ``search[query]``; ``collection_view`` -> the clicks that open that
  collection; ``page_view`` -> ``click[nav-home]``; ``favourite`` has no action in the shop.
* a session that ends without a purchase ends with ``stop``.

After the replay, the shop's own event log for the session's visitors is matched, in order,
against the real events: a real event counts as reproduced only when the shop logged the same
event (same product, query or category). That is the coverage measure; every event that was not
reproduced is counted by reason, and the shop events the navigation added are counted by type.

Example:
    >>> import polars as pl
    >>> from simpersona_env.synthetic import generate_events
    >>> log = generate_events(20, n_merchants=1, seed=0).events
    >>> replayer = Replayer(log)
    >>> first = log["session_id"][0]
    >>> result = replayer.replay(log.filter(pl.col("session_id") == first).to_dicts())
    >>> result.coverage.reproduced == result.coverage.events
    True
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agents.profile import checkout_details, stable_hash
from agents.traces import OBSERVATION_KEYS, Episode, Step
from simpersona_env.errors import ConfigError, DataError
from storefront_mock.catalog import COLLECTIONS_PER_PAGE

__all__ = [
    "REASONS",
    "Coverage",
    "Replayer",
    "SessionReplay",
    "checkout_details",
    "event_key",
    "hindsight_goal",
]

#: Why a real event was not reproduced (keys of :attr:`Coverage.reasons`).
REASONS: dict[str, str] = {
    "no_product_id": "a product event without a product id",
    "product_not_in_catalog": "the product is not in the merchant's storefront catalog",
    "product_unreachable": "no route (link, search, collection) reaches the product",
    "collection_not_in_store": "the category is not a collection of the storefront (the shop "
                               "browses two category levels)",
    "empty_query": "a search event without a query",
    "no_favourite_action": "the storefront has no favourite / wishlist action",
    "checkout_with_empty_cart": "a checkout start with nothing in the cart",
    "repeated_checkout_start": "a second checkout start in the same cart (the shop logs one)",
    "checkout_failed": "the order was not placed",
    "unknown_event": "an event type outside the canonical set",
    "action_error": "an action the env rejected (a replay bug; the message is in the log)",
    "step_cap": "cut by the per-episode step cap",
    "not_in_shop_log": "replayed, but the shop logged no matching event",
}

_PRODUCT_EVENTS = frozenset({"product_view", "add_to_cart", "remove_from_cart", "purchase",
                             "favourite"})

_hash = stable_hash


def hindsight_goal(product: Any, session_id: str = "") -> dict[str, Any] | None:
    """The goal a purchase satisfies, in the ``goal`` task's instruction form.

    Drawn by the goal task itself (:class:`simpersona_env.env.tasks.GoalTask`) from a catalog
    of only the purchased product, with no price slack (the limit is the price rounded up) and
    no options, so the purchase meets the goal with reward 1. ``None`` when the product has no
    price or no type: the instruction form needs both, and a price is never invented.

    Example:
        >>> from storefront_mock.catalog import builtin
        >>> p = builtin(n_products=3).products[0]
        >>> hindsight_goal(p)["instruction"].startswith("Buy a t-shirt with ")
        True
    """
    import numpy as np

    from simpersona_env.env.tasks import GoalTask

    if product is None or not product.product_type or not product.category:
        return None  # no category in the log: its type would be a placeholder

    class _One:  # the part of a Catalog the goal task reads
        store_id = ""
        products = (product,)

    goal = GoalTask(max_attributes=2, max_options=0, price_slack=0.0).setup(
        np.random.default_rng(_hash("goal", session_id, product.product_id)), _One(), None)
    return goal.to_dict()


def event_key(row: Mapping[str, Any]) -> tuple:
    """What must agree for a shop event to reproduce a real one (type and its object)."""
    ev = row.get("event")
    if ev in _PRODUCT_EVENTS:
        return (ev, None if row.get("product_id") is None else str(row["product_id"]))
    if ev == "search":
        return (ev, " ".join(str(row.get("query") or "").split()))
    if ev == "collection_view":
        return (ev, row.get("category"))
    return (ev,)


# ---------------------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------------------

@dataclass
class Coverage:
    """Counts of a replay: real events reproduced (by type), not reproduced (by reason), the
    shop events the navigation added (by type), and the size of the traces. Add two with ``+``.
    """

    sessions: int = 0
    episodes: int = 0
    steps: int = 0
    events: int = 0
    reproduced: int = 0
    by_event: Counter = field(default_factory=Counter)
    reproduced_by_event: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    inserted: Counter = field(default_factory=Counter)
    cut_sessions: int = 0
    goals: int = 0
    goals_missing: int = 0
    seconds: float = 0.0

    @property
    def share(self) -> float:
        """Share of real events reproduced (1.0 for no events)."""
        return self.reproduced / self.events if self.events else 1.0

    def __add__(self, other: Coverage) -> Coverage:
        out = Coverage()
        for f in self.__dataclass_fields__:
            a, b = getattr(self, f), getattr(other, f)
            setattr(out, f, a + b)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions, "episodes": self.episodes, "steps": self.steps,
            "events": self.events, "reproduced": self.reproduced,
            "coverage": round(self.share, 6),
            "by_event": {e: {"events": n, "reproduced": self.reproduced_by_event[e],
                             "coverage": round(self.reproduced_by_event[e] / n, 6)}
                         for e, n in sorted(self.by_event.items())},
            "not_reproduced_by_reason": dict(self.reasons.most_common()),
            "reason_help": {r: REASONS[r] for r in self.reasons if r in REASONS},
            "inserted_shop_events": dict(self.inserted.most_common()),
            "cut_sessions": self.cut_sessions, "cut_events": self.reasons.get("step_cap", 0),
            "goals": self.goals, "goals_missing_type": self.goals_missing,
            "seconds": round(self.seconds, 3),
            "sessions_per_s": round(self.sessions / self.seconds, 2) if self.seconds else None,
            "steps_per_s": round(self.steps / self.seconds, 1) if self.seconds else None,
        }


@dataclass
class SessionReplay:
    """One session's replay: its episodes, each real event's outcome, and the counts.

    ``outcomes[i]`` is ``""`` when real event ``i`` was reproduced, else its reason
    (a key of :data:`REASONS`).
    """

    session_id: str
    merchant_id: str
    buyer_id: str
    episodes: list[Episode]
    outcomes: list[str]
    coverage: Coverage
    shop_events: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------

class _Fail(Exception):
    """This event cannot be reproduced, for ``reason``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


class _Cut(Exception):
    """The episode hit the step cap."""


class _Run:
    """The state of one session's replay in one env."""

    def __init__(self, owner: Replayer, env: Any, merchant: str, buyer: str, session: str,
                 persona: int):
        self.owner, self.env, self.merchant = owner, env, merchant
        self.buyer, self.session, self.persona = buyer, session, persona
        self.base = env.unwrapped
        self.catalog = self.base.catalog
        self.episodes: list[Episode] = []
        self.obs: dict[str, Any] | None = None
        self.steps: list[Step] = []
        self.visitors: list[str] = []
        self.errors: list[str] = []
        self.els: set[str] = set()
        self.came_from_listing: str | None = None  # product id clicked from a listing page
        self.listing_els: set[str] = set()  # the elements of that listing page
        self.goal: dict[str, Any] | None = None
        self.goals_missing = 0

    # -- episodes and steps ----------------------------------------------------------------

    def open(self, goal: dict[str, Any] | None) -> None:
        if self.obs is not None:
            return
        options: dict[str, Any] = {"persona": self.persona}
        if goal is not None:
            options["goal"] = goal
        seed = _hash("visitor", self.merchant, self.session, len(self.episodes)) % 2**31
        self.obs, info = self.env.reset(seed=seed, options=options)
        self.visitors.append(info["visitor_id"])
        self.goal = goal
        self.steps = []
        self._read()

    def close(self, final: str | None) -> None:
        """End the open episode (with ``final`` as its last action when given)."""
        if self.obs is None:
            return
        if final is not None:
            self.act(final, allow_end=True)
        self._end()

    def _read(self) -> None:
        from simpersona_env.env.actions import ELEMENT_LINE

        assert self.obs is not None
        self.els = {m.group("id") for m in ELEMENT_LINE.finditer(self.obs["text"])}

    @property
    def path(self) -> str:
        url = str(self.obs["url"]) if self.obs is not None else ""
        return url.split("://", 1)[-1].split("/", 1)[-1].split("?")[0]

    def act(self, action: str, *, allow_end: bool = False) -> dict[str, Any]:
        assert self.obs is not None
        self.steps.append(Step({k: _plain(self.obs[k]) for k in OBSERVATION_KEYS}, action))
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self._read()
        if truncated and not terminated:
            self._end()
            raise _Cut()
        if self.obs["last_action_error"]:
            self.errors.append(f"{action}: {self.obs['last_action_error']}")
            raise _Fail("action_error", str(self.obs["last_action_error"]))
        if terminated and not allow_end and not info.get("converted"):
            self._end()
            raise _Fail("action_error", f"{action} ended the episode")
        return info

    def _end(self) -> None:
        self.episodes.append(Episode(persona=self.persona, merchant_id=self.merchant,
                                     goal=(self.goal or {}).get("instruction", ""),
                                     steps=self.steps))
        self.obs = None

    def click(self, eid: str) -> dict[str, Any]:
        if eid not in self.els:
            raise _Fail("action_error", f"no [{eid}] on {self.path}")
        return self.act(f"click[{eid}]")

    # -- the shop's state, read for planning ------------------------------------------------

    def cart(self) -> dict[str, int]:
        """product id -> quantity in this visitor's cart."""
        shop = self.base.shop
        with shop.lock:
            v = shop.visitors.get(self.visitors[-1])
            lines = list(v.carts.get(self.merchant, {}).values()) if v else []
        out: Counter = Counter()
        for ln in lines:
            out[ln.product_id] += ln.quantity
        return dict(out)

    def checkout_started(self) -> bool:
        shop = self.base.shop
        with shop.lock:
            v = shop.visitors.get(self.visitors[-1])
            return bool(v and self.merchant in v.checkout_started)

    def cart_lines(self) -> list[tuple[str, str]]:
        """(line id, product id) of this visitor's cart."""
        shop = self.base.shop
        with shop.lock:
            v = shop.visitors.get(self.visitors[-1])
            lines = list(v.carts.get(self.merchant, {}).values()) if v else []
        return [(ln.line_id, ln.product_id) for ln in lines]

    # -- navigation ------------------------------------------------------------------------

    def product(self, pid: str | None) -> Any:
        if pid is None:
            raise _Fail("no_product_id")
        p = self.catalog.by_id.get(str(pid))
        if p is None:
            raise _Fail("product_not_in_catalog")
        return p

    def on_product(self, pid: str) -> bool:
        return self.path.endswith(f"/products/{pid}") and "add-to-cart" in self.els

    def goto_product(self, p: Any, *, again: bool) -> None:
        """Reach ``p``'s page (opening it again when ``again`` and it is open already)."""
        pid = p.product_id
        link = f"product-{pid}"
        if self.on_product(pid):
            if not again:
                return
            if self.came_from_listing == pid:
                self.act("back")  # back to the listing that linked it, and open it again
        elif (self.came_from_listing and self.on_product(self.came_from_listing)
              and link in self.listing_els and link not in self.els):
            self.act("back")  # the listing this product page was opened from links it too
        if link in self.els:
            self.listing_els = self.els
            self.click(link)
            self.came_from_listing = pid
        elif f"cart-item-{pid}" in self.els:
            self.click(f"cart-item-{pid}")
            self.came_from_listing = None
        else:
            self.route_to(p)
            self.listing_els = self.els
            self.click(link)
            self.came_from_listing = pid
        if not self.on_product(pid):
            raise _Fail("action_error", f"did not reach product {pid}")

    def route_to(self, p: Any) -> None:
        """Bring a page that links ``p`` on screen: search or collection and pagination."""
        plan = self.owner.planner(self.merchant)
        route = plan.route(p, self.els)
        if route is None:
            raise _Fail("product_unreachable")
        for action in route:
            self.act(action)
        if f"product-{p.product_id}" not in self.els:
            raise _Fail("action_error", f"route {route} did not list {p.product_id}")

    def goto_collection(self, slug: str) -> None:
        plan = self.owner.planner(self.merchant)
        for action in plan.to_collection(slug, self.els):
            self.act(action)

    def goto_cart(self) -> None:
        if not self.path.endswith("/cart"):
            self.click("nav-cart")

    def add(self, p: Any) -> None:
        if not self.on_product(p.product_id):
            self.goto_product(p, again=False)
        self.click("add-to-cart")
        if p.product_id not in self.cart():
            raise _Fail("action_error", f"add-to-cart did not add {p.product_id}")

    def remove(self, pid: str) -> None:
        self.goto_cart()
        lines = [lid for lid, p in self.cart_lines() if p == pid]
        self.click(f"cart-remove-{lines[0]}")


class _Planner:
    """Routes to products and collections in one merchant's catalog (cached per merchant)."""

    def __init__(self, catalog: Any, per_page: int, max_pages: int):
        self.catalog, self.per_page, self.max_pages = catalog, per_page, max_pages
        # listing key (a slug, a query, a brand in a collection) -> product id -> index
        self._pos: dict[Any, dict[str, int]] = {}
        self._by_path = {c.category_path: c for c in catalog.collections}

    def collection_for(self, category: str | None) -> Any:
        return self._by_path.get(category)

    def position(self, slug: str, pid: str) -> int | None:
        pos = self._pos.get(slug)
        if pos is None:
            coll = self.catalog.collection_by_slug[slug]
            items = self.catalog.listing(coll, per_page=max(1, len(coll.product_ids))).items
            pos = self._pos[slug] = {x.product_id: i for i, x in enumerate(items)}
        return pos.get(pid)

    def to_collection(self, slug: str, els: set[str]) -> list[str]:
        """Clicks that open collection ``slug`` from a page with elements ``els``."""
        for eid in (f"collection-{slug}", f"nav-collection-{slug}"):
            if eid in els:
                return [f"click[{eid}]"]
        coll = self.catalog.collection_by_slug[slug]
        top = self._by_path.get(coll.category_path.split(".")[0]) if coll.category else None
        if top is None or top.slug == slug:
            # the header links the largest top collections on every page; the others are
            # on the paginated collections index that the header links
            if coll in self.catalog.nav_collections:
                return [f"click[nav-collection-{slug}]"]
            index = self.catalog.top_collections.index(coll)
            return ["click[nav-collections]",
                    *["click[page-next]"] * (index // COLLECTIONS_PER_PAGE),
                    f"click[collection-{slug}]"]
        return [*self.to_collection(top.slug, els), f"click[collection-{slug}]"]

    def _search_hit(self, query: str, pid: str) -> bool:
        return any(x.product_id == pid for x in self.catalog.search(query, limit=self.per_page))

    def _search_index(self, query: str, pid: str) -> int | None:
        key = ("q", query)
        pos = self._pos.get(key)  # type: ignore[call-overload]
        if pos is None:
            pos = self._pos[key] = {x.product_id: i  # type: ignore[index]
                                    for i, x in enumerate(self.catalog.search(query))}
        return pos.get(pid)

    def _brand_index(self, slug: str, brand: str, pid: str) -> int | None:
        from storefront_mock.app import MAX_BRANDS

        key = ("b", slug, brand)
        pos = self._pos.get(key)  # type: ignore[call-overload]
        if pos is None:
            coll = self.catalog.collection_by_slug[slug]
            listing = self.catalog.listing(coll, brand=brand,
                                           per_page=max(1, len(coll.product_ids)))
            offered = {b for b, _ in listing.brands[:MAX_BRANDS]}  # the select's options
            pos = {x.product_id: i for i, x in enumerate(listing.items)} \
                if brand in offered else {}
            self._pos[key] = pos  # type: ignore[index]
        return pos.get(pid)

    def route(self, p: Any, els: set[str]) -> list[str] | None:
        """The actions that bring a listing linking ``p`` on screen (without the final click).

        The shortest of: a search for its brand and type, then pagination; each collection
        holding it, then pagination, or with its brand chosen in the brand filter, then
        pagination (a search is preferred on a tie). When the shortest needs more than
        ``max_pages`` pages, a search for its full title that finds it on the first page.
        """
        pid, nxt = p.product_id, "click[page-next]"
        routes: list[list[str]] = []
        if p.brand:
            q = f"{p.brand} {p.product_type}".strip()
            idx = self._search_index(q, pid)
            if idx is not None:
                routes.append([f"search[{q}]"] + [nxt] * (idx // self.per_page))
        for c in self.catalog.collections:
            idx = self.position(c.slug, pid)
            if idx is None:
                continue
            to = self.to_collection(c.slug, els)
            routes.append(to + [nxt] * (idx // self.per_page))
            if p.brand and idx >= self.per_page:
                bidx = self._brand_index(c.slug, p.brand, pid)
                if bidx is not None:
                    routes.append(to + [f"select[filter-brand][{p.brand}]", "click[filter-apply]"]
                                  + [nxt] * (bidx // self.per_page))
        best = min(routes, key=len) if routes else None
        if (best is None or best.count(nxt) > self.max_pages) and self._search_hit(p.title, pid):
            return [f"search[{p.title}]"]
        return best


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _ts(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


class Replayer:
    """Replays real sessions at their merchants' storefronts (one env per merchant, reused).

    Args:
        events: the canonical log the catalogs come from (polars DataFrame, Arrow table,
            Parquet path or `simpersona ingest` output folder); each merchant's storefront has
            the products that merchant's rows show.
        merchants: the merchants to build (default: every merchant of ``events``).
        max_steps: the step cap of one episode (events past it are counted as ``step_cap``).
        max_pages: a collection route longer than this many pages loses to a title search.
        num_personas: K, the number of buyer types (persona indexes are in [-1, K-1]).

    Raises:
        DataError: a log without the canonical columns or without products.

    Example:
        >>> from simpersona_env.synthetic import generate_events
        >>> log = generate_events(10, n_merchants=1, seed=0).events
        >>> sorted(Replayer(log).stores) == sorted(set(log["merchant_id"]))
        True
    """

    def __init__(self, events: Any, merchants: Sequence[str] | None = None, *,
                 max_steps: int = 200, max_pages: int = 5, num_personas: int = 64):
        from storefront_mock import errors as shop_errors
        from storefront_mock.app import PER_PAGE
        from storefront_mock.catalog import read_event_frame
        from storefront_mock.stores import stores_from_events

        if max_steps < 2:
            raise ConfigError(f"max_steps must be >= 2 (a step and stop), got {max_steps}")
        try:
            df = read_event_frame(events)
            if merchants is None:
                merchants = sorted(df["merchant_id"].drop_nulls().unique().to_list())
            stores = stores_from_events(df, merchants=list(merchants))
        except shop_errors.StorefrontError as exc:
            raise DataError(f"cannot build storefronts from the event log: {exc}") from exc
        self.stores = {s.store_id: s for s in stores}
        self.max_steps, self.max_pages, self.num_personas = max_steps, max_pages, num_personas
        self.per_page = PER_PAGE
        self._now = 0.0
        self._envs: dict[str, Any] = {}
        self._planners: dict[str, _Planner] = {}
        self._fresh_app()

    #: the shop's in-memory log is dropped (a new app) past this many rows
    max_log_rows = 300_000

    def _fresh_app(self) -> None:
        from storefront_mock.app import create_app

        self.close()
        # the app's clock is the replayed event's time: the shop's log carries real timestamps
        self.app = create_app(list(self.stores.values()), clock=lambda: self._now)

    def env(self, merchant: str) -> Any:
        """The env of ``merchant``'s storefront (made once, reused across sessions)."""
        env = self._envs.get(merchant)
        if env is None:
            import gymnasium as gym

            import simpersona_env  # noqa: F401  (registers the env id)

            if merchant not in self.stores:
                from simpersona_env.errors import UnknownNameError

                raise UnknownNameError("merchant", merchant, self.stores)
            env = self._envs[merchant] = gym.make(
                "simpersona/Storefront-v0", app=self.app, store_id=merchant, backend="http",
                task="browse", num_personas=self.num_personas,
                max_episode_steps=self.max_steps)
        return env

    def planner(self, merchant: str) -> _Planner:
        plan = self._planners.get(merchant)
        if plan is None:
            plan = self._planners[merchant] = _Planner(self.stores[merchant].catalog,
                                                       self.per_page, self.max_pages)
        return plan

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def replay(self, events: Sequence[Mapping[str, Any]], persona: int = -1) -> SessionReplay:
        """Replay one session (its canonical rows, any order: they are sorted by ``ts``).

        Raises:
            DataError: rows of several sessions or merchants, or none.
        """
        t0 = time.perf_counter()
        if not events:
            raise DataError("replay() needs the rows of one session, got none")
        rows = sorted(events, key=lambda r: _ts(r["ts"]) or 0.0)  # stable: ties keep log order
        merchant, session = str(rows[0]["merchant_id"]), str(rows[0]["session_id"])
        if any(str(r["merchant_id"]) != merchant or str(r["session_id"]) != session
               for r in rows):
            raise DataError(f"replay() takes one session of one merchant; got rows of "
                            f"{sorted({str(r['session_id']) for r in rows})[:3]}")
        env = self.env(merchant)
        run = _Run(self, env, merchant, str(rows[0]["buyer_id"]), session, persona)
        log = self.app.state.shop.event_log
        start = len(log)
        outcomes = self._drive(run, rows)
        mine = set(run.visitors)
        shop_rows = [r for r in log.rows(start) if r["buyer_id"] in mine]
        cov = self._verify(rows, outcomes, shop_rows)
        cov.sessions = 1
        cov.episodes = len(run.episodes)
        cov.steps = sum(len(e.steps) for e in run.episodes)
        cov.cut_sessions = int("step_cap" in outcomes)
        cov.goals = sum(bool(e.goal) for e in run.episodes)
        cov.goals_missing = run.goals_missing
        cov.seconds = time.perf_counter() - t0
        if len(log) > self.max_log_rows:
            self._fresh_app()  # sessions are independent: the shop's memory of them can go
        return SessionReplay(session, merchant, run.buyer, run.episodes, outcomes, cov,
                             shop_rows, run.errors)

    # -- the event loop ---------------------------------------------------------------------

    def _drive(self, run: _Run, rows: list[Mapping[str, Any]]) -> list[str]:
        outcomes = [""] * len(rows)
        i = 0
        details, country = checkout_details(run.buyer)
        while i < len(rows):
            row = rows[i]
            self._now = _ts(row["ts"]) or self._now
            ev = row["event"]
            group = [i]
            if ev == "purchase":  # a run of purchase rows is one order (one line per product)
                seen = {row.get("product_id")}
                while (group[-1] + 1 < len(rows) and rows[group[-1] + 1]["event"] == "purchase"
                       and rows[group[-1] + 1].get("product_id") not in seen):
                    group.append(group[-1] + 1)
                    seen.add(rows[group[-1]].get("product_id"))
            try:
                if ev == "favourite":
                    raise _Fail("no_favourite_action")
                if ev not in ("product_view", "add_to_cart", "remove_from_cart",
                              "checkout_start", "purchase", "search", "collection_view",
                              "page_view"):
                    raise _Fail("unknown_event")
                run.open(self._goal(run, rows, i))
                if ev == "product_view":
                    p = run.product(row.get("product_id"))
                    run.goto_product(p, again=True)
                elif ev == "add_to_cart":
                    run.add(run.product(row.get("product_id")))
                elif ev == "remove_from_cart":
                    p = run.product(row.get("product_id"))
                    if p.product_id not in run.cart():
                        run.add(p)
                    run.remove(p.product_id)
                elif ev == "checkout_start":
                    if not run.cart():
                        raise _Fail("checkout_with_empty_cart")
                    if run.checkout_started():
                        raise _Fail("repeated_checkout_start")
                    run.goto_cart()
                    run.click("checkout")
                elif ev == "search":
                    q = " ".join(str(row.get("query") or "").split())
                    if not q:
                        raise _Fail("empty_query")
                    run.act(f"search[{q}]")
                elif ev == "collection_view":
                    coll = self.planner(run.merchant).collection_for(row.get("category"))
                    if coll is None:
                        raise _Fail("collection_not_in_store")
                    run.goto_collection(coll.slug)
                elif ev == "page_view":
                    run.click("nav-home")
                elif ev == "purchase":
                    self._purchase(run, rows, group, outcomes, details, country)
            except _Fail as fail:
                for j in group:
                    outcomes[j] = outcomes[j] or fail.reason
            except _Cut:
                for j in range(i, len(rows)):
                    outcomes[j] = "step_cap"
                return outcomes
            i = group[-1] + 1
        try:
            run.close("stop")
        except _Cut:
            pass
        except _Fail:
            run.close(None)
        return outcomes

    def _goal(self, run: _Run, rows: list[Mapping[str, Any]], i: int) -> dict[str, Any] | None:
        """The hindsight goal of the episode opening at event ``i``: its first purchase."""
        if run.obs is not None:
            return None
        for r in rows[i:]:
            if r["event"] == "purchase":
                p = run.catalog.by_id.get(str(r.get("product_id")))
                if p is None:
                    continue
                goal = hindsight_goal(p, run.session)
                if goal is None:
                    run.goals_missing += 1
                return goal
        return None

    def _purchase(self, run: _Run, rows: list[Mapping[str, Any]], group: list[int],
                  outcomes: list[str], details: Mapping[str, str], country: str) -> None:
        wanted: list[Any] = []
        for j in group:
            try:
                wanted.append(run.product(rows[j].get("product_id")))
            except _Fail as fail:
                outcomes[j] = fail.reason
        if not wanted:
            return
        ids = {p.product_id for p in wanted}
        for p in wanted:  # the log may skip the cart: a real purchase needs one
            if p.product_id not in run.cart():
                run.add(p)
        for line, pid in run.cart_lines():  # what is carted but not bought stays out
            if pid not in ids:
                run.goto_cart()
                run.click(f"cart-remove-{line}")
        if not run.path.endswith("/checkout"):
            run.goto_cart()
            run.click("checkout")
        for fid, text in details.items():
            run.act(f"type[{fid}][{text}]")
        run.act(f"select[field-country][{country}]")
        info = run.act("click[place-order]", allow_end=True)
        if not info.get("converted"):
            raise _Fail("checkout_failed")
        run.close(None)

    # -- verification -----------------------------------------------------------------------

    @staticmethod
    def _verify(rows: list[Mapping[str, Any]], outcomes: list[str],
                shop_rows: list[dict[str, Any]]) -> Coverage:
        """Match real events to the shop's log in order; fill ``outcomes`` and count."""
        cov = Coverage()
        keys = [event_key(r) for r in shop_rows]
        used = [False] * len(shop_rows)
        ptr = 0
        for i, r in enumerate(rows):
            ev = str(r["event"])
            cov.events += 1
            cov.by_event[ev] += 1
            if outcomes[i]:
                cov.reasons[outcomes[i]] += 1
                continue
            want = event_key(r)
            j = ptr
            while j < len(keys) and keys[j] != want:
                j += 1
            if j == len(keys):
                outcomes[i] = "not_in_shop_log"
                cov.reasons["not_in_shop_log"] += 1
                continue
            used[j] = True
            ptr = j + 1
            cov.reproduced += 1
            cov.reproduced_by_event[ev] += 1
        for u, r in zip(used, shop_rows, strict=True):
            if not u:
                cov.inserted[str(r["event"])] += 1
        return cov


def sessions_of(events: Any, *, max_sessions: int = 0, seed: int = 0) -> Iterable[tuple[
        str, list[dict[str, Any]]]]:
    """(merchant, rows) per session, merchant by merchant (so each env is reused).

    With ``max_sessions``, a deterministic sample: the sessions whose stable hash (with
    ``seed``) is smallest, so a small run is spread over the whole log.
    """
    import polars as pl

    from storefront_mock.catalog import read_event_frame

    df = read_event_frame(events)
    missing = [c for c in ("merchant_id", "buyer_id", "session_id", "ts", "event")
               if c not in df.columns]
    if missing:
        raise DataError(f"event log lacks canonical column(s) {missing}; ingest it first "
                        "(simpersona ingest)")
    df = df.with_row_index("_row")
    keys = df.select("merchant_id", "session_id").unique()
    if max_sessions and keys.height > max_sessions:
        keys = (keys.with_columns(pl.struct("merchant_id", "session_id").map_elements(
            lambda s: _hash(seed, s["merchant_id"], s["session_id"]),
            return_dtype=pl.UInt64).alias("_h")).sort("_h").head(max_sessions).drop("_h"))
        df = df.join(keys, on=["merchant_id", "session_id"], how="semi")
    df = df.sort(["merchant_id", "session_id", "ts", "_row"]).drop("_row")
    for (merchant, _), part in df.group_by(["merchant_id", "session_id"], maintain_order=True):
        yield str(merchant), part.to_dicts()
