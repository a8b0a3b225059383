"""``simpersona shop``: serve the bundled storefront on a local port.

Example:
    $ simpersona shop store=builtin port=8000
    Serving 1 store(s) at http://127.0.0.1:8000/ (Ctrl-C stops)
    $ simpersona shop store=multi store.theme=grid events=out/shop-events.jsonl
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from simpersona_env.config import field, register, to_object
from simpersona_env.errors import ConfigError, DataError, UnknownNameError

__all__ = ["StoreConfig", "ShopConfig", "run", "build_stores"]


@dataclass
class StoreConfig:
    """The ``store=`` config group: which merchants the bundled shop serves."""

    name: str = field("builtin", help="store preset(s): builtin, builtin_multi, flipkart, "
                      "amazon, multi, or events (a store per merchant of a canonical log); "
                      "comma-separated for several (e.g. 'builtin,amazon')")
    data_dir: Optional[str] = field(None, help="data folder holding catalogs/ (default: "
                                    "$SIMPERSONA_DATA_DIR, else ../shared/data)")
    seed: int = field(0, help="seed of the generated (builtin) catalog")
    n_products: int = field(120, help="number of products of the generated catalog")
    theme: Optional[str] = field(None, help="force one theme on every store: classic or grid, "
                                 "or ab to split each store's visitors evenly between them "
                                 "(default: each store's own)")
    events: Optional[str] = field(None, help="for name=events: a canonical event log (Parquet, "
                                  "e.g. from `simpersona ingest`) whose products become the "
                                  "stores' catalogs")
    merchants: List[str] = field([], help="for name=events: which merchants (default: the "
                                 "max_merchants with most product events)")
    max_merchants: int = field(8, help="for name=events without merchants: how many stores")


@dataclass
class ShopConfig:
    """Settings of ``simpersona shop``."""

    store: StoreConfig = field(help="the merchants to serve (config group)",
                               default_factory=StoreConfig)
    host: str = field("127.0.0.1", help="interface to bind; loopback unless you mean to "
                      "expose the shop")
    port: int = field(8000, help="TCP port (0 picks a free one)")
    events: Optional[str] = field(None, help="write the canonical event log here: .jsonl is "
                                  "streamed row by row, .parquet written on exit")
    session_timeout_s: float = field(1800.0, help="inactivity that starts a new session")
    duration_s: Optional[float] = field(None, help="stop after this many seconds "
                                        "(default: run until Ctrl-C)")


register("store_schema", StoreConfig, group="store")
register("shop_schema", ShopConfig)


def build_stores(cfg: StoreConfig | dict[str, Any]) -> list[Any]:
    """The stores of a :class:`StoreConfig`, with the shop's errors as the library's.

    Raises:
        UnknownNameError: an unknown preset or theme (naming the valid ones).
        DataError: a data-backed preset without its data (naming SIMPERSONA_DATA_DIR).
    """
    from storefront_mock import errors as shop_errors
    from storefront_mock.stores import AB_SPLIT, THEMES, make_stores, stores_from_events, with_theme

    if isinstance(cfg, dict):
        cfg = StoreConfig(**cfg)
    names = [n.strip() for n in cfg.name.split(",") if n.strip()]
    try:
        stores = []
        if "events" in names:
            if not cfg.events:
                raise ConfigError("store=events needs store.events=<canonical log .parquet>")
            stores += stores_from_events(cfg.events, list(cfg.merchants) or None,
                                         max_merchants=cfg.max_merchants)
            if cfg.theme is not None and cfg.theme not in (*THEMES, AB_SPLIT):
                raise shop_errors.UnknownNameError("theme", cfg.theme, (*THEMES, AB_SPLIT))
            stores = with_theme(stores, cfg.theme)
            names.remove("events")
        if names or not stores:
            stores += make_stores(names, data_dir=cfg.data_dir, seed=cfg.seed, theme=cfg.theme,
                                  n_products=cfg.n_products)
        ids = [s.store_id for s in stores]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"two stores share an id in {ids}; list each once")
        return stores
    except shop_errors.UnknownNameError as exc:
        choices = [*exc.choices, "events"] if exc.kind == "store preset" else exc.choices
        raise UnknownNameError(exc.kind, exc.name, choices) from exc
    except shop_errors.StorefrontError as exc:  # missing data, bad catalog, duplicate ids
        raise DataError(str(exc)) from exc


def run(cfg: Any) -> int:
    """Serve the bundled storefront."""
    from storefront_mock import EventLog, serve
    from storefront_mock.errors import StorefrontError

    conf = to_object(cfg, ShopConfig)
    store_cfg = conf.store if isinstance(conf.store, StoreConfig) else StoreConfig(**conf.store)
    stores = build_stores(store_cfg)
    for s in stores:
        print(f"store {s.store_id}: {len(s.catalog)} products, "
              f"{len(s.catalog.collections)} collections, theme {s.theme}")
    if "builtin" in store_cfg.name.split(","):
        print("(the builtin store is generated from a seed: no data needed)")
    events = Path(conf.events) if conf.events else None
    if events is not None and events.suffix.lower() not in (".jsonl", ".parquet"):
        raise ConfigError(f"events={conf.events}: use a .jsonl or .parquet path")
    log = EventLog(stream_to=events if events and events.suffix.lower() == ".jsonl" else None)
    try:
        server = serve(stores, host=conf.host, port=conf.port, event_log=log,
                       session_timeout_s=conf.session_timeout_s)
    except StorefrontError as exc:
        raise ConfigError(f"{exc} (host={conf.host}, port={conf.port})") from exc
    print(f"Serving {len(stores)} store(s) at {server.url}/ (Ctrl-C stops)", flush=True)
    try:
        deadline = None if conf.duration_s is None else time.monotonic() + conf.duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
        if events is not None and events.suffix.lower() == ".parquet":
            log.write_parquet(events)
        log.close()
        if events is not None:
            print(f"{len(log)} events written to {events}")
    return 0
