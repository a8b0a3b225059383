"""Subnormal floats treated as zero (simpersona_env.cpu), in fresh processes: the setting is
per CPU thread and reaches torch's worker threads only when they start after it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True, timeout=120)
    return out.stdout.strip()


def _x86_with_flags() -> bool:
    return _run("import torch; print(torch.set_flush_denormal(True))") == "True"


pytestmark = pytest.mark.skipif(not _x86_with_flags(), reason="CPU without FTZ/DAZ flags")


def test_flush_before_threads_start_reaches_every_thread():
    out = _run("import torch; torch.set_num_threads(2)\n"
               "from simpersona_env.cpu import flush_denormals, subnormals_flushed\n"
               "print(subnormals_flushed())\n"  # nothing set yet: subnormals kept
               "print(flush_denormals())\n"
               "x = torch.randn(512, 512); y = x @ x\n"  # later work, the same threads
               "tiny = torch.ones(8, dtype=torch.int32).view(torch.float32)\n"
               "print(subnormals_flushed(), float((tiny * 1.0).sum()))")
    first, state, _ = out.splitlines()
    # the probe itself started the worker thread before the flush: so "this thread" is right
    assert first == "False" and state == "this thread"
    out = _run("import torch; torch.set_num_threads(2)\n"
               "from simpersona_env.cpu import flush_denormals, subnormals_flushed\n"
               "print(flush_denormals())\n"
               "x = torch.randn(512, 512); y = x @ x\n"
               "tiny = torch.ones(8, dtype=torch.int32).view(torch.float32)\n"
               "print(subnormals_flushed(), float((tiny * 1.0).sum()))")
    assert out.splitlines() == ["all threads", "True 0.0"]


def test_flush_after_threads_started_says_so():
    out = _run("import torch; torch.set_num_threads(2)\n"
               "x = torch.randn(512, 512); y = x @ x\n"  # the worker thread starts here
               "from simpersona_env.cpu import flush_denormals\n"
               "print(flush_denormals())")
    assert out == "this thread"
