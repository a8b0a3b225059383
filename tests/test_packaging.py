"""The package layout promises of ARCHITECTURE.md and STYLE.md."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_agents_resolves_to_this_repository():
    import agents

    assert Path(agents.__file__).resolve().is_relative_to(REPO), agents.__file__


def test_library_import_is_light():
    mods = _imported_after("import simpersona_env")
    heavy = {"torch", "transformers", "playwright", "trl", "ray"} & mods
    assert not heavy, f"import simpersona_env pulled in {heavy}"


def test_storefront_does_not_import_gym_or_torch():
    mods = _imported_after("import storefront_mock, storefront_mock.canonical")
    assert not {"gymnasium", "torch"} & mods


def test_env_is_registered():
    import gymnasium as gym

    import simpersona_env  # noqa: F401

    assert "simpersona/Storefront-v0" in gym.registry


def test_cli_lists_commands():
    out = subprocess.run([str(REPO / ".venv/bin/simpersona"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for word in ("shop", "play", "ingest", "personas train"):
        assert word in out.stdout


def test_cli_unknown_command_suggests():
    out = subprocess.run([str(REPO / ".venv/bin/simpersona"), "shp"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "did you mean 'shop'" in out.stderr


def test_cli_help_shows_each_setting_with_its_help():
    out = subprocess.run([str(REPO / ".venv/bin/simpersona"), "shop", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "port = 8000  # TCP port" in out.stdout


def test_cli_bad_key_names_it():
    out = subprocess.run([str(REPO / ".venv/bin/simpersona"), "shop", "prot=9"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'port'" in out.stderr
