"""``simpersona personas train | assign | report``: learn buyer types, assign them, explain them.

Each reads top to bottom: config -> seed -> data -> model -> run -> save. ``data`` is a
buyers table, an ingest output folder (every buyer table under it is read), several of those
joined by commas, or ``synthetic`` (generated archetype traffic, said so on the console).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import simpersona_env.ingest.mapping  # noqa: F401  (registers the schema of the data= group)
from simpersona_env.config import field, register, to_object
from simpersona_env.personas.model import PersonaVQVAEConfig
from simpersona_env.personas.train import TrainConfig

if TYPE_CHECKING:
    import polars as pl
    from omegaconf import DictConfig

__all__ = ["PersonasTrainCommand", "PersonasAssignCommand", "PersonasReportCommand", "train",
           "assign", "report", "load_data"]


_BUYERS_HELP = ("buyers.parquet, an ingest output folder (every buyer table under it), several "
                "joined by ',', or 'synthetic' (generated archetype traffic); default: the "
                "ingest output of data=<name>, else synthetic")
_DATA_HELP = ("data=<rees46|taobao|...>: read the buyers that `simpersona ingest data=<name>` "
              "wrote to <ingest_dir>/<name>")


@dataclasses.dataclass
class SyntheticSource:
    """The generated traffic used when ``data=synthetic``."""

    buyers: int = field(5000, help="buyers generated")
    merchants: int = field(4, help="merchants generated")
    seed: int = field(0, help="seed of the generated traffic")
    heldout_fraction: float = field(0.5, help="held-out share of the generated buyers")


@dataclasses.dataclass
class BuyerSource:
    """Where a personas command reads its buyers (shared by train, assign and report)."""

    buyers: Optional[str] = field(None, help=_BUYERS_HELP)
    data: Optional[Any] = field(None, help=_DATA_HELP)
    ingest_dir: str = field("runs/ingest", help="where `simpersona ingest` wrote its outputs")
    synthetic: SyntheticSource = field(help="generated data settings",
                                       default_factory=SyntheticSource)


@dataclasses.dataclass
class PersonasTrainCommand(BuyerSource):
    """``simpersona personas train``."""

    out_dir: str = field("runs/personas", help="writes model/ (checkpoint), curves.png, "
                                               "history.json")
    threads: int = field(2, help="torch CPU threads")
    model: PersonaVQVAEConfig = field(help="VQ-VAE architecture and loss weights",
                                      default_factory=PersonaVQVAEConfig)
    train: TrainConfig = field(help="optimisation", default_factory=TrainConfig)


@dataclasses.dataclass
class PersonasAssignCommand(BuyerSource):
    """``simpersona personas assign``."""

    checkpoint: str = field("runs/personas/model", help="folder written by `personas train`")
    out_dir: str = field("runs/personas", help="writes types.parquet and populations.json")
    k: Optional[int] = field(None, help="refuse a checkpoint with another number of types")
    batch_size: int = field(1024, help="buyers per encoder pass")
    threads: int = field(1, help="torch CPU threads (small batched passes run best on one)")


@dataclasses.dataclass
class PersonasReportCommand(BuyerSource):
    """``simpersona personas report``."""

    checkpoint: str = field("runs/personas/model", help="folder written by `personas train`")
    out_dir: str = field("runs/personas/report", help="writes report.md and its PNGs")
    events: Optional[str] = field(None, help="canonical events (Parquet file or folder) for top "
                                          "categories; default: events/ beside the buyer table")
    k: Optional[int] = field(None, help="refuse a checkpoint with another number of types")
    threads: int = field(1, help="torch CPU threads")


register("personas_train_schema", PersonasTrainCommand)
register("personas_assign_schema", PersonasAssignCommand)
register("personas_report_schema", PersonasReportCommand)


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold cyan]personas[/] {msg}")


def resolve_buyers(c: Any) -> str:
    """The ``buyers`` setting of a command config: explicit, from ``data=<name>``, or synthetic."""
    if c.buyers:
        return str(c.buyers)
    if c.data:
        name = c.data.get("name") if isinstance(c.data, dict) else getattr(c.data, "name", None)
        return str(Path(c.ingest_dir) / str(name))
    return "synthetic"


def load_data(data: str, synthetic: SyntheticSource | None = None, want_events: bool = False
              ) -> tuple[pl.DataFrame, pl.LazyFrame | None, str]:
    """(buyers, events or None, a description of the source) for a ``buyers`` setting."""
    import polars as pl

    from simpersona_env.buyers import build_buyers
    from simpersona_env.personas.data import find_events, load_buyers

    if data == "synthetic":
        from simpersona_env.synthetic import generate_events

        syn = synthetic or SyntheticSource()
        _log(f"no real data given: generating {syn.buyers} buyers at {syn.merchants} "
             f"merchants from the synthetic archetypes (seed {syn.seed}); pass "
             "data=<ingest out_dir> for real logs")
        log = generate_events(syn.buyers, n_merchants=syn.merchants, seed=syn.seed)
        buyers = build_buyers(log.events, heldout_fraction=syn.heldout_fraction)
        return buyers, log.events.lazy(), f"synthetic archetypes, seed {syn.seed}"
    buyers = load_buyers(data)
    events = None
    if want_events:
        files = find_events(data)
        events = pl.scan_parquet([str(f) for f in files]) if files else None
    return buyers, events, data


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(n)))


def train(cfg: DictConfig) -> int:
    """Train the behaviour-aware VQ-VAE of buyer types; writes a safetensors checkpoint."""
    from simpersona_env.personas.train import plot_curves, train_personas

    c = to_object(cfg, PersonasTrainCommand)
    c.synthetic = to_object(cfg.synthetic, SyntheticSource)
    c.model = to_object(cfg.model, PersonaVQVAEConfig)
    c.train = to_object(cfg.train, TrainConfig)
    _set_threads(c.threads)
    buyers, _, source = load_data(resolve_buyers(c), c.synthetic)
    _log(f"buyers: {buyers.height} at {buyers['merchant_id'].n_unique()} merchants ({source})")
    t0 = time.perf_counter()
    typer = train_personas(buyers, c.model, c.train)
    seconds = time.perf_counter() - t0
    typer.info.update({"source": source, "train_seconds": seconds})
    out = Path(c.out_dir)
    ckpt = typer.save(out / "model")
    plot_curves(typer.history, out / "curves.png")
    (out / "history.json").write_text(json.dumps(typer.history, indent=2) + "\n")
    last = typer.history[-1]
    _log(f"trained k={c.model.k} in {seconds:.1f}s: loss {last['loss']:.3f}, perplexity "
         f"{last.get('perplexity', float('nan')):.1f}, codes used {last.get('codes_used')}")
    _log(f"checkpoint: {ckpt} ; curves: {out / 'curves.png'}")
    return 0


def _assign(c: Any, want_events: bool):
    from simpersona_env.personas.assign import load_checkpoint

    _set_threads(c.threads)
    typer = load_checkpoint(c.checkpoint, expect_k=c.k)
    _log(f"model: {c.checkpoint} (k={typer.k})")
    buyers, events, source = load_data(resolve_buyers(c), c.synthetic, want_events)
    _log(f"buyers: {buyers.height} at {buyers['merchant_id'].n_unique()} merchants ({source})")
    t0 = time.perf_counter()
    types = typer.assign(buyers, **({"batch_size": c.batch_size} if hasattr(c, "batch_size")
                                    else {}))
    rate = buyers.height / max(time.perf_counter() - t0, 1e-9)
    _log(f"assigned {buyers.height} buyers ({rate:,.0f} buyers/s)")
    return typer, buyers, events, source, types


def assign(cfg: DictConfig) -> int:
    """Assign every buyer a type in one encoder pass; write per-merchant populations."""
    import polars as pl

    from simpersona_env.personas.population import populations_from_types, write_populations

    c = to_object(cfg, PersonasAssignCommand)
    c.synthetic = to_object(cfg.synthetic, SyntheticSource)
    typer, buyers, _, source, types = _assign(c, want_events=False)
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = [col for col in ("merchant_id", "buyer_id", "split") if col in buyers.columns]
    buyers.select(keep).with_columns(pl.Series("type", types, dtype=pl.Int32)).write_parquet(
        out / "types.parquet")
    pops = populations_from_types(buyers["merchant_id"].to_numpy(), types, typer.k)
    write_populations(pops, out / "populations.json",
                      meta={"checkpoint": str(c.checkpoint), "source": source})
    _log(f"types: {out / 'types.parquet'} ; populations of {len(pops) - 1} merchants: "
         f"{out / 'populations.json'}")
    return 0


def report(cfg: DictConfig) -> int:
    """Explain the buyer types: Markdown + PNG report (stats, descriptions, merchant mix)."""
    import polars as pl

    from simpersona_env.personas.report import write_report

    c = to_object(cfg, PersonasReportCommand)
    c.synthetic = to_object(cfg.synthetic, SyntheticSource)
    typer, buyers, events, source, types = _assign(c, want_events=True)
    if c.events:
        p = Path(c.events)
        events = pl.scan_parquet(str(p / "**/*.parquet") if p.is_dir() else str(p))
    if events is None:
        _log("no canonical events found beside the buyers: top categories left out "
             "(pass events=<events parquet>)")
    path = write_report(buyers, types, typer.k, c.out_dir, events=events,
                        title=f"Buyer types (K = {typer.k})", source=source)
    _log(f"report: {path}")
    return 0
