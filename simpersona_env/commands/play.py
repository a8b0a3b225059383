"""``simpersona play``: type actions, see the page as the agent sees it.

Example:
    $ simpersona play store=builtin backend=playwright
    $ printf 'click[nav-cart]\\nstop\\n' | simpersona play backend=http
    $ simpersona play url=https://shop.example.com backend=playwright
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from simpersona_env.commands.env_settings import EnvCommandConfig
from simpersona_env.config import field, register

__all__ = ["PlayConfig", "run"]


@dataclass
class PlayConfig(EnvCommandConfig):
    """Settings of ``simpersona play``."""

    url: str = field("", help="any shop's URL instead of the bundled store (playwright only)")
    seed: int = field(0, help="episode seed (visitor, drawn goal)")
    persona: int = field(-1, help="the buyer type shown in the observation (-1: none)")
    show_actions: bool = field(False, help="list the valid actions under each page")


register("play_schema", PlayConfig)

_HELP = "type an action per line; 'help' lists them, 'reset' starts over, 'quit' or EOF ends"


def _show(obs: dict[str, Any], reward: float | None = None, info: dict | None = None,
          show_actions: bool = False) -> None:
    from simpersona_env.env.actions import valid_actions

    print("=" * 80)
    print(obs["text"])
    print("-" * 80)
    print(f"url: {obs['url']}")
    if obs["goal"]:
        print(f"goal: {obs['goal']}")
    if obs["last_action_error"]:
        print(f"error: {obs['last_action_error']}")
    if info is not None:
        print(f"reward: {reward}  stage: {info.get('stage')}  cart: {info.get('cart_value')}")
    if show_actions:
        print("actions: " + "  ".join(valid_actions(obs)))
    sys.stdout.flush()


def run(cfg: Any) -> int:
    """Play the storefront env by hand: read actions from stdin, print observations."""
    from simpersona_env.env.actions import describe_actions
    from simpersona_env.env.settings import make_env

    env = make_env(cfg)
    print(f"env: {env.unwrapped.start_url} ({cfg.backend.name} backend, "
          f"task {cfg.task.name}); {_HELP}")
    try:
        obs, info = env.reset(seed=cfg.seed, options={"persona": cfg.persona})
        _show(obs, show_actions=cfg.show_actions)
        for line in sys.stdin:
            action = line.strip()
            if not action:
                continue
            if action in {"quit", "exit"}:
                break
            if action == "help":
                print(describe_actions())
                continue
            if action == "reset":
                obs, info = env.reset(options={"persona": cfg.persona})
                _show(obs, show_actions=cfg.show_actions)
                continue
            obs, reward, terminated, truncated, info = env.step(action)
            _show(obs, reward, info, cfg.show_actions)
            if terminated or truncated:
                print(f"episode over ({'terminated' if terminated else 'truncated'}); "
                      "'reset' starts a new one")
    finally:
        env.close()
    return 0
