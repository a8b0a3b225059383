"""Benchmark of the storefront env (same as ``simpersona bench env``).

    .venv/bin/python bench/bench_env.py [key=value ...]   e.g. steps=500 out=reports/bench_env

In one run: median/p90 step latency and steps/s of the ``http`` backend, the ``playwright``
backend and a raw Playwright loop doing the same clicks with ``content()`` (the floor); memory
per browser env. Writes ``<out>/bench_env.json`` and ``<out>/bench_env.png``.
"""

import sys

from simpersona_env.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "env", *sys.argv[1:]]))
