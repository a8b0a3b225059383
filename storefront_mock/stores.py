"""Merchants: a catalog plus a theme, and the named presets the CLI and the env ask for.

Example:
    >>> stores = make_stores("builtin")
    >>> stores[0].store_id, stores[0].theme
    ('builtin', 'classic')
    >>> make_stores("nope")
    Traceback (most recent call last):
    ...
    storefront_mock.errors.UnknownNameError: unknown store preset 'nope'; valid choices: ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storefront_mock.canonical import default_data_dir
from storefront_mock.catalog import (
    Catalog,
    builtin,
    from_events,
    load_amazon,
    load_flipkart,
    read_event_frame,
    slugify,
)
from storefront_mock.errors import DataMissingError, StorefrontError, UnknownNameError

__all__ = ["Store", "THEMES", "AB_SPLIT", "STORE_PRESETS", "make_stores", "stores_from_events"]

#: Theme names: both render the same elements with the same ids, in different layouts.
#: ``classic``: list rows, filters in a left sidebar, header logo | search | nav | cart.
#: ``grid``: product cards in a grid, filters in a bar on top, header nav | logo | cart | search.
THEMES: tuple[str, ...] = ("classic", "grid")


#: ``theme=AB_SPLIT`` in :func:`make_stores`: every visitor gets one theme of each store, by a
#: stable hash of store and visitor id (an A/B test with equal arms).
AB_SPLIT = "ab"


@dataclass(frozen=True)
class Store:
    """One merchant of the shop: its id (the ``merchant_id`` of its events), catalog, theme.

    With ``ab_themes`` set, a visitor without a theme cookie sees
    :meth:`theme_for` (its visitor id) instead of ``theme``: an A/B split that analysis can
    recompute from the event log's ``buyer_id``.
    """

    store_id: str
    catalog: Catalog
    theme: str = "classic"
    ab_themes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for t in (self.theme, *self.ab_themes):
            if t not in THEMES:
                raise UnknownNameError("theme", t, THEMES)

    def theme_for(self, visitor_id: str) -> str:
        """The theme this visitor is assigned (``theme`` unless the store splits visitors).

        Example:
            >>> s = Store("x", builtin(n_products=5), ab_themes=THEMES)
            >>> s.theme_for("visitor-1") in THEMES
            True
        """
        if not self.ab_themes:
            return self.theme
        digest = hashlib.blake2b(f"{self.store_id}/{visitor_id}".encode(), digest_size=8)
        return self.ab_themes[int.from_bytes(digest.digest(), "big") % len(self.ab_themes)]

    @property
    def name(self) -> str:
        return self.catalog.name


def _catalog_file(data_dir: Path | None, name: str) -> Path:
    root = Path(data_dir) if data_dir else default_data_dir()
    path = root / "catalogs" / name
    if not path.exists():
        raise DataMissingError(
            f"this store needs {path}, which is missing; set SIMPERSONA_DATA_DIR to the data "
            f"folder (it holds catalogs/{name}; see the data README for where to get it), "
            "or use store=builtin, which needs no data")
    return path


def _builtin(data_dir: Path | None, seed: int, n_products: int) -> list[Store]:
    return [Store("builtin", builtin(seed=seed, n_products=n_products), "classic")]


def _flipkart(data_dir: Path | None, seed: int, n_products: int) -> list[Store]:
    path = _catalog_file(data_dir, "flipkart-1050.csv")
    return [Store("flipkart", load_flipkart(path), "grid")]


def _amazon(data_dir: Path | None, seed: int, n_products: int) -> list[Store]:
    path = _catalog_file(data_dir, "amazon-in.csv")
    return [Store("amazon", load_amazon(path), "classic")]


def _multi(data_dir: Path | None, seed: int, n_products: int) -> list[Store]:
    # Each Flipkart top category becomes its own merchant (as a top-level category stands in
    # for a merchant in the real logs), plus the built-in shop; themes alternate so that a
    # population run sees both layouts.
    full = load_flipkart(_catalog_file(data_dir, "flipkart-1050.csv"))
    return _split_by_department(full, "fk-", " (Flipkart)") + _builtin(data_dir, seed,
                                                                         n_products)


def stores_from_events(events: Any, merchants: Sequence[str] | None = None, *,
                       max_merchants: int = 8, currency: str = "USD") -> list[Store]:
    """One store per merchant of a canonical event log, its catalog the products the log shows
    (:func:`storefront_mock.catalog.from_events`); themes alternate.

    Args:
        events: a polars DataFrame, pyarrow Table or Parquet path (file, folder, or the output
            folder of `simpersona ingest`) in the canonical schema.
        merchants: which merchants (default: the ``max_merchants`` with most product rows).

    Raises:
        UnknownNameError: a merchant the log does not have.
    """
    import polars as pl

    events = read_event_frame(events)
    if merchants is None:
        counts = (events.filter(pl.col("product_id").is_not_null())
                  .group_by("merchant_id").len().sort(["len", "merchant_id"],
                                                      descending=[True, False]))
        merchants = counts["merchant_id"].head(max_merchants).to_list()
    return [Store(str(m), from_events(events, str(m), currency=currency), THEMES[i % len(THEMES)])
            for i, m in enumerate(merchants)]


def _split_by_department(full: Catalog, prefix: str, suffix: str) -> list[Store]:
    stores = []
    for i, coll in enumerate(c for c in full.top_collections if c.category):
        sid = prefix + slugify(coll.title)
        products = [full.by_id[p] for p in coll.product_ids]
        cat = Catalog(sid, f"{coll.title}{suffix}", products, currency=full.currency)
        stores.append(Store(sid, cat, THEMES[i % len(THEMES)]))
    return stores


def _builtin_multi(data_dir: Path | None, seed: int, n_products: int) -> list[Store]:
    # the generated catalog's departments as separate merchants: several merchants, no data
    return _split_by_department(builtin(seed=seed, n_products=n_products), "demo-", " (demo)")


#: preset name -> (description, builder(data_dir, seed, n_products) -> stores)
STORE_PRESETS: dict[str, tuple[str, Callable[[Path | None, int, int], list[Store]]]] = {
    "builtin": ("generated demo catalog, no data needed", _builtin),
    "flipkart": ("Flipkart sample, 1,050 products (needs the data folder)", _flipkart),
    "amazon": ("Amazon.in sample, 1,349 products (needs the data folder)", _amazon),
    "multi": ("each Flipkart top category as its own merchant, plus builtin", _multi),
    "builtin_multi": ("each department of the generated catalog as its own merchant, "
                      "no data needed", _builtin_multi),
}


def make_stores(names: str | Sequence[str], data_dir: str | Path | None = None, seed: int = 0,
                theme: str | None = None, *, n_products: int = 120) -> list[Store]:
    """Build the stores of one or more presets (``"builtin"``, ``"flipkart"``, ``"amazon"``,
    ``"multi"``, ``"builtin_multi"``; a comma-separated string works too).

    Args:
        names: preset name(s).
        data_dir: the data folder (default: ``$SIMPERSONA_DATA_DIR`` or ``../shared/data``).
        seed: seed of the generated catalog.
        theme: force this theme on every store (default: each preset's own), or ``"ab"``:
            split each store's visitors evenly between the themes (:meth:`Store.theme_for`).
        n_products: size of the generated catalog.

    Raises:
        UnknownNameError: an unknown preset or theme, naming the valid ones.
        DataMissingError: a data-backed preset without its data (names SIMPERSONA_DATA_DIR).
        StorefrontError: two presets give stores with the same id.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UnknownNameError("store preset", "", STORE_PRESETS)
    if theme is not None and theme not in (*THEMES, AB_SPLIT):
        raise UnknownNameError("theme", theme, (*THEMES, AB_SPLIT))
    stores: list[Store] = []
    for name in names:
        if name not in STORE_PRESETS:
            raise UnknownNameError("store preset", name, STORE_PRESETS)
        built = STORE_PRESETS[name][1](Path(data_dir) if data_dir else None, seed, n_products)
        stores.extend(built)
    ids = [s.store_id for s in stores]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise StorefrontError(f"store id(s) {dupes} appear twice in {list(names)}; "
                              "list each preset once ('multi' already includes 'builtin')")
    return with_theme(stores, theme)


def with_theme(stores: Sequence[Store], theme: str | None) -> list[Store]:
    """The stores with ``theme`` forced (a theme name, or ``"ab"`` for an even split)."""
    if theme is None:
        return list(stores)
    if theme == AB_SPLIT:
        return [Store(s.store_id, s.catalog, s.theme, THEMES) for s in stores]
    return [Store(s.store_id, s.catalog, theme) for s in stores]
