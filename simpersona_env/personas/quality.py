"""How good are the buyer types? Metrics, and the full comparison against k-means.

- cluster quality on the standardized aggregates: Calinski-Harabasz (higher is better),
  Davies-Bouldin (lower is better);
- funnel measures: the spread of conversion rate across types and the mutual information
  between type and conversion (also cart and bounce);
- codebook perplexity ``exp(H(type))`` (no collapse: >= K/2);
- stability: adjusted Rand index between two seeds' assignments (codes matched with the
  Hungarian algorithm for the agreement figure; ARI itself ignores code order);
- generalisation: the type-conversion MI on held-out buyers vs training buyers;
- planted types: ARI against the archetypes of :mod:`simpersona_env.synthetic`.

Example:
    >>> import numpy as np
    >>> round(perplexity(np.array([0, 1, 2, 3]), k=4), 3)
    4.0
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl

    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import TrainConfig

__all__ = ["perplexity", "rate_by_type", "conversion_spread", "mutual_information",
           "matched_ari", "cluster_scores", "funnel_scores", "planted_recovery",
           "evaluate_personas"]


def perplexity(types: np.ndarray, k: int) -> float:
    """``exp`` of the entropy of type usage: K when uniform, 1 when collapsed."""
    p = np.bincount(np.asarray(types, np.int64), minlength=k) / max(len(types), 1)
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def rate_by_type(types: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``y`` per type (NaN for an unused type)."""
    n = np.bincount(types, minlength=k).astype(float)
    s = np.bincount(types, weights=np.asarray(y, float), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def conversion_spread(types: np.ndarray, converted: np.ndarray, k: int) -> dict[str, float]:
    """Range and size-weighted standard deviation of the conversion rate across types."""
    rate = rate_by_type(types, converted, k)
    n = np.bincount(types, minlength=k).astype(float)
    used = n > 0
    mean = float(np.asarray(converted, float).mean())
    wstd = math.sqrt(float((n[used] * (rate[used] - mean) ** 2).sum() / n.sum()))
    return {"range": float(np.nanmax(rate) - np.nanmin(rate)), "weighted_std": wstd,
            "max": float(np.nanmax(rate)), "min": float(np.nanmin(rate))}


def mutual_information(types: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MI between type and a label in nats, and normalised by the label's entropy."""
    from sklearn.metrics import mutual_info_score

    y = np.asarray(y).astype(np.int64)
    mi = float(mutual_info_score(y, types))
    p = np.bincount(y) / len(y)
    p = p[p > 0]
    h = float(-(p * np.log(p)).sum())
    return {"mi_nats": mi, "mi_over_entropy": mi / h if h > 0 else 0.0}


def matched_ari(a: np.ndarray, b: np.ndarray, k: int) -> dict[str, Any]:
    """ARI between two assignments and the agreement after Hungarian matching of codes."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (a, b), 1)
    rows, cols = linear_sum_assignment(-conf)
    mapping = dict(zip(rows.tolist(), cols.tolist()))
    agreement = float(conf[rows, cols].sum() / max(len(a), 1))
    return {"ari": float(adjusted_rand_score(a, b)), "matched_agreement": agreement,
            "mapping": mapping}


def cluster_scores(features: np.ndarray, types: np.ndarray) -> dict[str, float | None]:
    """Calinski-Harabasz and Davies-Bouldin of ``types`` on ``features`` (None: < 2 clusters)."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    if len(np.unique(types)) < 2:
        return {"calinski_harabasz": None, "davies_bouldin": None}
    return {"calinski_harabasz": float(calinski_harabasz_score(features, types)),
            "davies_bouldin": float(davies_bouldin_score(features, types))}


def funnel_scores(buyers: pl.DataFrame, types: np.ndarray, k: int) -> dict[str, Any]:
    """Conversion spread and type-outcome MI (conversion, cart, bounce) of an assignment."""
    out: dict[str, Any] = {"conversion_spread": conversion_spread(
        types, buyers["has_purchase"].to_numpy(), k)}
    for col, name in (("has_purchase", "conversion"), ("has_cart", "cart"),
                      ("bounced", "bounce")):
        out[f"mi_{name}"] = mutual_information(types, buyers[col].to_numpy())
    out["perplexity"] = perplexity(types, k)
    out["types_used"] = int(len(np.unique(types)))
    return out


def planted_recovery(n_buyers: int, model_cfg: PersonaVQVAEConfig, train_cfg: TrainConfig,
                     seed: int = 0) -> dict[str, Any]:
    """Train on a balanced archetype clickstream (canonical events -> build_buyers) with
    K = number of archetypes; ARI of the types (and of k-means) against the archetypes."""
    import dataclasses

    import polars as pl
    from sklearn.metrics import adjusted_rand_score

    from simpersona_env.buyers import build_buyers
    from simpersona_env.personas.baselines import KMeansBaseline
    from simpersona_env.personas.train import train_personas
    from simpersona_env.synthetic import ARCHETYPES, BALANCED_MIX, generate_events

    log = generate_events(n_buyers, seed=seed, mix=BALANCED_MIX)
    buyers = build_buyers(log.events).join(log.labels, on=["merchant_id", "buyer_id"])
    truth = buyers["archetype"].to_numpy()
    cfg = dataclasses.replace(model_cfg, k=len(ARCHETYPES))
    typer = train_personas(buyers, cfg, dataclasses.replace(train_cfg, seed=seed))
    types = typer.assign(buyers)
    x = typer.scaler.transform(buyers)
    km = KMeansBaseline(k=cfg.k, seed=seed).fit(x[buyers["split"].to_numpy() == "train"])
    return {"buyers": n_buyers, "k": cfg.k, "ari": float(adjusted_rand_score(truth, types)),
            "kmeans_ari": float(adjusted_rand_score(truth, km.predict(x))),
            "crosstab": (pl.DataFrame({"archetype": truth, "type": types})
                         .group_by("archetype", "type").len().sort("archetype", "type")
                         .to_dicts())}


def evaluate_personas(buyers: pl.DataFrame, model_cfg: PersonaVQVAEConfig,
                      train_cfg: TrainConfig, seeds: tuple[int, int] = (0, 1),
                      planted_buyers: int = 3000) -> dict[str, Any]:
    """The whole quality check of the issue on one buyer table, as a JSON-ready dict.

    Trains the VQ-VAE with two seeds on the ``train`` split, fits k-means with the same K on
    the same standardized aggregates of the same buyers (one k-means per seed), and scores
    every buyer (train and held-out) with both; ``per_seed`` holds each seed's scores, the
    top-level ``vqvae`` / ``kmeans`` the first seed's, and the checks require every seed.
    ``planted_buyers=0`` skips the planted-type check.
    """
    import dataclasses

    from simpersona_env.personas.baselines import KMeansBaseline
    from simpersona_env.personas.train import train_personas

    k = model_cfg.k
    t0 = time.perf_counter()
    typers = [train_personas(buyers, model_cfg, dataclasses.replace(train_cfg, seed=s))
              for s in seeds]
    train_s = (time.perf_counter() - t0) / len(seeds)
    types = [t.assign(buyers) for t in typers]
    x = typers[0].scaler.transform(buyers)
    is_train = buyers["split"].to_numpy() == "train"
    km = [KMeansBaseline(k=k, seed=s).fit(x[is_train]) for s in seeds]
    km_types = [m.predict(x) for m in km]
    conv = buyers["has_purchase"].to_numpy()

    def scores(t: np.ndarray) -> dict[str, Any]:
        return {**cluster_scores(x, t), **funnel_scores(buyers, t, k),
                "mi_conversion_train": mutual_information(t[is_train], conv[is_train]),
                "mi_conversion_heldout": mutual_information(t[~is_train], conv[~is_train])}

    per_seed = [{"seed": s, "vqvae": scores(t), "kmeans": scores(kt)}
                for s, t, kt in zip(seeds, types, km_types)]
    vq, base = per_seed[0]["vqvae"], per_seed[0]["kmeans"]
    mi_tr = vq["mi_conversion_train"]["mi_over_entropy"]
    mi_ho = vq["mi_conversion_heldout"]["mi_over_entropy"]
    rate = float(conv.mean())
    out = {
        "buyers": buyers.height, "train_buyers": int(is_train.sum()),
        "merchants": int(buyers["merchant_id"].n_unique()), "k": k,
        "conversion_rate": rate,
        # The ceilings of the two funnel measures, reached by types pure in conversion:
        # MI(type; conversion) <= H(conversion), weighted std <= sqrt(p (1 - p)).
        "conversion_entropy_nats": mutual_information(conv, conv)["mi_nats"],
        "max_conversion_spread": math.sqrt(rate * (1.0 - rate)),
        "train_seconds_per_model": train_s,
        "vqvae": vq, "kmeans": base, "per_seed": per_seed,
        "stability": {"vqvae": {kk: v for kk, v in matched_ari(types[0], types[1], k).items()
                                if kk != "mapping"},
                      "kmeans": {kk: v for kk, v in matched_ari(km_types[0], km_types[1], k)
                                 .items() if kk != "mapping"}},
        "heldout_over_train_mi": mi_ho / mi_tr if mi_tr > 0 else None,
        "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
    }
    # Every seed must pass (each seed's VQ-VAE against the k-means of the same seed).
    out["checks"] = {
        "perplexity_at_least_half_k": all(p["vqvae"]["perplexity"] >= k / 2 for p in per_seed),
        "stability_ari_at_least_0.6": out["stability"]["vqvae"]["ari"] >= 0.6,
        "beats_kmeans_on_conversion_mi": all(
            p["vqvae"]["mi_conversion"]["mi_nats"] > p["kmeans"]["mi_conversion"]["mi_nats"]
            for p in per_seed),
        "beats_kmeans_on_conversion_spread": all(
            p["vqvae"]["conversion_spread"]["weighted_std"]
            > p["kmeans"]["conversion_spread"]["weighted_std"] for p in per_seed),
        "heldout_as_informative_as_train": all(
            p["vqvae"]["mi_conversion_heldout"]["mi_over_entropy"]
            >= 0.8 * p["vqvae"]["mi_conversion_train"]["mi_over_entropy"] for p in per_seed),
    }
    if planted_buyers:
        out["planted_per_seed"] = [{"seed": s, **planted_recovery(planted_buyers, model_cfg,
                                                                 train_cfg, seed=s)}
                                   for s in seeds]
        out["planted"] = out["planted_per_seed"][0]
        out["checks"]["planted_ari_at_least_0.8"] = all(p["ari"] >= 0.8
                                                       for p in out["planted_per_seed"])
    return out
