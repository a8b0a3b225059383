"""Planted types: on a clickstream generated from the documented archetypes (canonical events
-> build_buyers), the learned types recover the archetypes (adjusted Rand index >= 0.8)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_planted_archetypes_are_recovered():
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.quality import planted_recovery
    from simpersona_env.personas.train import TrainConfig

    # 1500 buyers (750 for training) with batch 128 take the same number of optimisation
    # steps as the development setting (3000 buyers, batch 256).
    res = planted_recovery(1500, PersonaVQVAEConfig(), TrainConfig(batch_size=128, progress=False),
                           seed=0)
    assert res["k"] == 5
    assert res["ari"] >= 0.8, res["crosstab"]
    assert res["ari"] > res["kmeans_ari"]  # and better than k-means on the same features
