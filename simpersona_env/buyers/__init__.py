"""Buyer representations: the contract (:mod:`.spec`), the builder, splits and merchant statistics.

Example:
    >>> from simpersona_env.buyers import build_buyers, write_buyers, read_buyers
"""

from simpersona_env.buyers.represent import (
    BUYERS_FILE,
    MANIFEST_FILE,
    build_buyers,
    buyer_schema,
    read_buyers,
    read_manifest,
    write_buyers,
)
from simpersona_env.buyers.spec import (
    FEATURE_NAMES,
    GAP_BUCKETS_S,
    OUTCOME_COLUMNS,
    PRICE_LEVELS,
    SCHEMA_VERSION,
    TOKEN_CHANNELS,
    token_column,
)
from simpersona_env.buyers.split import assign_splits, buyer_split, merchant_split

__all__ = [
    # contract
    "SCHEMA_VERSION", "TOKEN_CHANNELS", "FEATURE_NAMES", "OUTCOME_COLUMNS", "GAP_BUCKETS_S",
    "PRICE_LEVELS", "token_column",
    # build and store
    "build_buyers", "buyer_schema", "write_buyers", "read_buyers", "read_manifest",
    "BUYERS_FILE", "MANIFEST_FILE",
    # splits
    "buyer_split", "merchant_split", "assign_splits",
]
