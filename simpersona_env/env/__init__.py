"""The Gymnasium environment: a buyer shops on a storefront with text actions.

``gym.make("simpersona/Storefront-v0", store=..., backend="http"|"playwright", task=...)``
(registered in :mod:`simpersona_env`). Heavy parts (Playwright, the browser, the shop app)
load only when an env is made.

Example:
    >>> import gymnasium as gym, simpersona_env
    >>> env = gym.make("simpersona/Storefront-v0", store="builtin", backend="http")
    >>> obs, info = env.reset(seed=0)
    >>> obs["text"].splitlines()[1]
    'path: /s/builtin/'
"""

from __future__ import annotations

from simpersona_env.env.actions import (
    ACTIONS,
    Action,
    ActionError,
    describe_actions,
    parse_action,
    valid_actions,
)
from simpersona_env.env.render import Page, parse_page
from simpersona_env.env.spaces import AnyText
from simpersona_env.env.tasks import TASKS, BrowseTask, Goal, GoalTask, Task, goal_reward
from simpersona_env.env.wrappers import RecordFunnel, RecordGoalSuccess, SamplePersona

__all__ = [
    # actions
    "ACTIONS", "Action", "ActionError", "describe_actions", "parse_action", "valid_actions",
    # observations
    "AnyText", "Page", "parse_page",
    # tasks
    "TASKS", "Task", "BrowseTask", "GoalTask", "Goal", "goal_reward", "ShopOracle",
    # wrappers
    "RecordFunnel", "RecordGoalSuccess", "SamplePersona",
    # the env
    "StorefrontEnv", "StorefrontEnvConfig",
]


def __getattr__(name: str):  # the env module imports gymnasium spaces and config: on demand
    if name in {"StorefrontEnv", "StorefrontEnvConfig"}:
        from simpersona_env.env import storefront_env

        return getattr(storefront_env, name)
    if name == "ShopOracle":
        from simpersona_env.env.oracle import ShopOracle

        return ShopOracle
    raise AttributeError(name)
