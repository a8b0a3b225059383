"""``simpersona traces``: real sessions replayed in the storefront env as agent-training traces.

Examples::

    simpersona ingest data=rees46 out_dir=runs/ingest/rees46
    simpersona traces events=runs/ingest/rees46 out_dir=runs/traces/rees46
    simpersona traces events=runs/ingest/rees46 persona_types=runs/personas/types.parquet
    simpersona traces events=synthetic max_sessions=200          # no data: generated log
    simpersona traces events=runs/ingest/rees46 goal_demos.n=100 # + 100 goal demos per catalog

Writes ``traces.jsonl`` (one episode per line, :mod:`agents.traces`), ``coverage.json`` (the
share of real events reproduced, by event type and merchant, every event not reproduced by
reason, sessions/s; ``goal_demos``: the goal demonstrations added, per catalog) and
``coverage.png``. With ``goal_demos.n > 0``, scripted demonstrations of the ``goal`` task
over bundled catalogs (:func:`agents.goal_demos.goal_demonstrations`), on task seeds the goal
benchmark never uses, go into ``traces.jsonl`` (or ``goal_demos.file``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from simpersona_env.config import field, register, to_object

__all__ = ["GoalDemosConfig", "TracesConfig", "load_personas", "plot_coverage", "traces"]


@dataclass
class GoalDemosConfig:
    """Scripted demonstrations of the ``goal`` task added to the traces (off by default)."""

    n: int = field(0, help="successful demonstrations per catalog (0: none)")
    catalogs: list = field(["builtin", "flipkart", "amazon"], help="bundled store presets "  # noqa: RUF009
                           "whose catalogs the goals come from (a data-backed one without "
                           "its data is skipped, and coverage.json says so)")
    query: str = field("instruction", help="how the demonstrator finds the product: "
                       "instruction (searches words of the instruction, clicks the first "
                       "listed product that meets the goal), type (searches only the "
                       "instruction's product type, same click) or title (the task oracle: "
                       "searches the product title, which the instruction does not show)")
    max_words: int = field(10, help="longest search, in words, for query=instruction")
    max_steps: int = field(30, help="step limit of a demonstration (the goal benchmark's)")
    max_tries: int = field(4, help="give up on a catalog after n * max_tries tasks tried")
    seed: int = field(0, help="seed of the demonstrations' task stream (apart from the "
                      "benchmark's for every seed)")
    benchmark_seeds: list = field([0], help="goal benchmark seeds whose tasks are excluded")  # noqa: RUF009
    benchmark_tasks: int = field(1000, help="the first this many tasks of each benchmark seed "
                                 "are excluded (their env seeds, and their instructions when "
                                 "exclude_benchmark_goals)")
    exclude_benchmark_goals: bool = field(True, help="also skip a task whose instruction "
                                          "equals one of the excluded benchmark tasks'")
    file: str = field("", help="empty: append to traces.jsonl; else a second JSONL in out_dir "
                      "(e.g. goal_demos.jsonl; `agent train traces=<out_dir>` then reads "
                      "both, or pass the file alone to train on the demonstrations)")
    data_dir: str = field("", help="data folder with catalogs/ (empty: $SIMPERSONA_DATA_DIR)")


@dataclass
class TracesConfig:
    """Settings of ``simpersona traces``."""

    events: str = field("???", help="canonical events: the out_dir of `simpersona ingest`, a "
                        "Parquet file or folder, or 'synthetic' (a generated log, no data)")
    persona_types: str = field("", help="buyer types: types.parquet of `simpersona personas assign` "
                          "(merchant_id, buyer_id, type); empty: persona -1 for everyone")
    out_dir: str = field("runs/traces", help="writes traces.jsonl, coverage.json, coverage.png")
    max_sessions: int = field(0, help="replay at most this many sessions, a deterministic "
                              "sample spread over the log (0: all)")
    merchants: list = field([], help="only these merchants (empty: all)")  # noqa: RUF009
    max_steps: int = field(200, help="step cap of one episode; events past it are counted as "
                           "cut (step_cap)")
    max_pages: int = field(5, help="a collection route longer than this many pages loses to "
                           "a search for the product's title")
    num_personas: int = field(0, help="K, the number of buyer types (0: from the assignment, "
                              "64 without one)")
    seed: int = field(0, help="seed of the session sample")
    write_traces: bool = field(True, help="write traces.jsonl (false: coverage only)")
    synthetic_buyers: int = field(300, help="events=synthetic: buyers generated")
    synthetic_merchants: int = field(2, help="events=synthetic: merchants generated")
    progress: bool = field(True, help="show a progress bar")
    goal_demos: GoalDemosConfig = field(default_factory=GoalDemosConfig,  # noqa: RUF009
                                        help="goal-task demonstrations added to the traces")


register("traces_schema", TracesConfig)


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold cyan]traces[/] {msg}")


def load_personas(path: str | Path) -> tuple[dict[tuple[str, str], int], int]:
    """((merchant_id, buyer_id) -> type, K) from a buyer-type assignment Parquet.

    Without a ``merchant_id`` column the key's merchant is ``""`` (one type per buyer).

    Raises:
        DataError: a missing file or one without ``buyer_id`` and ``type``.
    """
    import polars as pl

    from simpersona_env.errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"no persona assignment at {str(p)!r}; write one with `simpersona "
                        "personas assign` (types.parquet) or leave persona_types= empty")
    try:
        df = pl.read_parquet(p)
    except Exception as exc:  # polars raises several types for unreadable input
        raise DataError(f"cannot read {p} as Parquet: {exc}") from exc
    missing = [c for c in ("buyer_id", "type") if c not in df.columns]
    if missing:
        raise DataError(f"{p} lacks column(s) {missing}; expected merchant_id, buyer_id, type "
                        "(types.parquet of `simpersona personas assign`)")
    merchants = (df["merchant_id"].cast(pl.Utf8).to_list() if "merchant_id" in df.columns
                 else [""] * df.height)
    types = df["type"].to_list()
    if any(t is None or t < 0 for t in types):
        raise DataError(f"{p}: buyer types must be integers >= 0")
    table = {(m, str(b)): int(t) for m, b, t in zip(merchants, df["buyer_id"].cast(pl.Utf8)
                                                     .to_list(), types, strict=True)}
    return table, (max(types) + 1 if types else 1)


def plot_coverage(report: dict[str, Any], path: str | Path) -> Path:
    """A three-panel PNG: coverage per event type, events not reproduced by reason, and the
    shop events the navigation added, by type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = report["total"]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 3.8))
    by = total["by_event"]
    names = list(by)
    a.barh(names, [by[n]["coverage"] for n in names], color="#3a7")
    for y, n in enumerate(names):
        a.text(0.01, y, f"{by[n]['reproduced']}/{by[n]['events']}", va="center", fontsize=8,
               color="white")
    a.set_xlim(0, 1)
    a.set_title(f"reproduced: {total['coverage']:.1%} of {total['events']} real events")
    for ax, counts, title, color in (
            (b, total["not_reproduced_by_reason"], "not reproduced, by reason", "#c54"),
            (c, total["inserted_shop_events"], "shop events added by navigation", "#58b")):
        if counts:
            ax.barh(list(counts), list(counts.values()), color=color)
            ax.set_title(title)
        else:
            ax.text(0.5, 0.5, f"{title}: none", ha="center", va="center")
            ax.set_axis_off()
    fig.suptitle(f"{report['source']}: {total['sessions']} sessions, {total['episodes']} "
                 f"episodes, {total['steps']} steps")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def traces(cfg: DictConfig) -> int:
    """Replay real sessions in the storefront env: traces JSONL + coverage JSON and PNG."""
    import polars as pl
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from agents.replay import Coverage, Replayer, sessions_of
    from agents.traces import write_episodes
    from storefront_mock.catalog import read_event_frame

    c = to_object(cfg, TracesConfig)
    if not isinstance(c.goal_demos, GoalDemosConfig):
        c.goal_demos = to_object(cfg.goal_demos, GoalDemosConfig)
    if c.goal_demos.n > 0:  # before the replay, so that a typo costs nothing
        from agents.goal_demos import check_goal_demo_settings

        g = c.goal_demos
        check_goal_demo_settings(list(g.catalogs), g.n, query=g.query, max_steps=g.max_steps,
                                 max_tries=g.max_tries)
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # config -> data
    if c.events == "synthetic":
        from simpersona_env.synthetic import generate_events

        _log(f"no real data given: generating {c.synthetic_buyers} buyers at "
             f"{c.synthetic_merchants} merchants from the synthetic archetypes (seed {c.seed}); "
             "pass events=<ingest out_dir> for real logs")
        events: Any = generate_events(c.synthetic_buyers, n_merchants=c.synthetic_merchants,
                                      seed=c.seed).events
        source = f"synthetic archetypes, seed {c.seed}"
    else:
        try:
            events = read_event_frame(c.events)
        except Exception as exc:
            from simpersona_env.errors import DataError

            raise DataError(f"events={c.events!r}: {exc}") from exc
        source = c.events
    if c.merchants:
        known = set(events["merchant_id"].unique().to_list())
        unknown = [m for m in c.merchants if m not in known]
        if unknown:
            from simpersona_env.errors import UnknownNameError

            raise UnknownNameError("merchant", unknown[0], sorted(known))
        events = events.filter(pl.col("merchant_id").is_in([str(m) for m in c.merchants]))
    n_total = events.select("merchant_id", "session_id").unique().height
    _log(f"events: {events.height} rows, {n_total} sessions (per merchant) at "
         f"{events['merchant_id'].n_unique()} merchants ({source})")
    personas, k = ({}, 64)
    if c.persona_types:
        personas, k = load_personas(c.persona_types)
        _log(f"personas: {len(personas)} buyers, K = {k} ({c.persona_types})")
    k = c.num_personas or k
    if personas and max(personas.values()) >= k:
        from simpersona_env.errors import ConfigError

        raise ConfigError(f"num_personas={k} but the assignment has type "
                          f"{max(personas.values())}; leave num_personas=0 to take K from it")

    # build
    t0 = time.perf_counter()
    replayer = Replayer(events, max_steps=c.max_steps, max_pages=c.max_pages, num_personas=k)
    _log(f"storefronts: {len(replayer.stores)} merchants, "
         f"{sum(len(s.catalog) for s in replayer.stores.values())} products "
         f"({time.perf_counter() - t0:.1f}s)")
    n = min(n_total, c.max_sessions) if c.max_sessions else n_total

    # run
    per_merchant: dict[str, Coverage] = {}
    bar = tqdm(total=n, desc="replay", unit="session", disable=not c.progress)
    no_persona = 0

    def episodes():
        nonlocal no_persona
        for merchant, rows in sessions_of(events, max_sessions=c.max_sessions, seed=c.seed):
            key = (merchant, str(rows[0]["buyer_id"]))
            persona = personas.get(key, personas.get(("", key[1]), -1)) if personas else -1
            no_persona += persona < 0
            res = replayer.replay(rows, persona=persona)
            per_merchant[merchant] = per_merchant.get(merchant, Coverage()) + res.coverage
            bar.update(1)
            cov = sum(per_merchant.values(), Coverage())
            bar.set_postfix(coverage=f"{cov.share:.1%}", refresh=False)
            yield from res.episodes

    t1 = time.perf_counter()
    path = out / "traces.jsonl"
    if c.write_traces:
        written = write_episodes(episodes(), path)
    else:
        written = sum(1 for _ in episodes())
    bar.close()
    wall = time.perf_counter() - t1
    replayer.close()
    demos = _goal_demos(c, out, path) if c.goal_demos.n > 0 else None

    # save
    total = sum(per_merchant.values(), Coverage())
    report = {
        "source": source, "personas": c.persona_types or None, "num_personas": k,
        "sessions_without_persona": no_persona if personas else None,
        "max_steps": c.max_steps, "max_sessions": c.max_sessions,
        "wall_seconds": round(wall, 3),
        "sessions_per_s_wall": round(total.sessions / wall, 2) if wall else None,
        "total": total.to_dict(),
        "merchants": {m: cv.to_dict() for m, cv in sorted(per_merchant.items())},
        "traces": str(path) if c.write_traces else None, "episodes_written": written,
        "goal_demos": demos,
    }
    (out / "coverage.json").write_text(json.dumps(report, indent=2))
    png = plot_coverage(report, out / "coverage.png")

    table = Table(title=f"replay of {source}")
    for col in ("merchant", "sessions", "events", "reproduced", "coverage", "episodes",
                "steps", "cut"):
        table.add_column(col, justify="right" if col != "merchant" else "left")
    for m, cv in [*sorted(per_merchant.items()), ("total", total)]:
        table.add_row(m, str(cv.sessions), str(cv.events), str(cv.reproduced),
                      f"{cv.share:.2%}", str(cv.episodes), str(cv.steps), str(cv.cut_sessions))
    console = Console(stderr=True)
    console.print(table)
    if total.reasons:
        console.print("not reproduced: " + ", ".join(f"{r} {n}" for r, n in
                                                     total.reasons.most_common()))
    _log(f"{total.sessions} sessions in {wall:.1f}s ({total.sessions / max(wall, 1e-9):.1f} "
         f"sessions/s, {total.steps / max(wall, 1e-9):.0f} steps/s); "
         f"{written} episodes -> {path if c.write_traces else '(not written)'}; "
         f"{out / 'coverage.json'}; {png}")
    return 0


def _goal_demos(c: TracesConfig, out: Path, traces_path: Path) -> dict[str, Any]:
    """Record the goal demonstrations and append them to the traces (or write their file)."""
    from agents.goal_demos import goal_demonstrations
    from agents.traces import write_episodes

    g = c.goal_demos
    t0 = time.perf_counter()
    _log(f"goal demonstrations: {g.n} per catalog of {', '.join(g.catalogs)} "
         f"(query={g.query}; the first {g.benchmark_tasks} tasks of benchmark seed(s) "
         f"{list(g.benchmark_seeds)} excluded)")
    episodes, report = goal_demonstrations(
        list(g.catalogs), g.n, seed=g.seed, query=g.query, max_words=g.max_words,
        max_steps=g.max_steps, max_tries=g.max_tries,
        benchmark_seeds=[int(s) for s in g.benchmark_seeds], benchmark_tasks=g.benchmark_tasks,
        exclude_benchmark_goals=g.exclude_benchmark_goals, data_dir=g.data_dir or None,
        progress=c.progress)
    if g.file or not c.write_traces:
        # their own file (coverage-only runs too, so the demonstrations are never lost)
        target = out / (g.file or "goal_demos.jsonl")
        write_episodes(episodes, target)
    else:
        # appended after the replayed episodes: one trace file for `agent train traces=`
        target = traces_path
        with target.open("a", encoding="utf-8") as fh:
            for ep in episodes:
                fh.write(json.dumps(ep.to_dict(), ensure_ascii=False) + "\n")
    for cat, why in report["skipped"].items():
        _log(f"[yellow]goal demos: catalog {cat} skipped: {why}")
    per = ", ".join(f"{cat} {st['added']}/{st['tried']}" for cat, st in report["catalogs"].items())
    _log(f"goal demonstrations: {report['added']} added ({per} successful/tried) -> {target} "
         f"({time.perf_counter() - t0:.1f}s)")
    return {**report, "file": str(target), "seconds": round(time.perf_counter() - t0, 2)}
