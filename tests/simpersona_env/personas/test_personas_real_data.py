"""On a small subset of the real REES46 log (ingested for real): the VQ-VAE trains, every loss
term stays finite and falls, and types come out for every buyer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from storefront_mock.canonical import default_data_dir

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def real_buyers(tmp_path_factory):
    from simpersona_env.ingest import builtin_mapping, ingest
    from simpersona_env.personas.data import load_buyers

    path = default_data_dir() / "rees46" / "2019-Oct-sample.csv"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set SIMPERSONA_DATA_DIR)")
    out = tmp_path_factory.mktemp("rees46")
    ingest(builtin_mapping("rees46", path), out, bootstrap=10)
    return load_buyers(out).head(1200)


def test_training_on_real_buyers(real_buyers):
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import LOSS_TERMS, TrainConfig, train_personas

    typer = train_personas(real_buyers, PersonaVQVAEConfig(k=8, hidden_dim=32, max_len=32),
                           TrainConfig(epochs_pretrain=3, epochs=3, progress=False))
    for h in typer.history:
        assert all(math.isfinite(h[t]) for t in LOSS_TERMS), h
    assert typer.history[-1]["loss"] < typer.history[0]["loss"]
    types = typer.assign(real_buyers)
    assert types.min() >= 0 and types.max() < 8 and len(np.unique(types)) >= 4
