"""The three commands end to end through the console-script entry point, on generated data
(a tiny model), and the configs compose."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl

from simpersona_env.cli import main


def test_configs_compose():
    from simpersona_env.commands import personas  # noqa: F401  (registers the schemas)
    from simpersona_env.config import compose, to_object
    from simpersona_env.personas.model import PersonaVQVAEConfig

    cfg = compose("personas_train", ["personas=tiny", "model.k=3"])
    assert to_object(cfg.model, PersonaVQVAEConfig).k == 3
    assert compose("personas_train").model.k == 16
    from simpersona_env.commands.personas import resolve_buyers

    assert resolve_buyers(compose("personas_assign", ["buyers=/x"])) == "/x"
    # data=<name> reads what `simpersona ingest data=<name>` wrote
    assert resolve_buyers(compose("personas_train", ["data=taobao"])) == "runs/ingest/taobao"
    assert resolve_buyers(compose("personas_report")) == "synthetic"
    assert compose("personas_report").checkpoint.endswith("model")


def test_train_assign_report_on_generated_data(tmp_path):
    out = tmp_path / "run"
    common = ["synthetic.buyers=400"]
    assert main(["personas", "train", "personas=tiny", f"out_dir={out}", "train.progress=false",
                 *common]) == 0
    assert (out / "model" / "personas.safetensors").exists() and (out / "curves.png").exists()
    assert main(["personas", "assign", f"checkpoint={out / 'model'}", f"out_dir={out}",
                 *common]) == 0
    types = pl.read_parquet(out / "types.parquet")
    assert types.height == 400 and types["type"].max() < 4
    pops = json.loads((out / "populations.json").read_text())
    assert pops["k"] == 4 and pops["populations"]["__all__"]["n"] == 400
    assert main(["personas", "report", f"checkpoint={out / 'model'}", f"out_dir={out / 'rep'}",
                 *common]) == 0
    assert "| T" in (out / "rep" / "report.md").read_text()
    # the wrong K is refused with exit code 2 and a message naming the fix
    assert main(["personas", "assign", f"checkpoint={out / 'model'}", "k=16",
                 f"out_dir={out}", *common]) == 2


def test_import_does_not_load_torch():
    code = ("import sys, simpersona_env, simpersona_env.synthetic, "
            "simpersona_env.personas.population, simpersona_env.personas.report, "
            "simpersona_env.personas.baselines, simpersona_env.personas.data; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
