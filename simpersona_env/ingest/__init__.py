"""Ingest: any shop's raw event log -> canonical events -> buyers and merchant statistics.

Example:
    >>> from simpersona_env.ingest import builtin_mapping, ingest, read_events
    >>> res = ingest(builtin_mapping("rees46"), "runs/ingest/rees46")  # doctest: +SKIP
    >>> read_events(res.out_dir).collect().height  # doctest: +SKIP
"""

from simpersona_env.ingest.mapping import (
    BUILTIN_MAPPINGS,
    FORMATS,
    REQUIRED_FIELDS,
    DataConfig,
    LogMapping,
    MerchantKey,
    SourceMapping,
    TimestampSpec,
    builtin_mapping,
    load_mapping,
    mapping_from_config,
)
from simpersona_env.ingest.pipeline import (
    EVENTS_SCHEMA_VERSION,
    RUNNERS,
    IngestResult,
    ingest,
    read_events,
    read_quarantine,
)
from simpersona_env.ingest.read import REASONS

__all__ = [
    # mappings
    "LogMapping", "SourceMapping", "TimestampSpec", "MerchantKey", "DataConfig",
    "builtin_mapping", "load_mapping", "mapping_from_config", "BUILTIN_MAPPINGS", "FORMATS",
    "REQUIRED_FIELDS",
    # running
    "ingest", "IngestResult", "RUNNERS", "REASONS", "EVENTS_SCHEMA_VERSION",
    # reading outputs
    "read_events", "read_quarantine",
]
