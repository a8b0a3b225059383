"""The declarative mapping from any raw event log to canonical events (docs/mapping.md).

A mapping is data, not code: a YAML file (or a hydra ``data=`` config) that says, for each
input file, its format, which source column feeds which canonical field, how event values
translate, how to parse the timestamp, and what the merchant is. The four built-in adapters
(``configs/data/{rees46,taobao,tmall,otto}.yaml``) are such mappings.

Example:
    >>> from simpersona_env.ingest import builtin_mapping
    >>> m = builtin_mapping("taobao")
    >>> m.sources[0].events["pv"]
    'product_view'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simpersona_env.config import CONFIG_DIR, field, register
from simpersona_env.errors import ConfigError, SchemaError, UnknownNameError
from storefront_mock.canonical import CANONICAL_COLUMNS, EVENT_TYPES, default_data_dir

__all__ = [
    "BUILTIN_MAPPINGS",
    "FORMATS",
    "REQUIRED_FIELDS",
    "DataConfig",
    "LogMapping",
    "MerchantKey",
    "SourceMapping",
    "TimestampSpec",
    "builtin_mapping",
    "load_mapping",
    "mapping_from_config",
    "resolve_path",
]

#: Input file formats a source may have.
FORMATS = ("csv", "tsv", "jsonl", "parquet")
#: The built-in adapters (each a YAML mapping in configs/data/).
BUILTIN_MAPPINGS = ("rees46", "taobao", "tmall", "otto")
#: Canonical fields every source must map (the merchant comes from ``merchant:``).
REQUIRED_FIELDS = ("buyer_id", "ts", "event")
#: Canonical fields a source may map from a column (``merchant_id`` and ``source`` are set apart).
MAPPABLE_FIELDS = tuple(c for c in CANONICAL_COLUMNS if c not in ("merchant_id", "source"))
TIME_UNITS = ("s", "ms", "us", "ns")


@dataclass
class TimestampSpec:
    """How to turn the source's timestamp text into a UTC instant."""

    unit: str | None = field(None, help="epoch numbers: s, ms, us or ns (leave null for text)")
    format: str | None = field(None, help="strptime format for text timestamps, e.g. "
                                  "'%Y-%m-%d %H:%M:%S UTC'; null with unit null = ISO 8601")
    timezone: str = field("UTC", help="time zone of text timestamps without an offset "
                          "(IANA name, e.g. Europe/Berlin); converted to UTC")
    year: int | None = field(None, help="year for formats without one (Tmall's MMDD: 2015)")


@dataclass
class MerchantKey:
    """What a merchant is in this log: a column, a stand-in column, or one constant."""

    column: str | None = field(None, help="source column holding the merchant key (a shop or "
                                  "seller id, or a stand-in: brand, category path)")
    level: int | None = field(None, help="keep the first `level` parts of a dotted path in "
                                 "`column` (1 = top-level category as the merchant)")
    separator: str = field(".", help="separator of the path parts used by `level`")
    constant: str | None = field(None, help="one merchant for the whole file (the log is one "
                                    "shop); used when `column` is null")
    missing: str | None = field(None, help="merchant for rows whose key is empty (e.g. "
                                   "'uncategorized'); null quarantines them as empty_id")


@dataclass
class SourceMapping:
    """One input file (or glob) and how its columns map to the canonical schema."""

    path: str = field("???", help="file or glob; relative paths resolve against the working "
                      "directory, the mapping file's folder, then the data dir")
    format: str = field("csv", help=f"one of {FORMATS}")
    separator: str = field(",", help="field separator (csv); tsv implies a tab")
    quote_char: str | None = field('"', help="quote character (csv); null for none")
    has_header: bool = field(True, help="the first line names the columns (csv)")
    header: list[str] = field([], help="column names when has_header is false (csv)")
    encoding: str = field("utf8", help="utf8 (lines that are not valid UTF-8 are decoded as "
                          "latin-1 and reported) or latin1")
    explode: str | None = field(None, help="jsonl: a list field whose items become rows, "
                                   "keeping the parent's fields (OTTO's 'events')")
    columns: dict[str, str] = field({}, help="canonical field -> source column; required: "
                                    "buyer_id, ts, event; a missing session_id is sessionized")
    constants: dict[str, str] = field({}, help="canonical field -> constant text for every row")
    events: dict[str, str] = field({}, help="source event value -> canonical event type; "
                                   "values not listed are quarantined as unknown_event")
    timestamp: TimestampSpec = field(default_factory=TimestampSpec, help="timestamp parsing")
    merchant: MerchantKey = field(default_factory=MerchantKey, help="merchant key")
    replace: dict[str, list[str]] = field({}, help="canonical field -> [regex, replacement], "
                                          "every match replaced, e.g. brand: ['\\.0$', '']")
    source: str | None = field(None, help="the `source` value of its rows (default: the "
                                  "log's name)")


@dataclass
class DataConfig:
    """The ``data=`` config group: a whole log (one or more sources) and how to find it."""

    name: str = field("???", help="name of the log (output folder, `source` column)")
    path: str | None = field(None, help="shorthand for the path of a one-source mapping")
    mapping: str | None = field(None, help="YAML file holding a mapping (data=mapping)")
    sources: list[SourceMapping] = field([], help="the input files, each with its mapping; "
                                         "merged into one log")
    session_gap_minutes: float = field(30.0, help="inactivity gap that starts a new session "
                                       "for rows without a session id")
    dedup: bool = field(True, help="drop exact duplicate events (counted in the manifest)")


@dataclass
class LogMapping:
    """A resolved mapping: what :func:`simpersona_env.ingest.ingest` consumes."""

    name: str
    sources: list[SourceMapping]
    session_gap_minutes: float = 30.0
    dedup: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for the manifest)."""
        return dataclasses.asdict(self)


register("data_schema", DataConfig, group="data")


def resolve_path(path: str | Path, *, base: Path | None = None) -> Path:
    """A path as given, else relative to ``base`` (a mapping's folder), else to the data dir."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for root in (Path.cwd(), base, default_data_dir()):
        if root is not None and _exists(root / p):
            return (root / p).resolve()
    return (Path.cwd() / p).resolve()


def _exists(p: Path) -> bool:
    return p.exists() or (any(ch in str(p) for ch in "*?[") and any(p.parent.glob(p.name)))


def _validate_source(i: int, s: SourceMapping, where: str) -> None:
    key = f"{where}.sources[{i}]"
    if s.format not in FORMATS:
        raise UnknownNameError(f"format ({key}.format)", s.format, FORMATS)
    missing = [f for f in REQUIRED_FIELDS if f not in s.columns and f not in s.constants]
    if missing:
        raise SchemaError(f"{key}: canonical field(s) {missing} are not mapped; set "
                          + ", ".join(f"{key}.columns.{f}" for f in missing)
                          + " to the source column that holds them")
    for f in list(s.columns) + list(s.constants) + list(s.replace):
        if f not in MAPPABLE_FIELDS:
            raise UnknownNameError(f"canonical field ({key}.columns)", f, MAPPABLE_FIELDS)
    bad = {k: v for k, v in s.events.items() if v not in EVENT_TYPES}
    if bad:
        raise ConfigError(f"{key}.events maps to non-canonical event type(s) {bad}; valid: "
                          f"{list(EVENT_TYPES)}")
    if not s.events and "event" in s.columns:
        raise ConfigError(f"{key}.events is empty; map each source event value to one of "
                          f"{list(EVENT_TYPES)}, e.g. events: {{view: product_view}}")
    if s.timestamp.unit is not None and s.timestamp.unit not in TIME_UNITS:
        raise UnknownNameError(f"time unit ({key}.timestamp.unit)", s.timestamp.unit, TIME_UNITS)
    if s.merchant.column is None and s.merchant.constant is None:
        raise ConfigError(f"{key}.merchant: set merchant.column (a shop/seller id, or a "
                          "stand-in such as the brand or category column) or merchant.constant "
                          "(one merchant for the whole file)")
    if s.encoding.replace("-", "").lower() not in ("utf8", "latin1"):
        raise UnknownNameError(f"encoding ({key}.encoding)", s.encoding, ("utf8", "latin1"))
    for f, rep in s.replace.items():
        if len(rep) != 2:
            raise ConfigError(f"{key}.replace.{f} must be [regex, replacement], got {rep!r}")
    if s.format == "csv" and not s.has_header and not s.header:
        raise ConfigError(f"{key}: has_header is false, so set {key}.header to the column names")


def mapping_from_config(data: Any, *, base: Path | None = None) -> LogMapping:
    """Resolve a ``data=`` config (DictConfig, dict or :class:`DataConfig`) into a LogMapping.

    Reads ``data.mapping`` when set (a YAML file of the same shape), applies ``data.path`` to
    a one-source mapping, validates every source and resolves relative paths.

    Raises:
        ConfigError: a bad or missing value, naming its key and the fix.
        SchemaError: a required canonical field is not mapped.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = OmegaConf.merge(OmegaConf.structured(DataConfig), data)
        if node.get("mapping"):
            mpath = resolve_path(node.mapping)
            if not mpath.exists():
                raise ConfigError(f"data.mapping={node.mapping!r}: no such file ({mpath}); "
                                  "give the path of a mapping YAML (see docs/mapping.md)")
            loaded = OmegaConf.load(mpath)
            override = {k: v for k, v in OmegaConf.to_container(node).items()
                        if k in ("path",) and v is not None}
            node = OmegaConf.merge(OmegaConf.structured(DataConfig), loaded, override)
            base = mpath.parent
        cfg: DataConfig = OmegaConf.to_object(node)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"bad ingest mapping: {exc}\n(see docs/mapping.md for the keys)") from exc
    if cfg.name == "???" or not cfg.name:
        raise ConfigError("data.name is not set; name the log (it names the output folder)")
    if not cfg.sources:
        raise ConfigError(f"data '{cfg.name}' has no sources; add `sources:` with at least one "
                          "input file and its columns (docs/mapping.md)")
    if cfg.path is not None:
        if len(cfg.sources) != 1:
            raise ConfigError(f"data.path works for a one-source mapping; '{cfg.name}' has "
                              f"{len(cfg.sources)}: set data.sources[i].path instead")
        cfg.sources[0].path = cfg.path
    for i, s in enumerate(cfg.sources):
        if s.path in ("???", "", None):
            raise ConfigError(f"data.sources[{i}].path is not set; give the input file")
        if s.format == "tsv":
            s.separator = "\t"
        _validate_source(i, s, "data")
        s.path = str(resolve_path(s.path, base=base))
        if s.source is None:
            s.source = cfg.name
    return LogMapping(name=cfg.name, sources=list(cfg.sources),
                      session_gap_minutes=float(cfg.session_gap_minutes), dedup=bool(cfg.dedup))


def load_mapping(path: str | Path, **overrides: Any) -> LogMapping:
    """Load a mapping YAML file (docs/mapping.md), e.g. ``load_mapping("my_shop.yaml")``.

    Keyword overrides set top-level keys (``path=...`` for a one-source mapping).
    """
    return mapping_from_config({"mapping": str(path), **overrides})


def builtin_mapping(name: str, path: str | Path | None = None) -> LogMapping:
    """The built-in adapter ``name`` (rees46, taobao, tmall, otto), optionally on another file.

    Raises:
        UnknownNameError: for an unknown name, with "did you mean".
    """
    from omegaconf import OmegaConf

    if name not in BUILTIN_MAPPINGS:
        raise UnknownNameError("built-in data source", name, BUILTIN_MAPPINGS)
    node = OmegaConf.load(CONFIG_DIR / "data" / f"{name}.yaml")
    node = OmegaConf.masked_copy(node, [k for k in node if k != "defaults"])
    if path is not None:
        node.path = str(path)
    return mapping_from_config(node)
