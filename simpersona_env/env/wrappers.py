"""Wrappers named after what they add, in the manner of Gymnasium's ``RecordEpisodeStatistics``.

Example:
    >>> import gymnasium as gym, simpersona_env
    >>> env = RecordGoalSuccess(RecordFunnel(gym.make("simpersona/Storefront-v0", task="goal")))
    >>> _ = env.reset(seed=0)
    >>> _, _, terminated, _, info = env.step("stop")
    >>> info["funnel"]["stage"], info["funnel"]["steps"], info["goal"]["success"]
    ('visit', 1, False)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from simpersona_env.errors import ConfigError

__all__ = ["RecordFunnel", "RecordGoalSuccess", "SamplePersona"]


class RecordFunnel(gym.Wrapper):
    """At the end of each episode, ``info["funnel"]`` holds how far the buyer got.

    ``{"stage", "cart_adds", "cart_value", "purchase", "purchased", "steps"}``: the furthest
    funnel stage, the number of add-to-cart events, the highest cart value seen, whether a
    purchase completed, the product ids bought and the number of steps. The last
    ``buffer_length`` episodes are kept in :attr:`episodes`.
    """

    def __init__(self, env: gym.Env, buffer_length: int = 100):
        super().__init__(env)
        self.episodes: deque[dict[str, Any]] = deque(maxlen=buffer_length)
        self._clear({})

    def _clear(self, info: dict[str, Any]) -> None:
        self._steps = 0
        self._adds = info.get("events", []).count("add_to_cart")
        self._cart_value = float(info.get("cart_value", 0.0))

    def reset(self, **kwargs: Any):
        obs, info = super().reset(**kwargs)
        self._clear(info)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        self._steps += 1
        self._adds += list(info.get("events", [])).count("add_to_cart")
        self._cart_value = max(self._cart_value, float(info.get("cart_value", 0.0)))
        if terminated or truncated:
            funnel = {"stage": info.get("stage", "visit"), "cart_adds": self._adds,
                      "cart_value": self._cart_value,
                      "purchase": info.get("stage") == "purchase",
                      "purchased": list(info.get("purchased", [])), "steps": self._steps}
            self.episodes.append(funnel)
            info = {**info, "funnel": funnel}
        return obs, reward, terminated, truncated, info


class RecordGoalSuccess(gym.Wrapper):
    """At the end of each episode, ``info["goal"] = {"reward", "success"}``.

    ``reward`` is the task reward of the purchase (0 without one); ``success`` means it is 1.
    The last ``buffer_length`` episodes are kept in :attr:`episodes`.
    """

    def __init__(self, env: gym.Env, buffer_length: int = 100):
        super().__init__(env)
        self.episodes: deque[dict[str, Any]] = deque(maxlen=buffer_length)
        self._reward = 0.0

    def reset(self, **kwargs: Any):
        self._reward = 0.0
        return super().reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        if info.get("converted"):
            self._reward = float(reward)
        if terminated or truncated:
            goal = {"reward": self._reward, "success": self._reward >= 1.0 - 1e-9}
            self.episodes.append(goal)
            info = {**info, "goal": goal}
        return obs, reward, terminated, truncated, info


class SamplePersona(gym.Wrapper):
    """Each reset draws the buyer type ``k ~ probs`` (a merchant's population) unless
    ``options["persona"]`` names one; the same seed gives the same draw.

    Example:
        >>> import gymnasium as gym, simpersona_env
        >>> env = SamplePersona(gym.make("simpersona/Storefront-v0", num_personas=4),
        ...                     [0.0, 0.0, 1.0, 0.0])
        >>> int(env.reset(seed=0)[0]["persona"])
        2
    """

    def __init__(self, env: gym.Env, probs: Sequence[float]):
        super().__init__(env)
        p = np.asarray(probs, dtype=float)
        k = int(env.observation_space["persona"].n) - 1
        if p.ndim != 1 or len(p) != k or (p < 0).any() or not np.isclose(p.sum(), 1.0):
            raise ConfigError(f"probs must be {k} non-negative numbers summing to 1 (one per "
                              f"buyer type of the env), got {len(p)} summing to {p.sum():.3f}")
        self.probs = p
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        # its own generator, seeded with the episode seed: the env's draws (visitor, goal) stay
        # what they are without this wrapper
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        if options.get("persona") is None:
            options["persona"] = int(self._rng.choice(len(self.probs), p=self.probs))
        return super().reset(seed=seed, options=options)
