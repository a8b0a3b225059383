"""SimPersona: learn discrete buyer types from raw clickstreams and simulate buyer populations
with persona-conditioned agents in a Gymnasium environment over real storefronts.

Importing this package registers the environment ids (data only: nothing is launched) and
imports neither torch, transformers nor playwright.

Example:
    >>> import gymnasium as gym
    >>> import simpersona_env  # registers simpersona/Storefront-v0
    >>> env = gym.make("simpersona/Storefront-v0", store="builtin", backend="http")  # doctest: +SKIP
"""

from __future__ import annotations

from gymnasium.envs.registration import register as _register

__version__ = "0.1.0"

_register(
    id="simpersona/Storefront-v0",
    entry_point="simpersona_env.env.storefront_env:StorefrontEnv",
    max_episode_steps=50,
)
