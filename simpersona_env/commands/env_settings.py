"""Settings shared by the commands that make one storefront env (``play``, ``episode``):
what :func:`simpersona_env.env.settings.make_env` reads."""

from __future__ import annotations

from dataclasses import dataclass

from simpersona_env.commands.shop import StoreConfig
from simpersona_env.config import field
from simpersona_env.env.settings import BackendConfig, TaskConfig

__all__ = ["EnvCommandConfig"]


@dataclass
class EnvCommandConfig:
    """The store, backend and task of the env a command makes."""

    store: StoreConfig = field(help="the bundled store (config group)", default_factory=StoreConfig)
    backend: BackendConfig = field(help="http or playwright (config group)",
                                   default_factory=BackendConfig)
    task: TaskConfig = field(help="browse or goal (config group)", default_factory=TaskConfig)
    store_id: str = field("", help="the store where episodes start when the shop has several "
                          "(default: the first)")
