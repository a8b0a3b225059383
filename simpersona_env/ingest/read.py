"""Stage 1 of the ingest: one raw input file -> validated canonical rows + quarantined rows.

Every file is read as text (all columns as strings, so that nothing is lost to type
inference), each canonical field is cast with ``strict=False`` and a null where the text was
not empty marks a bad value. Each row gets the code of the first thing wrong with it
(:data:`REASONS`); good rows go on to stage 2, bad rows go to the quarantine with their
source line number and the raw line. Nothing is dropped silently.

Column counts need the raw bytes (Polars' CSV reader pads short lines without saying so):
a CSV without quotes is read in byte chunks (:func:`csv_chunks`); a chunk whose separator
total fits its line count and that parses with ragged lines refused is whole, any other
chunk gets its separators counted line by line (numpy); a quoted CSV gets a line pass with
quoted text removed, or a record pass with the csv module when quoted fields span lines.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpersona_env.errors import DataError, SchemaError
from simpersona_env.ingest.mapping import SourceMapping

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "REASONS",
    "FileInfo",
    "check_source",
    "expand_paths",
    "first_bad_row",
    "raw_lines",
    "scan_source",
]

#: Quarantine reasons, by code (0 = good row). Order = priority: a row gets the first.
REASONS: dict[int, str] = {
    1: "blank_line",
    2: "wrong_column_count",
    3: "bad_json",
    4: "empty_id",
    5: "bad_timestamp",
    6: "unknown_event",
    7: "bad_number",
}
#: Internal columns carried beside the canonical ones.
LINE, FILE, CODE = "_line", "_file", "_code"
_RAW_SEP = "\x1f"  # a byte no text log uses: reads each line whole as one column


@dataclass
class FileInfo:
    """What stage 1 learned about one input file (reported in the manifest)."""

    path: str
    file_index: int
    format: str
    bytes: int
    header_lines: int = 0
    lines: int | None = None  # physical lines after the header (raw pass), when counted
    empty: bool = False
    recoded_lines: list[int] = field(default_factory=list)  # latin-1 lines decoded, 1-based
    notes: list[str] = field(default_factory=list)
    read_path: str | None = None  # the file actually read (a UTF-8 copy when recoded)


def expand_paths(pattern: str) -> list[Path]:
    """A path or glob -> sorted existing files.

    Raises:
        DataError: when nothing matches, naming the pattern.
    """
    p = Path(pattern)
    if any(ch in pattern for ch in "*?["):
        files = sorted(q for q in p.parent.glob(p.name) if q.is_file())
    else:
        files = [p] if p.is_file() else []
    if not files:
        raise DataError(f"input file {pattern!r} not found; set data.path (or the source's "
                        "`path:`) to an existing file, or SIMPERSONA_DATA_DIR for built-in data")
    return files


# ----------------------------------------------------------------------------- encodings

def _recode_to_utf8(path: Path, info: FileInfo, latin1_all: bool, tmp_dir: Path) -> Path:
    """Write a UTF-8 copy of ``path``; lines that are not valid UTF-8 are decoded as latin-1.

    Why line by line: a log that is UTF-8 except for a few latin-1 lines (a common export
    bug) keeps every line intact, and the recoded line numbers are reported.
    """
    out = tmp_dir / f"recoded-{info.file_index:04d}-{path.name}"
    with open(path, "rb") as src, open(out, "wb") as dst:
        for n, line in enumerate(src, start=1):
            if latin1_all:
                dst.write(line.decode("latin-1").encode("utf-8"))
                continue
            try:
                line.decode("utf-8")
                dst.write(line)
            except UnicodeDecodeError:
                info.recoded_lines.append(n)
                dst.write(line.decode("latin-1").encode("utf-8"))
    return out


def is_utf8_error(exc: Exception) -> bool:
    return "utf-8" in str(exc).lower() or "utf8" in str(exc).lower()


# ----------------------------------------------------------------------------- CSV

def _csv_header(path: Path, s: SourceMapping) -> list[str]:
    if not s.has_header:
        return list(s.header)
    with open(path, "rb") as fh:
        first = fh.readline()
    text = first.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    row = next(csv.reader(io.StringIO(text), delimiter=s.separator,
                          quotechar=s.quote_char or '"',
                          quoting=csv.QUOTE_MINIMAL if s.quote_char else csv.QUOTE_NONE), [])
    return [c.strip() for c in row]


def raw_lines(path: str | Path, *, skip: int = 0, lossy: bool = False) -> pl.LazyFrame:
    """Each physical line of a text file as ``_raw`` (str) with ``_row`` (0-based after ``skip``).

    ``lossy``: bytes that are not UTF-8 become U+FFFD instead of an error.
    """
    import polars as pl

    return pl.scan_csv(path, has_header=False, separator=_RAW_SEP, quote_char=None,
                       schema={"_raw": pl.String}, truncate_ragged_lines=True,
                       empty_string_is_null=False, skip_lines=skip, row_index_name="_row",
                       missing_columns="insert", extra_columns="ignore",
                       encoding="utf8-lossy" if lossy else "utf8")


def _bad_field_counts(path: Path, s: SourceMapping, n_cols: int, header_lines: int
                      ) -> tuple[int, Any]:
    """Raw pass: (number of lines, DataFrame of rows whose field count != n_cols)."""
    import polars as pl

    line = pl.col("_raw")
    if s.quote_char:
        # quoted text may hold separators: drop it before counting
        q = "\\" + s.quote_char if s.quote_char in ".^$*+?()[]{}|\\" else s.quote_char
        line = (pl.when(line.str.contains(s.quote_char, literal=True))
                .then(line.str.replace_all(f"{q}[^{q}]*{q}", "")).otherwise(line))
    n_fields = line.str.count_matches(s.separator, literal=True) + 1
    lf = raw_lines(path, skip=header_lines)
    counted = (lf.select(pl.len().alias("n"),
                         pl.col("_row").filter((pl.col("_raw").str.len_bytes() == 0)
                                               | (n_fields != n_cols)).implode().alias("bad"),
                         pl.col("_raw").filter((pl.col("_raw").str.len_bytes() == 0)
                                               | (n_fields != n_cols)).implode().alias("raw"))
               .collect(engine="streaming"))
    rows = counted["bad"][0]
    raws = counted["raw"][0]
    bad = pl.DataFrame({"_row": rows, "_raw_bad": raws},
                       schema={"_row": pl.UInt32, "_raw_bad": pl.String})
    return int(counted["n"][0]), bad


def _field_counts_numpy(path: Path, s: SourceMapping, n_cols: int, header_lines: int,
                        chunk: int = 32 << 20) -> tuple[int, Any] | None:
    """The raw pass on bytes: separators per line by binary search of separator positions
    among newline positions, 32 MiB at a time (~2x the Polars line pass, bounded memory).

    Returns None when the file holds the quote character (quoted separators need the
    quote-aware pass).
    """
    import numpy as np
    import polars as pl

    sep, quote = ord(s.separator), ord(s.quote_char) if s.quote_char else -1
    blank: list[Any] = []
    wrong: list[Any] = []
    row0, tail = -header_lines, b""
    # plain reads into a buffer, not a memory map: mapped file pages count as the process's
    # resident memory, and the point of the chunks is to keep that small
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            last = not block
            buf = tail + block
            if not buf:
                break
            cut = buf.rfind(b"\n") + 1 if not last else len(buf)
            if cut == 0 and not last:
                tail = buf
                continue
            c, tail = np.frombuffer(buf[:cut], dtype=np.uint8), buf[cut:]
            if quote >= 0 and (c == quote).any():
                return None
            nls = np.flatnonzero(c == 10)
            if last and (nls.size == 0 or nls[-1] != c.size - 1):
                nls = np.append(nls, c.size)  # a last line without a newline
            per = np.diff(np.searchsorted(np.flatnonzero(c == sep), nls), prepend=0)
            starts = np.concatenate(([0], nls[:-1] + 1))
            length = nls - starts
            cr = (length > 0) & (c[np.clip(nls - 1, 0, max(c.size - 1, 0))] == 13)
            length = length - cr
            rows = np.arange(row0, row0 + nls.size)
            keep = rows >= 0  # skip the header line(s)
            is_blank = keep & (length == 0)
            blank.append(rows[is_blank])
            wrong.append(rows[keep & ~is_blank & (per + 1 != n_cols)])
            row0 += nls.size
            if last:
                break
    schema = {"_row": pl.UInt32, "_blank": pl.Boolean}
    b = np.concatenate(blank) if blank else np.zeros(0, np.int64)
    w = np.concatenate(wrong) if wrong else np.zeros(0, np.int64)
    bad = pl.DataFrame({"_row": np.concatenate([b, w]),
                        "_blank": np.concatenate([np.ones(b.size, bool), np.zeros(w.size, bool)])},
                       schema=schema)
    return max(row0, 0), bad


def _scan_csv(path: Path, s: SourceMapping, info: FileInfo, names: list[str]) -> pl.LazyFrame:
    import polars as pl

    info.header_lines = 1 if s.has_header else 0
    counted = _field_counts_numpy(path, s, len(names), info.header_lines)
    lf = pl.scan_csv(path, has_header=False, skip_rows=info.header_lines, separator=s.separator,
                     quote_char=s.quote_char, schema={n: pl.String for n in names},
                     truncate_ragged_lines=True, empty_string_is_null=False,
                     row_index_name="_row", missing_columns="insert", extra_columns="ignore")
    line = pl.col("_row").cast(pl.Int64) + 1 + info.header_lines
    if counted is None:
        n_lines, bad = _bad_field_counts(path, s, len(names), info.header_lines)
        bad = bad.select("_row", _blank=pl.col("_raw_bad").str.len_bytes() == 0)
        n_records = lf.select(pl.len()).collect(engine="streaming").item()
        if n_records != n_lines:
            # quoted fields span lines: count fields per record with the csv module (slow,
            # rare) and number each record by the physical line it starts on
            bad, starts = _field_counts_records(path, s, len(names), info.header_lines)
            line = pl.Series("_line", starts, dtype=pl.Int64)
    else:
        n_lines, bad = counted
    info.lines = n_lines
    if bad.height:
        blank = bad.filter(pl.col("_blank"))["_row"]
        wrong = bad.filter(~pl.col("_blank"))["_row"]
        shape = (pl.when(pl.col("_row").is_in(blank.implode())).then(pl.lit(1, pl.UInt8))
                 .when(pl.col("_row").is_in(wrong.implode())).then(pl.lit(2, pl.UInt8))
                 .otherwise(pl.lit(0, pl.UInt8)))
    else:
        shape = pl.lit(0, pl.UInt8)
    return lf.with_columns(_shape=shape, _line=line)


def _field_counts_records(path: Path, s: SourceMapping, n_cols: int, header_lines: int
                          ) -> tuple[Any, Any]:
    """Per CSV record (quote-aware, records may span lines): bad records and start lines."""
    import numpy as np
    import polars as pl

    rows, blank, starts = [], [], []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=s.separator, quotechar=s.quote_char or '"')
        start = 1
        for i, rec in enumerate(reader):
            if i >= header_lines:
                r = i - header_lines
                starts.append(start)
                if not rec:
                    rows.append(r)
                    blank.append(True)
                elif len(rec) != n_cols:
                    rows.append(r)
                    blank.append(False)
            start = reader.line_num + 1
    bad = pl.DataFrame({"_row": rows, "_blank": blank},
                       schema={"_row": pl.UInt32, "_blank": pl.Boolean})
    return bad, np.asarray(starts, dtype=np.int64)


# ----------------------------------------------------------------------------- JSONL

def _json_dtype(path: Path, s: SourceMapping) -> tuple[Any, list[str]]:
    """Struct dtype for the mapped fields (all strings; the explode field holds a list of them)
    and the field names the first record offers (to check the mapping before any work)."""
    import polars as pl

    top: dict[str, Any] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    top = json.loads(line)
                except ValueError:
                    top = {}
                break
    items = top.get(s.explode) if s.explode and isinstance(top, dict) else None
    item = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    available = list(top) + list(item) if isinstance(top, dict) else []
    wanted = set(s.columns.values()) | ({s.merchant.column} if s.merchant.column else set())
    outer = sorted(c for c in wanted if c in top or not s.explode)
    inner = sorted(c for c in wanted if c not in outer)
    fields = {c: pl.String for c in outer}
    if s.explode:
        fields[s.explode] = pl.List(pl.Struct({c: pl.String for c in inner}))
    return pl.Struct(fields), available


def _scan_jsonl(path: Path, s: SourceMapping, info: FileInfo) -> pl.LazyFrame:
    import polars as pl

    dtype, available = _json_dtype(path, s)
    if available:
        _check_columns(s, available, info.path)
    lines = raw_lines(path)
    decoded = pl.col("_raw").str.json_decode(dtype)
    try:
        # cheap validity probe on the whole file; only a failure pays for the Python pass
        lines.select(decoded.is_null().sum()).collect(engine="streaming")
        bad_rows: list[int] = []
    except Exception:  # noqa: BLE001 - polars raises ComputeError on the first bad line
        bad_rows = []
        for r, text in enumerate(lines.select("_raw").collect()["_raw"]):
            if not text:
                bad_rows.append(r)
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                bad_rows.append(r)
    is_bad = pl.col("_row").is_in(pl.Series(bad_rows, dtype=pl.UInt32).implode())
    lf = lines.with_columns(
        _shape=pl.when(is_bad).then(pl.lit(3, pl.UInt8)).otherwise(pl.lit(0, pl.UInt8)),
        _obj=pl.when(is_bad).then(pl.lit("{}")).otherwise(pl.col("_raw")).str.json_decode(dtype),
        _line=pl.col("_row").cast(pl.Int64) + 1,
    ).unnest("_obj")
    if s.explode:
        # a record with an empty list has no events: nothing to keep or lose
        lf = (lf.filter((pl.col("_shape") > 0) | (pl.col(s.explode).list.len() > 0))
              .explode(s.explode, empty_as_null=True).unnest(s.explode))
    return lf


# ----------------------------------------------------------------------------- Parquet

def _scan_parquet(path: Path, s: SourceMapping, info: FileInfo) -> pl.LazyFrame:
    import polars as pl

    lf = pl.scan_parquet(path, row_index_name="_row")
    schema = lf.collect_schema()
    ts_col = s.columns.get("ts")
    casts = [pl.col(c).cast(pl.String) for c in schema.names()
             if c not in ("_row", ts_col) and schema[c] != pl.String]
    if ts_col in schema and not schema[ts_col].is_temporal():
        casts.append(pl.col(ts_col).cast(pl.String))
    return lf.with_columns(*casts, _shape=pl.lit(0, pl.UInt8),
                           _line=pl.col("_row").cast(pl.Int64) + 1)


# ----------------------------------------------------------------------------- canonical

def _nz(e: pl.Expr) -> pl.Expr:
    """Empty text -> null (missing values stay null, never invented)."""
    import polars as pl

    return pl.when(e.str.len_bytes() > 0).then(e)


def _field(s: SourceMapping, name: str, schema: Any) -> pl.Expr:
    import polars as pl

    if name in s.constants:
        e = pl.lit(str(s.constants[name]), pl.String)
    elif name in s.columns:
        col = s.columns[name]
        e = pl.col(col) if schema[col] == pl.String else pl.col(col).cast(pl.String)
        e = _nz(e)
    else:
        return pl.lit(None, pl.String)
    if name in s.replace:
        pattern, repl = s.replace[name]
        e = e.str.replace_all(pattern, repl)
    return e


def _timestamp(s: SourceMapping, raw: pl.Expr, dtype: Any) -> pl.Expr:
    import polars as pl

    t = s.timestamp
    target = pl.Datetime("us", "UTC")
    if dtype is not None and dtype.is_temporal():  # a typed Parquet column
        e = pl.col(s.columns["ts"]).cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
        return (e.dt.convert_time_zone("UTC") if getattr(dtype, "time_zone", None)
                else e.dt.replace_time_zone(t.timezone).dt.convert_time_zone("UTC"))
    if t.unit:
        per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[t.unit]
        as_int = raw.cast(pl.Int64, strict=False)
        as_float = raw.cast(pl.Float64, strict=False)
        if per_us is None:
            us = pl.coalesce(as_int // 1000, (as_float / 1000).cast(pl.Int64, strict=False))
        else:
            us = pl.coalesce(as_int * per_us, (as_float * per_us).cast(pl.Int64, strict=False))
        return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    fmt = t.format
    text = raw
    if t.year is not None:
        text = pl.lit(str(t.year)) + raw
        fmt = "%Y" + (fmt or "")
    if fmt and ("%z" in fmt or "%:z" in fmt):
        return text.str.strptime(target, fmt, strict=False)
    if fmt:
        naive = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    else:
        naive = text.str.to_datetime(time_unit="us", strict=False)
    return (naive.dt.replace_time_zone(t.timezone, ambiguous="earliest",
                                       non_existent="null").dt.convert_time_zone("UTC")
            .cast(target))


def _merchant(s: SourceMapping, schema: Any) -> pl.Expr:
    import polars as pl

    m = s.merchant
    if m.column is None:
        return pl.lit(m.constant, pl.String)
    e = _nz(pl.col(m.column) if schema[m.column] == pl.String else pl.col(m.column).cast(pl.String))
    if m.level:
        if m.level == 1:
            e = e.str.splitn(m.separator, 2).struct.field("field_0")
        else:
            e = e.str.split(m.separator).list.head(m.level).list.join(m.separator)
        # empty -> null as _nz does, but evaluating the split once (_nz repeats its input)
        e = e.replace("", None)
    if m.missing is not None:
        e = e.fill_null(pl.lit(m.missing))
    elif m.constant is not None:
        e = e.fill_null(pl.lit(m.constant))
    return e


def _check_columns(s: SourceMapping, names: list[str], path: Path | str) -> None:
    wanted = {f"columns.{k}": v for k, v in s.columns.items()}
    if s.merchant.column:
        wanted["merchant.column"] = s.merchant.column
    missing = {k: v for k, v in wanted.items() if v not in names}
    if missing:
        pretty = ", ".join(f"{k.split('.')[-1] if k.startswith('columns') else 'merchant_id'}"
                           f" <- {v!r} (mapping key `{k}`)" for k, v in missing.items())
        raise SchemaError(f"{path}: source column(s) missing, so canonical field(s) cannot be "
                          f"filled: {pretty}; the file has columns {names}; set each key to "
                          "one of those (or fix has_header/header/separator)")


def scan_source(path: Path, s: SourceMapping, file_index: int, tmp_dir: Path,
                recode: bool = False) -> tuple[pl.LazyFrame | None, FileInfo]:
    """Lazy frame of one input file with canonical columns, ``_line``, ``_file`` and ``_code``.

    ``_code`` is 0 for a good row, else a key of :data:`REASONS`; :func:`detail_expr` on
    the bad rows says what was wrong. Returns ``(None, info)`` for an empty file (reported, not an error).

    Raises:
        SchemaError: when a mapped column is missing (before any data is read).
        polars.exceptions.ComputeError: invalid UTF-8 met later, when the frame is read;
            call again with ``recode=True``.
    """
    import polars as pl

    info = FileInfo(path=str(path), file_index=file_index, format=s.format,
                    bytes=os.path.getsize(path))
    if info.bytes == 0 or (s.format != "parquet" and not _has_content(path)):
        info.empty = True
        info.notes.append("empty file: no rows")
        return None, info
    latin1 = s.encoding.replace("-", "").lower() == "latin1"
    read_path = path
    if latin1 or recode:
        # `recode`: the caller met invalid UTF-8 while reading (the byte-level raw pass does
        # not decode, so a bad line may only show up in the main scan)
        read_path = _recode_to_utf8(path, info, latin1, tmp_dir)
        if recode and not latin1:
            info.notes.append(f"{len(info.recoded_lines)} line(s) were not UTF-8 and were "
                              "decoded as latin-1")

    def build(rp: Path) -> pl.LazyFrame:
        if s.format in ("csv", "tsv"):
            names = _csv_header(rp, s)
            _check_columns(s, names, path)
            return _scan_csv(rp, s, info, names)
        if s.format == "jsonl":
            return _scan_jsonl(rp, s, info)
        lf = _scan_parquet(rp, s, info)
        _check_columns(s, lf.collect_schema().names(), path)
        return lf

    try:
        lf = build(read_path)
    except pl.exceptions.ComputeError as exc:
        if latin1 or not is_utf8_error(exc):
            raise DataError(f"{path}: cannot read as {s.format}: {exc}") from exc
        read_path = _recode_to_utf8(path, info, False, tmp_dir)
        info.notes.append(f"{len(info.recoded_lines)} line(s) were not UTF-8 and were decoded "
                          "as latin-1")
        lf = build(read_path)
    info.read_path = str(read_path)
    return canonicalize(lf, s, file_index), info


def literal_fields(s: SourceMapping) -> dict[str, Any]:
    """Canonical columns that :func:`canonicalize` fills with one value on every row of
    ``s`` (its ``source``, a constant merchant, constants, unmapped fields as null)."""
    out: dict[str, Any] = {"source": s.source}
    for name in ("session_id", "product_id", "category", "brand", "query"):
        if name in s.replace:
            continue
        if name in s.constants:
            out[name] = str(s.constants[name])
        elif name not in s.columns:
            out[name] = None
    if "price" not in s.columns and "price" not in s.constants:
        out["price"] = None
    if s.merchant.column is None:
        out["merchant_id"] = s.merchant.constant
    return out


def canonicalize(lf: pl.LazyFrame, s: SourceMapping, file_index: int) -> pl.LazyFrame:
    """Source columns (text) + ``_shape`` + ``_line`` -> canonical columns and ``_code``."""
    import polars as pl

    schema = lf.collect_schema()
    cols = {f: _field(s, f, schema) for f in ("buyer_id", "session_id", "product_id",
                                              "category", "brand", "query")}
    raw_ts = _field(s, "ts", schema)
    ts_dtype = schema.get(s.columns.get("ts", ""))
    ts = _timestamp(s, raw_ts, ts_dtype)
    raw_event = _field(s, "event", schema)
    event = raw_event.replace_strict({k: v for k, v in s.events.items()}, default=None,
                                     return_dtype=pl.String)
    raw_price = _field(s, "price", schema)
    price = raw_price.cast(pl.Float64, strict=False)
    merchant = _merchant(s, schema)
    ts_missing = raw_ts.is_null() if ts_dtype is None or not ts_dtype.is_temporal() \
        else pl.col(s.columns["ts"]).is_null()
    code = (pl.when(pl.col("_shape") > 0).then(pl.col("_shape"))
            .when(pl.col("buyer_id").is_null() | pl.col("merchant_id").is_null())
            .then(pl.lit(4, pl.UInt8))
            .when(pl.col("ts").is_null()).then(pl.lit(5, pl.UInt8))
            .when(pl.col("event").is_null()).then(pl.lit(6, pl.UInt8))
            .when(pl.col("_raw_price").is_not_null() & pl.col("price").is_null())
            .then(pl.lit(7, pl.UInt8))
            .otherwise(pl.lit(0, pl.UInt8)))
    bad = pl.col(CODE) > 0
    out = (lf.with_columns(
        merchant_id=merchant, ts=ts, event=event, price=price, **cols,
        _raw_ts=raw_ts.cast(pl.String) if ts_dtype is not None and ts_dtype.is_temporal()
        else raw_ts,
        _ts_missing=ts_missing, _raw_event=raw_event, _raw_price=raw_price,
        source=pl.lit(s.source, pl.String), _file=pl.lit(file_index, pl.UInt16))
        .with_columns(_code=code)
        # what a bad row needs for its quarantine detail; null (free) on good rows
        .with_columns(_bad_ts=pl.when(bad).then(pl.col("_raw_ts")),
                      _bad_ts_missing=pl.when(bad).then(pl.col("_ts_missing")),
                      _bad_event=pl.when(bad).then(pl.col("_raw_event")),
                      _bad_price=pl.when(bad).then(pl.col("_raw_price"))))
    return out


def csv_spans(path: Path, s: SourceMapping, span_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges ``[start, stop)`` of about ``span_bytes`` that cover a CSV's lines after
    its header, each starting at a line start (so that they can be parsed apart)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        for _ in range(1 if s.has_header else 0):
            fh.readline()
        first = fh.tell()
        cuts = [first]
        while cuts[-1] + span_bytes < size:
            fh.seek(cuts[-1] + span_bytes)
            fh.readline()  # on to the next line start
            if fh.tell() >= size:
                break
            cuts.append(fh.tell())
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], size])]


def count_span(path: str | Path, start: int, stop: int, quote: str | None,
               block: int = 16 << 20) -> dict[str, Any]:
    """Lines in ``[start, stop)`` of a file (a last line without a newline counts) and
    whether the quote character occurs there."""
    import numpy as np

    lines, has_quote, last = 0, False, b"\n"
    q = quote.encode() if quote else None
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        while pos < stop:
            data = fh.read(min(block, stop - pos))
            if not data:
                break
            pos += len(data)
            lines += int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))
            has_quote = has_quote or (q is not None and q in data)
            last = data[-1:]
    return {"lines": lines + (0 if last == b"\n" else 1), "quote": has_quote}


def csv_chunks(path: Path, s: SourceMapping, info: FileInfo, chunk_bytes: int = 64 << 20,
               span: tuple[int, int, int] | None = None) -> Iterator[pl.LazyFrame] | None:
    """Read a CSV in byte chunks ending at line ends, each parsed eagerly, for bounded memory.

    Each chunk is read once: its bytes give the line and separator counts (numpy) and the
    parsed rows (Polars' CSV reader on the buffer); only a chunk with a ragged or blank
    line gets the per-line field counts (:func:`_chunk_shapes`). Lines that are not UTF-8 are decoded as
    latin-1 (reported). Returns None when the file cannot be cut at line ends safely (it
    holds the quote character, so a quoted field may span lines): use :func:`scan_source`.

    ``span``: ``(start, stop, first_row)`` reads only the bytes ``[start, stop)`` (from
    :func:`csv_spans`), whose first line is the file's ``first_row``-th after the header:
    line numbers stay the file's, and ``info.lines`` counts the span's lines.
    """
    import numpy as np
    import polars as pl

    names = _csv_header(path, s)
    _check_columns(s, names, path)
    n_cols = len(names)
    quote = s.quote_char.encode() if s.quote_char else None
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if quote and quote in head:
        return None
    info.header_lines = 1 if s.has_header else 0
    info.read_path = str(path)

    def chunks() -> Iterator[pl.LazyFrame]:
        sep = ord(s.separator)
        eq = np.empty(0, dtype=bool)
        start, stop, row0 = span if span is not None else (None, None, 0)
        lines_seen = row0
        with open(path, "rb") as fh:
            if start is None:
                for _ in range(info.header_lines):
                    fh.readline()
            else:
                fh.seek(start)
            while True:
                want = chunk_bytes if stop is None else min(chunk_bytes, stop - fh.tell())
                data = fh.read(want) if want > 0 else b""
                if not data:
                    break
                if not data.endswith(b"\n") and (stop is None or fh.tell() < stop):
                    # finish the chunk's last line (one copy of the chunk, not a cut and
                    # a carried tail: two)
                    data += fh.readline()
                if quote and quote in data:
                    raise _NeedsQuotedPass
                # byte counts with numpy into one reused buffer (~2x bytes.count)
                c = np.frombuffer(data, dtype=np.uint8)
                if eq.size < c.size:
                    eq = np.empty(c.size, dtype=bool)
                n_lines = (int(np.count_nonzero(np.equal(c, 10, out=eq[:c.size])))
                           + (0 if data.endswith(b"\n") else 1))
                recoded: list[bytes] = []

                def parse(ragged: bool) -> pl.DataFrame:
                    raw = recoded[0] if recoded else data
                    try:
                        return _parse_chunk(raw, names, s, ragged)
                    except pl.exceptions.ComputeError as exc:
                        if recoded or not is_utf8_error(exc):
                            raise
                    # lines that are not UTF-8: decoded as latin-1 once per chunk (reported)
                    recoded.append(_recode_lines(data, info, lines_seen + info.header_lines))
                    return _parse_chunk(recoded[0], names, s, ragged)

                # Fast path (no per-line pass): a chunk whose separator total is exactly
                # n_lines x (n_cols - 1) and that Polars parses with ragged lines refused
                # (it raises on a line with too many fields) has no line with too few
                # either, and no blank line; such a chunk is all good shapes.
                df = None
                if n_cols > 1 and int(np.count_nonzero(np.equal(c, sep, out=eq[:c.size]))) \
                        == n_lines * (n_cols - 1):
                    try:
                        df = parse(ragged=False)
                    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
                        if is_utf8_error(exc):
                            raise
                        df = None  # a ragged line: the careful pass below finds it
                    if df is not None and df.height != n_lines:
                        df = None
                if df is not None:
                    shape = np.zeros(n_lines, np.uint8)
                else:
                    shape = _chunk_shapes(data, sep, n_cols)
                    df = parse(ragged=True)
                    if df.height != shape.size:
                        raise _NeedsQuotedPass
                    n_lines = shape.size
                yield df.lazy().with_columns(
                    _shape=pl.Series(shape, dtype=pl.UInt8),
                    _line=pl.int_range(row0, row0 + n_lines, dtype=pl.Int64)
                    + 1 + info.header_lines)
                row0 += n_lines
                lines_seen += n_lines
        info.lines = row0 - (span[2] if span is not None else 0)

    return chunks()


def _parse_chunk(raw: bytes, names: list[str], s: SourceMapping, ragged: bool) -> pl.DataFrame:
    """One CSV chunk as text columns; ``ragged=False`` raises on a line with extra fields,
    ``ragged=True`` cuts them (also when the chunk's first line has them)."""
    import polars as pl

    return pl.read_csv(raw, has_header=False, new_columns=names,
                       schema={n: pl.String for n in names}, separator=s.separator,
                       quote_char=s.quote_char, truncate_ragged_lines=ragged,
                       empty_string_is_null=False, missing_columns="insert",
                       extra_columns="ignore" if ragged else "raise", raise_if_empty=False)


def _chunk_shapes(data: bytes, sep: int, n_cols: int) -> Any:
    """Per line of ``data``: 0 good, 1 blank, 2 wrong field count (separators counted by
    binary search of separator positions among newline positions)."""
    import numpy as np

    c = np.frombuffer(data, dtype=np.uint8)
    nls = np.flatnonzero(c == 10)
    if nls.size == 0 or nls[-1] != c.size - 1:
        nls = np.append(nls, c.size)  # a last line without a newline
    per = np.diff(np.searchsorted(np.flatnonzero(c == sep), nls), prepend=0)
    starts = np.concatenate(([0], nls[:-1] + 1))
    length = nls - starts
    length = length - ((length > 0) & (c[np.clip(nls - 1, 0, c.size - 1)] == 13))
    shape = np.zeros(nls.size, np.uint8)
    shape[(length > 0) & (per + 1 != n_cols)] = 2
    shape[length == 0] = 1
    return shape


class _NeedsQuotedPass(Exception):
    """A chunk cannot be parsed line by line (quotes): redo the file with the lazy scan."""


def _recode_lines(data: bytes, info: FileInfo, first_line: int) -> bytes:
    """Lines of ``data`` that are not UTF-8 decoded as latin-1; their numbers recorded."""
    out = []
    for n, line in enumerate(data.split(b"\n"), start=first_line + 1):
        try:
            line.decode("utf-8")
            out.append(line)
        except UnicodeDecodeError:
            info.recoded_lines.append(n)
            out.append(line.decode("latin-1").encode("utf-8"))
    return b"\n".join(out)


def source_chunks(path: Path, s: SourceMapping, file_index: int,
                  chunk_bytes: int = 64 << 20, span: tuple[int, int, int] | None = None
                  ) -> tuple[Iterator[pl.LazyFrame] | None, FileInfo]:
    """Canonical lazy frames of a CSV file (or of its ``span``), one per byte chunk (see
    :func:`csv_chunks`).

    Returns ``(None, info)`` when the file is empty (``info.empty``) or needs the lazy scan
    (quoted fields, a latin-1 file, not CSV).
    """
    info = FileInfo(path=str(path), file_index=file_index, format=s.format,
                    bytes=os.path.getsize(path))
    if s.format not in ("csv", "tsv") or s.encoding.replace("-", "").lower() == "latin1":
        return None, info
    if info.bytes == 0 or not _has_content(path):
        info.empty = True
        info.notes.append("empty file: no rows")
        return None, info
    chunks = csv_chunks(path, s, info, chunk_bytes, span)
    if chunks is None:
        return None, info
    return (canonicalize(lf, s, file_index) for lf in chunks), info


#: Columns staged beside the canonical ones so that bad rows can be explained later.
BAD_COLUMNS = ("_bad_ts", "_bad_ts_missing", "_bad_event", "_bad_price")


def detail_expr() -> pl.Expr:
    """A bad row's detail text, from ``_code``, the ids and :data:`BAD_COLUMNS`."""
    import polars as pl

    return (pl.when(pl.col(CODE) == 4)
            .then(pl.when(pl.col("buyer_id").is_null()).then(pl.lit("buyer_id is empty"))
                  .otherwise(pl.lit("merchant_id is empty")))
            .when(pl.col(CODE) == 5)
            .then(pl.when(pl.col("_bad_ts_missing")).then(pl.lit("timestamp is empty"))
                  .otherwise(pl.format("cannot parse timestamp '{}'",
                                       pl.col("_bad_ts").fill_null(""))))
            .when(pl.col(CODE) == 6)
            .then(pl.format("event value '{}' is not in the mapping's `events:` table",
                            pl.col("_bad_event").fill_null("")))
            .when(pl.col(CODE) == 7)
            .then(pl.format("cannot parse price '{}'", pl.col("_bad_price")))
            .when(pl.col(CODE) == 2).then(pl.lit("wrong number of fields"))
            .when(pl.col(CODE) == 3).then(pl.lit("not a JSON object"))
            .when(pl.col(CODE) == 1).then(pl.lit("blank line"))
            .otherwise(pl.lit(None, pl.String)))


def _has_content(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    return bool(head.strip())


def first_bad_row(lf: pl.LazyFrame) -> dict[str, Any] | None:
    """The first quarantined row of a scanned source (for ``strict=true``), or None."""
    import polars as pl

    bad = (lf.filter(pl.col(CODE) > 0).head(1).select(LINE, CODE, _detail=detail_expr())
           .collect(engine="streaming"))
    if bad.height == 0:
        return None
    row = bad.row(0, named=True)
    return {"line": row[LINE], "reason": REASONS[row[CODE]], "detail": row["_detail"]}



def check_source(path: Path, s: SourceMapping) -> None:
    """Check that every mapped column exists in ``path``, reading only its first record.

    Raises:
        SchemaError: naming the missing canonical fields and the mapping keys to set.
    """
    import polars as pl

    if os.path.getsize(path) == 0:
        return
    if s.format in ("csv", "tsv"):
        _check_columns(s, _csv_header(path, s), path)
    elif s.format == "jsonl":
        _, available = _json_dtype(path, s)
        if available:
            _check_columns(s, available, path)
    else:
        _check_columns(s, pl.scan_parquet(path).collect_schema().names(), path)
