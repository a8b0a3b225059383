"""Every setting of every command can be set from the command line.

Hydra reads ``key=value`` as a config-group choice when ``configs/<key>/`` exists, so a plain
setting named like a group (the demo's ``data`` was one) cannot be set at all. This walks
every root config and sets each such top-level value to itself or to one of the group's
options (a setting filled by the group, such as ``personas train data=rees46``, is fine).
"""

from __future__ import annotations

import importlib

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from simpersona_env.cli import COMMANDS
from simpersona_env.config import CONFIG_DIR, compose

ROOTS = sorted({root for _, root in COMMANDS.values()})
GROUPS = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}


def _settable(root: str, key: str, value: object) -> bool:
    """Whether ``key=`` composes with the current value or with one of the group's options."""
    options = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
    for choice in [str(value).lower() if isinstance(value, bool) else value, *options[:1]]:
        try:
            compose(root, [f"{key}={choice}"])
            return True
        except Exception:  # noqa: BLE001  (hydra raises several kinds)
            continue
    return False


@pytest.mark.parametrize("root", ROOTS)
def test_settings_named_like_config_groups_can_be_set(root):
    for target, r in COMMANDS.values():  # importing a command registers its schema
        if r == root:
            importlib.import_module(target.split(":")[0])
    cfg = compose(root)
    plain = {k: cfg[k] for k in cfg if k in GROUPS and not OmegaConf.is_missing(cfg, k)
             and not isinstance(cfg[k], (DictConfig, ListConfig))}
    clash = [k for k, v in plain.items() if not _settable(root, k, v)]
    assert not clash, (f"{root}: the settings {clash} share a name with a config group in "
                       f"configs/ and cannot be set from the command line; rename them")
