"""The bundled shop as an ASGI app: Shopify-like pages for one or more merchants.

The page contract (URLs, ``data-sp-page``, ``data-sp-id`` ids, forms, redirects, error
markup, cookies, event rows) is docs/storefront.md; the env codes against it.

Pages work without JavaScript: links and forms only; every POST answers 303 See Other to a
GET page, so the browserless backend (following redirects) and a real browser see the same.
Visitor state (cart, session, checkout form, one-shot errors) lives on the server, keyed by
the ``sp_visitor`` cookie, behind one lock: the app may be served by uvicorn in one thread
while called in process from others.

Example:
    >>> import httpx, asyncio
    >>> from storefront_mock import create_app, make_stores
    >>> app = create_app(make_stores("builtin"))
    >>> async def get(path):
    ...     async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
    ...                                  base_url="http://shop") as c:
    ...         return (await c.get(path, follow_redirects=True)).status_code
    >>> asyncio.run(get("/s/builtin/"))
    200
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from storefront_mock.catalog import COLLECTIONS_PER_PAGE, SORTS, Catalog, Product, slugify
from storefront_mock.errors import StorefrontError
from storefront_mock.events import EventLog
from storefront_mock.stores import THEMES, Store

__all__ = ["create_app", "ShopState", "Order", "CartLine", "COUNTRIES", "VISITOR_COOKIE",
           "THEME_COOKIE", "PER_PAGE"]

VISITOR_COOKIE = "sp_visitor"
THEME_COOKIE = "sp_theme"
#: products per listing page
PER_PAGE = 12
#: most brands offered in a listing's brand filter (the most frequent ones)
MAX_BRANDS = 25
MAX_QUANTITY = 99
#: checkout countries: form value -> label
COUNTRIES: dict[str, str] = {
    "IN": "India", "US": "United States", "GB": "United Kingdom", "DE": "Germany",
    "FR": "France", "CN": "China", "JP": "Japan", "BR": "Brazil", "CA": "Canada",
    "AU": "Australia",
}
CHECKOUT_FIELDS = ("email", "name", "address", "city", "postcode", "country")
_VISITOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_POSTCODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,8}[A-Za-z0-9]$")
_CURRENCY = {"USD": "$", "INR": "₹", "EUR": "€", "GBP": "£", "CNY": "¥"}


@dataclass
class CartLine:
    """One cart line: a product in one choice of options."""

    product_id: str
    options: dict[str, str]
    quantity: int
    unit_price: float | None

    @property
    def line_id(self) -> str:
        """``<product_id>`` or ``<product_id>-<option-values-slug>`` (docs/storefront.md)."""
        if not self.options:
            return self.product_id
        return f"{self.product_id}-{slugify('-'.join(self.options.values()))}"

    @property
    def subtotal(self) -> float | None:
        return None if self.unit_price is None else round(self.unit_price * self.quantity, 2)


@dataclass(frozen=True)
class Order:
    """A placed order. ``lines`` holds ``(product_id, options, quantity, unit_price)``."""

    order_id: str
    store_id: str
    visitor_id: str
    lines: list[tuple[str, dict[str, str], int, float | None]]
    total: float
    contact: dict[str, str]
    ts: datetime


@dataclass
class _Visitor:
    visitor_id: str
    session_n: int = 0
    last_seen: float | None = None
    carts: dict[str, dict[str, CartLine]] = field(default_factory=dict)
    checkout_started: set[str] = field(default_factory=set)
    form: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)  # one-shot, per page key
    orders: dict[str, int] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        return f"{self.visitor_id}-{self.session_n}"


class ShopState:
    """Everything the app holds: stores, visitors, orders and the event log (``app.state.shop``)."""

    def __init__(self, stores: Sequence[Store], event_log: EventLog | None,
                 session_timeout_s: float, clock: Callable[[], float | datetime] | None):
        self.stores: dict[str, Store] = {}
        for s in stores:
            if s.store_id in self.stores:
                raise StorefrontError(f"two stores with id {s.store_id!r}; store ids must be "
                                      "unique (they are the merchant ids of the event log)")
            self.stores[s.store_id] = s
        if not self.stores:
            raise StorefrontError("create_app needs at least one store; try "
                                  "make_stores('builtin')")
        self.event_log = event_log if event_log is not None else EventLog()
        self.session_timeout_s = session_timeout_s
        self.clock = clock or time.time
        self.orders: dict[str, Order] = {}
        self.visitors: dict[str, _Visitor] = {}
        self.lock = threading.RLock()

    def touch(self, cookie: str | None) -> tuple[_Visitor, bool, float]:
        """The visitor of this request (new when unknown), its session rolled over after the
        inactivity timeout. Returns (visitor, cookie must be set, now)."""
        now = self.clock()
        now = now.timestamp() if isinstance(now, datetime) else float(now)
        with self.lock:
            new_cookie = False
            if cookie and _VISITOR_RE.match(cookie):
                # An unknown but well-formed id is adopted: a client (the env) may pick its
                # visitor ids, which makes runs reproducible and ties buyer_id to its own ids.
                visitor = self.visitors.get(cookie)
                if visitor is None:
                    visitor = self.visitors[cookie] = _Visitor(cookie)
            else:
                vid = secrets.token_hex(8)
                visitor = self.visitors[vid] = _Visitor(vid)
                new_cookie = True
            if visitor.last_seen is None or now - visitor.last_seen > self.session_timeout_s:
                visitor.session_n += 1
                visitor.checkout_started.clear()  # a new session starts a new checkout
            visitor.last_seen = now
            return visitor, new_cookie, now


def _money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "Price unavailable"
    return f"{_CURRENCY.get(currency, currency + ' ')}{value:,.2f}"


def _clip(text: str | None, n: int = 90) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _parse_number(raw: str | None) -> tuple[float | None, bool]:
    """(value, ok): empty -> (None, True); junk -> (None, False)."""
    if raw is None or not raw.strip():
        return None, True
    try:
        v = float(raw.strip().replace(",", ""))
    except ValueError:
        return None, False
    return (v, True) if math.isfinite(v) and v >= 0 else (None, False)


def _parse_page(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def _validate_checkout(form: Mapping[str, str]) -> dict[str, str]:
    errors = {}
    if not _EMAIL_RE.match(form.get("email", "")):
        errors["email"] = "Enter a valid email address, like name@example.com."
    if len(form.get("name", "")) < 2:
        errors["name"] = "Enter your full name."
    if len(form.get("address", "")) < 5:
        errors["address"] = "Enter a street address (at least 5 characters)."
    if len(form.get("city", "")) < 2:
        errors["city"] = "Enter a city."
    if not _POSTCODE_RE.match(form.get("postcode", "")):
        errors["postcode"] = "Enter a valid postcode (3 to 10 letters or digits)."
    if form.get("country", "") not in COUNTRIES:
        errors["country"] = "Select a country."
    return errors


def _template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("storefront_mock", "templates"),
        autoescape=True,  # everything echoed (queries, form values) is escaped
        auto_reload=False, cache_size=-1, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["clip"] = _clip
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["slug"] = slugify
    env.globals["SORTS"] = SORTS
    env.globals["COUNTRIES"] = COUNTRIES
    # Compile every page up front: the first request of each kind must be as fast as the rest.
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


def create_app(stores: Sequence[Store], event_log: EventLog | None = None, *,
               session_timeout_s: float = 1800.0,
               clock: Callable[[], float | datetime] | None = None) -> Starlette:
    """The shop's ASGI app (Starlette) for these stores.

    Args:
        stores: the merchants (:func:`storefront_mock.make_stores`).
        event_log: where canonical rows go (a new in-memory :class:`EventLog` by default).
        session_timeout_s: inactivity after which a visitor's next request starts a session.
        clock: the time, as seconds since the epoch or an aware datetime (``time.time`` by
            default); tests and simulations pass their own to control event timestamps and
            session rollover.

    Returns:
        The app; ``app.state.shop`` is its :class:`ShopState` (``stores``, ``orders``,
        ``event_log``).
    """
    shop = ShopState(stores, event_log, session_timeout_s, clock)
    env = _template_env()

    # ---- helpers --------------------------------------------------------------------------
    def store_of(request: Request) -> Store:
        store = shop.stores.get(request.path_params["store"])
        if store is None:
            raise HTTPException(404, f"No store {request.path_params['store']!r}.")
        return store

    def emit(store: Store, visitor: _Visitor, now: float, event: str, *,
             product: Product | None = None, price: float | None = None, **kw: Any) -> None:
        if product is not None:
            kw.update(product_id=product.product_id, category=product.category_path,
                      brand=product.brand, price=product.price if price is None else price)
        shop.event_log.append(merchant_id=store.store_id, buyer_id=visitor.visitor_id,
                              session_id=visitor.session_id,
                              ts=datetime.fromtimestamp(now, timezone.utc), event=event, **kw)

    def theme_of(request: Request, store: Store, visitor_id: str) -> tuple[str, str | None]:
        """(theme, value to set in the theme cookie or None): ``?theme=``, else the visitor's
        theme cookie for this store, else the store's assignment."""
        asked = request.query_params.get("theme")
        if asked:
            if asked not in THEMES:
                raise HTTPException(400, f"Unknown theme {asked!r}; valid themes: "
                                         f"{', '.join(THEMES)}.")
            return asked, asked
        cookie = request.cookies.get(f"{THEME_COOKIE}_{store.store_id}")
        return (cookie if cookie in THEMES else store.theme_for(visitor_id)), None

    def finish(response: Response, visitor: _Visitor, new_cookie: bool, store: Store | None,
               theme_cookie: str | None = None) -> Response:
        if new_cookie:
            response.set_cookie(VISITOR_COOKIE, visitor.visitor_id, path="/", httponly=True,
                                samesite="lax")
        if theme_cookie and store is not None:
            # one cookie per store (by name, not by path, so that simple cookie jars agree
            # with browsers): an A/B arm is chosen per visitor and merchant
            response.set_cookie(f"{THEME_COOKIE}_{store.store_id}", theme_cookie, path="/",
                                httponly=True, samesite="lax")
        return response

    def cart_snapshot(visitor: _Visitor, store: Store) -> list[CartLine]:
        with shop.lock:
            return [CartLine(ln.product_id, dict(ln.options), ln.quantity, ln.unit_price)
                    for ln in visitor.carts.get(store.store_id, {}).values()]

    def render(request: Request, store: Store, visitor: _Visitor, new_cookie: bool,
               page: str, title: str, status: int = 200, **ctx: Any) -> Response:
        theme, theme_cookie = request.state.theme
        lines = ctx.pop("lines", None)
        if lines is None:
            lines = cart_snapshot(visitor, store)
        cur = store.catalog.currency
        html = env.get_template(f"{page}.html").render(
            page=page, title=title, theme=theme, store=store, catalog=store.catalog,
            base=f"{theme}/base.html", listing_tpl=f"{theme}/_listing.html",
            cart_count=sum(ln.quantity for ln in lines), lines=lines,
            money=lambda v: _money(v, cur), store_url=f"/s/{store.store_id}",
            q=ctx.pop("q", ""), **ctx)
        return finish(HTMLResponse(html, status), visitor, new_cookie, store, theme_cookie)

    def redirect(url: str, visitor: _Visitor, new_cookie: bool, store: Store) -> Response:
        return finish(RedirectResponse(url, status_code=303), visitor, new_cookie, store)

    def begin(request: Request) -> tuple[Store, _Visitor, bool, float]:
        store = store_of(request)
        visitor, new_cookie, now = shop.touch(request.cookies.get(VISITOR_COOKIE))
        # the theme is checked before anything is logged: a rejected request adds no row
        request.state.theme = theme_of(request, store, visitor.visitor_id)
        return store, visitor, new_cookie, now

    def pop_errors(visitor: _Visitor, key: str) -> dict[str, str]:
        with shop.lock:
            return visitor.errors.pop(key, {})

    # ---- pages ----------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        html = env.get_template("index.html").render(stores=list(shop.stores.values()))
        return HTMLResponse(html)

    async def home(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        cat = store.catalog
        emit(store, visitor, now, "page_view")
        return render(request, store, visitor, new_cookie, "home", cat.name,
                      collections=cat.nav_collections, featured=cat.featured(8))

    async def collections_index(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        cat = store.catalog
        per = COLLECTIONS_PER_PAGE
        pages = max(1, -(-len(cat.top_collections) // per))
        page = min(_parse_page(request.query_params.get("page")), pages)
        emit(store, visitor, now, "page_view")
        base = f"/s/{store.store_id}/collections"
        return render(request, store, visitor, new_cookie, "collections", "All collections",
                      collections=cat.top_collections[(page - 1) * per:page * per],
                      listing=SimpleNamespace(page=page, pages=pages),
                      pages={"prev": f"{base}?page={page - 1}" if page > 1 else None,
                             "next": f"{base}?page={page + 1}" if page < pages else None})

    def listing_args(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
        qp = request.query_params
        errors = {}
        sort = qp.get("sort") or "popularity"
        if sort not in SORTS:
            errors["sort"] = f"Unknown sort order; choose one of: {', '.join(SORTS.values())}."
            sort = "popularity"
        lo, ok_lo = _parse_number(qp.get("min_price"))
        hi, ok_hi = _parse_number(qp.get("max_price"))
        if not ok_lo:
            errors["min_price"] = "Minimum price must be a number."
        if not ok_hi:
            errors["max_price"] = "Maximum price must be a number."
        args = {"sort": sort, "brand": qp.get("brand") or None, "min_price": lo,
                "max_price": hi, "page": _parse_page(qp.get("page"))}
        return args, errors

    def page_links(base: str, params: dict[str, Any], listing: Any) -> dict[str, str | None]:
        def url(page: int) -> str:
            keep = {k: v for k, v in params.items() if v not in (None, "")}
            keep["page"] = page
            return f"{base}?{urlencode(keep)}"

        return {"prev": url(listing.page - 1) if listing.page > 1 else None,
                "next": url(listing.page + 1) if listing.page < listing.pages else None}

    async def collection(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        cat = store.catalog
        coll = cat.collection_by_slug.get(request.path_params["slug"])
        if coll is None:
            raise HTTPException(404, f"No collection {request.path_params['slug']!r}.")
        args, errors = listing_args(request)
        listing = cat.listing(coll, per_page=PER_PAGE, **args)
        emit(store, visitor, now, "collection_view", category=coll.category_path)
        subs = [c for c in cat.collections if len(c.category) == len(coll.category) + 1
                and c.category[:len(coll.category)] == coll.category]
        params = {"sort": args["sort"], "brand": args["brand"] or "",
                  "min_price": request.query_params.get("min_price", ""),
                  "max_price": request.query_params.get("max_price", "")}
        return render(request, store, visitor, new_cookie, "collection", coll.title,
                      collection=coll, listing=listing, subcollections=subs, params=params,
                      brands=listing.brands[:MAX_BRANDS], errors=errors,
                      action=f"/s/{store.store_id}/collections/{coll.slug}",
                      pages=page_links(f"/s/{store.store_id}/collections/{coll.slug}",
                                       params, listing))

    async def search(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        q = (request.query_params.get("q") or "").strip()
        page = _parse_page(request.query_params.get("page"))
        if q:
            hits = [p.product_id for p in store.catalog.search(q)]
            listing = store.catalog.listing(hits, sort="relevance", page=page, per_page=PER_PAGE)
            emit(store, visitor, now, "search", query=q)
        else:
            listing = None
            emit(store, visitor, now, "page_view")
        return render(request, store, visitor, new_cookie, "search",
                      f"Search: {q}" if q else "Search", q=q, listing=listing,
                      pages=page_links(f"/s/{store.store_id}/search", {"q": q}, listing)
                      if listing else {"prev": None, "next": None})

    async def product(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        cat = store.catalog
        p = cat.by_id.get(request.path_params["product_id"])
        if p is None:
            raise HTTPException(404, f"No product {request.path_params['product_id']!r}.")
        emit(store, visitor, now, "product_view", product=p)
        crumbs = [cat.collection_by_slug[s] for s in _crumb_slugs(cat, p)]
        related: list[Product] = []
        if crumbs:
            more = cat.listing(crumbs[-1], per_page=5).items
            related = [x for x in more if x.product_id != p.product_id][:4]
        key = f"{store.store_id}:product:{p.product_id}"
        with shop.lock:
            values = visitor.form.pop(key, {})
        return render(request, store, visitor, new_cookie, "product", p.title, product=p,
                      crumbs=crumbs, related=related, values=values,
                      errors=pop_errors(visitor, key))

    async def cart(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        emit(store, visitor, now, "page_view")
        lines = cart_snapshot(visitor, store)
        return render(request, store, visitor, new_cookie, "cart", "Your cart", lines=lines,
                      total=_total(lines), errors=pop_errors(visitor, f"{store.store_id}:cart"))

    async def cart_add(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        form = await request.form()
        p = store.catalog.by_id.get(str(form.get("product_id", "")))
        if p is None:
            raise HTTPException(404, f"No product {form.get('product_id')!r}.")
        back = f"/s/{store.store_id}/products/{quote(p.product_id, safe='')}"
        errors = {}
        options = {}
        for name, values in p.options.items():
            chosen = str(form.get(f"option-{slugify(name)}", values[0]))
            if chosen not in values:
                errors[f"option-{slugify(name)}"] = (f"Choose a {name.lower()}: "
                                                     f"{', '.join(values)}.")
            options[name] = chosen
        qty = _parse_int(form.get("quantity", "1"))
        if qty is None or not 1 <= qty <= MAX_QUANTITY:
            errors["quantity"] = f"Quantity must be a whole number from 1 to {MAX_QUANTITY}."
        if errors:
            with shop.lock:
                key = f"{store.store_id}:product:{p.product_id}"
                visitor.errors[key] = errors
                # the page shows the choices as submitted, so a fix is one edit away
                visitor.form[key] = {**{f"option-{slugify(k)}": v for k, v in options.items()},
                                     "quantity": str(form.get("quantity", ""))[:20]}
            return redirect(back, visitor, new_cookie, store)
        line = CartLine(p.product_id, options, qty, p.price)  # type: ignore[arg-type]
        with shop.lock:
            lines = visitor.carts.setdefault(store.store_id, {})
            if line.line_id in lines:
                lines[line.line_id].quantity = min(MAX_QUANTITY,
                                                   lines[line.line_id].quantity + qty)
            else:
                lines[line.line_id] = line
        emit(store, visitor, now, "add_to_cart", product=p)
        return redirect(f"/s/{store.store_id}/cart", visitor, new_cookie, store)

    async def cart_update(request: Request, remove: bool = False) -> Response:
        store, visitor, new_cookie, now = begin(request)
        form = await request.form()
        line_id = str(form.get("line", ""))
        qty = 0 if remove else _parse_int(form.get("quantity", ""))
        to_cart = f"/s/{store.store_id}/cart"
        with shop.lock:
            lines = visitor.carts.setdefault(store.store_id, {})
            line = lines.get(line_id)
            if line is None or qty is None or not 0 <= qty <= MAX_QUANTITY:
                visitor.errors[f"{store.store_id}:cart"] = {
                    f"cart-qty-{line_id}" if line is not None else "cart":
                    f"Quantity must be a whole number from 0 to {MAX_QUANTITY}."
                    if line is not None else "That item is no longer in your cart."}
                return redirect(to_cart, visitor, new_cookie, store)
            delta = qty - line.quantity
            if qty == 0:
                del lines[line_id]
            else:
                line.quantity = qty
        p = store.catalog.by_id.get(line.product_id)
        if delta and p is not None:
            emit(store, visitor, now, "add_to_cart" if delta > 0 else "remove_from_cart",
                 product=p, price=line.unit_price)
        return redirect(to_cart, visitor, new_cookie, store)

    async def cart_remove(request: Request) -> Response:
        return await cart_update(request, remove=True)

    async def checkout(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        lines = cart_snapshot(visitor, store)
        with shop.lock:
            first = bool(lines) and store.store_id not in visitor.checkout_started
            if first:
                visitor.checkout_started.add(store.store_id)
            values = dict(visitor.form.get(store.store_id, {}))
        emit(store, visitor, now, "checkout_start" if first else "page_view")
        return render(request, store, visitor, new_cookie, "checkout", "Checkout", lines=lines,
                      total=_total(lines), values=values,
                      errors=pop_errors(visitor, f"{store.store_id}:checkout"))

    async def checkout_post(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        form = await request.form()
        values = {k: " ".join(str(form.get(k, "")).split())[:200] for k in CHECKOUT_FIELDS}
        errors = _validate_checkout(values)
        with shop.lock:
            lines = list(visitor.carts.get(store.store_id, {}).values())
            if not lines:
                visitor.errors[f"{store.store_id}:cart"] = {
                    "cart": "Add something to your cart before checking out."}
                return redirect(f"/s/{store.store_id}/cart", visitor, new_cookie, store)
            visitor.form[store.store_id] = values  # kept for the next render either way
            if errors:
                visitor.errors[f"{store.store_id}:checkout"] = errors
                return redirect(f"/s/{store.store_id}/checkout", visitor, new_cookie, store)
            n = visitor.orders.get(store.store_id, 0) + 1
            visitor.orders[store.store_id] = n
            # Derived from (store, visitor, n): the same visit gives the same order id on every
            # run, which keeps the env's observations (URL, page text) reproducible.
            order_id = hashlib.blake2b(f"{store.store_id}/{visitor.visitor_id}/{n}".encode(),
                                       digest_size=5).hexdigest()
            while order_id in shop.orders:
                order_id = hashlib.blake2b(order_id.encode(), digest_size=5).hexdigest()
            order = Order(order_id, store.store_id, visitor.visitor_id,
                          [(ln.product_id, dict(ln.options), ln.quantity, ln.unit_price)
                           for ln in lines], _total(lines), values,
                          datetime.fromtimestamp(now, timezone.utc))
            shop.orders[order_id] = order
            visitor.carts[store.store_id] = {}
            visitor.checkout_started.discard(store.store_id)
            visitor.form.pop(store.store_id, None)
        for ln in lines:
            p = store.catalog.by_id.get(ln.product_id)
            if p is not None:
                emit(store, visitor, now, "purchase", product=p, price=ln.unit_price)
        return redirect(f"/s/{store.store_id}/orders/{order_id}", visitor, new_cookie, store)

    async def order_page(request: Request) -> Response:
        store, visitor, new_cookie, now = begin(request)
        order = shop.orders.get(request.path_params["order_id"])
        if order is None or order.visitor_id != visitor.visitor_id \
                or order.store_id != store.store_id:
            raise HTTPException(404, "No such order for this visitor.")
        emit(store, visitor, now, "page_view")
        ordered = [CartLine(pid, opts, qty, price) for pid, opts, qty, price in order.lines]
        return render(request, store, visitor, new_cookie, "order", "Thank you for your order",
                      order=order, ordered=ordered,
                      country=COUNTRIES.get(order.contact.get("country", ""), ""))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "Something went wrong.")
        sid = request.path_params.get("store") if hasattr(request, "path_params") else None
        store = shop.stores.get(sid or "")
        html = env.get_template("error.html").render(
            status=status, detail=detail, store=store, home=f"/s/{sid}/" if store else "/")
        return HTMLResponse(html, status)

    routes = [
        Route("/", index),
        Route("/s/{store}/", home),
        Route("/s/{store}/collections", collections_index),
        Route("/s/{store}/collections/{slug}", collection),
        Route("/s/{store}/search", search),
        Route("/s/{store}/products/{product_id:path}", product),
        Route("/s/{store}/cart", cart),
        Route("/s/{store}/cart/add", cart_add, methods=["POST"]),
        Route("/s/{store}/cart/update", cart_update, methods=["POST"]),
        Route("/s/{store}/cart/remove", cart_remove, methods=["POST"]),
        Route("/s/{store}/checkout", checkout),
        Route("/s/{store}/checkout", checkout_post, methods=["POST"]),
        Route("/s/{store}/orders/{order_id}", order_page),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.shop = shop
    return app


def _parse_int(raw: Any) -> int | None:
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def _total(lines: Sequence[CartLine]) -> float:
    return round(sum(ln.subtotal or 0.0 for ln in lines), 2)


def _crumb_slugs(cat: Catalog, p: Product) -> list[str]:
    """Slugs of the collections on the product's category path, root first."""
    found = (cat.collection_by_category.get(p.category[:d]) for d in range(1, len(p.category) + 1))
    return [c.slug for c in found if c is not None]
