"""``simpersona bench env``: step latency and memory of the env's backends vs raw Playwright.

Example:
    $ simpersona bench env
    $ simpersona bench env steps=500 out=reports/bench_env
"""

from __future__ import annotations

from typing import Any

from simpersona_env.config import register, to_object
from simpersona_env.env.bench import BenchEnvConfig

__all__ = ["run"]

register("bench_env_schema", BenchEnvConfig)


def run(cfg: Any) -> int:
    """Benchmark the env: http vs playwright vs a raw Playwright loop; JSON + PNG."""
    from simpersona_env.env.bench import run_bench

    run_bench(to_object(cfg, BenchEnvConfig))
    return 0
