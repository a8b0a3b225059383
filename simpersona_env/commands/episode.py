"""``simpersona episode``: a scripted buyer shops in the browser and the funnel it reached is shown.

Runs the goal task's oracle (search, product, options, cart, checkout, order) on the bundled
shop in a real headless Chromium: a quick check that the browser, the shop and the env work.

Example:
    $ simpersona episode
    $ simpersona episode backend=http episodes=5
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from simpersona_env.commands.env_settings import EnvCommandConfig
from simpersona_env.config import field, register

__all__ = ["EpisodeConfig", "run"]


@dataclass
class EpisodeConfig(EnvCommandConfig):
    """Settings of ``simpersona episode``."""

    episodes: int = field(1, help="how many episodes the scripted buyer shops")
    seed: int = field(0, help="seed of the first episode (goal, visitor)")
    verbose: bool = field(True, help="print each action as it is taken")


register("episode_schema", EpisodeConfig)


def run(cfg: Any) -> int:
    """Run the scripted buyer in the storefront env and print the funnel it reached."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from simpersona_env.env.settings import make_env
    from simpersona_env.env.wrappers import RecordFunnel, RecordGoalSuccess

    console = Console()
    t0 = time.perf_counter()
    env = RecordGoalSuccess(RecordFunnel(make_env(cfg)))
    console.print(f"env: {env.unwrapped.start_url} ({cfg.backend.name} backend, "
                  f"task {cfg.task.name}) ready in {time.perf_counter() - t0:.1f}s")
    oracle = env.unwrapped.task.oracle()
    table = Table(title="funnel reached by the scripted buyer")
    for col in ("episode", "stage", "cart adds", "cart value", "purchase", "reward",
                "steps", "seconds"):
        table.add_column(col)
    try:
        for ep in range(cfg.episodes):
            t1 = time.perf_counter()
            obs, info = env.reset(seed=cfg.seed + ep)
            oracle.reset(-1, info["goal_spec"])
            if obs["goal"]:
                console.print(f"[bold]goal {ep}:[/bold] {escape(obs['goal'])}")
            while True:
                action = oracle.act(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                if cfg.verbose:
                    err = f"  [red]{escape(obs['last_action_error'])}[/red]" \
                        if obs["last_action_error"] else ""
                    console.print(f"  {escape(action):<44} -> {info['page'] or escape(obs['url'])}"
                                  f" ({info['stage']}){err}")
                if terminated or truncated:
                    break
            f, g = info["funnel"], info["goal"]
            table.add_row(str(ep), f["stage"], str(f["cart_adds"]),
                          f"{f['cart_value']:.2f}", "yes" if f["purchase"] else "no",
                          f"{g['reward']:.2f}", str(f["steps"]), f"{time.perf_counter() - t1:.1f}")
    finally:
        env.close()
    console.print(table)
    return 0
