"""The bundled shop: a Shopify-like storefront for one or more merchants, with a server-side
event log in the canonical schema. It imports neither gymnasium nor torch.

Example:
    >>> from storefront_mock import create_app, make_stores
    >>> app = create_app(make_stores("builtin"))
    >>> sorted(app.state.shop.stores)
    ['builtin']
"""

from storefront_mock.app import COUNTRIES, CartLine, Order, ShopState, create_app
from storefront_mock.catalog import (
    SORTS,
    Catalog,
    Collection,
    Listing,
    Product,
    builtin,
    category_path,
    from_events,
    load_amazon,
    load_flipkart,
)
from storefront_mock.errors import (
    CatalogError,
    DataMissingError,
    StorefrontError,
    UnknownNameError,
)
from storefront_mock.events import EventLog
from storefront_mock.server import ServerHandle, serve
from storefront_mock.stores import (
    AB_SPLIT,
    STORE_PRESETS,
    THEMES,
    Store,
    make_stores,
    stores_from_events,
    with_theme,
)

__all__ = [
    # catalogs
    "Product", "Collection", "Catalog", "Listing", "SORTS", "builtin", "load_flipkart",
    "load_amazon", "from_events", "category_path",
    # stores
    "Store", "THEMES", "AB_SPLIT", "STORE_PRESETS", "make_stores", "stores_from_events",
    "with_theme",
    # the app and its server
    "create_app", "ShopState", "Order", "CartLine", "COUNTRIES", "serve", "ServerHandle",
    # the event log
    "EventLog",
    # errors
    "StorefrontError", "UnknownNameError", "DataMissingError", "CatalogError",
]
