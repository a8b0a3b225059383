"""Product catalogs: the data model, search, listings, and loaders for every catalog source.

A :class:`Catalog` holds the products and collections of one merchant. It loads from

* the Flipkart and Amazon.in product CSVs in ``<data_dir>/catalogs`` (:func:`load_flipkart`,
  :func:`load_amazon`),
* the products seen in a canonical event log (:func:`from_events`), so that a merchant's own
  clickstream becomes its storefront,
* a deterministic generator (:func:`builtin`), so that everything runs with no data at all.

Search is BM25F over title, brand and category (field weights, per-field length
normalisation), served from an inverted index, so a query costs the postings of its terms
rather than a pass over the catalog.

Example:
    >>> cat = builtin(seed=0, n_products=40)
    >>> hits = cat.search("running shoes")
    >>> hits[0].product_type
    'Running Shoes'
    >>> page = cat.listing(cat.collections[0], sort="price-asc", per_page=5)
    >>> [p.price for p in page.items] == sorted(p.price for p in page.items)
    True
"""

from __future__ import annotations

import ast
import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from storefront_mock.errors import CatalogError, DataMissingError, UnknownNameError

__all__ = [
    "NAV_LIMIT", "COLLECTIONS_PER_PAGE",
    "Product",
    "Collection",
    "Catalog",
    "Listing",
    "SORTS",
    "builtin",
    "load_flipkart",
    "load_amazon",
    "from_events",
    "category_path",
    "slugify",
]

#: At most this many collections in a store's header and on its home page.
NAV_LIMIT = 12
#: Collections per page of the collections index (``/s/<store>/collections``).
COLLECTIONS_PER_PAGE = 40

#: Listing orders: value in the ``sort`` query parameter -> label shown in the select.
SORTS: dict[str, str] = {
    "popularity": "Best selling",
    "price-asc": "Price: low to high",
    "price-desc": "Price: high to low",
}


def slugify(text: str, sep: str = "-") -> str:
    """Lowercase ASCII words joined by ``sep``: ``"Home & Kitchen"`` -> ``"home-kitchen"``."""
    return sep.join(re.findall(r"[a-z0-9]+", text.lower())) or "x"


def category_path(parts: Sequence[str]) -> str | None:
    """The canonical dotted category path: ``("Home Furnishing", "Curtains")`` ->
    ``"home_furnishing.curtains"`` (``None`` for an empty path, never an invented one)."""
    return ".".join(slugify(p, "_") for p in parts) if parts else None


@dataclass(frozen=True)
class Product:
    """One product as the shop shows it.

    ``price`` is the selling price, ``list_price`` the price before discount; either may be
    ``None`` when the source lacks it (missing stays missing). ``options`` are the choices a
    buyer makes on the product page (size, colour, ...), first value preselected.
    """

    product_id: str
    title: str
    brand: str | None
    category: tuple[str, ...]
    price: float | None
    list_price: float | None
    description: str
    attributes: dict[str, str]
    options: dict[str, tuple[str, ...]]
    rating: float | None
    product_type: str
    popularity: float = 0.0

    @property
    def category_path(self) -> str | None:
        """Dotted path as written to the event log."""
        return category_path(self.category)

    def __hash__(self) -> int:  # dict fields make the generated hash fail; ids are unique
        return hash(self.product_id)


@dataclass(frozen=True)
class Collection:
    """A browsable set of products: one category subtree."""

    slug: str
    title: str
    category: tuple[str, ...]
    product_ids: tuple[str, ...]

    @property
    def category_path(self) -> str | None:
        return category_path(self.category)


@dataclass(frozen=True)
class Listing:
    """One page of a collection or search listing."""

    items: tuple[Product, ...]
    page: int
    pages: int
    total: int
    per_page: int
    brands: tuple[tuple[str, int], ...]  # brands of the unfiltered set, most products first


_TOKEN = re.compile(r"[a-z0-9]+")


def _stem(tok: str) -> str:
    # Light plural folding so "shoes" finds "shoe" and "watches" finds "watch"; no dictionary.
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 4 and tok.endswith(("ches", "shes", "sses", "xes")):
        return tok[:-2]
    if len(tok) > 3 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")):
        return tok[:-1]
    return tok


def _tokens(text: str) -> list[str]:
    return [_stem(t) for t in _TOKEN.findall(text.lower())]


class Catalog:
    """The products and collections of one merchant, with search and listing indexes.

    Args:
        store_id: the merchant id (``merchant_id`` in the event log).
        name: the shop's display name.
        products: the products; ids must be unique.
        collections: browsable collections; derived from the category tree when ``None``.
        currency: ISO code used for display (``"INR"``, ``"USD"``, ...).

    Raises:
        CatalogError: on duplicate product ids or a collection naming an unknown product.
    """

    #: BM25F field weights (a brand or category hit says more than a title word) and
    #: per-field length normalisation (none for brands: a long brand name is no weaker)
    FIELD_WEIGHTS = {"title": 1.0, "brand": 2.0, "category": 1.5}
    FIELD_B = {"title": 0.75, "brand": 0.0, "category": 0.5}
    K1 = 1.2

    def __init__(self, store_id: str, name: str, products: Iterable[Product],
                 collections: Iterable[Collection] | None = None, *, currency: str = "USD"):
        self.store_id, self.name, self.currency = store_id, name, currency
        self.products: tuple[Product, ...] = tuple(products)
        self.by_id: dict[str, Product] = {}
        for p in self.products:
            if p.product_id in self.by_id:
                raise CatalogError(f"catalog {store_id!r}: duplicate product id {p.product_id!r}")
            self.by_id[p.product_id] = p
        self.collections: tuple[Collection, ...] = tuple(
            derive_collections(self.products) if collections is None else collections)
        self.collection_by_slug = {c.slug: c for c in self.collections}
        self.collection_by_category: dict[tuple[str, ...], Collection] = {}
        for c in self.collections:
            self.collection_by_category.setdefault(c.category, c)
        self.top_collections: tuple[Collection, ...] = tuple(
            c for c in self.collections if len(c.category) <= 1)
        # The header and home page link at most NAV_LIMIT collections (the largest). A store
        # with more (a log keyed by thousands of category ids) links all of them from a
        # paginated collections index instead, so that every page stays small.
        self.has_collection_index = len(self.top_collections) > NAV_LIMIT
        self.nav_collections: tuple[Collection, ...] = (
            tuple(sorted(self.top_collections, key=lambda c: (-len(c.product_ids), c.title,
                                                             c.slug))[:NAV_LIMIT])
            if self.has_collection_index else self.top_collections)
        for c in self.collections:
            unknown = [i for i in c.product_ids if i not in self.by_id]
            if unknown:
                raise CatalogError(f"collection {c.slug!r} names unknown products {unknown[:3]}")
        # Popularity rank, computed once: every listing sorts by index lookups only.
        ranked = sorted(self.products, key=lambda p: (-p.popularity, p.product_id))
        self._pop_rank = {p.product_id: i for i, p in enumerate(ranked)}
        self._build_search_index()
        self._listing_cache: dict[tuple, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        return (f"Catalog({self.store_id!r}, {len(self.products)} products, "
                f"{len(self.collections)} collections)")

    def product(self, product_id: str) -> Product:
        """The product with this id.

        Raises:
            UnknownNameError: naming close ids.
        """
        try:
            return self.by_id[product_id]
        except KeyError:
            raise UnknownNameError("product", product_id, self.by_id) from None

    def collection(self, slug: str) -> Collection:
        """The collection with this slug (raises :class:`UnknownNameError`)."""
        try:
            return self.collection_by_slug[slug]
        except KeyError:
            raise UnknownNameError("collection", slug, self.collection_by_slug) from None

    # ---- search -----------------------------------------------------------------------
    def _build_search_index(self) -> None:
        # BM25F (Robertson & Zaragoza 2009): field term frequencies are length-normalised per
        # field and weighted, then saturated once. That part does not depend on the query, so
        # each posting stores it and a query only sums idf-weighted saturations.
        fields = [{"title": _tokens(p.title), "brand": _tokens(p.brand or ""),
                   "category": _tokens(" ".join(p.category))} for p in self.products]
        n = max(len(self.products), 1)
        avg = {f: (sum(len(d[f]) for d in fields) / n) or 1.0 for f in self.FIELD_WEIGHTS}
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, doc in enumerate(fields):
            tf: dict[str, float] = defaultdict(float)
            for f, toks in doc.items():
                if not toks:
                    continue
                norm = 1 - self.FIELD_B[f] + self.FIELD_B[f] * len(toks) / avg[f]
                for tok, c in Counter(toks).items():
                    tf[tok] += self.FIELD_WEIGHTS[f] * c / norm
            for tok, w in tf.items():
                postings[tok].append((i, w * (self.K1 + 1) / (self.K1 + w)))
        self._postings = dict(postings)
        self._idf = {t: math.log(1 + (n - len(ps) + 0.5) / (len(ps) + 0.5))
                     for t, ps in postings.items()}
        self._search_cached = lru_cache(maxsize=1024)(self._search_uncached)

    def _search_uncached(self, query: str) -> tuple[str, ...]:
        scores: dict[int, float] = defaultdict(float)
        for tok in dict.fromkeys(query.split()):  # a repeated word counts once
            idf = self._idf.get(tok, 0.0)
            for i, sat in self._postings.get(tok, ()):
                scores[i] += idf * sat
        # round so that float noise never reorders equal scores; popularity breaks ties
        order = sorted(scores, key=lambda i: (-round(scores[i], 9),
                                              self._pop_rank[self.products[i].product_id]))
        return tuple(self.products[i].product_id for i in order)

    def search(self, query: str, limit: int | None = None) -> list[Product]:
        """Products matching ``query``, most relevant first (BM25F over title, brand and
        category with field weights; ties go to the more popular product). Empty when nothing
        matches.

        Example:
            >>> builtin(n_products=30).search("zzz-not-there")
            []
        """
        ids = self._search_cached(" ".join(_tokens(query)))
        return [self.by_id[i] for i in ids[:limit]]

    # ---- listings ---------------------------------------------------------------------
    def _sorted_ids(self, key: tuple, ids: Sequence[str], sort: str) -> tuple[str, ...]:
        cache_key = (key, sort)
        hit = self._listing_cache.get(cache_key)
        if hit is not None:
            return hit
        pop = self._pop_rank
        if sort == "popularity":
            out = sorted(ids, key=lambda i: pop[i])
        elif sort in ("price-asc", "price-desc"):
            sign = 1 if sort == "price-asc" else -1
            # unknown prices go last in both directions; popularity breaks ties
            out = sorted(ids, key=lambda i: (self.by_id[i].price is None,
                                             sign * (self.by_id[i].price or 0.0), pop[i]))
        elif sort == "relevance":
            out = list(ids)
        else:
            raise UnknownNameError("sort", sort, [*SORTS, "relevance"])
        result = tuple(out)
        if len(self._listing_cache) < 4096:  # bounded: keys come from URLs
            self._listing_cache[cache_key] = result
        return result

    def listing(self, source: Collection | Sequence[str] | str, *, sort: str = "popularity",
                brand: str | None = None, min_price: float | None = None,
                max_price: float | None = None, page: int = 1, per_page: int = 12) -> Listing:
        """Sort, filter and paginate a collection (or a slug, or a list of product ids).

        Filtering by a price range drops products without a price. ``page`` is clamped to the
        valid range, so a stale link never errors.
        """
        if isinstance(source, str):
            source = self.collection(source)
        if isinstance(source, Collection):
            key: tuple = ("c", source.slug)
            ids: Sequence[str] = source.product_ids
        else:
            ids = tuple(source)
            key = ("ids", ids) if sort != "relevance" else ("ids-rel", ids)
        ordered = self._sorted_ids(key, ids, sort)
        brands = self._brand_counts(key, ordered)
        if brand or min_price is not None or max_price is not None:
            by_id = self.by_id

            def keep(i: str) -> bool:
                p = by_id[i]
                if brand and (p.brand or "").lower() != brand.lower():
                    return False
                if min_price is not None and (p.price is None or p.price < min_price):
                    return False
                if max_price is not None and (p.price is None or p.price > max_price):
                    return False
                return True

            ordered = tuple(i for i in ordered if keep(i))
        total = len(ordered)
        pages = max(1, math.ceil(total / per_page))
        page = min(max(1, page), pages)
        start = (page - 1) * per_page
        items = tuple(self.by_id[i] for i in ordered[start:start + per_page])
        return Listing(items, page, pages, total, per_page, brands)

    def _brand_counts(self, key: tuple, ids: Sequence[str]) -> tuple[tuple[str, int], ...]:
        cache_key = ("brands", key)
        hit = self._listing_cache.get(cache_key)
        if hit is None:
            c = Counter(self.by_id[i].brand for i in ids if self.by_id[i].brand)
            hit = tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0].lower())))
            if len(self._listing_cache) < 4096:
                self._listing_cache[cache_key] = hit
        return hit  # type: ignore[return-value]

    def featured(self, n: int = 8) -> list[Product]:
        """The ``n`` most popular products (the home page's featured row)."""
        return [self.by_id[i] for i in self._sorted_ids(("all",), list(self.by_id),
                                                        "popularity")[:n]]


def derive_collections(products: Sequence[Product], *, max_depth: int = 2,
                       min_size: int = 2) -> list[Collection]:
    """One collection per category prefix up to ``max_depth`` levels with at least
    ``min_size`` products (top levels always), in first-seen order; plus ``all`` ("All
    products") first when some products have no category, so that browsing reaches them."""
    members: dict[tuple[str, ...], list[str]] = {}
    for p in products:
        for d in range(1, min(max_depth, len(p.category)) + 1):
            members.setdefault(p.category[:d], []).append(p.product_id)
    out, seen = [], set()
    for path, ids in members.items():
        if len(path) > 1 and len(ids) < min_size:
            continue
        slug = base = "-".join(slugify(x) for x in path)
        n = 2
        while slug in seen:  # two paths may slugify alike ("A & B" vs "A B")
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        out.append(Collection(slug, _label(path[-1]), path, tuple(ids)))
    if any(not p.category for p in products):
        slug = "all" if "all" not in seen else "all-products"
        out.insert(0, Collection(slug, "All products", (), tuple(p.product_id for p in products)))
    # top level first so the navigation and home page read naturally
    return sorted(out, key=lambda c: len(c.category) > 1)


def _label(part: str) -> str:
    """Display label of a category part (event-log paths are lowercase snake case)."""
    return part.replace("_", " ").capitalize() if part.islower() else part


def _stable_score(*parts: str) -> float:
    """A deterministic pseudo-random number in [0, 1) (Python's hash() is salted per run)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# ---------------------------------------------------------------------------------------
# Real catalogs
# ---------------------------------------------------------------------------------------

_PRICE_NUM = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")


def parse_price(value: Any) -> float | None:
    """``"₹1,099"``, ``"Rs. 899"``, ``"1899.0"``, ``1899`` -> float; empty or junk -> ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    m = _PRICE_NUM.search(str(value))
    return float(m.group(0).replace(",", "")) if m else None


def _parse_float(value: Any) -> float | None:
    try:
        out = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str | None]]:
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise DataMissingError(
            f"catalog file {path} not found; set SIMPERSONA_DATA_DIR to the folder holding "
            "catalogs/ (see the data README), or use store=builtin, which needs no data")
    try:
        df = pl.read_csv(path, infer_schema_length=0)  # all strings: we parse values ourselves
    except Exception as exc:  # polars raises several types for malformed CSV
        raise CatalogError(f"cannot read {path} as CSV: {exc}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {missing}; found {df.columns}")
    return df.to_dicts()


_SPEC_PAIR = re.compile(r'\{"key"=>"((?:[^"\\]|\\.)*)",\s*"value"=>"((?:[^"\\]|\\.)*)"\}')
_OPTION_KEYS = {"color": "Color", "colour": "Color", "size": "Size"}


def _flipkart_specs(text: str | None) -> list[tuple[str, str]]:
    """Pairs from Flipkart's Ruby-hash-like ``{"product_specification"=>[{"key"=>..,
    "value"=>..}, ...]}``; entries without a key (free-text notes) are skipped."""
    if not text:
        return []
    return [(k.strip(), v.strip()) for k, v in _SPEC_PAIR.findall(text) if k.strip() and v.strip()]


def _flipkart_category(tree: str | None, brand: str | None,
                       title: str) -> tuple[tuple[str, ...], str | None]:
    """(category path, brand named by the tree or None).

    ``'["Watches >> Wrist Watches >> Maserati Time Wrist Watches"]'``: the tail of the tree is
    often per-brand (``"<Brand> <parent>"``) or the product name itself (cut with ``...``);
    those are not categories, so the path stops before them, and a per-brand level names the
    brand when the brand column is empty.
    """
    if not tree:
        return (), None
    try:
        inner = ast.literal_eval(tree)
        inner = inner[0] if isinstance(inner, list) and inner else str(inner)
    except (ValueError, SyntaxError):
        inner = tree.strip('[]"')
    parts = [p.strip() for p in str(inner).split(">>") if p.strip()]
    out: list[str] = []
    b = (brand or "").lower()
    named = None
    for part in parts:
        low = part.lower()
        prefix = part[: -len(out[-1])].strip() if out and low.endswith(" " + out[-1].lower()) \
            else ""
        if prefix and title.lower().startswith(prefix.lower()):  # "<Brand> <parent>"
            named = prefix
            break
        if (part.endswith("...") or (b and low.startswith(b + " ")) or low == title.lower()
                or (out and title.lower().startswith(low))):
            break
        out.append(part)
    return tuple(out), named


def load_flipkart(path: str | Path, *, store_id: str = "flipkart",
                  name: str = "Flipkart sample") -> Catalog:
    """Load ``flipkart-1050.csv`` (PromptCloud crawl, Kaggle).

    Category from ``product_category_tree`` (``A >> B >> C``, per-brand and product-name
    tails dropped); price = ``discounted_price``, list price = ``retail_price``; attributes from
    ``product_specifications``; its Color and Size become single-choice options; brand from
    the ``brand`` column, else the spec's Brand, else the tree's per-brand level; popularity
    is a stable per-id score (the crawl has no sales or rating counts).

    Raises:
        DataMissingError: the file is not there (the message names SIMPERSONA_DATA_DIR).
        CatalogError: the file lacks the expected columns.
    """
    rows = _read_csv(Path(path), ["pid", "product_name", "product_category_tree",
                                  "retail_price", "discounted_price", "brand",
                                  "product_specifications", "description"])
    products = []
    seen: set[str] = set()
    for r in rows:
        pid = (r["pid"] or "").strip()
        if not pid or pid in seen:
            continue
        seen.add(pid)
        title = " ".join((r["product_name"] or pid).split())
        specs = _flipkart_specs(r["product_specifications"])
        brand = (r["brand"] or "").strip() or next((v for k, v in specs if k == "Brand"), None)
        attributes: dict[str, str] = {}
        options: dict[str, tuple[str, ...]] = {}
        for k, v in specs:
            if k == "Brand":
                continue
            opt = _OPTION_KEYS.get(k.lower())
            if opt and opt not in options:
                options[opt] = (v,)
            elif k not in attributes:
                attributes[k] = v
        category, named = _flipkart_category(r["product_category_tree"], brand, title)
        brand = brand or named
        rating = _parse_float(r.get("product_rating"))
        products.append(Product(
            product_id=pid, title=title, brand=brand or None, category=category,
            price=parse_price(r["discounted_price"]), list_price=parse_price(r["retail_price"]),
            description=" ".join((r["description"] or "").split()),
            attributes=attributes, options=options, rating=rating,
            product_type=category[-1] if category else "Product",
            popularity=_stable_score("flipkart", pid)))
    return Catalog(store_id, name, products, currency="INR")


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _amazon_part(part: str) -> str:
    # "Computers&Accessories" -> "Computers & Accessories", "USBCables" -> "USB Cables"
    part = part.replace("&", " & ").replace(",", ", ")
    return " ".join(_CAMEL.sub(" ", part).split())


_BULLET_HEAD = re.compile(
    r"^\s*[【\[]?\s*([^:：【】\[\]|]{2,40}?)\s*[】\]]?\s*(?:[:：]|\s[-–]\s|】\s*-?)\s*(.+)$")
_COLOURS = {
    "black", "white", "grey", "gray", "blue", "red", "green", "yellow", "pink", "purple",
    "silver", "gold", "orange", "brown", "beige", "navy", "maroon", "teal", "cyan",
    "multicolor", "multicolour", "rose gold", "space grey", "dark blue", "light blue",
    "dark grey", "jet black", "midnight blue", "olive", "cream", "transparent", "violet",
}


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + "…"


def load_amazon(path: str | Path, *, store_id: str = "amazon",
                name: str = "Amazon.in sample") -> Catalog:
    """Load ``amazon-in.csv`` (Kaggle "Amazon Sales Dataset", amazon.in 2023).

    Rows repeating a ``product_id`` are dropped (the first is kept); category from ``A|B|C``
    with CamelCase split; prices from ``₹1,099``-style strings; attributes from the
    ``about_product`` bullets that have a short heading (``Material: ...``); a colour in the
    title's last parenthesis becomes a Color option; brand is the title's first word, spelled
    as most titles spell it; popularity is ``rating_count``.

    Raises:
        DataMissingError: the file is not there (the message names SIMPERSONA_DATA_DIR).
        CatalogError: the file lacks the expected columns.
    """
    rows = _read_csv(Path(path), ["product_id", "product_name", "category",
                                  "discounted_price", "actual_price", "rating",
                                  "rating_count", "about_product"])
    # brand spelling: the most common casing of the first word ("AmazonBasics"/"Amazonbasics")
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        first = (r["product_name"] or "").split(maxsplit=1)
        if first:
            w = first[0].strip("®™,()")
            spellings[w.lower()][w] += 1
    products = []
    seen: set[str] = set()
    for r in rows:
        pid = (r["product_id"] or "").strip()
        if not pid or pid in seen:
            continue
        seen.add(pid)
        title = " ".join((r["product_name"] or pid).split())
        first = title.split(maxsplit=1)[0].strip("®™,()") if title else ""
        brand = spellings[first.lower()].most_common(1)[0][0] if first else None
        category = tuple(_amazon_part(p) for p in (r["category"] or "").split("|") if p.strip())
        bullets = [b.strip() for b in (r["about_product"] or "").split("|") if b.strip()]
        attributes: dict[str, str] = {}
        for b in bullets:
            m = _BULLET_HEAD.match(b)
            if m and len(attributes) < 8:
                key = " ".join(m.group(1).split()).strip(" -").title()
                if key and key not in attributes:
                    attributes[key] = _clip(m.group(2))
        options: dict[str, tuple[str, ...]] = {}
        tail = re.search(r"\(([^()]*)\)\s*$", title)
        if tail:
            colours = [c.strip() for c in tail.group(1).split(",")
                       if c.strip().lower() in _COLOURS]
            if colours:
                options["Color"] = (colours[-1],)
        count = parse_price(r["rating_count"])
        products.append(Product(
            product_id=pid, title=title, brand=brand, category=category,
            price=parse_price(r["discounted_price"]), list_price=parse_price(r["actual_price"]),
            description="\n".join(bullets), attributes=attributes, options=options,
            rating=_parse_float(r["rating"]),
            product_type=category[-1] if category else "Product",
            popularity=count or 0.0))
    return Catalog(store_id, name, products, currency="INR")


# ---------------------------------------------------------------------------------------
# Catalog from a canonical event log
# ---------------------------------------------------------------------------------------

def read_event_frame(events: Any):  # -> polars.DataFrame
    """A canonical log as a polars DataFrame, from a DataFrame, an Arrow table, a Parquet file,
    a (hive-partitioned) folder of them, or an ingest output folder holding ``events/``.

    Ids are read as strings even where a partition folder made them look numeric.
    """
    import polars as pl

    if isinstance(events, (str, Path)):
        p = Path(events)
        if p.is_dir() and (p / "events").is_dir():
            p = p / "events"  # the output folder of `simpersona ingest`
        if not p.exists():
            raise DataMissingError(f"event log {p} not found; ingest one first "
                                   "(simpersona ingest) or pass a canonical Parquet file")
        try:
            df = pl.read_parquet(p)
        except Exception as exc:  # polars raises several types for unreadable input
            raise CatalogError(f"cannot read {p} as Parquet: {exc}") from exc
    elif isinstance(events, pl.DataFrame):
        df = events
    else:
        df = pl.from_arrow(events)  # type: ignore[assignment]
    ids = [pl.col(c).cast(pl.Utf8) for c in ("merchant_id", "product_id") if c in df.columns]
    return df.with_columns(ids) if ids else df


def from_events(events: Any, merchant_id: str, *, name: str | None = None,
                currency: str = "USD") -> Catalog:
    """The products a merchant's canonical event log shows, as that merchant's catalog.

    Per product: the latest non-null category, brand and price seen in the log; the title is
    composed from brand, leaf category and id (``"Samsung Smartphone 1004856"``); missing
    values stay missing; popularity is the product's number of events.

    Args:
        events: a polars DataFrame, a pyarrow Table, or a Parquet path (file, folder, or
            `simpersona ingest` output) with the canonical columns (storefront_mock/canonical.py).
        merchant_id: whose products to take.

    Raises:
        CatalogError: the log lacks canonical columns or has no product of that merchant.
    """
    import polars as pl

    df = read_event_frame(events)
    need = ["merchant_id", "product_id", "category", "brand", "price", "ts"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CatalogError(f"event log lacks canonical column(s) {missing}; "
                           "ingest it first (simpersona ingest)")
    sub = (df.filter((pl.col("merchant_id") == merchant_id) & pl.col("product_id").is_not_null())
           .sort("ts")
           .group_by("product_id", maintain_order=True)
           .agg(pl.col("category").drop_nulls().last(), pl.col("brand").drop_nulls().last(),
                pl.col("price").drop_nulls().last(), pl.len().alias("n")))
    if sub.height == 0:
        merchants = df["merchant_id"].unique().head(20).to_list()
        raise UnknownNameError("merchant", merchant_id, [str(m) for m in merchants])
    products = []
    for r in sub.iter_rows(named=True):
        pid = str(r["product_id"])
        cat = tuple(x for x in (r["category"] or "").split(".") if x)
        leaf = _label(cat[-1]) if cat else None
        brand = r["brand"]
        label_brand = brand.title() if brand and brand.islower() else brand
        title = " ".join(x for x in (label_brand, leaf or "Product", pid) if x)
        products.append(Product(
            product_id=pid, title=title, brand=brand, category=cat,
            price=None if r["price"] is None else float(r["price"]), list_price=None,
            description=f"{title}. Seen {r['n']} times in the store's event log.",
            attributes={}, options={}, rating=None, product_type=leaf or "Product",
            popularity=float(r["n"])))
    return Catalog(merchant_id, name or f"Store {merchant_id}", products, currency=currency)


# ---------------------------------------------------------------------------------------
# Built-in generated catalog
# ---------------------------------------------------------------------------------------

# (category path, product type, brands, price range, attribute choices, option choices)
_BUILTIN_KINDS: list[tuple[tuple[str, ...], str, tuple[str, ...], tuple[float, float],
                           dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = [
    (("Apparel", "Men", "T-Shirts"), "T-Shirt", ("Northwind", "Bluefin", "Everyday Co"),
     (9, 39), {"Material": ("Cotton", "Organic cotton", "Polyester blend"),
               "Fit": ("Regular", "Slim", "Relaxed"), "Sleeve": ("Short sleeve", "Long sleeve")},
     {"Size": ("S", "M", "L", "XL"), "Color": ("Black", "White", "Navy", "Olive")}),
    (("Apparel", "Women", "Dresses"), "Dress", ("Lumen", "Everyday Co", "Marigold"),
     (29, 129), {"Material": ("Linen", "Viscose", "Cotton"), "Length": ("Mini", "Midi", "Maxi"),
                 "Occasion": ("Casual", "Party", "Work")},
     {"Size": ("XS", "S", "M", "L"), "Color": ("Red", "Black", "Floral", "Blue")}),
    (("Shoes", "Running Shoes"), "Running Shoes", ("Stride", "Bluefin", "Peakline"),
     (49, 189), {"Cushioning": ("Light", "Balanced", "Max"), "Surface": ("Road", "Trail"),
                 "Waterproof": ("Yes", "No")},
     {"Size": ("7", "8", "9", "10", "11"), "Color": ("Black", "Grey", "Blue")}),
    (("Shoes", "Sandals"), "Sandals", ("Stride", "Marigold"), (19, 79),
     {"Material": ("Leather", "Rubber", "Cork"), "Closure": ("Buckle", "Slip-on")},
     {"Size": ("6", "7", "8", "9", "10")}),
    (("Electronics", "Audio", "Headphones"), "Headphones", ("Sonora", "Voltix", "Auralis"),
     (25, 349), {"Type": ("Over-ear", "On-ear", "In-ear"), "Connectivity": ("Bluetooth", "Wired"),
                 "Noise cancelling": ("Yes", "No")},
     {"Color": ("Black", "White", "Silver")}),
    (("Electronics", "Phones", "Smartphones"), "Smartphone", ("Voltix", "Orbit", "Nimbus"),
     (149, 999), {"Screen": ("6.1 inch", "6.5 inch", "6.7 inch"),
                  "Camera": ("48 MP", "64 MP", "108 MP")},
     {"Storage": ("64 GB", "128 GB", "256 GB"), "Color": ("Black", "Blue", "Green")}),
    (("Home", "Kitchen", "Coffee Mugs"), "Coffee Mug", ("Hearth", "Claystone"), (6, 29),
     {"Material": ("Ceramic", "Stoneware", "Glass"), "Capacity": ("250 ml", "350 ml", "450 ml"),
      "Dishwasher safe": ("Yes", "No")},
     {"Color": ("White", "Blue", "Sage")}),
    (("Home", "Bedding", "Bedsheets"), "Bedsheet", ("Hearth", "Dreamweave"), (19, 99),
     {"Material": ("Cotton", "Linen", "Microfibre"), "Thread count": ("200", "300", "400")},
     {"Size": ("Single", "Double", "King"), "Color": ("White", "Grey", "Blue")}),
    (("Beauty", "Skin Care", "Moisturizers"), "Moisturizer", ("Dewdrop", "Pureleaf"), (8, 59),
     {"Skin type": ("Dry", "Oily", "Combination", "All"), "Fragrance free": ("Yes", "No")},
     {"Size": ("50 ml", "100 ml")}),
    (("Books", "Fiction"), "Novel", ("Inkwell Press", "Paperlane"), (7, 25),
     {"Genre": ("Mystery", "Science fiction", "Romance", "Fantasy"),
      "Format": ("Paperback", "Hardcover")},
     {}),
]
_ADJECTIVES = ("Classic", "Essential", "Premium", "Everyday", "Ultra", "Signature", "Pro",
               "Lite", "Heritage", "Urban", "Coastal", "Alpine")


def builtin(seed: int = 0, n_products: int = 120, *, store_id: str = "builtin",
            name: str = "SimPersona Demo Store") -> Catalog:
    """A generated catalog (ten product kinds in five departments, with brands, attributes and
    options), the same for the same ``seed``. Lets the project run with no data.

    Example:
        >>> a, b = builtin(seed=3, n_products=20), builtin(seed=3, n_products=20)
        >>> [p.title for p in a.products] == [p.title for p in b.products]
        True
    """
    if n_products < 1:
        raise CatalogError(f"n_products must be >= 1, got {n_products}")
    rng = random.Random(seed)
    products = []
    for i in range(n_products):
        cat, ptype, brands, (lo, hi), attr_choices, opt_choices = _BUILTIN_KINDS[
            i % len(_BUILTIN_KINDS)]
        brand = rng.choice(brands)
        attributes = {k: rng.choice(v) for k, v in attr_choices.items()}
        # each product offers a random non-empty subset of each option's values, in order
        options = {}
        for k, vals in opt_choices.items():
            chosen = tuple(v for v in vals if rng.random() < 0.7) or (rng.choice(vals),)
            options[k] = chosen
        adjective = rng.choice(_ADJECTIVES)
        lead = next(iter(attributes.values()))
        title = f"{brand} {adjective} {lead} {ptype}"
        price = round(math.floor(rng.uniform(lo, hi)) + 0.99, 2)
        list_price = round(price * rng.choice((1.0, 1.0, 1.2, 1.5)), 2)
        details = "; ".join(f"{k.lower()}: {v}" for k, v in attributes.items())
        products.append(Product(
            product_id=f"SP{seed % 1000:03d}{i:04d}", title=title, brand=brand, category=cat,
            price=price, list_price=list_price if list_price > price else None,
            description=f"The {adjective.lower()} {ptype.lower()} from {brand}. {details}.",
            attributes=attributes, options=options, rating=round(rng.uniform(3.0, 5.0), 1),
            product_type=ptype, popularity=float(rng.randint(0, 5000))))
    return Catalog(store_id, name, products, currency="USD")
