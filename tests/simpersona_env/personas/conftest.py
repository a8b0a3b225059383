"""Shared fixtures of the persona tests: small generated buyer tables and one tiny trained model."""

from __future__ import annotations

import pytest

#: A tiny VQ-VAE: trains in a few seconds on a few hundred buyers.
TINY = dict(k=4, latent_dim=8, embed_dim=8, hidden_dim=16, max_len=16)


@pytest.fixture(scope="session")
def synth_log():
    from simpersona_env.synthetic import generate_events

    return generate_events(600, n_merchants=3, seed=0)


@pytest.fixture(scope="session")
def synth_buyers(synth_log):
    from simpersona_env.buyers import build_buyers

    return build_buyers(synth_log.events)


@pytest.fixture(scope="session")
def tiny_cfg():
    from simpersona_env.personas.model import PersonaVQVAEConfig

    return PersonaVQVAEConfig(**TINY)


@pytest.fixture(scope="session")
def fast_train():
    from simpersona_env.personas.train import TrainConfig

    return TrainConfig(epochs_pretrain=3, epochs=4, batch_size=64, lr=3e-3, progress=False)


@pytest.fixture(scope="session")
def trained(synth_buyers, tiny_cfg, fast_train):
    """A tiny model trained for real on the generated buyers (shared; do not mutate)."""
    from simpersona_env.personas.train import train_personas

    return train_personas(synth_buyers, tiny_cfg, fast_train)
