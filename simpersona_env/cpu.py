"""CPU floating-point settings for torch work: subnormal floats treated as zero.

Why: as a transformer's training sharpens its attention, backward passes carry gradients
below float32's normal range (~1.2e-38), and x86 matrix kernels take a slow microcode path on
each such operand. On this project's ~8x goal-benchmark model the SFT step time grew from
0.64 to over 1.6 s in 950 steps with the same work per step; flushed, it stayed at ~0.57
(docs/agents.md, ``bench/bench_denormals.py``). Values below 1.2e-38 are far under anything
a loss or an action score can see.

The setting is per CPU thread: it reaches torch's worker threads only when they are created
after it (a new thread inherits its creator's floating-point state). So call
:func:`flush_denormals` before the first multi-threaded torch operation of a process;
called later, it says so (``"this thread"``) and the work runs partly unflushed.
"""

from __future__ import annotations

__all__ = ["flush_denormals", "subnormals_flushed"]


def subnormals_flushed() -> bool:
    """Whether every torch CPU thread now treats subnormal floats as zero.

    A probe: a vector of the smallest subnormal, large enough to be split over all of
    torch's intra-op threads, times one; a thread that keeps subnormals leaves its part
    nonzero.
    """
    import torch

    n = (1 << 16) * max(1, torch.get_num_threads())  # over the 32k-element grain size
    tiny = torch.ones(n, dtype=torch.int32).view(torch.float32)  # 1.4e-45, by its bits
    return bool(torch.count_nonzero(tiny * 1.0) == 0)


def flush_denormals() -> str:
    """Treat subnormal floats as zero in torch's CPU work (process-wide; see the module).

    Returns:
        ``"all threads"`` (it holds for every intra-op thread), ``"this thread"`` (the
        worker threads existed before and keep subnormals: call it earlier in the
        process), or ``"unsupported"`` (a CPU without the flags, e.g. not x86 with SSE3
        or an ARM build without them).
    """
    import torch

    if not torch.set_flush_denormal(True):
        return "unsupported"
    return "all threads" if subnormals_flushed() else "this thread"
