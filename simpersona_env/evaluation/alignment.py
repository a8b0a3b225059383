"""Alignment of simulated and real funnel rates, with bootstrap confidence intervals.

The paper's figures, per merchant m with a real rate r_m and a simulated rate s_m:

- **rate alignment** = mean over merchants of ``max(0, 1 - |s_m - r_m| / r_m)``;
  conversion-rate alignment is this with r, s = buyers with a purchase / buyers;
- **funnel action-rate alignment** = the same per funnel stage, averaged over stages;
- **correlation** of simulated and real rates across merchants (Pearson); for the funnel, the
  mean of the per-stage correlations.

Intervals come from a paired bootstrap that resamples *buyers* within each merchant, on both
sides independently (the real and simulated buyers are different people), and recomputes the
whole figure, so the interval reflects how many buyers each rate rests on.

Inputs are per-merchant boolean matrices ``reach[buyer, stage]`` (did the buyer reach the
stage), as computed from canonical events by the same code for both sides.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simpersona_env.errors import ConfigError, DataError

__all__ = [
    "AlignmentResult",
    "Estimate",
    "alignment_score",
    "contrast_pairs",
    "expected_rate_alignment",
    "funnel_alignment",
    "paired_alignment_difference",
    "rate_alignment",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval (``lo``, ``hi`` at ``level``)."""

    value: float
    lo: float
    hi: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "level": self.level}


@dataclass(frozen=True)
class AlignmentResult:
    """Alignment of one rate (or the funnel average) across merchants."""

    alignment: Estimate
    correlation: Estimate | None  # None with fewer than 3 merchants
    per_merchant: dict[str, dict[str, float]]  # merchant -> {"real", "sim", "alignment"}

    def as_dict(self) -> dict:
        return {
            "alignment": self.alignment.as_dict(),
            "correlation": None if self.correlation is None else self.correlation.as_dict(),
            "per_merchant": self.per_merchant,
        }


def alignment_score(sim: np.ndarray | float, real: np.ndarray | float) -> np.ndarray:
    """``max(0, 1 - |sim - real| / real)`` elementwise; a real rate of 0 scores 1 if sim is 0 too.

    Example:
        >>> float(alignment_score(0.03, 0.04))
        0.75
    """
    sim, real = np.asarray(sim, dtype=float), np.asarray(real, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - np.abs(sim - real) / real
    score = np.where(real > 0, score, np.where(sim == 0, 1.0, 0.0))
    return np.clip(score, 0.0, None)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # x, y: (..., merchants); nan where a side has no variance
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (xc * yc).sum(-1) / den


def _resample(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) how often each of ``n`` buyers is drawn in each bootstrap resample.

    Drawing multinomial counts per buyer is equivalent to resampling rows and costs
    O(n_boot * n) instead of materialising (n_boot, n, stages)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def _boot_rates(reach: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n_boot, stages) rates of resampled buyers (``counts`` from :func:`_resample`);
    reach: (buyers, stages), a NaN row for a buyer the log does not see (out of the
    denominators)."""
    reach = np.asarray(reach, float)
    seen = np.isfinite(reach[:, 0]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (counts @ np.nan_to_num(reach, nan=0.0)) / (counts @ seen)[:, None]


def _ci(point: float, samples: np.ndarray, level: float) -> Estimate:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Estimate(point, float("nan"), float("nan"), level)
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a])
    return Estimate(float(point), float(lo), float(hi), level)


def funnel_alignment(
    real: Mapping[str, np.ndarray],
    sim: Mapping[str, np.ndarray],
    stages: Sequence[str],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, AlignmentResult]:
    """Per-stage rate alignment and the funnel average, over the merchants on both sides.

    Args:
        real: merchant -> bool array (buyers, len(stages)), the real buyers' stage reach.
        sim: merchant -> bool array (buyers, len(stages)), the simulated buyers' stage reach.
        stages: stage names, the columns of the arrays.
        n_boot: bootstrap resamples; level: interval level; seed: bootstrap seed.

    Returns:
        stage -> AlignmentResult, plus ``"funnel"`` (the mean of the stage alignments).

    Raises:
        DataError: no merchant on both sides, or a merchant with no buyers on one side.

    Example:
        >>> real = {"m": np.array([[1, 1], [1, 0], [0, 0], [1, 0]], bool)}
        >>> sim = {"m": np.array([[1, 0], [1, 1], [1, 0], [0, 0]], bool)}
        >>> res = funnel_alignment(real, sim, ["view", "buy"], n_boot=10)
        >>> res["buy"].alignment.value
        1.0
    """
    merchants = sorted(set(real) & set(sim))
    if not merchants:
        raise DataError(f"no merchant is on both sides: real has {sorted(real)[:5]}, "
                        f"simulated has {sorted(sim)[:5]}; simulate the merchants you evaluate")
    for m in merchants:
        for side, data in (("real", real), ("simulated", sim)):
            arr = np.asarray(data[m])
            if arr.ndim != 2 or arr.shape[1] != len(stages):
                raise DataError(f"{side} reach of merchant {m!r} has shape {arr.shape}; "
                                f"expected (buyers, {len(stages)})")
            if arr.shape[0] == 0:
                raise DataError(f"merchant {m!r} has no {side} buyers; drop it or simulate some")
    rng = np.random.default_rng(seed)
    r_pt = np.stack([np.asarray(real[m], float).mean(0) for m in merchants])  # (M, S)
    s_pt = np.stack([np.asarray(sim[m], float).mean(0) for m in merchants])  # (M, S)
    r_bs = np.stack([_boot_rates(real[m], _resample(len(real[m]), n_boot, rng))
                     for m in merchants], 1)
    s_bs = np.stack([_boot_rates(sim[m], _resample(len(sim[m]), n_boot, rng))
                     for m in merchants], 1)
    # r_bs, s_bs: (n_boot, M, S)
    al_pt = alignment_score(s_pt, r_pt)  # (M, S)
    al_bs = alignment_score(s_bs, r_bs)  # (n_boot, M, S)

    out: dict[str, AlignmentResult] = {}
    for j, stage in enumerate(stages):
        corr = None
        if len(merchants) >= 3:
            corr = _ci(float(_pearson(s_pt[:, j], r_pt[:, j])), _pearson(s_bs[..., j], r_bs[..., j]),
                       level)
        per = {m: {"real": float(r_pt[i, j]), "sim": float(s_pt[i, j]),
                   "alignment": float(al_pt[i, j])} for i, m in enumerate(merchants)}
        out[stage] = AlignmentResult(_ci(al_pt[:, j].mean(), al_bs[..., j].mean(1), level), corr, per)
    funnel_per = {m: {"alignment": float(al_pt[i].mean())} for i, m in enumerate(merchants)}
    corr = None
    if len(merchants) >= 3:
        # the mean of the per-stage correlations across merchants (stages whose rates vary);
        # pooling all stages would correlate the stages' levels (views ~1, purchases ~0.03),
        # not the merchants
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a stage constant in a resample
            per_pt = _pearson(s_pt.T, r_pt.T)  # (S,)
            per_bs = _pearson(s_bs.transpose(0, 2, 1), r_bs.transpose(0, 2, 1))  # (n_boot, S)
            point = float(np.nanmean(per_pt)) if np.isfinite(per_pt).any() else float("nan")
            corr = _ci(point, np.nanmean(per_bs, axis=1), level)
    out["funnel"] = AlignmentResult(_ci(al_pt.mean(), al_bs.mean((1, 2)), level), corr, funnel_per)
    return out


def rate_alignment(
    real: Mapping[str, np.ndarray],
    sim: Mapping[str, np.ndarray],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> AlignmentResult:
    """Alignment of one rate (e.g. conversion): merchant -> bool array (buyers,) on each side.

    Example:
        >>> real = {"a": np.array([1, 0, 0, 0], bool), "b": np.array([1, 1, 0, 0], bool)}
        >>> sim = {"a": np.array([1, 0, 0, 0, 0, 0, 0, 0], bool), "b": np.array([1, 0], bool)}
        >>> rate_alignment(real, sim, n_boot=10).alignment.value  # mean(0.5, 1.0)
        0.75
    """
    real2 = {m: np.asarray(v, bool).reshape(-1, 1) for m, v in real.items()}
    sim2 = {m: np.asarray(v, bool).reshape(-1, 1) for m, v in sim.items()}
    return funnel_alignment(real2, sim2, ["rate"], n_boot=n_boot, level=level, seed=seed)["rate"]


def expected_rate_alignment(rates: Sequence[float], real: Sequence[float], n: int, *,
                            draws: int = 1000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Rate alignment that a simulator whose ``n`` buyers per merchant each convert with
    exactly ``rates`` (one per merchant) gets against the ``real`` rates: the mean over
    binomial draws, with the ``level`` range of the draws as the interval.

    What sampling ``n`` buyers costs even a perfect simulator.

    Example:
        >>> expected_rate_alignment([0.0, 1.0], [0.0, 1.0], 50).value  # nothing to miss
        1.0
        >>> expected_rate_alignment([0.5], [0.5], 1).value  # one buyer: 0 or 1, never 0.5
        0.0
    """
    rates_a, real_a = np.asarray(rates, float), np.asarray(real, float)
    if rates_a.shape != real_a.shape or rates_a.ndim != 1:
        raise DataError(f"{rates_a.shape} rates for {real_a.shape} real rates; give one per "
                        "merchant on both sides")
    if n < 1:
        raise DataError(f"n={n} simulated buyers; give at least 1")
    sim = np.random.default_rng(seed).binomial(n, rates_a, size=(draws, rates_a.size)) / n
    per_draw = alignment_score(sim, real_a).mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(per_draw, [a, 1 - a])
    return Estimate(float(per_draw.mean()), float(lo), float(hi), level)


def paired_alignment_difference(
    real: Mapping[str, np.ndarray],
    sim_a: Mapping[str, np.ndarray],
    sim_b: Mapping[str, np.ndarray],
    stages: Sequence[str],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Alignment of simulation ``a`` minus that of ``b``, when both simulated the *same*
    buyers (buyer ``i`` of a merchant has the same persona, visitor and arrival in both).

    Each bootstrap resample draws one set of real buyers and one set of simulated buyer
    indices per merchant and scores both simulations on them, so the interval is that of the
    difference: the real side's noise, shared by both, cancels, and so does the part of the
    simulated side's noise the two runs share. Two separate intervals cannot be subtracted.

    Args:
        real: merchant -> bool array (buyers, len(stages)), the real buyers' stage reach.
        sim_a, sim_b: merchant -> float array (plans, len(stages)) indexed by the simulated
            buyer's index, a row of NaN for a buyer who left no event the real log records
            (it is out of the denominators, as in :func:`funnel_alignment`).
        stages: the column names.

    Returns:
        stage -> ``{"value", "lo", "hi", "level", "a", "b", "p_a_better"}`` (``value`` = a - b;
        ``p_a_better``: the share of resamples in which ``a`` aligns better) for every stage,
        plus ``"funnel"`` (the mean over stages) and ``"merchants"`` (the merchants compared:
        those with an observed buyer in both simulations).

    Raises:
        DataError: no merchant with observed buyers on all three sides, or shapes that differ.

    Example:
        >>> real = {"m": np.array([[1], [0], [0], [0]], bool)}
        >>> a = {"m": np.array([[1.0], [0.0], [0.0], [0.0]])}
        >>> b = {"m": np.array([[1.0], [1.0], [np.nan], [0.0]])}
        >>> paired_alignment_difference(real, a, b, ["buy"], n_boot=50)["buy"]["value"]
        1.0
    """
    merchants = []
    for m in sorted(set(real) & set(sim_a) & set(sim_b)):
        a, b = np.asarray(sim_a[m], float), np.asarray(sim_b[m], float)
        if a.shape != b.shape or a.ndim != 2 or a.shape[1] != len(stages):
            raise DataError(f"merchant {m!r}: paired simulations need (plans, {len(stages)}) "
                            f"arrays of one shape, got {a.shape} and {b.shape}")
        if np.isfinite(a[:, 0]).any() and np.isfinite(b[:, 0]).any() and len(real[m]):
            merchants.append(m)
    if not merchants:
        raise DataError("no merchant has observed simulated buyers in both runs and real buyers; "
                        "nothing to compare")
    rng = np.random.default_rng(seed)
    r_pt, a_pt, b_pt, r_bs, a_bs, b_bs = [], [], [], [], [], []
    for m in merchants:
        r = np.asarray(real[m], float)
        a, b = np.asarray(sim_a[m], float), np.asarray(sim_b[m], float)
        r_pt.append(r.mean(0))
        a_pt.append(np.nanmean(a, 0))
        b_pt.append(np.nanmean(b, 0))
        r_bs.append(_boot_rates(r, _resample(len(r), n_boot, rng)))
        counts = _resample(a.shape[0], n_boot, rng)  # the same resampled buyers for both runs
        a_bs.append(_boot_rates(a, counts))
        b_bs.append(_boot_rates(b, counts))
    r_pt, a_pt, b_pt = np.stack(r_pt), np.stack(a_pt), np.stack(b_pt)  # (M, S)
    r_bs, a_bs, b_bs = np.stack(r_bs, 1), np.stack(a_bs, 1), np.stack(b_bs, 1)  # (n_boot, M, S)
    al_a, al_b = alignment_score(a_pt, r_pt), alignment_score(b_pt, r_pt)
    # a resample with no observed buyer of a merchant scores NaN there and is dropped below
    with np.errstate(invalid="ignore"):
        d_bs = alignment_score(a_bs, r_bs) - alignment_score(b_bs, r_bs)
    d_bs = np.where(np.isfinite(a_bs) & np.isfinite(b_bs), d_bs, np.nan)

    def estimate(point_a: float, point_b: float, samples: np.ndarray) -> dict[str, float]:
        est = _ci(point_a - point_b, samples, level).as_dict()
        finite = samples[np.isfinite(samples)]
        return {**est, "a": float(point_a), "b": float(point_b),
                "p_a_better": float((finite > 0).mean()) if finite.size else float("nan")}

    out: dict[str, Any] = {s: estimate(al_a[:, j].mean(), al_b[:, j].mean(),
                                       d_bs[..., j].mean(1)) for j, s in enumerate(stages)}
    out["funnel"] = estimate(al_a.mean(), al_b.mean(), d_bs.mean((1, 2)))
    out["merchants"] = merchants
    return out


def contrast_pairs(policies: Mapping[str, Any] | Sequence[str],
                   contrasts: Sequence[Sequence[str]] | None) -> list[tuple[str, str]]:
    """The pairs ``(a, b)`` of policy names to compare: ``contrasts`` checked against the
    policies, or by default the first against each other.

    Raises:
        ConfigError: a pair that is not two distinct policies of the run (names the key).

    Example:
        >>> contrast_pairs(["agent", "baseline", "random"], None)
        [('agent', 'baseline'), ('agent', 'random')]
    """
    names = list(policies)
    if contrasts is None:
        return [(names[0], b) for b in names[1:]]
    pairs = []
    for c in contrasts:
        pair = [c] if isinstance(c, str) else [str(x) for x in c]
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ConfigError(f"contrasts: {c!r} is not a pair of two policies; write "
                              "contrasts=[[persona_agent,no_persona]]")
        unknown = [x for x in pair if x not in names]
        if unknown:
            raise ConfigError(f"contrasts: {unknown} are not among the policies {names}; "
                              "name two of those")
        pairs.append((pair[0], pair[1]))
    return pairs
