"""Simulated episodes on disk: one JSON line per finished episode, written as it ends.

A line holds everything needed to measure the episode later, with no other file::

    {"index": 17, "seed": 912..., "merchant_id": "electronics", "persona": 3,
     "visitor_id": "sp...", "goal": "", "goal_spec": null, "policy": "rule_based",
     "steps": [{"observation": {"url": ..., "last_action_error": ""}, "action": "click[...]"}],
     "funnel": {"stage", "cart_adds", "cart_value", "purchase", "purchased", "steps"},
     "goal_result": {"reward", "success"}, "reward": 1.0, "terminated": true,
     "truncated": false, "seconds": 0.08,
     "events": [canonical rows of this buyer, ts as ISO 8601 UTC]}

``steps`` has the shape of an ``agents.traces`` episode (observations are cut down to url and
error unless the run records full observations), so a simulation can be read as traces.

Resume: :class:`EpisodeWriter` reopens a file, drops a last line cut short by a crash, and
reports the indices already done; the runner then runs only the others. Each index is written
once, so an interrupted run resumed any number of times has every episode exactly once.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "episodes.jsonl"
    >>> with EpisodeWriter(path) as w:
    ...     w.write({"index": 0, "merchant_id": "m", "persona": 1, "events": []})
    >>> with EpisodeWriter(path, resume=True) as w:
    ...     sorted(w.done)
    [0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simpersona_env.errors import ConfigError, DataError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "EPISODES_FILE",
    "EVENTS_FILE",
    "EpisodeWriter",
    "events_of",
    "read_episode_records",
    "write_event_log",
]

EPISODES_FILE = "episodes.jsonl"
EVENTS_FILE = "events.parquet"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(complete records, byte length of the complete part) of an episodes file.

    A last line without its newline, or one that does not parse, is what a kill mid-write
    leaves: it is not counted (and the writer cuts it off). A bad line anywhere else is
    corruption, not an interruption, and raises.
    """
    records: list[dict[str, Any]] = []
    good = 0
    with path.open("rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    for n, raw in enumerate(lines[:-1], 1):  # the part after the last newline is incomplete
        if raw.strip():
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                if n == len(lines) - 1:  # the last complete-looking line: a torn write
                    break
                raise DataError(f"{path}:{n}: not an episode record ({exc}); the file is "
                                "damaged: move it away and rerun without resume") from exc
        good += len(raw) + 1
    return records, good


class EpisodeWriter:
    """Appends episode records to a JSONL file, one flushed line each.

    Args:
        path: the ``episodes.jsonl`` file.
        resume: keep the episodes already in the file (cutting off a torn last line);
            otherwise the file must not exist yet (or ``overwrite``).
        overwrite: start afresh even if the file holds episodes.
        fsync: also ask the OS to put each line on disk (slower; survives a power cut).

    Raises:
        ConfigError: the file holds episodes and neither ``resume`` nor ``overwrite`` is set.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False,
                 fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.done: set[int] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0 and not overwrite:
            if not resume:
                raise ConfigError(f"{self.path} already holds episodes; pass resume=true to "
                                  "continue that run, or overwrite=true (or another out_dir) "
                                  "to start again")
            records, good = _scan(self.path)
            with self.path.open("r+b") as fh:
                fh.truncate(good)
            self.done = {int(r["index"]) for r in records}
        elif overwrite:
            self.path.unlink(missing_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one episode (its ``index`` must not be written yet)."""
        index = int(record["index"])
        if index in self.done:
            raise DataError(f"episode {index} is already in {self.path}; each index is "
                            "written once")
        self._fh.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self.done.add(index)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> EpisodeWriter:  # noqa: PYI034 (final in practice; py3.10 target)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_episode_records(path: str | Path) -> list[dict[str, Any]]:
    """The episode records of a simulation (file or its folder), sorted by index.

    Raises:
        DataError: no such file, a damaged line, or an index written twice.
    """
    p = Path(path)
    if p.is_dir():
        p = p / EPISODES_FILE
    if not p.is_file():
        raise DataError(f"no simulated episodes at {p}; run `simpersona simulate` first")
    records, _ = _scan(p)
    seen: set[int] = set()
    for r in records:
        if r["index"] in seen:
            raise DataError(f"{p}: episode {r['index']} appears twice; the file was written "
                            "by two runs at once")
        seen.add(r["index"])
    return sorted(records, key=lambda r: r["index"])


def events_of(records: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """The shop's canonical event rows of these episodes, in episode order (canonical schema)."""
    import polars as pl
    import pyarrow as pa

    from storefront_mock.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA

    rows = [e for r in records for e in r.get("events", [])]
    cols: dict[str, list[Any]] = {c: [row.get(c) for row in rows] for c in CANONICAL_COLUMNS}
    cols["ts"] = [datetime.fromisoformat(t.replace("Z", "+00:00")) if isinstance(t, str) else t
                  for t in cols["ts"]]
    return pl.from_arrow(pa.Table.from_pydict(cols, schema=CANONICAL_SCHEMA))


def write_event_log(records: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the episodes' canonical event log as Parquet; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    events_of(records).write_parquet(p)
    return p
