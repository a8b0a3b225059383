"""The buyer-representation contract between ingest (producer) and the VQ-VAE (consumer).

A *buyer representation* is one row per (merchant, buyer) in ``buyers.parquet``:

- ``merchant_id`` (str), ``buyer_id`` (str), ``split`` (``"train"`` or ``"heldout"``,
  deterministic by hash, see ``simpersona_env.buyers.split``), ``seq_len`` (int32);
- one ``list<uint8>`` column per token channel in :data:`TOKEN_CHANNELS` (``tok_<channel>``),
  all of length ``seq_len`` (<= ``max_len``), oldest event first, the last ``max_len`` events
  of the buyer kept; token 0 is never used by a real event (it is the model's padding);
- one ``float64`` column per name in :data:`FEATURE_NAMES` (never NaN: an undefined rate is 0);
- the outcome labels in :data:`OUTCOME_COLUMNS` (bool), which the behaviour-aware heads predict.

The manifest beside it (``manifest.json``) carries ``schema_version`` (:data:`SCHEMA_VERSION`),
the channel vocabulary sizes, the feature names and ``max_len``; a consumer refuses a file of
another version with :class:`~simpersona_env.errors.SchemaError`.

Bump :data:`SCHEMA_VERSION` on any change here.
"""

from __future__ import annotations

from typing import Final

from storefront_mock.canonical import EVENT_TYPES

__all__ = [
    "SCHEMA_VERSION",
    "GAP_BUCKETS_S",
    "PRICE_LEVELS",
    "TOKEN_CHANNELS",
    "FEATURE_NAMES",
    "OUTCOME_COLUMNS",
    "token_column",
]

SCHEMA_VERSION: Final[int] = 1

#: Upper edges (seconds) of the time-gap buckets between consecutive events of a buyer.
#: Token = 1 + index of the first edge the gap is below; the first event of a buyer gets
#: the last bucket + 1 ("no previous event").
GAP_BUCKETS_S: Final[tuple[float, ...]] = (1, 10, 60, 300, 1800, 3600, 86400, 604800, float("inf"))

#: Price level of the event's product relative to its merchant's price distribution:
#: 1 = unknown price, 2..6 = merchant price quintile 1..5.
PRICE_LEVELS: Final[int] = 6

#: token channel -> vocabulary size including the padding token 0.
TOKEN_CHANNELS: Final[dict[str, int]] = {
    "event": 1 + len(EVENT_TYPES),  # 1 + index in EVENT_TYPES
    "gap": 1 + len(GAP_BUCKETS_S) + 1,  # see GAP_BUCKETS_S
    "price": 1 + PRICE_LEVELS,
    "category_change": 1 + 3,  # 1 unknown category, 2 same as previous event, 3 changed
    "session_start": 1 + 2,  # 1 continues a session, 2 first event of a session
}

#: Aggregate behaviour features, documented field by field in docs/buyers.md.
FEATURE_NAMES: Final[tuple[str, ...]] = (
    "n_sessions",  # sessions of this buyer at this merchant
    "n_events",  # events in total
    "events_per_session",  # n_events / n_sessions
    "session_duration_s",  # mean over sessions of (last ts - first ts), seconds
    "n_product_views",  # product_view events
    "view_to_cart",  # add_to_cart events / product_view events (0 when no views)
    "cart_to_purchase",  # purchase events / add_to_cart events (0 when no carts)
    "view_to_purchase",  # purchase events / product_view events (0 when no views)
    "converted",  # 1 if the buyer has at least one purchase, else 0
    "order_value",  # sum of known purchase prices (0 when none or unknown)
    "price_level",  # mean price quintile of viewed products, 1..5 (0 when no known price)
    "category_diversity",  # distinct categories / events with a category (0 when none)
    "search_share",  # search events / n_events
    "hour_sin",  # mean over events of sin(2*pi*hour/24), UTC
    "hour_cos",  # mean over events of cos(2*pi*hour/24), UTC
    "recency_days",  # days from the buyer's last event to the end of the merchant's log
)

#: Outcome labels for the behaviour-aware heads.
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    "has_cart",  # at least one add_to_cart
    "has_purchase",  # at least one purchase
    "bounced",  # exactly one event in total
)


def token_column(channel: str) -> str:
    """Parquet column holding a token channel: ``tok_<channel>``."""
    return f"tok_{channel}"
