"""Benchmark: the ingest's peak memory and speed as the log grows (streaming, not in memory).

For each size, a resampled real log (``bench/resample.py``: real REES46 and Taobao buyers
copied with fresh ids) is ingested by ``simpersona_env.ingest.ingest`` in a fresh process
(the ``simpersona`` worker of ``bench/bench_ingest.py``), and its peak RSS is set beside the
input's size. A streaming ingest keeps the peak about flat while the input grows (the units
and chunks in flight, not the log, are in memory), so the peak over the input falls with
size. Results: ``<out>/bench_ingest_memory.json`` and ``.png``.

Usage::

    python bench/bench_ingest_memory.py --events 3000000,10000000,30000000 --threads 2 \\
        --out runs/bench/ingest-memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import _sub  # the same worker as the main benchmark


def _data(events: int, root: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    folder = root / f"simpersona-bench-{events}"
    info_path = folder / "resample.json"
    if not info_path.exists() or json.loads(info_path.read_text())["events"] != events:
        subprocess.run([sys.executable, str(ROOT / "bench" / "resample.py"), "--events",
                        str(events), "--out", str(folder), "--seed", str(seed)], check=True)
    return folder, json.loads(info_path.read_text())


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = [r["data_mib"] for r in rows]
    a.plot(x, x, "k--", label="input size")
    a.plot(x, [r["peak_mib"] for r in rows], "o-", color="C0", label="ingest peak RSS")
    for r in rows:
        a.annotate(f"{r['events'] / 1e6:.0f}M: {r['peak_over_input']:.2f}x",
                   (r["data_mib"], r["peak_mib"]), textcoords="offset points", xytext=(4, 6))
    a.set_xlabel("input (MiB of CSV)")
    a.set_ylabel("MiB")
    a.set_title("peak memory as the log grows")
    a.legend()
    b.plot([r["events"] / 1e6 for r in rows], [r["events_per_s"] / 1e3 for r in rows], "o-")
    b.set_xlabel("million events")
    b.set_ylabel("thousand events / s (parse + sessions + buyers)")
    b.set_ylim(bottom=0)
    b.set_title("throughput as the log grows")
    fig.suptitle("simpersona ingest on resampled real data (REES46 + Taobao)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", default="3000000,10000000,30000000",
                    help="comma-separated log sizes (events)")
    ap.add_argument("--data-root", default="/tmp", help="where the resampled logs are made")
    ap.add_argument("--out", default="runs/bench/ingest-memory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ["BENCH_INGEST_THREADS"] = str(args.threads)
    os.environ["BENCH_INGEST_UNIT_MIB"] = "0"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("data: RESAMPLED REAL DATA (real REES46 and Taobao buyers with fresh ids, "
          "bench/resample.py)")
    rows = []
    for events in sorted(int(e) for e in args.events.split(",")):
        data, info = _data(events, Path(args.data_root), args.seed)
        print(f"ingesting {events:,} events ({info['bytes'] / 2**20:,.0f} MiB) ...", flush=True)
        r = _sub("simpersona", data, out / "work" / str(events))
        peak = max(r["peak_mib"].values())
        row = {"events": events, "data_mib": info["bytes"] / 2**20, "peak_mib": peak,
               "peak_by_stage_mib": r["peak_mib"], "peak_over_input": peak / (info["bytes"] / 2**20),
               "seconds": r["core_seconds"], "events_per_s": r["rows"] / r["core_seconds"],
               "cpu_seconds": r["cpu_seconds"], "timings_s": r["timings_s"],
               "buyers": r["buyers"], "threads": args.threads}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"data": "resampled real data (bench/resample.py)", "cpus": os.cpu_count(),
              "load_average_end": list(os.getloadavg()), "runs": rows}
    (out / "bench_ingest_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, out / "bench_ingest_memory.png")
    print(f"wrote {out / 'bench_ingest_memory.json'} and {out / 'bench_ingest_memory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
