"""Plots shared by the benchmarks that compare a baseline arm with ours."""

from __future__ import annotations

from pathlib import Path


def steps_per_second(per_step_s: dict[str, float], title: str, path: Path) -> Path:
    """Horizontal bars of optimizer steps per second, the baseline arm first (grey), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_step_s)
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.barh(names, [1 / per_step_s[n] for n in names], color=["#999999", "#1f77b4"])
    ax.set_xlabel("optimizer steps per second (higher is better)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
