"""``simpersona ingest``: a raw event log -> canonical events, buyers and merchant statistics.

Examples::

    simpersona ingest data=rees46                       # the built-in REES46 sample
    simpersona ingest data=taobao data.path=/big/UserBehavior.csv runner=ray
    simpersona ingest data=mapping data.mapping=my_shop.yaml strict=true
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from simpersona_env.config import field, register
from simpersona_env.ingest.mapping import DataConfig

__all__ = ["IngestConfig", "RunnerConfig", "run"]


@dataclass
class RunnerConfig:
    """Where the pipeline runs: ``local`` (Polars in this process) or ``ray``."""

    name: str = field("local", help="local or ray")
    num_cpus: int | None = field(None, help="ray: CPUs of a local instance (null: all)")
    address: str | None = field(None, help="ray: cluster address (null: start a local one)")


@dataclass
class IngestConfig:
    """Settings of ``simpersona ingest``."""

    data: DataConfig = field(default_factory=DataConfig, help="the log and its mapping "
                             "(data=rees46|taobao|tmall|otto|mapping)")
    runner: RunnerConfig = field(default_factory=RunnerConfig, help="runner=local|ray")
    out_dir: str | None = field(None, help="output folder (default runs/ingest/<data.name>)")
    strict: bool = field(False, help="fail on the first bad row instead of quarantining")
    units: int = field(0, help="buyer units for sessions and buyers (0: one per 32 MiB of input)")
    buyers: bool = field(True, help="build buyer representations and merchant statistics")
    max_len: int = field(64, help="events kept per buyer as tokens")
    heldout_fraction: float = field(0.5, help="share of each merchant's buyers held out")
    merchant_heldout_fraction: float = field(0.0, help="share of merchants held out entirely")
    seed: int = field(0, help="split and bootstrap seed")
    bootstrap: int = field(1000, help="bootstrap resamples for the merchant intervals")
    confidence: float = field(0.95, help="confidence level of the intervals")
    progress: bool = field(True, help="show progress bars")


register("ingest_schema", IngestConfig)
register("runner_schema", RunnerConfig, group="runner")


def run(cfg: DictConfig) -> int:
    """Ingest a raw event log into canonical events, buyer representations and merchant stats."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simpersona_env.buyers.stats import plot_merchant_stats
    from simpersona_env.config import to_object
    from simpersona_env.ingest import ingest, mapping_from_config

    console = Console(stderr=True)
    runner = to_object(cfg.runner, RunnerConfig)
    mapping = mapping_from_config(cfg.data)
    out_dir = Path(cfg.out_dir or f"runs/ingest/{mapping.name}")
    console.log(f"mapping '{mapping.name}': {len(mapping.sources)} source(s): "
                + ", ".join(s.path for s in mapping.sources))
    console.log(f"runner {runner.name}, output {out_dir}")
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not cfg.progress) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = ingest(mapping, out_dir, strict=cfg.strict, runner=runner.name,
                        ray_address=runner.address, num_cpus=runner.num_cpus, units=cfg.units,
                        buyers=cfg.buyers, max_len=cfg.max_len,
                        heldout_fraction=cfg.heldout_fraction,
                        merchant_heldout_fraction=cfg.merchant_heldout_fraction, seed=cfg.seed,
                        bootstrap=cfg.bootstrap, confidence=cfg.confidence, progress=progress)
    if cfg.buyers and result.merchants_path.exists():
        import json

        stats = json.loads(result.merchants_path.read_text())
        if stats["merchants"]:
            plot_merchant_stats(stats, str(out_dir / "merchants.png"))
    _summary(console, result.manifest, time.perf_counter() - t0)
    console.print(f"wrote {out_dir}/: events/ (by merchant), quarantine.parquet, "
                  f"{'buyers/, merchants.json, merchants.png, ' if cfg.buyers else ''}"
                  "manifest.json")
    return 0


def _summary(console: Any, m: dict[str, Any], seconds: float) -> None:
    from rich.table import Table

    files = Table(title="input files")
    for col in ("file", "rows in", "good", "quarantined", "by reason", "notes"):
        files.add_column(col, overflow="fold")
    for f in m["files"]:
        files.add_row(Path(f["path"]).name, f"{f['rows_in']:,}", f"{f['rows_good']:,}",
                      f"{f['rows_quarantined']:,}",
                      ", ".join(f"{k}={v}" for k, v in f["quarantined_by_reason"].items()),
                      "; ".join(f["notes"]))
    console.print(files)
    r = m["rows"]
    out = Table(title=f"ingest '{m['source']}' ({m['runner']}, {seconds:.1f} s)")
    out.add_column("measure")
    out.add_column("value", justify="right")
    rows = [
        ("rows in", r["in"]), ("quarantined", r["quarantined"]),
        ("duplicates removed", r["duplicates_removed"]), ("events out", r["events_out"]),
        ("out-of-order events (sorted)", m["out_of_order_events"]),
        ("rows sessionized by gap", m["sessionized_rows"]),
        ("purchases without prior view/cart (kept)", m["purchases_without_view_or_cart"]),
        ("merchants", m["n_merchants"]), ("buyers (merchant x buyer)", m["n_buyers"]),
        ("time range", f"{m['time_range']['min']} .. {m['time_range']['max']}"),
        ("pipeline time (s)", f"{m['timings_s']['total_s']:.2f}"),
        ("events/s (pipeline)", f"{r['in'] / max(m['timings_s']['total_s'], 1e-9):,.0f}"),
    ]
    for k, v in rows:
        out.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(out)
    if not r["balanced"]:
        console.print("[red]row counts do not balance: in != quarantined + duplicates + out")
