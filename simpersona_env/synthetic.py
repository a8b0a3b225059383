"""Seeded synthetic clickstreams in the canonical schema, from a few documented buyer archetypes.

This is the project's fallback data when the real logs are absent (every command says when
it uses it) and the ground truth for the planted-type test of the VQ-VAE: each buyer is drawn
from one :data:`ARCHETYPES` entry, so a model that learns buyer types should recover them.

The traffic is shaped like real logs (see ``../shared/data/README.md``): most buyers view one
or two products and leave, conversion is a few percent and differs across merchants, some
purchases have no cart event before them, some prices and categories are null, ids are large
integers and UUID-like hex strings.

Example:
    >>> from simpersona_env.synthetic import generate_events
    >>> log = generate_events(n_buyers=200, seed=0)
    >>> sorted(log.events.columns) == sorted(CANONICAL_COLUMNS)
    True
    >>> log.labels.columns
    ['merchant_id', 'buyer_id', 'archetype']
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from simpersona_env.errors import ConfigError, UnknownNameError
from storefront_mock.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA

__all__ = [
    "Archetype",
    "ARCHETYPES",
    "REALISTIC_MIX",
    "BALANCED_MIX",
    "SyntheticLog",
    "generate_events",
]


@dataclasses.dataclass(frozen=True)
class Archetype:
    """How one kind of buyer behaves; every range is inclusive and drawn uniformly per buyer.

    Attributes:
        name: short id, used as the planted label.
        description: one line for docs and reports.
        sessions: (min, max) sessions of a buyer.
        views: (min, max) product views per session.
        gap_s: median seconds between two events of a session (log-normal, sigma 0.6).
        search_prob: chance of a search before each product view.
        category_switch: chance that the next view is in another category.
        price_q: (lo, hi) quantiles of the merchant's price range the buyer looks at.
        cart_prob: chance per session of adding a viewed product to the cart.
        purchase_given_cart: chance that a session with a cart ends in a purchase.
        purchase_without_cart: chance that a session without a cart still buys (one click).
        remove_prob: chance that a cart line is removed again.
        landing_page_prob: chance a session starts on a page_view (home or collection).
    """

    name: str
    description: str
    sessions: tuple[int, int]
    views: tuple[int, int]
    gap_s: float
    search_prob: float
    category_switch: float
    price_q: tuple[float, float]
    cart_prob: float
    purchase_given_cart: float
    purchase_without_cart: float
    remove_prob: float
    landing_page_prob: float


#: The planted buyer types. Rates are per session; a merchant's ``propensity`` scales the
#: cart and purchase chances, so conversion differs across merchants as in real logs.
ARCHETYPES: dict[str, Archetype] = {
    a.name: a
    for a in (
        Archetype("bouncer", "lands on one page or product and leaves",
                  sessions=(1, 1), views=(1, 1), gap_s=5.0, search_prob=0.0,
                  category_switch=0.0, price_q=(0.0, 1.0), cart_prob=0.0,
                  purchase_given_cart=0.0, purchase_without_cart=0.0, remove_prob=0.0,
                  landing_page_prob=0.25),
        Archetype("window_shopper", "a few short visits, views a handful of products in one "
                  "category, almost never carts", sessions=(1, 3), views=(2, 5), gap_s=25.0,
                  search_prob=0.05, category_switch=0.1, price_q=(0.2, 0.8), cart_prob=0.03,
                  purchase_given_cart=0.1, purchase_without_cart=0.0, remove_prob=0.3,
                  landing_page_prob=0.3),
        Archetype("deep_browser", "long sessions over many categories and expensive products, "
                  "searches, rarely buys", sessions=(2, 5), views=(10, 28), gap_s=70.0,
                  search_prob=0.2, category_switch=0.5, price_q=(0.6, 1.0), cart_prob=0.15,
                  purchase_given_cart=0.1, purchase_without_cart=0.0, remove_prob=0.5,
                  landing_page_prob=0.5),
        Archetype("decisive_buyer", "comes once, views one or two products and buys at once",
                  sessions=(1, 1), views=(1, 3), gap_s=12.0, search_prob=0.0,
                  category_switch=0.0, price_q=(0.3, 0.9), cart_prob=0.85,
                  purchase_given_cart=0.9, purchase_without_cart=0.85, remove_prob=0.0,
                  landing_page_prob=0.0),
        Archetype("bargain_hunter", "searches a lot, compares cheap products across visits, "
                  "carts often and sometimes buys", sessions=(2, 4), views=(3, 8), gap_s=20.0,
                  search_prob=0.6, category_switch=0.2, price_q=(0.0, 0.2), cart_prob=0.5,
                  purchase_given_cart=0.25, purchase_without_cart=0.02, remove_prob=0.4,
                  landing_page_prob=0.1),
    )
}

#: Shares of archetypes in real-looking traffic (most buyers bounce; ~3-5 % convert).
REALISTIC_MIX: dict[str, float] = {"bouncer": 0.55, "window_shopper": 0.25, "deep_browser": 0.07,
                                   "decisive_buyer": 0.03, "bargain_hunter": 0.10}
#: Equal shares, for the planted-type test (every archetype has enough buyers to be found).
BALANCED_MIX: dict[str, float] = {name: 1.0 / len(ARCHETYPES) for name in ARCHETYPES}

_TOP_CATEGORIES = ("electronics", "apparel", "home", "beauty", "sports", "kids", "books",
                   "garden", "auto", "food")
_SUB = ("basic", "premium", "accessories", "gift", "outdoor", "smart")
_BRANDS = ("acme", "northwind", "contoso", "globex", "initech", "umbrella", "hooli", "vandelay",
           "stark", "wayne", "tyrell", "soylent")
_START = datetime(2024, 3, 4, tzinfo=timezone.utc)
#: Share of traffic per UTC hour (a daytime peak and an evening peak).
_HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5, 5, 4.5, 4.5, 5, 5.5, 6,
                   6.5, 6, 5, 3.5, 2], dtype=float)


class SyntheticLog(NamedTuple):
    """A generated log: the canonical ``events`` and each buyer's planted ``labels``."""

    events: pl.DataFrame
    labels: pl.DataFrame


@dataclasses.dataclass
class _Merchant:
    merchant_id: str
    propensity: float  # scales cart and purchase chances
    categories: list[str]
    product_ids: np.ndarray
    product_cat: np.ndarray  # index into categories, -1 = unknown category
    product_price: np.ndarray  # NaN = unknown price
    product_brand: np.ndarray  # object array, None = unknown brand
    price_rank: np.ndarray  # quantile of each product's price in 0..1


def _make_merchant(i: int, rng: np.random.Generator, n_products: int) -> _Merchant:
    tops = rng.choice(len(_TOP_CATEGORIES), size=3, replace=False)
    cats = [f"{_TOP_CATEGORIES[t]}.{s}" for t in tops
            for s in rng.choice(_SUB, size=int(rng.integers(2, 4)), replace=False)]
    median = float(rng.choice([15.0, 40.0, 120.0, 300.0]))
    price = np.round(rng.lognormal(math.log(median), 0.8, n_products), 2)
    rank = np.argsort(np.argsort(price)) / max(n_products - 1, 1)
    price[rng.random(n_products) < 0.03] = np.nan  # prices missing on a few rows
    cat = rng.integers(0, len(cats), n_products)
    cat[rng.random(n_products) < 0.15] = -1  # categories missing on some products
    brands = np.array(list(rng.choice(_BRANDS, size=n_products)), dtype=object)
    brands[rng.random(n_products) < 0.2] = None
    ids = 1_000_000 + rng.choice(59_000_000, size=n_products, replace=False)
    return _Merchant(
        merchant_id=f"shop-{i + 1:02d}-{_TOP_CATEGORIES[tops[0]]}",
        propensity=float(rng.choice([0.75, 0.9, 1.0, 1.15])),
        categories=cats, product_ids=ids.astype(str), product_cat=cat, product_price=price,
        product_brand=brands, price_rank=rank)


def _check_mix(mix: dict[str, float]) -> tuple[list[str], np.ndarray]:
    for name in mix:
        if name not in ARCHETYPES:
            raise UnknownNameError("archetype", name, ARCHETYPES)
    names = list(mix)
    w = np.array([float(mix[n]) for n in names])
    if (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"archetype mix {mix!r} needs non-negative shares with a positive sum")
    return names, w / w.sum()


def generate_events(n_buyers: int = 2000, *, n_merchants: int = 4, seed: int = 0,
                    mix: dict[str, float] | None = None, days: int = 7,
                    n_products: int = 300) -> SyntheticLog:
    """Generate a canonical event log of ``n_buyers`` buyers spread over ``n_merchants`` shops.

    Args:
        n_buyers: buyers (each buys at one merchant; one row per (merchant, buyer) later).
        n_merchants: shops, each with its own catalog, price level and purchase propensity.
        seed: everything is drawn from ``numpy.random.default_rng(seed)``.
        mix: archetype name -> share; :data:`REALISTIC_MIX` by default, :data:`BALANCED_MIX`
            for planted-type tests.
        days: length of the log; first visits are spread over it.
        n_products: catalog size per merchant.

    Returns:
        :class:`SyntheticLog` with ``events`` (canonical schema, sorted by merchant, buyer, ts)
        and ``labels`` (``merchant_id``, ``buyer_id``, ``archetype``).

    Raises:
        ConfigError: on a non-positive size or a bad mix; UnknownNameError for an unknown
            archetype name.

    Example:
        >>> log = generate_events(50, seed=1, mix=BALANCED_MIX)
        >>> log.labels["archetype"].n_unique()
        5
    """
    if n_buyers < 1 or n_merchants < 1 or days < 1 or n_products < 10:
        raise ConfigError(f"generate_events needs n_buyers>=1, n_merchants>=1, days>=1 and "
                          f"n_products>=10; got {n_buyers}, {n_merchants}, {days}, {n_products}")
    names, weights = _check_mix(REALISTIC_MIX if mix is None else mix)
    rng = np.random.default_rng(seed)
    merchants = [_make_merchant(i, rng, n_products) for i in range(n_merchants)]
    # Merchants differ in size, as real shops do.
    m_share = rng.dirichlet(np.full(n_merchants, 4.0))
    hour_cdf = np.cumsum(_HOURS) / _HOURS.sum()

    cols: dict[str, list] = {c: [] for c in CANONICAL_COLUMNS}
    label_rows: dict[str, list] = {"merchant_id": [], "buyer_id": [], "archetype": []}
    buyer_ids = 100_000_000 + rng.choice(900_000_000, size=n_buyers, replace=False)
    archetype_of = rng.choice(len(names), size=n_buyers, p=weights)
    merchant_of = rng.choice(n_merchants, size=n_buyers, p=m_share)
    horizon_s = days * 86400.0

    def emit(m: _Merchant, buyer: str, session: str, t: float, event: str,
             product: int | None = None, query: str | None = None) -> None:
        cols["merchant_id"].append(m.merchant_id)
        cols["buyer_id"].append(buyer)
        cols["session_id"].append(session)
        cols["ts"].append(int(t * 1e6))
        cols["event"].append(event)
        if product is None:
            cols["product_id"].append(None)
            cols["category"].append(None)
            cols["brand"].append(None)
            cols["price"].append(None)
        else:
            cols["product_id"].append(m.product_ids[product])
            c = m.product_cat[product]
            cols["category"].append(m.categories[c] if c >= 0 else None)
            cols["brand"].append(m.product_brand[product])
            p = m.product_price[product]
            cols["price"].append(None if np.isnan(p) else float(p))
        cols["query"].append(query)
        cols["source"].append("synthetic")

    for b in range(n_buyers):
        arch = ARCHETYPES[names[archetype_of[b]]]
        m = merchants[merchant_of[b]]
        buyer = str(buyer_ids[b])
        label_rows["merchant_id"].append(m.merchant_id)
        label_rows["buyer_id"].append(buyer)
        label_rows["archetype"].append(arch.name)
        lo_q = rng.uniform(arch.price_q[0], max(arch.price_q[0], arch.price_q[1] - 0.1))
        hi_q = min(arch.price_q[1], lo_q + 0.3)
        in_range = np.nonzero((m.price_rank >= lo_q) & (m.price_rank <= hi_q))[0]
        pool = in_range if len(in_range) else np.arange(len(m.product_ids))
        # Why pre-split by category: numpy's scalar rng.choice is slow in a per-event loop.
        pool_cat = m.product_cat[pool]
        by_cat = {c: pool[pool_cat == c] for c in range(len(m.categories))}
        n_sessions = int(rng.integers(arch.sessions[0], arch.sessions[1] + 1))
        # First visit: a random day in the log at a diurnal hour.
        day = rng.integers(0, days)
        hour = int(np.searchsorted(hour_cdf, rng.random()))
        t = _START.timestamp() + day * 86400 + hour * 3600 + rng.uniform(0, 3600)
        for _ in range(n_sessions):
            session = f"{rng.integers(0, 2**63):016x}-{rng.integers(0, 2**31):08x}"
            gap = lambda: float(rng.lognormal(math.log(arch.gap_s), 0.6))  # noqa: E731
            landed = rng.random() < arch.landing_page_prob
            if landed:
                emit(m, buyer, session, t, "page_view")
                t += gap()
            n_views = int(rng.integers(arch.views[0], arch.views[1] + 1))
            if landed and arch.views == (1, 1) and arch.sessions == (1, 1):
                n_views = 0  # a one-event buyer who landed on a page and left
            cat = int(rng.integers(0, len(m.categories)))
            viewed: list[int] = []
            for _v in range(n_views):
                if rng.random() < arch.category_switch:
                    cat = int(rng.integers(0, len(m.categories)))
                if rng.random() < arch.search_prob:
                    brand = _BRANDS[int(rng.integers(0, len(_BRANDS)))]
                    emit(m, buyer, session, t, "search",
                         query=f"{m.categories[cat].split('.')[-1]} {brand}")
                    t += gap()
                same_cat = by_cat[cat]
                # Some views land on products of unknown category (null in the log).
                choices = same_cat if len(same_cat) and rng.random() > 0.15 else pool
                product = int(choices[int(rng.integers(0, len(choices)))])
                emit(m, buyer, session, t, "product_view", product)
                viewed.append(product)
                t += gap()
            carted = None
            if viewed and rng.random() < min(1.0, arch.cart_prob * m.propensity):
                carted = viewed[int(rng.integers(0, len(viewed)))]
                emit(m, buyer, session, t, "add_to_cart", carted)
                t += gap()
                if rng.random() < arch.remove_prob:
                    emit(m, buyer, session, t, "remove_from_cart", carted)
                    t += gap()
                    carted = None
            buy = None
            if carted is not None and rng.random() < min(1.0, arch.purchase_given_cart
                                                         * m.propensity):
                buy = carted
            elif (carted is None and viewed
                  and rng.random() < min(1.0, arch.purchase_without_cart * m.propensity)):
                buy = viewed[-1]  # one-click purchase: no cart event in the log
            if buy is not None:
                if rng.random() < 0.5:
                    emit(m, buyer, session, t, "checkout_start", buy)
                    t += gap()
                emit(m, buyer, session, t, "purchase", buy)
            # Next visit: hours to days later (sessionization gaps are well above 30 min).
            t += float(rng.exponential(86400.0)) + 3600.0
            if t > _START.timestamp() + horizon_s:
                break

    table = pa.table(cols, schema=pa.schema([f.with_nullable(True) for f in CANONICAL_SCHEMA]))
    table = table.cast(CANONICAL_SCHEMA)
    events = pl.from_arrow(table).sort(["merchant_id", "buyer_id", "ts"], maintain_order=True)
    labels = pl.DataFrame(label_rows).sort(["merchant_id", "buyer_id"])
    return SyntheticLog(events=events, labels=labels)
