"""The ingest pipeline: raw logs -> canonical events (Parquet by merchant) -> buyers -> statistics.

Three stages, each a pure function of files on disk so that the local and the Ray runner
run the very same code and write the very same bytes:

1. per input file (CSV in byte chunks, anything else as one streaming Polars scan): parse,
   validate, cast; good rows are staged by ``unit`` (a hash of merchant and buyer, so a
   unit holds whole buyers: one Arrow IPC file per CSV chunk with a record batch per unit,
   a Parquet folder per unit for other sources), bad rows go to the quarantine with
   their line numbers;
2. per unit (in memory once, bounded by the unit size): one stable sort by a 64-bit
   (merchant rank, buyer hash) key and time, count out-of-order rows, deduplicate,
   sessionize rows without a session id by the inactivity gap, write
   ``events/merchant_id=<m>/part-<unit>.parquet`` (each merchant a slice of the unit);
3. per unit: buyer representations (with each merchant's price edges and log end over
   the whole log, merged from stage 2's per-unit price counts) and per-buyer funnel flags
   for the merchant statistics.

Speed and memory are measured by ``bench/bench_ingest.py`` (docs/mapping.md).

Output folder::

    events/merchant_id=<m>/part-00000.parquet   canonical events, partitioned by merchant
    quarantine.parquet                          malformed rows: source, line, reason, detail, raw
    buyers/buyers.parquet + buyers/manifest.json
    merchants.json                              per-merchant statistics with bootstrap CIs
    manifest.json                               source, mapping, counts in/out, time range
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpersona_env.errors import ConfigError, DataError, UnknownNameError
from simpersona_env.ingest.mapping import LogMapping, SourceMapping
from simpersona_env.ingest.read import (
    BAD_COLUMNS,
    CODE,
    FILE,
    LINE,
    REASONS,
    detail_expr,
    expand_paths,
    raw_lines,
)
from storefront_mock.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "EVENTS_SCHEMA_VERSION",
    "RUNNERS",
    "IngestResult",
    "Progress",
    "ingest",
    "read_events",
    "read_quarantine",
]

#: Version of the on-disk layout of an ingest output (events + quarantine + manifest).
EVENTS_SCHEMA_VERSION = 1
RUNNERS = ("local", "ray")
#: ``progress(stage, done, total)`` callback type.
Progress = Callable[[str, int, int], None]

# input bytes per unit: bounds the memory of stages 2 and 3 (~0.6x the input at 10M events
# with 32 MiB, ~0.9x with 64 MiB; the time is about the same: bench/bench_ingest.py)
_UNIT_BYTES = 32 << 20
_STAGE_ROWS_PER_FILE = 200_000
# a unit with more merchants writes them with one partitioned sink (a write per merchant
# is ~15% cheaper for a few merchants, ~40% dearer for a thousand)
_MERCHANTS_PER_LOOP = 64
# bits of the buyer hash kept in stage 2's sort key (below the merchant rank); fewer make
# buyers share keys, which the sort handles by taking the buyer id too (tests set it low)
_KEY_HASH_BITS = 64
_STAGE_BYTES_PER_FILE = 16 << 20
# a CSV larger than twice this is parsed in spans of about this many bytes, in parallel
_SPAN_BYTES = 128 << 20
#: Columns stage 3 reads (build_buyers' needs).
_BUYER_COLUMNS = ("merchant_id", "buyer_id", "session_id", "ts", "event", "category", "price")
_DEDUP_KEYS = ("merchant_id", "buyer_id", "session_id", "ts", "event", "product_id",
               "category", "brand", "price", "query")


@dataclass
class IngestResult:
    """Where the ingest wrote its outputs, and its manifest."""

    out_dir: Path
    manifest: dict[str, Any]

    @property
    def events_dir(self) -> Path:
        return self.out_dir / "events"

    @property
    def buyers_dir(self) -> Path:
        return self.out_dir / "buyers"

    @property
    def quarantine_path(self) -> Path:
        return self.out_dir / "quarantine.parquet"

    @property
    def merchants_path(self) -> Path:
        return self.out_dir / "merchants.json"


def read_events(out_dir: str | Path) -> pl.LazyFrame:
    """The canonical events of an ingest output (all merchants), lazily.

    Example:
        >>> ev = read_events("runs/ingest/rees46").filter(pl.col("merchant_id") == "electronics")  # doctest: +SKIP
    """
    import polars as pl

    events = Path(out_dir) / "events"
    files = sorted(events.glob("merchant_id=*/*.parquet"))
    if not files:
        return pl.LazyFrame(schema=pl.Schema(CANONICAL_SCHEMA))
    return pl.scan_parquet(files, hive_partitioning=False).select(CANONICAL_COLUMNS)


def read_quarantine(out_dir: str | Path) -> pl.DataFrame:
    """The quarantined rows of an ingest output: source, line, reason, detail, raw."""
    import polars as pl

    return pl.read_parquet(Path(out_dir) / "quarantine.parquet")


# ----------------------------------------------------------------------------- stage 1

def _quarantine_schema() -> dict[str, Any]:
    import polars as pl

    return {"source": pl.String, "line": pl.Int64, "reason": pl.String, "detail": pl.String,
            "raw": pl.String}


def _stage1_file(path: str, source: SourceMapping, file_index: int, units: int, stage: str,
                 strict: bool, chunk_bytes: int = 16 << 20,
                 span: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
    """Parse one input file; stage good rows by unit, write its quarantine part.

    ``span``: ``(index, start, stop, first_row)``: parse only that byte range of a CSV
    (:func:`_stage1_tasks`); its bad rows are kept apart for :func:`_merge_spans`, which
    writes the file's quarantine. A span that meets a quote returns ``whole_file``.
    """
    import polars as pl
    from pyarrow import ipc

    from simpersona_env.ingest.read import (
        _NeedsQuotedPass,
        first_bad_row,
        is_utf8_error,
        literal_fields,
        scan_source,
        source_chunks,
    )

    stage_dir = Path(stage)
    key = pl.struct("merchant_id", "buyer_id").hash(seed=0)
    staged_cols = [*CANONICAL_COLUMNS, FILE, LINE, CODE, *BAD_COLUMNS, "_k"]

    def check_strict(frame: pl.LazyFrame) -> None:
        if strict:
            bad = first_bad_row(frame)
            if bad is not None:
                raise DataError(f"{path}:{bad['line']}: {bad['reason']}: {bad['detail']} "
                                "(strict=true stops at the first bad row; set strict=false "
                                "to quarantine bad rows with their reasons and go on)")

    # a span's chunk files are its own; the whole file's cover all of its spans
    prefix = f"f{file_index:05d}-" + (f"s{span[0]:04d}-" if span is not None else "")

    def clear_parts() -> None:
        for part in (stage_dir / "units").glob(f"unit=*/f{file_index:05d}-*.parquet"):
            part.unlink()
        for part in (stage_dir / "chunks").glob(f"{prefix}*.arrow"):
            part.unlink()
        result["chunks"] = []

    def stream_file(lf: pl.LazyFrame, info: Any) -> None:
        """Any other file: one streaming Polars pass into bounded staged files per unit."""

        def sink(frame: pl.LazyFrame) -> None:
            (frame.with_columns(_k=key)
             .select(*staged_cols, _unit=(pl.col("_k") % units).cast(pl.UInt32))).sink_parquet(
                pl.PartitionBy(stage_dir / "units", key="_unit", include_key=False,
                               max_rows_per_file=_STAGE_ROWS_PER_FILE,
                               approximate_bytes_per_file=_STAGE_BYTES_PER_FILE,
                               file_path_provider=lambda a: (
                                   f"unit={a.partition_keys[0, 0]}/f{file_index:05d}-"
                                   f"{a.index_in_partition:05d}.parquet")),
                mkdir=True, compression="uncompressed", engine="streaming")

        try:
            check_strict(lf)
            sink(lf)
        except pl.exceptions.ComputeError as exc:
            if not is_utf8_error(exc) or source.encoding.replace("-", "").lower() == "latin1":
                raise DataError(f"{path}: cannot read as {source.format}: {exc}") from exc
            clear_parts()
            lf2, info2 = scan_source(Path(path), source, file_index, stage_dir, recode=True)
            result["file"] = info2
            check_strict(lf2)
            sink(lf2)

    # CSV without quotes: byte chunks, each read once and parsed eagerly (bounded memory).
    # Why each chunk is split here and not read back: good rows go straight to the staging
    # as Arrow IPC with only the columns stage 2 needs (IPC: a third of Parquet's write
    # cost, twice its read cost, ~30% less in all; measured), and bad rows (usually none)
    # stay in memory for the quarantine with their counts.
    chunks, info = source_chunks(Path(path), source, file_index, chunk_bytes,
                                 span[1:] if span is not None else None)
    # per staged chunk file: its name and its record batches per unit
    result: dict[str, Any] = {"file": info, "good": 0, "bad": {}, "literals": {},
                              "chunks": []}
    # columns with one value on every row of this file (its `source`, a constant merchant,
    # unmapped fields): not staged per row, restored from the file index in stage 2
    literals = literal_fields(source) if chunks is not None else {}
    per_row = [c for c in CANONICAL_COLUMNS if c not in literals]
    bad_parts: list[pl.DataFrame] = []
    codes_seen: dict[int, int] = {}
    staged: list[tuple[str, list[list[int]]]] = []
    if chunks is not None:
        (stage_dir / "chunks").mkdir(parents=True, exist_ok=True)

    def stage_chunk(part: int, frame: pl.LazyFrame) -> None:
        """Canonical rows of one parsed chunk: bad ones kept, good ones staged by unit."""
        check_strict(frame)
        df = frame.select(*CANONICAL_COLUMNS, FILE, LINE, CODE, *BAD_COLUMNS).collect()
        for c, n in df[CODE].value_counts().iter_rows():
            codes_seen[int(c)] = codes_seen.get(int(c), 0) + int(n)
        if (df[CODE] > 0).any():
            bad_parts.append(df.filter(pl.col(CODE) > 0))
            df = df.filter(pl.col(CODE) == 0)
        # Why one file per chunk with a record batch per unit, and not a file per unit:
        # creating and writing ~30 small files per chunk cost more than one write with ~30
        # batches (measured), and stage 2 maps its unit's batch zero-copy. Each batch holds
        # only its own strings (the export compacts the buffers a partition shares with
        # the chunk), so a unit touches only its own pages of each file.
        df = df.select(*per_row, FILE, LINE, _k=key).with_columns(
            _unit=(pl.col("_k") % units).cast(pl.UInt32))
        parts = df.partition_by("_unit", as_dict=True, include_key=False)
        del df
        name = f"{prefix}{part:05d}.arrow"
        batches: list[list[int]] = []  # [unit, first batch, batches, rows]
        writer = None
        try:
            for u in sorted(k[0] for k in parts):  # in unit order
                table = parts.pop((u,)).to_arrow()
                if writer is None:
                    writer = ipc.new_file(str(stage_dir / "chunks" / name), table.schema)
                first = sum(b[2] for b in batches)
                records = table.to_batches()
                for batch in records:
                    writer.write_batch(batch)
                batches.append([int(u), first, len(records), table.num_rows])
        finally:
            if writer is not None:
                writer.close()
        staged.append((name, batches))

    if chunks is not None:
        # Why a second thread: reading and parsing chunk i + 1 (the generator) overlaps
        # canonicalizing and staging chunk i, whose parts hold the GIL or one core at a
        # time; the chunks are still staged one by one in order (one worker), so the
        # first bad row under strict=true is the file's first, and at most two chunks
        # are in memory.
        from concurrent.futures import Future, ThreadPoolExecutor

        pending: Future | None = None
        with ThreadPoolExecutor(max_workers=1) as worker:
            try:
                for part, frame in enumerate(chunks):
                    if pending is not None:
                        pending.result()
                    pending = worker.submit(stage_chunk, part, frame)
                if pending is not None:
                    pending.result()
                result["literals"] = literals
                result["chunks"] = staged
            except _NeedsQuotedPass:
                if pending is not None:
                    pending.exception()  # wait for it before removing what it wrote
                clear_parts()
                if span is not None:  # the file is parsed whole instead (_merge_spans)
                    return {**result, "whole_file": True}
                chunks = None
                bad_parts, codes_seen, staged = [], {}, []
    if chunks is None and not info.empty and span is not None:
        return {**result, "whole_file": True}  # not a span-able CSV after all
    if chunks is None and not info.empty:
        lf, info = scan_source(Path(path), source, file_index, stage_dir)
        result["file"] = info
        if lf is None:
            return result
        stream_file(lf, info)
    elif info.empty:
        return result
    info = result["file"]
    if chunks is not None:
        by_code = dict(codes_seen)
        bad_rows = pl.concat(bad_parts).lazy() if bad_parts else None
    else:
        unit_files = sorted((stage_dir / "units").glob(f"unit=*/f{file_index:05d}-*.parquet"))
        staged = pl.scan_parquet(unit_files, hive_partitioning=False) if unit_files else None
        codes = (staged.group_by(CODE).len().collect() if staged is not None
                 else pl.DataFrame({CODE: [], "len": []}))
        by_code = {int(c): int(n) for c, n in codes.iter_rows()}
        bad_rows = staged.filter(pl.col(CODE) > 0) if staged is not None else None
    result["good"] = by_code.pop(0, 0)
    if span is not None:
        # the bad rows of a span, kept for the file's quarantine (_merge_spans)
        result["bad_codes"] = by_code
        if by_code and bad_rows is not None:
            bad_dir = stage_dir / "bad"
            bad_dir.mkdir(parents=True, exist_ok=True)
            bad_rows.select("buyer_id", "merchant_id", LINE, CODE, *BAD_COLUMNS).collect() \
                .write_parquet(bad_dir / f"{prefix}bad.parquet")
        return result
    qpath = stage_dir / "quarantine" / f"f{file_index:05d}.parquet"
    result["bad"] = _write_quarantine(path, source, info, bad_rows if by_code else None, qpath)
    return result


def _write_quarantine(path: str, source: SourceMapping, info: Any,
                      bad_rows: pl.LazyFrame | None, qpath: Path) -> dict[str, int]:
    """A file's quarantine part (its bad rows with reason, detail and raw source line);
    returns the count by reason."""
    import polars as pl

    qpath.parent.mkdir(parents=True, exist_ok=True)
    if bad_rows is None:
        pl.DataFrame(schema=_quarantine_schema()).write_parquet(qpath)
        return {}
    quarantined = (bad_rows
                   .select(source=pl.lit(path, pl.String), line=pl.col(LINE),
                           reason=pl.col(CODE).replace_strict(REASONS, return_dtype=pl.String),
                           detail=detail_expr())
                   .sort("line").collect())
    # attach each bad row's raw source line, so the quarantine loses nothing
    read_from = info.read_path or path
    if source.format in ("csv", "tsv", "jsonl"):
        skip = info.header_lines
        lines = (raw_lines(read_from, skip=skip, lossy=True)
                 .filter(pl.col("_row").is_in(
                     (quarantined["line"] - 1 - skip).cast(pl.UInt32).implode()))
                 .select(line=pl.col("_row").cast(pl.Int64) + 1 + skip, raw=pl.col("_raw"))
                 .collect())
        quarantined = quarantined.join(lines, on="line", how="left", maintain_order="left")
    else:
        quarantined = quarantined.with_columns(raw=pl.lit(None, pl.String))
    quarantined = quarantined.select(
        [pl.col(c).cast(t) for c, t in _quarantine_schema().items()])
    quarantined.write_parquet(qpath)
    return {k: int(v) for k, v in quarantined["reason"].value_counts().sort("reason").iter_rows()}


def _stage1_tasks(files: list[tuple[str, SourceMapping]], run: Any, progress: Progress | None
                  ) -> list[tuple[int, tuple[int, int, int, int] | None]]:
    """Stage 1's calls: ``(file index, span)``, a large CSV in spans of ~``_SPAN_BYTES``.

    Why spans: a file is otherwise one call, so one large file is parsed by one worker
    (two threads: read and stage) however many workers or Ray nodes there are. On two
    cores it changes little (the second thread already fills the other core; measured),
    on more it scales the parse; with one worker the files are parsed whole. A span must know the file line its first line is (line
    numbers are the file's), so the spans' lines are counted first, in parallel (a byte
    count, ~0.2 s per GB); a file with the quote character anywhere is parsed whole (a
    quoted field may hold a newline).
    """
    from simpersona_env.ingest.read import count_span, csv_spans

    tasks: list[tuple[int, tuple[int, int, int, int] | None]] = []
    split: dict[int, list[tuple[int, int]]] = {}
    for i, (p, s) in enumerate(files):
        if (run.workers > 1 and s.format in ("csv", "tsv") and s.encoding.replace("-", "").lower() != "latin1"
                and os.path.getsize(p) > 2 * _SPAN_BYTES):
            spans = csv_spans(Path(p), s, _SPAN_BYTES)
            if len(spans) > 1:
                split[i] = spans
    calls = [(files[i][0], a, b, files[i][1].quote_char) for i, spans in split.items()
             for a, b in spans]
    counted = iter(run.map(count_span, calls, "lines", progress) if calls else [])
    for i, (p, s) in enumerate(files):
        if i not in split:
            tasks.append((i, None))
            continue
        counts = [next(counted) for _ in split[i]]
        if any(c["quote"] for c in counts):
            tasks.append((i, None))
            continue
        first_row = 0
        for k, ((a, b), c) in enumerate(zip(split[i], counts)):
            tasks.append((i, (k, a, b, first_row)))
            first_row += c["lines"]
    return tasks


def _merge_spans(files: list[tuple[str, SourceMapping]],
                 tasks: list[tuple[int, tuple[int, int, int, int] | None]],
                 results: list[dict[str, Any]], stage: Path,
                 redo: Callable[[list[int]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One stage-1 result per file from its spans' results: counts and chunks in order,
    the quarantine written once; a file whose span met a quote is parsed whole (``redo``)."""
    import polars as pl

    by_file: dict[int, list[dict[str, Any]]] = {}
    for (i, _span), r in zip(tasks, results):
        by_file.setdefault(i, []).append(r)
    whole = sorted({i for (i, span), r in zip(tasks, results)
                    if span is not None and r.get("whole_file")})
    for i in whole:
        for f in (stage / "bad").glob(f"f{i:05d}-s*.parquet"):
            f.unlink()
    redone = dict(zip(whole, redo(whole))) if whole else {}
    out = []
    for i, (path, source) in enumerate(files):
        parts = by_file[i]
        if i in redone:
            out.append(redone[i])
        elif len(parts) == 1 and "bad_codes" not in parts[0]:
            out.append(parts[0])
        else:
            info = parts[0]["file"]
            info.lines = sum(r["file"].lines or 0 for r in parts)
            info.recoded_lines = sorted(n for r in parts for n in r["file"].recoded_lines)
            bad_files = sorted((stage / "bad").glob(f"f{i:05d}-s*.parquet"))
            bad_rows = pl.scan_parquet(bad_files) if bad_files else None
            out.append({
                "file": info, "good": sum(r["good"] for r in parts), "spans": len(parts),
                "literals": parts[0]["literals"],
                "chunks": [c for r in parts for c in r["chunks"]],
                "bad": _write_quarantine(path, source, info, bad_rows,
                                         stage / "quarantine" / f"f{i:05d}.parquet"),
            })
    return out


# ----------------------------------------------------------------------------- stage 2

def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _quote(m: str) -> str:
    return urllib.parse.quote(m, safe="")


def _read_ipc_mapped(batches: list[tuple[Path, int, int]]) -> pl.DataFrame:
    """Record batches ``(file, first, count)`` of staged Arrow IPC files as one frame,
    memory-mapped, zero-copy (a chunk per batch).

    Why pyarrow's memory map and not ``pl.scan_ipc``: Polars copies and re-validates every
    string view on read (~0.25 CPU s per million events); the mapped pages are read once,
    by the sort's gather, which copies them anyway.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.ipc as ipc

    tables = []
    for f, first, count in batches:
        with pa.memory_map(str(f)) as source:
            reader = ipc.open_file(source)
            tables.append(pa.Table.from_batches(
                [reader.get_batch(i) for i in range(first, first + count)]))
    # files of sources that left out different literal columns: the missing ones are null
    return pl.from_arrow(pa.concat_tables(tables, promote_options="default"))  # type: ignore[return-value]


def _restore_literals(df: pl.DataFrame, literals: dict[int, dict[str, Any]]) -> pl.DataFrame:
    """The columns stage 1 left out as one value per file, filled in from ``_file``."""
    import polars as pl

    schema = pl.Schema(CANONICAL_SCHEMA)
    exprs = []
    for c in CANONICAL_COLUMNS:
        per_file = {f: lit[c] for f, lit in literals.items() if c in lit}
        if not per_file:
            continue  # staged row by row for every file
        dtype = schema[c]
        known = {f: v for f, v in per_file.items() if v is not None}
        value = (pl.col(FILE).replace_strict(list(known), list(known.values()), default=None,
                                             return_dtype=dtype)
                 if known else pl.lit(None, dtype))
        exprs.append((pl.coalesce(pl.col(c), value) if c in df.columns else value).alias(c))
    return df.with_columns(exprs) if exprs else df


def _unit_batches(s1: list[dict[str, Any]], n_units: int) -> list[list[tuple[str, int, int]]]:
    """Per unit: its ``(chunk file, first record batch, batches)`` in each staged CSV
    chunk, in (file, chunk) order."""
    out: list[list[tuple[str, int, int]]] = [[] for _ in range(n_units)]
    for r in s1:
        for name, batches in r["chunks"]:
            for unit, first, count, _rows in batches:
                out[unit].append((name, first, count))
    return out


def _stage2_unit(unit: int, stage: str, out: str, dedup: bool, gap_minutes: float,
                 literals: dict[int, dict[str, Any]] | None = None,
                 batches: list[tuple[str, int, int]] | None = None) -> dict[str, Any]:
    """Sort, deduplicate and sessionize one unit; write its events by merchant.

    ``literals``: per file index, the columns stage 1 staged once per file (their value);
    ``batches``: the unit's record batches in the staged CSV chunks (:func:`_unit_batches`).
    """
    import numpy as np
    import polars as pl

    folder = Path(stage) / "units" / f"unit={unit}"
    pq_files = sorted(folder.glob("*.parquet"))  # streamed sources: all rows, with codes
    # CSV chunks: good rows only
    ipc_files = [(Path(stage) / "chunks" / name, first, n) for name, first, n in batches or []]
    counts = {"unit": unit, "rows_in": 0, "duplicates": 0, "out_of_order": 0,
              "sessionized_rows": 0, "purchases_without_view_or_cart": 0, "rows_out": 0,
              "merchants": {}}
    if not pq_files and not ipc_files:
        return counts
    cols = [*CANONICAL_COLUMNS, FILE, LINE, "_k"]
    scans = []
    if pq_files:
        scans.append(pl.scan_parquet(pq_files, hive_partitioning=False)
                     .filter(pl.col(CODE) == 0).select(cols))
    if ipc_files:
        scans.append(_restore_literals(_read_ipc_mapped(ipc_files), literals or {})
                     .lazy().select(cols))
    staged = scans[0] if len(scans) == 1 else pl.concat(scans)
    df = staged.collect()
    if df.height == 0:
        return counts
    # Why one 64-bit key of (merchant rank, buyer hash) and one stable sort by (key, ts):
    # numeric keys sort several times faster than strings, the merchant rank in the top
    # bits makes each merchant one contiguous slice (no second gather to split the output
    # by merchant), and a stable sort keeps ties in source order (the staged files are
    # read in (file, line) order). Two buyers of a merchant sharing a key (rare) are caught
    # below and the unit falls back to a sort by the strings.
    m, b = pl.col("merchant_id"), pl.col("buyer_id")
    merchants = sorted(df["merchant_id"].unique().to_list())
    bits = max(1, (len(merchants) - 1).bit_length())
    rank = pl.Series(range(len(merchants)), dtype=pl.UInt64)
    top = pl.lit(1 << (64 - bits), pl.UInt64)  # rank * top < 2**64: no overflow
    shift = max(bits, 64 - _KEY_HASH_BITS)
    key = (m.replace_strict(merchants, rank, return_dtype=pl.UInt64) * top
           + pl.col("_k") // pl.lit(1 << shift, pl.UInt64))
    by = ["_key", "ts"]
    if pq_files and ipc_files:  # streamed and chunked files: source order is not scan order
        by.append("_o")
    df = df.with_columns(_key=key, _o=pl.col(FILE).cast(pl.Int64) * (1 << 40) + pl.col(LINE))
    order = None
    if len(by) == 2:
        # Logs are mostly in time order per buyer: a stable sort by the key alone (one
        # integer column, about half the cost of two) is then already in time order
        # within each buyer; checked, and the two-key sort runs when it is not.
        first = df.select(pl.arg_sort_by("_key", maintain_order=True)).to_series()
        k_s, t_s = df["_key"].gather(first), df["ts"].gather(first)
        if not ((k_s == k_s.shift(1)) & (t_s < t_s.shift(1))).any():
            order = first
        del k_s, t_s, first
    if order is None:
        order = df.select(pl.arg_sort_by(by, maintain_order=True)).to_series()
    # Why the per-row checks run on the sort order before the rows are moved: they read
    # a few integer columns (numpy gathers) and the buyer ids, and the duplicates come out
    # of the order itself, so the string columns are gathered once and never filtered.
    buyer = df.get_column("buyer_id").rechunk()
    key_np = df.get_column("_key").to_numpy()
    o = order.to_numpy()
    k = key_np[o]
    b_s = buyer.gather(order)
    new = np.ones(o.size, dtype=bool)  # row i starts a buyer
    new[1:] = k[1:] != k[:-1]
    # a buyer id that changes under one key: two buyers of a merchant share a key (rare);
    # the sort then takes the buyer id as well, so that each buyer's rows are contiguous
    changed = b_s.ne_missing(b_s.shift(1)).to_numpy()
    if (changed[1:] & ~new[1:]).any():
        order = df.select(pl.arg_sort_by(["_key", "buyer_id", "ts", "_o"],
                                         maintain_order=True)).to_series()
        o = order.to_numpy()
        k = key_np[o]
        b_s = buyer.gather(order)
        new[1:] = (k[1:] != k[:-1]) | b_s.ne_missing(b_s.shift(1)).to_numpy()[1:]
    del changed
    counts["rows_in"] = df.height
    same = ~new[1:]  # row i + 1 continues row i's buyer
    line = df.get_column(LINE).to_numpy()[o]
    file = df.get_column(FILE).to_numpy()[o]
    # out of order: in time order, an event that comes from an earlier line of the same file
    counts["out_of_order"] = int(np.count_nonzero(
        same & (file[1:] == file[:-1]) & (line[1:] < line[:-1])))
    del line, file
    if dedup:
        # Exact duplicates share (merchant, buyer, ts), so after the sort they sit in runs
        # of equal timestamps; only rows in such runs (usually few) need the full-row check.
        t = df.get_column("ts").to_physical().to_numpy()[o]
        tie = np.zeros(o.size, dtype=bool)
        tie[1:] = same & (t[1:] == t[:-1])
        cand = tie.copy()
        cand[:-1] |= tie[1:]  # and the row each tie follows
        cand_i = np.flatnonzero(cand)
        if cand_i.size:
            rows = df.select(_DEDUP_KEYS).gather(pl.Series(o[cand_i], dtype=pl.UInt32))
            dup = cand_i[~rows.select(pl.struct(list(_DEDUP_KEYS)).is_first_distinct())
                         .to_series().to_numpy()]
            if dup.size:
                # a duplicate is never a buyer's first row (its first copy comes before it)
                keep = np.ones(o.size, dtype=bool)
                keep[dup] = False
                o, k, new = o[keep], k[keep], new[keep]
                b_s = b_s.filter(pl.Series(keep))
                order = pl.Series(o, dtype=pl.UInt32)
            counts["duplicates"] = int(dup.size)
    # Why a gather a few columns at a time, each batch dropped as soon as it is sorted:
    # the unit is in memory once plus a batch, not twice as with a frame sort; each batch
    # is made one chunk first (a gather from many chunks costs several times more) and
    # gathered in one select (its columns in parallel; ~35% less CPU than one by one)
    columns: list[pl.Series] = []
    names = [c for c in df.columns if c not in ("buyer_id", "_key", "_k", "_o", FILE, LINE)]
    df = df.select(names)
    for i in range(0, len(names), 4):
        batch = names[i:i + 4]
        columns.extend(df.select(batch).rechunk().select(pl.all().gather(order)).get_columns())
        df = df.drop(batch)
    df = pl.DataFrame([*columns, b_s, pl.Series("_key", k, dtype=pl.UInt64),
                       pl.Series("_new", new, dtype=pl.Boolean)])
    del columns, order, o, k, new, b_s
    missing = df["session_id"].is_null()
    n_missing = int(missing.sum())
    if n_missing:
        # sessions by the inactivity gap among a buyer's rows that lack a session id
        gap_us = int(gap_minutes * 60 * 1e6)

        def session_ids(new_b: pl.Expr) -> pl.Expr:
            start = new_b | ((pl.col("ts") - pl.col("ts").shift(1)).dt.total_microseconds()
                             > gap_us).fill_null(True)
            cs = start.cast(pl.Int64).cum_sum()
            k = cs - pl.when(new_b).then(cs).otherwise(None).forward_fill() + 1
            return pl.format("{}:{}", b, k)

        if n_missing == df.height:  # a log without session ids (Taobao): all rows at once
            df = df.with_columns(session_id=session_ids(pl.col("_new")))
        else:
            sub = df.filter(missing).select("_key", "buyer_id", "ts")
            nb = ((pl.col("_key") != pl.col("_key").shift(1)) | (b != b.shift(1))
                  ).fill_null(True)
            ids = sub.select(session_ids(nb).alias("s"))["s"]
            df = df.with_columns(df["session_id"].scatter(missing.arg_true(), ids))
        counts["sessionized_rows"] = n_missing
    # purchases with no view or cart earlier in the buyer's events: views and carts before
    # each row, less those before the buyer's first row
    ev = df.get_column("event")
    seen = ((ev == "product_view") | (ev == "add_to_cart")).to_numpy()
    before = np.cumsum(seen) - seen
    starts = np.flatnonzero(df.get_column("_new").to_numpy())
    base = np.repeat(before[starts], np.diff(np.append(starts, df.height)))
    counts["purchases_without_view_or_cart"] = int(np.count_nonzero(
        (ev == "purchase").to_numpy() & (before == base)))
    counts["rows_out"] = df.height
    counts["ts_min"], counts["ts_max"] = df["ts"].min(), df["ts"].max()
    # rows are in merchant order: each merchant is a zero-copy slice
    m_rank = (pl.col("_key") // top).alias("_m")
    sizes = df.group_by(m_rank).agg(pl.len(), pl.col("ts").max()).sort("_m")
    # the merchant context's part from this unit (_merchant_context): each merchant's
    # last event and its known prices as value counts
    counts["log_end"] = {merchants[r]: t for r, _, t in sizes.iter_rows()}
    (df.lazy().filter(pl.col("price").is_not_null() & pl.col("price").is_finite())
     .group_by(m_rank, "price").agg(n=pl.len())
     .select(merchant_id=pl.lit(pl.Series(merchants, dtype=pl.String)).gather(pl.col("_m")),
             price="price", n="n")
     .collect().write_parquet(_mkdir(Path(stage) / "prices") / f"part-{unit:05d}.parquet"))
    sizes = sizes.select("_m", "len")
    df = df.select(CANONICAL_COLUMNS)
    if len(merchants) <= _MERCHANTS_PER_LOOP:
        offset = 0
        for r, n in sizes.iter_rows():
            merchant = merchants[r]
            folder = Path(out) / "events" / f"merchant_id={_quote(merchant)}"
            folder.mkdir(parents=True, exist_ok=True)
            df.slice(offset, n).write_parquet(folder / f"part-{unit:05d}.parquet",
                                              compression="lz4", statistics=False)
            offset += n
            counts["merchants"][merchant] = n
        return counts
    for r, n in sizes.iter_rows():
        counts["merchants"][merchants[r]] = n

    def path(args: Any) -> str:
        # one file per merchant and unit (no size limit below, so never a second part)
        assert args.index_in_partition == 0
        return f"merchant_id={_quote(args.partition_keys[0, 0])}/part-{unit:05d}.parquet"

    # Why one partitioned sink for many merchants: a log of thousands (Tmall's sellers) is
    # then one call, not thousands (~40% less time); rows keep their order in each file
    df.lazy().sink_parquet(
        pl.PartitionBy(Path(out) / "events", key="merchant_id", include_key=True,
                       file_path_provider=path, max_rows_per_file=None,
                       approximate_bytes_per_file=None),
        mkdir=True, compression="lz4", statistics=False, engine="streaming")
    return counts


# ----------------------------------------------------------------------------- stage 3

def _merchant_context(stage: Path, s2: list[dict[str, Any]]) -> pl.DataFrame:
    """:func:`~simpersona_env.buyers.represent.merchant_context` of the whole output, from
    stage 2's parts: each unit's last event per merchant and its known prices as value
    counts (``prices/part-<unit>.parquet``).

    Why parts and not a pass over the written events: the quantiles of a merchant's prices
    need only its distinct prices and their counts, which stage 2 has in hand (computed in
    parallel); the pass read every event again after stage 2, alone, and held the largest
    merchant's prices in memory. The values are the same: linear interpolation as Polars
    computes it (``lower + (upper - lower) * fraction`` at ``(n - 1) * q``; tested).
    """
    import numpy as np
    import polars as pl

    from simpersona_env.buyers.represent import merchant_context

    log_end: dict[str, Any] = {}
    for r in s2:  # good rows always have a time
        for m, t in r.get("log_end", {}).items():
            log_end[m] = max(log_end.get(m, t), t)
    if not log_end:
        return merchant_context(pl.LazyFrame(schema=pl.Schema(CANONICAL_SCHEMA))).collect()
    counts = (pl.scan_parquet(sorted((stage / "prices").glob("part-*.parquet")))
              .group_by("merchant_id", "price").agg(pl.col("n").sum())
              .sort("merchant_id", "price").collect())
    merchants = sorted(log_end)
    edges: dict[str, list[float | None]] = {m: [None] * 4 for m in merchants}
    for part in counts.partition_by("merchant_id", maintain_order=True):
        values, cum = part["price"].to_numpy(), np.cumsum(part["n"].to_numpy())
        out = []
        for q in (0.2, 0.4, 0.6, 0.8):  # the k-th smallest price is values[#cum <= k]
            at = (int(cum[-1]) - 1) * q
            lo, hi = math.floor(at), math.ceil(at)
            lower = values[np.searchsorted(cum, lo, side="right")]
            upper = values[np.searchsorted(cum, hi, side="right")]
            out.append(float(lower + (upper - lower) * (at - lo)))
        edges[part["merchant_id"][0]] = out
    return pl.DataFrame({
        "merchant_id": merchants,
        **{f"_q{i}": [edges[m][i] for m in merchants] for i in range(4)},
        "_log_end": pl.Series([log_end[m] for m in merchants], dtype=pl.Datetime("us", "UTC")),
    }, schema_overrides={f"_q{i}": pl.Float64 for i in range(4)})


def _stage3_unit(unit: int, stage: str, out: str, context_path: str, max_len: int,
                 heldout_fraction: float, seed: int) -> dict[str, Any]:
    """Buyer representations and per-buyer funnel flags of one unit."""
    import polars as pl

    from simpersona_env.buyers.represent import _build

    # the unit's files in merchant order: each is grouped by buyer in time order (stage 2),
    # so the concatenation is grouped by (merchant, buyer) and build_buyers can skip its
    # sort. Why Parquet and not a staged Arrow IPC copy: Polars reads these Parquet files
    # about twice as fast as IPC, and they are written anyway (measured).
    files = sorted((Path(out) / "events").glob(f"merchant_id=*/part-{unit:05d}.parquet"),
                   key=lambda f: urllib.parse.unquote(f.parent.name.split("=", 1)[1]))
    if not files:
        return {"unit": unit, "buyers": 0}
    events = pl.read_parquet(files, hive_partitioning=False, columns=list(_BUYER_COLUMNS))
    context = pl.read_parquet(context_path)
    buyers, funnel = _build(events, max_len=max_len, heldout_fraction=heldout_fraction,
                            seed=seed, context=context, assume_sorted=True, with_funnel=True)
    folder = Path(stage) / "buyers"
    folder.mkdir(parents=True, exist_ok=True)
    buyers.write_ipc(folder / f"part-{unit:05d}.arrow", compression="uncompressed")
    funnel.write_ipc(folder / f"funnel-{unit:05d}.arrow", compression="uncompressed")
    return {"unit": unit, "buyers": buyers.height}


# ----------------------------------------------------------------------------- runners

class _Local:
    """Calls of a stage in ``threads`` threads of this process; results in call order.

    Why threads: most of a call runs in Polars and numpy with the GIL released, while a
    single call keeps about one core busy (measured), so two calls at once use two cores.
    Each call writes its own files, so the output does not depend on the thread count.
    """

    def __init__(self, threads: int = 1):
        self.threads = max(1, threads)
        self.workers = self.threads

    def map(self, fn: Callable[..., Any], calls: list[tuple], stage: str,
            progress: Progress | None) -> list[Any]:
        if self.threads == 1 or len(calls) < 2:
            out = []
            for i, args in enumerate(calls):
                out.append(fn(*args))
                if progress:
                    progress(stage, i + 1, len(calls))
            return out
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            futures = [pool.submit(fn, *args) for args in calls]
            for done, _ in enumerate(as_completed(futures), start=1):
                if progress:
                    progress(stage, done, len(calls))
            # the error of the first call in order, as the one-thread runner raises it
            return [f.result() for f in futures]

    def close(self) -> None:
        pass


@dataclass
class _Failure:
    """A user-facing error raised inside a task, carried back as a value."""

    error: Exception


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    from simpersona_env.errors import SimPersonaError

    try:
        return fn(*args)
    except SimPersonaError as exc:  # re-raised by the driver with its own type and message
        return _Failure(exc)


class _Ray:
    """Each call of a stage is one Ray task; results come back in call order."""

    def __init__(self, address: str | None, num_cpus: int | None):
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is an optional extra
            raise ConfigError("runner=ray needs Ray: pip install 'simpersona[ray]'") from exc
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "ignore_reinit_error": True}
            if address:
                kwargs["address"] = address
            elif num_cpus:
                kwargs["num_cpus"] = num_cpus
            # workers must import this package from the same tree as the driver
            root = str(Path(__file__).resolve().parents[2])
            kwargs["runtime_env"] = {"env_vars": {
                "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}}
            ray.init(**kwargs)
            self.started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def map(self, fn: Callable[..., Any], calls: list[tuple], stage: str,
            progress: Progress | None) -> list[Any]:
        remote = self.ray.remote(num_cpus=1)(_guarded)
        refs = [remote.remote(fn, *args) for args in calls]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = self.ray.get(ref)
            if progress:
                progress(stage, len(refs) - len(pending), len(refs))
        # the error of the first call in order, as the local runner would raise it
        for r in results:
            if isinstance(r, _Failure):
                raise r.error
        return results

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _runner(name: str, address: str | None, num_cpus: int | None, threads: int = 1
            ) -> _Local | _Ray:
    if name == "local":
        return _Local(threads)
    if name == "ray":
        return _Ray(address, num_cpus)
    raise UnknownNameError("runner", name, RUNNERS)


# ----------------------------------------------------------------------------- driver

def _precheck(mapping: LogMapping) -> list[tuple[str, SourceMapping]]:
    """Every input file with its source mapping; column checks before any work."""
    from simpersona_env.ingest.read import check_source

    files: list[tuple[str, SourceMapping]] = []
    for s in mapping.sources:
        for p in expand_paths(s.path):
            check_source(p, s)
            files.append((str(p), s))
    return files


def _clear_outputs(out: Path) -> None:
    for name in ("events", "buyers", "_staging"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("quarantine.parquet", "merchants.json", "merchants.png", "manifest.json"):
        (out / name).unlink(missing_ok=True)


def ingest(mapping: LogMapping, out_dir: str | Path, *, strict: bool = False,
           runner: str = "local", ray_address: str | None = None, num_cpus: int | None = None,
           units: int = 0, buyers: bool = True, max_len: int = 64,
           heldout_fraction: float = 0.5, merchant_heldout_fraction: float = 0.0,
           seed: int = 0, bootstrap: int = 1000, confidence: float = 0.95,
           chunk_bytes: int = 16 << 20, threads: int = 1,
           progress: Progress | None = None) -> IngestResult:
    """Ingest a raw log into canonical events, buyer representations and merchant statistics.

    Args:
        mapping: the log (see :func:`~simpersona_env.ingest.builtin_mapping`,
            :func:`~simpersona_env.ingest.load_mapping`).
        out_dir: output folder (its previous ingest outputs are replaced).
        strict: fail on the first bad row (:class:`DataError` with line and reason) instead
            of quarantining bad rows.
        runner: ``"local"`` or ``"ray"`` (same code, same bytes).
        ray_address: Ray cluster to join (default: a local instance).
        num_cpus: CPUs of a local Ray instance.
        units: buyer units for stages 2-3 (0: one per 32 MiB of input). The output depends
            on it only through file names, never through content.
        buyers: also build buyer representations and merchant statistics.
        max_len: tokens kept per buyer.
        heldout_fraction: share of each merchant's buyers in the held-out split.
        merchant_heldout_fraction: share of merchants held out entirely (merchants.json).
        seed: split and bootstrap seed.
        bootstrap: bootstrap resamples for the merchant statistics' intervals.
        confidence: level of the intervals.
        chunk_bytes: bytes of a CSV read at once (bounds the parse's memory; no effect on
            the output).
        threads: files (or spans of a CSV over 256 MiB, when above 1) or units the local
            runner works on at once (each thread holds one unit in memory; no effect on
            the output).
        progress: ``progress(stage, done, total)`` callback.

    Returns:
        An :class:`IngestResult` with the paths and the manifest.

    Raises:
        SchemaError: a mapped column is missing from a file (before any work).
        DataError: an input file is missing, unreadable, or (strict) has a bad row.

    Example:
        >>> from simpersona_env.ingest import builtin_mapping, ingest
        >>> res = ingest(builtin_mapping("taobao"), "runs/ingest/taobao")  # doctest: +SKIP
        >>> res.manifest["rows"]["events_out"]  # doctest: +SKIP
    """
    import polars as pl

    from simpersona_env.buyers.represent import write_buyers
    from simpersona_env.buyers.stats import merchant_stats

    t0 = time.perf_counter()
    if runner not in RUNNERS:
        raise UnknownNameError("runner", runner, RUNNERS)
    files = _precheck(mapping)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)
    stage = out / "_staging"
    stage.mkdir()
    total_bytes = sum(os.path.getsize(p) for p, _ in files)
    n_units = units if units > 0 else max(1, math.ceil(total_bytes / _UNIT_BYTES))
    timings: dict[str, float] = {}
    run = _runner(runner, ray_address, num_cpus, threads)
    cleaner: threading.Thread | None = None
    try:
        t = time.perf_counter()
        tasks = _stage1_tasks(files, run, progress)
        parsed = run.map(_stage1_file, [(files[i][0], files[i][1], i, n_units, str(stage),
                                         strict, chunk_bytes, span) for i, span in tasks],
                         "parse", progress)

        def redo(whole: list[int]) -> list[dict[str, Any]]:
            return run.map(_stage1_file, [(files[i][0], files[i][1], i, n_units, str(stage),
                                           strict, chunk_bytes) for i in whole],
                           "parse (whole files)", progress)

        s1 = _merge_spans(files, tasks, parsed, stage, redo)
        timings["parse_s"] = time.perf_counter() - t
        t = time.perf_counter()
        literals = {i: r["literals"] for i, r in enumerate(s1) if r["literals"]}
        unit_batches = _unit_batches(s1, n_units)
        s2 = run.map(_stage2_unit, [(u, str(stage), str(out), mapping.dedup,
                                     mapping.session_gap_minutes, literals, unit_batches[u])
                                    for u in range(n_units)], "sessions", progress)
        timings["sessions_s"] = time.perf_counter() - t
        # the staged chunks are done with: freeing their pages (kernel time, ~0.6 s at
        # 10M events) runs beside stage 3, where a core is often idle, not after it
        cleaner = threading.Thread(target=shutil.rmtree, args=(stage / "chunks",),
                                   kwargs={"ignore_errors": True}, daemon=True)
        cleaner.start()
        n_buyers = 0
        if buyers:
            t = time.perf_counter()
            ctx_path = stage / "context.parquet"
            _merchant_context(stage, s2).write_parquet(ctx_path)
            s3 = run.map(_stage3_unit, [(u, str(stage), str(out), str(ctx_path), max_len,
                                         heldout_fraction, seed) for u in range(n_units)],
                         "buyers", progress)
            # streamed from the unit parts: rows grouped by unit, each part in (merchant,
            # buyer) order; the whole table is never in memory
            parts = sorted((stage / "buyers").glob("part-*.arrow"))
            if parts:
                table = pl.scan_ipc(parts)
            else:
                from simpersona_env.buyers.represent import build_buyers

                table = build_buyers(read_events(out), max_len=max_len)
            n_buyers = sum(r["buyers"] for r in s3)
            write_buyers(table, out / "buyers", max_len=max_len,
                         extra={"source": mapping.name, "seed": seed,
                                "heldout_fraction": heldout_fraction})
            timings["buyers_s"] = time.perf_counter() - t
            t = time.perf_counter()
            funnel_parts = sorted((stage / "buyers").glob("funnel-*.arrow"))
            # streamed: only the buyers with a priced purchase are held at once
            funnel = pl.scan_ipc(funnel_parts) if funnel_parts else None
            stats = merchant_stats(funnel, bootstrap=bootstrap, confidence=confidence,
                                   seed=seed, merchant_heldout_fraction=merchant_heldout_fraction)
            (out / "merchants.json").write_text(json.dumps(stats, indent=2) + "\n")
            timings["stats_s"] = time.perf_counter() - t
    except BaseException:
        run.close()
        if cleaner is not None:
            cleaner.join()
        shutil.rmtree(stage, ignore_errors=True)
        raise
    run.close()
    if cleaner is not None:
        cleaner.join()

    qparts = sorted((stage / "quarantine").glob("*.parquet"))
    quarantine = (pl.concat([pl.read_parquet(q) for q in qparts]) if qparts
                  else pl.DataFrame(schema=_quarantine_schema()))
    quarantine.write_parquet(out / "quarantine.parquet")
    shutil.rmtree(stage, ignore_errors=True)
    manifest = _manifest(mapping, out, s1, s2, n_units, n_buyers if buyers else None,
                         quarantine, runner, timings, time.perf_counter() - t0)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return IngestResult(out_dir=out, manifest=manifest)


def _manifest(mapping: LogMapping, out: Path, s1: list[dict], s2: list[dict], n_units: int,
              n_buyers: int | None, quarantine: Any, runner: str, timings: dict[str, float],
              total_s: float) -> dict[str, Any]:
    files = []
    for r in s1:
        info = r["file"]
        files.append({
            "path": info.path, "format": info.format, "bytes": info.bytes,
            "rows_in": r["good"] + sum(r["bad"].values()), "rows_good": r["good"],
            "rows_quarantined": sum(r["bad"].values()), "quarantined_by_reason": r["bad"],
            "parse_spans": r.get("spans", 1),
            "empty": info.empty, "recoded_latin1_lines": len(info.recoded_lines),
            "recoded_line_numbers": info.recoded_lines[:100], "notes": info.notes,
        })
    merchants: dict[str, int] = {}
    for r in s2:
        for m, n in r["merchants"].items():
            merchants[m] = merchants.get(m, 0) + n
    lows = [r["ts_min"] for r in s2 if r.get("ts_min") is not None]
    highs = [r["ts_max"] for r in s2 if r.get("ts_max") is not None]
    by_reason: dict[str, int] = {}
    for f in files:
        for k, v in f["quarantined_by_reason"].items():
            by_reason[k] = by_reason.get(k, 0) + v
    rows_in = sum(f["rows_in"] for f in files)
    out_rows = sum(r["rows_out"] for r in s2)
    dups = sum(r["duplicates"] for r in s2)
    from simpersona_env.buyers.spec import SCHEMA_VERSION

    return {
        "events_schema_version": EVENTS_SCHEMA_VERSION,
        "buyer_schema_version": SCHEMA_VERSION,
        "canonical_columns": list(CANONICAL_COLUMNS),
        "source": mapping.name,
        "mapping": mapping.to_dict(),
        "files": files,
        "rows": {
            "in": rows_in,
            "quarantined": int(quarantine.height),
            "duplicates_removed": dups,
            "events_out": out_rows,
            "check": "in == quarantined + duplicates_removed + events_out",
            "balanced": rows_in == quarantine.height + dups + out_rows,
        },
        "quarantined_by_reason": by_reason,
        "out_of_order_events": sum(r["out_of_order"] for r in s2),
        "sessionized_rows": sum(r["sessionized_rows"] for r in s2),
        "purchases_without_view_or_cart": sum(r["purchases_without_view_or_cart"] for r in s2),
        "merchants": dict(sorted(merchants.items())),
        "n_merchants": len(merchants),
        "n_buyers": n_buyers,
        "time_range": {"min": str(min(lows)) if lows else None,
                       "max": str(max(highs)) if highs else None},
        "units": n_units,
        "runner": runner,
        "timings_s": {**{k: round(v, 3) for k, v in timings.items()},
                      "total_s": round(total_s, 3)},
        "outputs": {"events": "events/merchant_id=<m>/part-<unit>.parquet",
                    "quarantine": "quarantine.parquet", "buyers": "buyers/buyers.parquet",
                    "merchant_stats": "merchants.json"},
    }
