"""The canonical event schema: one row per buyer event, the contract every part shares.

The raw logs of real shops (after ingest), the bundled shop's server-side log and the
simulated population's log all have exactly these columns and types, so one pipeline and
one encoder measure simulation and reality alike (ARCHITECTURE.md, "Contracts").

This module lives in ``storefront_mock`` because the shop is the lowest layer that writes
canonical rows and must not import the library (which imports gymnasium);
``simpersona_env.schema`` re-exports it. It depends on pyarrow only.

Missing values stay null: an adapter never invents a price, category or brand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pyarrow as pa

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_SCHEMA",
    "EVENT_TYPES",
    "FUNNEL_STAGES",
    "default_data_dir",
]

#: Every event type a canonical log may hold, in funnel order where there is one.
EVENT_TYPES: Final[tuple[str, ...]] = (
    "page_view",
    "collection_view",
    "search",
    "product_view",
    "favourite",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
)

#: The funnel stages, in order; a buyer "reaches" a stage with at least one such event.
FUNNEL_STAGES: Final[tuple[str, ...]] = (
    "product_view",
    "add_to_cart",
    "checkout_start",
    "purchase",
)

#: Arrow schema of a canonical event log (Parquet on disk).
CANONICAL_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        pa.field("merchant_id", pa.string(), nullable=False),
        pa.field("buyer_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event", pa.string(), nullable=False),  # one of EVENT_TYPES
        pa.field("product_id", pa.string()),
        pa.field("category", pa.string()),  # dotted path, e.g. "electronics.audio.headphone"
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("query", pa.string()),  # the search text for `search` events
        pa.field("source", pa.string()),  # where the row came from: "rees46", "storefront", ...
    ]
)

CANONICAL_COLUMNS: Final[tuple[str, ...]] = tuple(CANONICAL_SCHEMA.names)


def default_data_dir() -> Path:
    """Where the real data lives: ``$SIMPERSONA_DATA_DIR``, else ``../shared/data`` beside the repo.

    The directory may not exist; callers that need it say so and fall back to generated data.
    """
    env = os.environ.get("SIMPERSONA_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
