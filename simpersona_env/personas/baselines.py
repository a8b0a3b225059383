"""The k-means baseline: K clusters on the same standardized aggregate features as the VQ-VAE.

It is what the VQ-VAE must beat on the funnel measures (see :mod:`.quality`), and the
reference that the assignment benchmark times beside the encoder.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 16)).astype("float32")
    >>> KMeansBaseline(k=4, seed=0).fit(x).predict(x).shape
    (100,)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from simpersona_env.personas.data import check_enough_buyers

__all__ = ["KMeansBaseline"]


@dataclasses.dataclass
class KMeansBaseline:
    """scikit-learn k-means (k-means++ init, ``n_init`` restarts) with a fixed seed."""

    k: int = 16
    seed: int = 0
    n_init: int = 10
    model: Any = None

    def fit(self, features: np.ndarray) -> KMeansBaseline:
        """Fit on standardized features (N, F).

        Raises:
            ConfigError: fewer than 8 buyers per cluster.
        """
        from sklearn.cluster import KMeans

        check_enough_buyers(len(features), self.k, where="k-means baseline")
        self.model = KMeans(n_clusters=self.k, n_init=self.n_init, random_state=self.seed)
        self.model.fit(features)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Nearest centre of each row, ``int64`` (N,)."""
        return self.model.predict(features).astype(np.int64)
