"""Hydra structured configs: every setting declared once, typed, with a help string.

Each component declares a dataclass whose fields carry ``metadata={"help": ...}`` (use
:func:`field`), registers it with :func:`register`, and its command has a root YAML in
``configs/`` that lists the schema first in its defaults and then holds only choices and
deltas. Values known only at run time are ``???`` and filled in one place.

Commands compose their config with :func:`compose` (hydra's compose API, so that one
console script hosts many subcommands); config errors come back as
:class:`~simpersona_env.errors.ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from simpersona_env.errors import ConfigError, did_you_mean

__all__ = ["CONFIG_DIR", "compose", "describe", "field", "register", "to_object", "help_of"]

T = TypeVar("T")

#: Where the YAML configs live: ``$SIMPERSONA_CONFIG_DIR`` or ``configs/`` at the repo root.
CONFIG_DIR = Path(
    os.environ.get("SIMPERSONA_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs")
)


def field(default: Any = dataclasses.MISSING, *, help: str, **kwargs: Any) -> Any:  # noqa: A002
    """A dataclass field with a help string (shown by ``simpersona CMD --help``).

    Mutable defaults go through ``default_factory`` automatically.
    """
    if isinstance(default, (list, dict, set)):
        value = default
        kwargs["default_factory"] = lambda: type(value)(value)
        default = dataclasses.MISSING
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def register(name: str, node: Any, group: str | None = None) -> None:
    """Register a structured config (a dataclass) under ``name`` (and ``group``) with hydra."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=node, group=group)


def compose(root: str, overrides: Sequence[str] = (), config_dir: Path | None = None) -> DictConfig:
    """Compose the root config ``configs/<root>.yaml`` with ``key=value`` overrides.

    Raises:
        ConfigError: on an unknown key, a bad value, or an unknown group choice, naming it.

    Example:
        >>> cfg = compose("shop", ["store=builtin"])  # doctest: +SKIP
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    config_dir = Path(config_dir or CONFIG_DIR).resolve()
    if not (config_dir / f"{root}.yaml").exists():
        raise ConfigError(f"no root config {root!r} in {config_dir}; set SIMPERSONA_CONFIG_DIR "
                          "to the repository's configs/ folder")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = hydra_compose(config_name=root, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc)
        bad = re.search(r"Could not override '([^']+)'", message)
        if bad and "defaults list" in message:
            message = (f"{bad.group(1)!r} is a config group elsewhere in configs/, not a "
                       f"setting of '{root}'; check the key's spelling")
        elif bad and overrides:  # hydra's "use +key" advice is wrong for structured configs
            known = _dotted_keys(compose(root, (), config_dir))
            message = f"no setting {bad.group(1)!r}{did_you_mean(bad.group(1), known)}"
        raise ConfigError(f"bad config for '{root}': {message}\n"
                          f"(run `simpersona {root.replace('_', ' ')} --help` to list the keys; "
                          "a config group takes one of the choices listed above)") from exc
    finally:
        GlobalHydra.instance().clear()
    return cfg


def to_object(cfg: DictConfig | dict, cls: type[T]) -> T:
    """Turn a (sub)config into its dataclass, checking that every ``???`` has been filled."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    missing = sorted(OmegaConf.missing_keys(node))
    if missing:
        raise ConfigError(f"{cls.__name__}: required value(s) not set: {', '.join(missing)}; "
                          "pass them as key=value")
    data = OmegaConf.to_container(node, resolve=True)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    return cls(**data)


def help_of(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, help) for each field of a config dataclass."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "???"
        rows.append((f.name, default, f.metadata.get("help", "")))
    return rows


def describe(cfg: DictConfig, prefix: str = "") -> list[str]:
    """``key = value  # help`` lines for a composed config, dotted keys, help from the dataclasses.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     port: int = field(8000, help="TCP port")
        >>> describe(OmegaConf.structured(C))
        ['port = 8000  # TCP port']
    """
    helps: dict[str, str] = {}
    kind = OmegaConf.get_type(cfg)
    if kind is not None and dataclasses.is_dataclass(kind):
        helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(kind)}
    lines = []
    for key in cfg:
        node = cfg._get_node(key)
        name = f"{prefix}{key}"
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            sub = describe(node, name + ".")
            if helps.get(key):
                lines.append(f"{name}:  # {helps[key]}")
            lines.extend(sub)
            continue
        if OmegaConf.is_missing(cfg, key):
            value = "???"
        else:
            raw = OmegaConf.to_container(cfg, resolve=False)[key]  # interpolations stay as typed
            value = raw if isinstance(raw, str) else json.dumps(raw)
        help_text = helps.get(key, "")
        lines.append(f"{name} = {value}" + (f"  # {help_text}" if help_text else ""))
    return lines


def _dotted_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in cfg:
        node = cfg._get_node(key)
        keys.append(f"{prefix}{key}")
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            keys += _dotted_keys(node, f"{prefix}{key}.")
    return keys
