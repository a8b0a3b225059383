"""The env's commands run end to end: play (actions piped on stdin), episode, bench env."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import simpersona_env.commands.bench_env
import simpersona_env.commands.episode
import simpersona_env.commands.play  # noqa: F401
from simpersona_env.config import compose
from simpersona_env.env.settings import env_kwargs


def simpersona(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simpersona_env.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_configs_compose_into_env_kwargs():
    cfg = compose("play", ["backend=http", "task=goal", "store.seed=3"])
    assert env_kwargs(cfg) == {
        "store": "builtin", "backend": "http", "task": "goal", "browser_path": "",
        "action_timeout_s": 5.0, "navigation_timeout_s": 30.0, "data_dir": "",
        "catalog_seed": 3, "n_products": 120, "theme": ""}
    assert compose("episode").backend.name == "playwright"
    assert compose("bench_env", ["steps=5"]).steps == 5


def test_play_reads_actions_from_stdin():
    out = simpersona("play", "backend=http", "show_actions=true",
                     stdin="click[nav-cart]\ntype[nav-cart][x]\nhelp\nstop\n")
    assert out.returncode == 0, out.stderr
    assert "path: /s/builtin/cart" in out.stdout
    assert "error: cannot type into [nav-cart]: it is a link" in out.stdout
    assert "select[id][option]: choose an option" in out.stdout  # help
    assert "actions: click[nav-home]" in out.stdout
    assert "episode over (terminated)" in out.stdout


def test_play_unknown_backend_is_a_clear_error():
    out = simpersona("play", "backend=playwrite")
    assert out.returncode != 0
    assert "playwright" in out.stderr


@pytest.mark.browser
def test_play_in_the_browser():
    out = simpersona("play", "store=builtin", "backend=playwright",
                     stdin="search[mug]\nback\nquit\n")
    assert out.returncode == 0, out.stderr
    assert "path: /s/builtin/search?q=mug" in out.stdout
    assert out.stdout.count("path: /s/builtin/\n") == 2  # home, then home again after back


@pytest.mark.browser
def test_scripted_episode_reaches_a_purchase():
    out = simpersona("episode", timeout=300)
    assert out.returncode == 0, out.stderr
    assert "purchase" in out.stdout and "1.00" in out.stdout


@pytest.mark.browser
@pytest.mark.slow
def test_bench_env_writes_json_and_png(tmp_path):
    out = simpersona("bench", "env", "steps=10", "warmup=2", "memory_envs=1",
                     f"out={tmp_path}", timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "bench_env.json").read_text())
    for name in ("http", "playwright", "raw_playwright"):
        assert result[name]["steps"] == 10 and result[name]["median_ms"] > 0
    assert result["memory"]["browser_processes"] > 0 and result["playwright_over_raw"] > 0
    assert (tmp_path / "bench_env.png").stat().st_size > 10_000
