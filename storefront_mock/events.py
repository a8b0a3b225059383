"""The shop's server-side event log, in the canonical schema (storefront_mock/canonical.py).

Every page the shop serves appends its rows here (docs/storefront.md says which); simulated
traffic is then measured with the same pipeline as real logs.

Example:
    >>> from datetime import datetime, timezone
    >>> log = EventLog()
    >>> row = log.append(merchant_id="builtin", buyer_id="v1", session_id="v1-1",
    ...                  ts=datetime(2026, 1, 1, tzinfo=timezone.utc), event="page_view")
    >>> row["price"] is None, log.to_arrow().num_rows
    (True, 1)
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from storefront_mock.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA, EVENT_TYPES
from storefront_mock.errors import StorefrontError

__all__ = ["EventLog"]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    ts = out["ts"]
    out["ts"] = ts.isoformat().replace("+00:00", "Z") if isinstance(ts, datetime) else ts
    return out


class EventLog:
    """Thread-safe, append-only list of canonical rows, optionally streamed to JSONL.

    Args:
        stream_to: a ``.jsonl`` path; each row is appended (and flushed) as it comes, so a
            crashed or killed server loses nothing already served.
        source: the ``source`` column of every row.
        keep_rows: hold the rows in memory (``rows()``, ``to_arrow()``); a long simulation that
            streams to a file can turn this off to run in constant memory.
    """

    def __init__(self, stream_to: str | Path | None = None, *, source: str = "storefront",
                 keep_rows: bool = True):
        if not keep_rows and not stream_to:
            raise StorefrontError("EventLog(keep_rows=False) needs stream_to=<path.jsonl>, "
                                  "else the rows would go nowhere")
        self.source, self.keep_rows = source, keep_rows
        self._count = 0
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        self.stream_path = Path(stream_to) if stream_to else None
        if self.stream_path:
            self.stream_path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.stream_path.open("a", encoding="utf-8")

    def append(self, *, merchant_id: str, buyer_id: str, session_id: str, ts: datetime,
               event: str, product_id: str | None = None, category: str | None = None,
               brand: str | None = None, price: float | None = None,
               query: str | None = None) -> dict[str, Any]:
        """Append one row (missing values stay ``None``) and return it."""
        if event not in EVENT_TYPES:
            raise StorefrontError(f"unknown event type {event!r}; valid: {', '.join(EVENT_TYPES)}")
        if ts.tzinfo is None:
            raise StorefrontError("event timestamps must be timezone-aware (UTC)")
        row = {"merchant_id": merchant_id, "buyer_id": buyer_id, "session_id": session_id,
               "ts": ts.astimezone(timezone.utc), "event": event, "product_id": product_id,
               "category": category, "brand": brand,
               "price": None if price is None else float(price), "query": query,
               "source": self.source}
        with self._lock:
            self._count += 1
            if self.keep_rows:
                self._rows.append(row)
            if self._stream is not None:
                self._stream.write(json.dumps(_jsonable(row), ensure_ascii=False) + "\n")
                self._stream.flush()
        return row

    def __len__(self) -> int:
        """Rows appended so far (streamed ones included)."""
        return self._count

    def rows(self, start: int = 0, *, buyer_id: str | None = None) -> list[dict[str, Any]]:
        """A copy of the rows from index ``start`` on, optionally of one visitor only."""
        with self._lock:
            rows = self._rows[start:]
        if buyer_id is not None:
            rows = [r for r in rows if r["buyer_id"] == buyer_id]
        return [dict(r) for r in rows]

    def clear(self) -> None:
        """Drop the in-memory rows (the streamed file keeps them)."""
        with self._lock:
            self._rows.clear()
            self._count = 0

    def to_arrow(self):  # -> pyarrow.Table
        """The rows as a pyarrow Table with exactly the canonical schema."""
        import pyarrow as pa

        rows = self.rows()
        return pa.Table.from_pydict({c: [r[c] for r in rows] for c in CANONICAL_COLUMNS},
                                    schema=CANONICAL_SCHEMA)

    def to_polars(self):  # -> polars.DataFrame
        """The rows as a polars DataFrame (canonical schema)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def write_jsonl(self, path: str | Path) -> Path:
        """Write all rows as JSON lines (``ts`` as ISO 8601 UTC); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for r in self.rows():
                fh.write(json.dumps(_jsonable(r), ensure_ascii=False) + "\n")
        return path

    def write_parquet(self, path: str | Path) -> Path:
        """Write all rows as Parquet with the canonical schema; returns the path."""
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_arrow(), path)
        return path

    def write(self, path: str | Path) -> Path:
        """Write by extension: ``.parquet`` or ``.jsonl``."""
        suffix = Path(path).suffix.lower()
        if suffix == ".parquet":
            return self.write_parquet(path)
        if suffix in (".jsonl", ".json"):
            return self.write_jsonl(path)
        raise StorefrontError(f"cannot write an event log to {path}: use .jsonl or .parquet")

    def close(self) -> None:
        """Close the streamed file, if any."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
