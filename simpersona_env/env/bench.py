"""Benchmark of the env's step cost: ``http`` vs ``playwright`` vs a raw Playwright loop.

In one run, on the same bundled shop and the same cycle of link clicks (home -> collection ->
home -> product -> cart -> home ...); the two browser contenders take turns of one cycle
each, so that a change in machine load hits both alike:

* ``http``: the env with the in-process backend;
* ``playwright``: the env with the browser backend (one shared Chromium, one context);
* ``raw_playwright``: Playwright's sync API doing the same clicks and reading ``content()``,
  nothing else: the floor any browser env pays.

Reports median and p90 step latency and steps/s of each, the playwright/raw ratio, and memory
per browser env (proportional set size of the browser's processes per context, and Python's
RSS), writes JSON and a PNG. Targets: http >= 200 steps/s, playwright within 1.3x of raw,
<= 500 MB per browser env.

Example:
    >>> result = run_bench(BenchEnvConfig(steps=20, warmup=5, memory_envs=1))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simpersona_env.config import field

__all__ = ["BenchEnvConfig", "run_bench", "TARGETS"]

#: What the benchmark checks against.
TARGETS = {"http_steps_per_s": 200.0, "playwright_over_raw": 1.3, "mb_per_browser_env": 500.0}


@dataclass
class BenchEnvConfig:
    """Settings of ``simpersona bench env``."""

    steps: int = field(200, help="timed steps per contender")
    warmup: int = field(20, help="untimed steps first (caches, JIT, connections)")
    memory_envs: int = field(4, help="browser envs opened at once for the memory figure")
    preset: str = field("builtin", help="bundled store preset to step through (not `store=`: "
                        "that name is the storefront config group of other commands)")
    browser_path: str = field("", help="Chromium executable (default: see find_browser)")
    out: str = field("reports/bench_env", help="folder for bench_env.json and bench_env.png")


def _cycle(first_product: str, collection: str) -> list[tuple[str, str]]:
    # (element id, page kind it leads to): only links, so every step loads a page
    return [(f"collection-{collection}", "collection"), ("nav-home", "home"),
            (f"product-{first_product}", "product"), ("nav-cart", "cart"), ("nav-home", "home")]


def _stats(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    p90 = lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))]
    return {"median_ms": 1000 * statistics.median(lat), "p90_ms": 1000 * p90,
            "steps_per_s": len(lat) / sum(lat), "steps": len(lat)}


def _env_stepper(env: Any, cycle: list[tuple[str, str]], label: str):
    env.reset(seed=0)

    def step(i: int) -> float:
        eid, kind = cycle[i % len(cycle)]
        t = time.perf_counter()
        obs, *_, info = env.step(f"click[{eid}]")
        dt = time.perf_counter() - t
        if obs["last_action_error"] or info["page"] != kind:
            raise RuntimeError(f"{label}: step {i} click[{eid}] did not reach {kind}: "
                               f"{obs['last_action_error'] or info['page']}")
        return dt

    return step


class _RawLoop:
    """Playwright's sync API, nothing else: click, then ``content()`` (its own browser)."""

    def __init__(self, url: str, cycle: list[tuple[str, str]], executable: str):
        from playwright.sync_api import sync_playwright

        from simpersona_env.env.browser import LAUNCH_ARGS

        self.cycle = cycle
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=executable, headless=True,
                                                 args=list(LAUNCH_ARGS))
        self._page = self._browser.new_context().new_page()
        self._page.goto(url)

    def __call__(self, i: int) -> float:
        eid, kind = self.cycle[i % len(self.cycle)]
        t = time.perf_counter()
        self._page.click(f'[data-sp-id="{eid}"]')
        # the same wait as the env's backend: a click returns once its navigation has started
        self._page.wait_for_load_state("domcontentloaded")
        html = self._page.content()
        dt = time.perf_counter() - t
        if f'data-sp-page="{kind}"' not in html:
            raise RuntimeError(f"raw loop: click {eid} did not reach {kind}")
        return dt

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


def _interleaved(steppers: dict[str, Any], steps: int, warmup: int,
                 block: int) -> dict[str, list[float]]:
    """Run the contenders in turns of ``block`` steps (a whole click cycle), so that a change
    in machine load during the run hits all of them alike."""
    from tqdm import tqdm

    lat: dict[str, list[float]] = {k: [] for k in steppers}
    total = warmup + steps
    with tqdm(total=total * len(steppers), desc="stepping", leave=False) as bar:
        for start in range(0, total, block):
            for name, step in steppers.items():
                for i in range(start, min(start + block, total)):
                    dt = step(i)
                    if i >= warmup:
                        lat[name].append(dt)
                    bar.update()
    return lat


def _browser_memory_mb() -> tuple[float, float, int]:
    """(PSS MB, RSS MB, process count) of the Chromium processes under this process."""
    import psutil

    pss = rss = 0.0
    n = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if not any(k in proc.name().lower() for k in ("chrom", "headless_shell")):
                continue
            info = proc.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
            n += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pss / 2**20, rss / 2**20, n


def run_bench(cfg: BenchEnvConfig) -> dict[str, Any]:
    """Run the benchmark; returns the result written to ``<out>/bench_env.json``."""
    import psutil

    import simpersona_env  # noqa: F401 (registers the id)
    from simpersona_env.env.browser import find_browser, shared_browser
    from simpersona_env.env.serving import serve_shared
    from simpersona_env.env.storefront_env import StorefrontEnv
    from storefront_mock import create_app, make_stores

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    executable = find_browser(cfg.browser_path or None)
    app = create_app(make_stores(cfg.preset))
    store = next(iter(app.state.shop.stores.values()))
    cycle = _cycle(store.catalog.featured(1)[0].product_id, store.catalog.top_collections[0].slug)
    result: dict[str, Any] = {"config": asdict(cfg), "cycle": [c[0] for c in cycle]}
    print(f"benchmark: store {cfg.preset}, {cfg.steps} steps each (+{cfg.warmup} warm-up), "
          f"browser {executable}")

    # 1. http alone (an absolute target; the in-process backend needs no browser)
    http_env = StorefrontEnv(app=app, store=cfg.preset, backend="http")
    try:
        lat = _interleaved({"http": _env_stepper(http_env, cycle, "http")}, cfg.steps,
                           cfg.warmup, len(cycle))
    finally:
        http_env.close()
    # 2. playwright env vs the raw floor on the same shop and clicks, in turns of one cycle
    served = serve_shared(app)
    raw = _RawLoop(f"{served.url}/s/{store.store_id}/", cycle, executable)
    pw_env = StorefrontEnv(app=app, store=cfg.preset, backend="playwright",
                           browser_path=cfg.browser_path)
    try:
        lat.update(_interleaved({"raw_playwright": raw,
                                 "playwright": _env_stepper(pw_env, cycle, "playwright")},
                                cfg.steps, cfg.warmup, len(cycle)))
    finally:
        pw_env.close()
        raw.close()  # before the memory figure: only the env's browser is left
    for name in ("http", "playwright", "raw_playwright"):
        result[name] = _stats(lat[name])
        print(f"{name + ':':<16}{result[name]}")

    # 4. memory: the shared browser with 0..N envs (contexts) open, each on a page
    shared_browser(cfg.browser_path or None)
    base_pss, base_rss, _ = _browser_memory_mb()
    envs = []
    for i in range(cfg.memory_envs):
        e = StorefrontEnv(app=app, store=cfg.preset, backend="playwright",
                          browser_path=cfg.browser_path)
        e.reset(seed=100 + i)
        e.step(f"click[{cycle[0][0]}]")
        envs.append(e)
    pss, rss, nproc = _browser_memory_mb()
    python_rss = psutil.Process().memory_info().rss / 2**20
    for e in envs:
        e.close()
    n = max(1, cfg.memory_envs)
    result["memory"] = {
        "envs": cfg.memory_envs, "browser_processes": nproc,
        "browser_pss_mb_no_env": base_pss, "browser_pss_mb": pss, "browser_rss_mb": rss,
        "marginal_pss_mb_per_env": (pss - base_pss) / n,
        "pss_mb_per_env_incl_browser": pss / n,
        "python_rss_mb": python_rss,
        "mb_per_browser_env": pss / n + python_rss / n,
    }
    print(f"memory:         {result['memory']}")

    result["playwright_over_raw"] = (result["playwright"]["median_ms"]
                                     / result["raw_playwright"]["median_ms"])
    result["targets"] = TARGETS
    result["meets"] = {
        "http_steps_per_s": result["http"]["steps_per_s"] >= TARGETS["http_steps_per_s"],
        "playwright_over_raw": result["playwright_over_raw"] <= TARGETS["playwright_over_raw"],
        "mb_per_browser_env": result["memory"]["mb_per_browser_env"]
        <= TARGETS["mb_per_browser_env"]}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "platform": platform.platform(),
                         "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    (out / "bench_env.json").write_text(json.dumps(result, indent=2))
    _plot(result, out / "bench_env.png")
    print(f"playwright / raw = {result['playwright_over_raw']:.2f}; meets {result['meets']}")
    print(f"wrote {out / 'bench_env.json'} and {out / 'bench_env.png'}")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["http", "playwright", "raw_playwright"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    sps = [result[n]["steps_per_s"] for n in names]
    axes[0].bar(names, sps, color=["tab:green", "tab:blue", "tab:gray"])
    axes[0].set_yscale("log")
    axes[0].axhline(TARGETS["http_steps_per_s"], ls="--", c="tab:green", label="http target")
    axes[0].set_title("steps per second (log)")
    axes[0].legend()
    x = range(len(names))
    axes[1].bar([i - 0.2 for i in x], [result[n]["median_ms"] for n in names], 0.4, label="median")
    axes[1].bar([i + 0.2 for i in x], [result[n]["p90_ms"] for n in names], 0.4, label="p90")
    axes[1].set_xticks(list(x), names)
    axes[1].set_yscale("log")
    axes[1].set_title("step latency, ms (log)")
    axes[1].legend()
    m = result["memory"]
    axes[2].bar(["browser / env", "marginal / env", "python"],
                [m["pss_mb_per_env_incl_browser"], m["marginal_pss_mb_per_env"],
                 m["python_rss_mb"]], color="tab:purple")
    axes[2].axhline(TARGETS["mb_per_browser_env"], ls="--", c="k", label="target per env")
    axes[2].set_title(f"memory, MB ({m['envs']} browser envs)")
    axes[2].legend()
    fig.suptitle(f"simpersona bench env: playwright / raw = {result['playwright_over_raw']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
