"""The storefront environment: a buyer shops with text actions on a real web page."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import time
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simpersona_env.config import field, register
from simpersona_env.env.actions import Action, ActionError, parse_action
from simpersona_env.env.backends import BACKENDS
from simpersona_env.env.render import Element, Page
from simpersona_env.env.spaces import AnyText
from simpersona_env.env.tasks import TASKS, Goal
from simpersona_env.errors import ConfigError, DataError, UnknownNameError

__all__ = ["FUNNEL", "StorefrontEnv", "StorefrontEnvConfig", "Timings"]

#: Funnel stages an episode can reach, in order ("visit": it saw a page).
FUNNEL: tuple[str, ...] = ("visit", "product_view", "add_to_cart", "checkout_start", "purchase")
_VISITOR_COOKIE = "sp_visitor"  # docs/storefront.md
_SEARCH_NAMES = {"q", "query", "search", "s", "keyword", "keywords", "search_query"}


class Timings(Mapping[str, float]):
    """Wall-clock seconds of a step's parts (``action``, ``read``, ``step``), read like a dict.

    Timings are measurements, not state: two ``Timings`` with the same keys compare equal, so
    determinism checks (Gymnasium's ``check_env`` compares ``info``) look at the state only.
    """

    __slots__ = ("_d",)

    def __init__(self, **seconds: float):
        self._d = dict(seconds)

    def __getitem__(self, key: str) -> float:
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timings) and other._d.keys() == self._d.keys()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Timings(" + ", ".join(f"{k}={v:.4f}" for k, v in self._d.items()) + ")"


@dataclasses.dataclass
class StorefrontEnvConfig:
    """Settings of :class:`StorefrontEnv` (each is a keyword of ``gym.make``)."""

    store: str = field("builtin", help="a bundled store preset (builtin, flipkart, amazon, multi; "
                       "comma-separated for several) or the http(s) URL of any shop")
    store_id: str = field("", help="the store of the preset where episodes start "
                          "(default: the preset's first)")
    backend: str = field("http", help="http (bundled shop in process, no browser) or "
                         "playwright (real Chromium)")
    task: str = field("browse", help="browse (reward 1 on a purchase) or goal (WebShop-style "
                      "instruction and reward)")
    data_dir: str = field("", help="the data folder for data-backed presets (default: "
                          "$SIMPERSONA_DATA_DIR or ../shared/data)")
    catalog_seed: int = field(0, help="seed of the generated builtin catalog")
    n_products: int = field(120, help="size of the generated builtin catalog")
    theme: str = field("", help="force this theme (classic, grid) on the bundled stores")
    num_personas: int = field(64, help="number of buyer types K; observation persona is in "
                              "[-1, K-1], -1 meaning none")
    browser_path: str = field("", help="Chromium executable (default: $SIMPERSONA_BROWSER, "
                              "Playwright's Chromium, /usr/bin/chromium, chromium on PATH)")
    action_timeout_s: float = field(5.0, help="playwright: how long a click or fill waits")
    navigation_timeout_s: float = field(30.0, help="playwright: how long a page load may take")
    conversion_url_patterns: list = field(
        [r"/(thank[-_]?you|order[-_]?(confirmation|received|complete))", r"/orders?/[^/?]+/?$",
         r"/checkout/.*(success|complete)"],
        help="other sites: a purchase completed when the URL matches one of these regexes")
    conversion_text_patterns: list = field(
        [r"thank you for your (order|purchase)", r"order (is )?confirmed"],
        help="other sites: a purchase completed when the page text matches one of these "
             "regexes (case-insensitive)")
    max_text_length: int = field(200_000, help="longest observation text (longer is cut)")


register("storefront_env", StorefrontEnvConfig)


class StorefrontEnv(gym.Env[dict, str]):
    """A buyer shops on a storefront with text actions; the page comes back as text.

    ## Description

    The bundled shop (``storefront_mock``: home, collections, search, product pages, cart,
    validated checkout, order confirmation) or any web shop, driven through one of two
    backends: ``http`` calls the bundled shop in process without a browser (hundreds of steps
    per second), ``playwright`` drives a real headless Chromium (the bundled shop served on a
    loopback port, or any URL). Both render the same page to the same text. The shop logs
    every visit in the canonical event schema, so simulated traffic is measured like real logs.

    ## Action Space

    One string (:class:`~simpersona_env.env.spaces.AnyText`) in the action language of
    :mod:`simpersona_env.env.actions`: ``click[id]``, ``type[id][text]``, ``search[text]``,
    ``select[id][option]``, ``back``, ``stop``. An action that cannot be parsed or applied is
    not an exception: its message comes back in ``last_action_error``, the page stays, the
    step counts.

    ## Observation Space

    A ``Dict``:

    | key | space | meaning |
    |---|---|---|
    | ``text`` | AnyText | the page: title, path, visible text, elements as ``[id] role "label"`` |
    | ``url`` | AnyText | the page's URL |
    | ``goal`` | AnyText | the task's instruction ("" when none) |
    | ``persona`` | Discrete(K + 1, start=-1) | the buyer type, -1 for none |
    | ``last_action_error`` | AnyText | why the last action failed ("" when it did not) |

    ## Rewards

    Set by the task: ``browse`` gives 1 on a completed purchase; ``goal`` gives the WebShop
    reward of what was bought (1 = everything asked for, within the price limit).

    ## Starting State

    A new visitor (fresh cookies, empty cart) on the store's home page (or the URL); with
    ``options={"visitor": id}`` (the ``visitor_id`` of an earlier reset, bundled shop only) the
    same visitor returns, with its cart: a buyer's next session.

    ## Episode End

    Terminated on a completed purchase or ``stop``; truncated at ``max_episode_steps``
    (registration: 50).

    ## Info

    ``stage`` (furthest funnel stage reached: visit, product_view, add_to_cart, checkout_start,
    purchase), ``page`` (the page kind), ``cart_value``, ``purchased`` (product ids),
    ``events`` (the shop's events of this step), ``converted``, ``timings`` (seconds:
    ``action``, ``read``, ``step``); at reset also ``goal_spec`` (the structured goal, for
    oracles) and ``visitor_id``.

    ## Arguments

    ``gym.make("simpersona/Storefront-v0", store="builtin", backend="http", task="browse")``
    and every field of :class:`StorefrontEnvConfig`; ``app`` shares one bundled-shop app (its
    carts and event log) between envs; ``stores`` (``storefront_mock`` stores, e.g. from
    ``make_stores`` or an event log) builds the env's own shop from them instead of ``store``;
    ``render_mode="ansi"`` returns the text.
    Vector envs: ``gym.vector.SyncVectorEnv`` as is; ``AsyncVectorEnv`` with
    ``shared_memory=False`` (text spaces have no fixed-size buffer), and with
    ``context="spawn"`` on the playwright backend (a forked child cannot use the browser
    thread of its parent).

    ## Version History

    * v0: first version.

    Example:
        >>> import gymnasium as gym, simpersona_env
        >>> env = gym.make("simpersona/Storefront-v0", store="builtin", backend="http")
        >>> obs, info = env.reset(seed=0, options={"persona": 3})
        >>> obs["persona"], info["stage"]
        (np.int64(3), 'visit')
        >>> obs, reward, terminated, truncated, info = env.step("click[nav-cart]")
        >>> obs["text"].splitlines()[1]
        'path: /s/builtin/cart'
        >>> env.step("type[nav-cart][x]")[0]["last_action_error"]
        'cannot type into [nav-cart]: it is a link; only textboxes take text'
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, app: Any = None, stores: Any = None,
                 **settings: Any):
        try:
            self.config = cfg = StorefrontEnvConfig(**settings)
        except TypeError as exc:
            names = [f.name for f in dataclasses.fields(StorefrontEnvConfig)]
            raise ConfigError(f"StorefrontEnv: {exc}; valid settings: {', '.join(names)}, "
                              "app, render_mode") from exc
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise UnknownNameError("render_mode", str(render_mode), self.metadata["render_modes"])
        self.render_mode = render_mode
        if cfg.backend not in BACKENDS:
            raise UnknownNameError("backend", cfg.backend, BACKENDS)
        if cfg.task not in TASKS:
            raise UnknownNameError("task", cfg.task, TASKS)
        if cfg.num_personas < 1:
            raise ConfigError(f"num_personas must be >= 1, got {cfg.num_personas}")
        self.task = TASKS[cfg.task]()
        self._served: Any = None
        self._owns_server = False
        self.backend: Any = None

        self.is_bundled = not re.match(r"^https?://", cfg.store)
        if app is not None and stores is not None:
            raise ConfigError("pass app= (a shop to share) or stores= (to build one), not both")
        if self.is_bundled:
            if app is not None:
                self.app = app
            elif stores is not None:
                from storefront_mock.app import create_app

                self.app = create_app(stores)
            else:
                self.app = self._make_app(cfg)
            self.shop = self.app.state.shop
            self.store_id = cfg.store_id or next(iter(self.shop.stores))
            if self.store_id not in self.shop.stores:
                raise UnknownNameError("store id", self.store_id, self.shop.stores)
            self.catalog = self.shop.stores[self.store_id].catalog
            start_path = f"/s/{self.store_id}/"
        else:
            if app is not None or stores is not None:
                raise ConfigError("app= and stores= are for the bundled shop; they cannot go "
                                  "with a URL store")
            if cfg.backend == "http":
                raise ConfigError(f"the http backend drives only the bundled shop, not "
                                  f"{cfg.store}; use backend=playwright for other sites")
            if self.task.needs_catalog:
                raise ConfigError(f"the {cfg.task} task needs the bundled shop's catalog; use "
                                  f"task=browse with {cfg.store}")
            self.app = self.shop = self.catalog = None
            self.store_id = ""
            start_path = ""

        module, cls = BACKENDS[cfg.backend].split(":")
        backend_cls = getattr(importlib.import_module(module), cls)
        if cfg.backend == "http":
            self.backend = backend_cls(self.app)
            self.origin = self.backend.base_url
        else:
            from simpersona_env.env.browser import shared_browser
            from simpersona_env.env.serving import serve_shared
            from storefront_mock import serve

            browser = shared_browser(cfg.browser_path or None)
            if self.is_bundled:
                # an app passed in is shared (one server for all its envs); our own is ours
                self._owns_server = app is None
                self._served = serve(self.app) if self._owns_server else serve_shared(self.app)
                self.origin = self._served.url
            else:
                self.origin = re.match(r"^https?://[^/]+", cfg.store).group(0)  # type: ignore[union-attr]
            self.backend = backend_cls(browser, cfg.action_timeout_s, cfg.navigation_timeout_s)
        self.start_url = self.origin + start_path if self.is_bundled else cfg.store
        self._conv_url = [re.compile(p) for p in cfg.conversion_url_patterns]
        self._conv_text = [re.compile(p, re.I) for p in cfg.conversion_text_patterns]

        text = AnyText(cfg.max_text_length)
        self.observation_space = spaces.Dict({
            "text": text, "url": AnyText(4096), "goal": AnyText(4096),
            "persona": spaces.Discrete(cfg.num_personas + 1, start=-1),
            "last_action_error": AnyText(4096)})
        self.action_space = AnyText(4096)

        self._page: Page | None = None
        self._values: Mapping[str, Any] = {}
        self._done = True
        self._persona = -1
        self._goal: Goal | None = None
        self._error = ""
        self._history: list[str] = []
        self._visitor: str | None = None
        self._log_pos = 0
        self._stage = "visit"
        self._purchased: list[str] = []
        self._episodes = 0

    @staticmethod
    def _make_app(cfg: StorefrontEnvConfig) -> Any:
        from storefront_mock import errors as shop_errors
        from storefront_mock.app import create_app
        from storefront_mock.stores import make_stores

        try:
            stores = make_stores(cfg.store, data_dir=cfg.data_dir or None, seed=cfg.catalog_seed,
                                 theme=cfg.theme or None, n_products=cfg.n_products)
        except shop_errors.UnknownNameError as exc:
            kind = "store" if exc.kind == "store preset" else exc.kind
            raise UnknownNameError(kind, exc.name, exc.choices) from exc
        except shop_errors.StorefrontError as exc:
            raise DataError(str(exc)) from exc
        return create_app(stores)

    # -- Gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        t0 = time.perf_counter()
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"persona", "goal", "visitor"})
        if unknown:
            raise ConfigError(f"reset options {unknown} are unknown; valid: persona, goal, "
                              "visitor")
        returning = options.get("visitor") or None
        if returning is not None and not self.is_bundled:
            raise ConfigError("reset option visitor= (a returning buyer) needs the bundled shop, "
                              "whose visitors are known by their cookie; a URL store starts "
                              "every episode as a new visitor")
        if returning is not None and str(returning) not in self.shop.visitors:
            raise ConfigError(f"reset option visitor={returning!r}: this shop has no such "
                              "visitor; pass the visitor_id of an earlier reset's info")
        persona = options.get("persona", -1)
        if persona is None:
            persona = -1
        k = self.config.num_personas
        if not isinstance(persona, (int, np.integer)) or not -1 <= int(persona) < k:
            raise ConfigError(f"persona must be an int in [-1, {self.config.num_personas - 1}] "
                              f"(num_personas={self.config.num_personas}), got {persona!r}")
        self._persona = int(persona)
        self._goal = self.task.setup(self.np_random, self.catalog, options.get("goal"))
        self._episodes += 1

        cookies: dict[str, str] = {}
        self._visitor = None
        if self.is_bundled:
            # a returning buyer keeps its cookie, hence its cart; its first request after the
            # shop's session timeout starts a new session of the same buyer in the log
            self._visitor = str(returning) if returning else self._new_visitor_id()
            cookies[_VISITOR_COOKIE] = self._visitor
            self._log_pos = len(self.shop.event_log)
        if self.backend.name == "http":
            self.backend.new_visitor()
            self.backend.cookies.update(cookies)
        else:
            self.backend.new_visitor([{"name": k, "value": v, "url": self.origin + "/"}
                                      for k, v in cookies.items()])
        self.backend.goto(self.start_url)
        self._page, self._values = self.backend.read()
        self._history = [self._page.url]
        self._error = ""
        self._done = False
        self._stage = "visit"
        self._purchased = []
        events = self._new_events()
        info = self._info(events, False, Timings(reset=time.perf_counter() - t0))
        info["goal_spec"] = self._goal.to_dict() if self._goal else None
        info["visitor_id"] = self._visitor
        return self._obs(), info

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        t0 = time.perf_counter()
        if self._page is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        self._error = ""
        parsed: Action | None = None
        navigated = False
        try:
            if self._done:
                raise ActionError("the episode has ended (purchase or stop); call reset() to "
                                  "start a new one")
            parsed = parse_action(action)
            navigated = self._apply(parsed)
        except ActionError as exc:
            self._error = str(exc)
            parsed = None
        t1 = time.perf_counter()
        if parsed is not None and parsed.name != "stop":
            self._page, self._values = self.backend.read()
            if self._page.url != self._history[-1]:
                self._history.append(self._page.url)
        t2 = time.perf_counter()

        events = self._new_events()
        converted = False
        bought: list[tuple[Any, dict[str, str]]] = []
        if navigated and not self._done:
            converted, bought = self._conversion(events)
        if converted:
            self._stage = "purchase"
        terminated = self._done or converted or (parsed is not None and parsed.name == "stop")
        reward = self.task.reward(self._goal, bought, True) if converted else 0.0
        self._done = terminated
        info = self._info(events, converted, Timings(action=t1 - t0, read=t2 - t1,
                                                     step=time.perf_counter() - t0))
        return self._obs(), float(reward), terminated, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi" and self._page is not None:
            return self._obs()["text"]
        return None

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        if self._served is not None and self._owns_server:
            self._served.stop()
            self._served = None
        super().close()

    # -- internals -------------------------------------------------------------------------

    def _obs(self) -> dict[str, Any]:
        assert self._page is not None
        text = self._page.render(self._values)[: self.config.max_text_length]
        return {"text": text, "url": self._page.url[:4096],
                "goal": self._goal.instruction if self._goal else "",
                "persona": np.int64(self._persona), "last_action_error": self._error[:4096]}

    def _new_visitor_id(self) -> str:
        # Drawn from the env's seeded generator: the same seed gives the same visitor, hence the
        # same order ids on every run and backend. A visitor this shop already knows (the same
        # seed again on a shared shop) would share its cart, so we move on to an unused one.
        vid = f"sp{int(self.np_random.integers(2**62)):016x}"
        with self.shop.lock:
            while vid in self.shop.visitors:
                vid = "sp" + hashlib.blake2b(vid.encode(), digest_size=8).hexdigest()
        return vid

    def _element(self, eid: str) -> Element:
        assert self._page is not None
        el = self._page.elements.get(eid)
        if el is None:
            ids = list(self._page.elements)
            hint = f" (ids here include {', '.join(ids[:8])}{', ...' if len(ids) > 8 else ''})" \
                if ids else " (this page has no interactive elements)"
            raise ActionError(f"no element [{eid}] on this page{hint}")
        if el.disabled:
            raise ActionError(f"[{eid}] is disabled")
        return el

    def _apply(self, act: Action) -> bool:
        """Validate ``act`` against the current page and do it; True if a page may have loaded."""
        assert self._page is not None
        name, args = act.name, act.args
        if name == "stop":
            return False
        if name == "back":
            if len(self._history) < 2:
                raise ActionError("there is no previous page to go back to")
            self._history.pop()
            # a fresh GET of the previous URL on both backends (no bfcache): the shop sees
            # the visit and both backends stay identical
            self.backend.goto(self._history[-1])
            return True
        if name == "search":
            box = self._search_box()
            self.backend.submit_search(box, args[0])
            return True
        el = self._element(args[0])
        if name == "click":
            if el.role == "textbox":
                raise ActionError(f"[{el.id}] is a textbox: use type[{el.id}][text]")
            if el.role == "combobox":
                raise ActionError(f"[{el.id}] is a dropdown: use select[{el.id}][option]")
            self.backend.click(el)
            return el.role in {"link", "button"}
        if name == "type":
            if el.role != "textbox":
                raise ActionError(f"cannot type into [{el.id}]: it is a {el.role}; only "
                                  "textboxes take text")
            self.backend.fill(el, args[1])
            return False
        if name == "select":
            if el.role != "combobox":
                raise ActionError(f"cannot select in [{el.id}]: it is a {el.role}, not a dropdown")
            value = el.option_value(args[1])
            if value is None:
                raise ActionError(f"[{el.id}] has no option {args[1]!r}; options: "
                                  f"{', '.join(t for _, t in el.options)}")
            self.backend.choose(el, value)
            return False
        raise ActionError(f"unknown action {name!r}")  # unreachable: the grammar knows them all

    def _search_box(self) -> Element:
        assert self._page is not None
        els = self._page.elements
        if "search-input" in els:
            return els["search-input"]
        for el in els.values():
            if el.role == "textbox" and (el.type == "search" or el.name.lower() in _SEARCH_NAMES):
                return el
        raise ActionError("this page has no search box")

    def _new_events(self) -> list[dict[str, Any]]:
        if not self.is_bundled:
            return []
        rows = self.shop.event_log.rows(self._log_pos)
        self._log_pos += len(rows)
        mine = [r for r in rows if r["buyer_id"] == self._visitor]
        for r in mine:
            if r["event"] in FUNNEL and FUNNEL.index(r["event"]) > FUNNEL.index(self._stage):
                self._stage = r["event"]
        return mine

    def _conversion(self, events: list[dict[str, Any]]) -> tuple[bool, list[tuple[Any, dict]]]:
        """(a purchase completed on this step, what was bought)."""
        assert self._page is not None
        if self.is_bundled:
            if not any(r["event"] == "purchase" for r in events):
                return False, []
            order = None
            if self._page.kind == "order":
                order = self.shop.orders.get(self._page.url.rstrip("/").rsplit("/", 1)[-1])
            if order is not None:
                lines = [(pid, dict(opts)) for pid, opts, _, _ in order.lines]
            else:  # the order page was not reached; what the log says was bought
                lines = [(r["product_id"], {}) for r in events if r["event"] == "purchase"]
            self._purchased += [pid for pid, _ in lines]
            by_id = self.catalog.by_id
            return True, [(by_id.get(pid), opts) for pid, opts in lines]
        url = self._page.url
        if any(p.search(url) for p in self._conv_url):
            return True, []
        text = " ".join(line for line in self._page.lines if isinstance(line, str))
        if any(p.search(text) for p in self._conv_text):
            return True, []
        return False, []

    def _cart_value(self) -> float:
        if not self.is_bundled:
            return 0.0
        with self.shop.lock:
            visitor = self.shop.visitors.get(self._visitor)
            lines = list(visitor.carts.get(self.store_id, {}).values()) if visitor else []
            return float(round(sum(ln.subtotal or 0.0 for ln in lines), 2))

    def _info(self, events: list[dict[str, Any]], converted: bool,
              timings: Timings) -> dict[str, Any]:
        return {"stage": self._stage, "page": self._page.kind if self._page else "",
                "cart_value": self._cart_value(), "purchased": list(self._purchased),
                "events": [r["event"] for r in events], "converted": converted,
                "timings": timings}
