"""The ``backend=`` and ``task=`` config groups and the one place that turns a composed
command config (``store``, ``backend``, ``task``) into an env.

Example:
    >>> from simpersona_env.config import compose
    >>> cfg = compose("play", ["backend=http"])  # doctest: +SKIP
    >>> env = make_env(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simpersona_env.config import field, register

__all__ = ["BackendConfig", "ENV_ID", "TaskConfig", "env_kwargs", "make_env"]

#: The registered id commands make.
ENV_ID = "simpersona/Storefront-v0"


@dataclass
class BackendConfig:
    """The ``backend=`` group: how pages are driven."""

    name: str = field("http", help="http (bundled shop in process, no browser) or playwright "
                      "(real Chromium)")
    browser_path: str = field("", help="playwright: Chromium executable (default: "
                              "$SIMPERSONA_BROWSER, Playwright's Chromium, /usr/bin/chromium)")
    action_timeout_s: float = field(5.0, help="playwright: how long a click or fill waits")
    navigation_timeout_s: float = field(30.0, help="playwright: how long a page load may take")


@dataclass
class TaskConfig:
    """The ``task=`` group: what the buyer is asked to do."""

    name: str = field("browse", help="browse (reward 1 on a purchase) or goal (an instruction "
                      "drawn from the catalog, WebShop reward)")


register("backend_schema", BackendConfig, group="backend")
register("task_schema", TaskConfig, group="task")


def env_kwargs(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """``gym.make`` keywords from a command config with ``store``, ``backend``, ``task``
    (and optionally ``url``: any site instead of the bundled store, ``store_id``: where
    episodes start when the shop has several stores, ``num_personas``)."""
    c = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    store, backend, task = c.get("store") or {}, c.get("backend") or {}, c.get("task") or {}
    kwargs: dict[str, Any] = {
        "store": c.get("url") or store.get("name", "builtin"),
        "backend": backend.get("name", "http"),
        "task": task.get("name", "browse"),
        "browser_path": backend.get("browser_path") or "",
        "action_timeout_s": float(backend.get("action_timeout_s", 5.0)),
        "navigation_timeout_s": float(backend.get("navigation_timeout_s", 30.0)),
    }
    if not c.get("url"):
        kwargs.update(data_dir=store.get("data_dir") or "", catalog_seed=int(store.get("seed", 0)),
                      n_products=int(store.get("n_products", 120)), theme=store.get("theme") or "")
    if c.get("store_id"):
        kwargs["store_id"] = str(c.store_id)
    if c.get("num_personas"):
        kwargs["num_personas"] = int(c.num_personas)
    return kwargs


def make_env(cfg: DictConfig | dict[str, Any], **extra: Any) -> Any:
    """``gym.make(ENV_ID, **env_kwargs(cfg), **extra)``; the bundled stores are built from the
    whole ``store`` group (every preset, event-log stores, themes) unless ``url`` is set."""
    import gymnasium as gym

    import simpersona_env  # noqa: F401 (registers the id)

    c = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    if not c.get("url") and c.get("store") is not None and "app" not in extra:
        from simpersona_env.commands.shop import build_stores

        extra.setdefault("stores", build_stores(OmegaConf.to_container(c.store, resolve=True)))
    return gym.make(ENV_ID, **{**env_kwargs(cfg), **extra})
