"""The canonical event schema (defined in :mod:`storefront_mock.canonical`, re-exported here)."""

from storefront_mock.canonical import (  # noqa: F401
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    EVENT_TYPES,
    FUNNEL_STAGES,
    default_data_dir,
)

__all__ = ["CANONICAL_COLUMNS", "CANONICAL_SCHEMA", "EVENT_TYPES", "FUNNEL_STAGES", "default_data_dir"]
