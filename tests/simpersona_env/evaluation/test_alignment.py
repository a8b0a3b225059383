"""Alignment math on hand-made numbers."""

import numpy as np
import pytest

from simpersona_env.errors import DataError
from simpersona_env.evaluation import alignment_score, funnel_alignment, rate_alignment


def _buyers(n: int, k: int) -> np.ndarray:
    """n buyers of whom the first k converted."""
    return np.arange(n) < k


def test_alignment_score_hand_values():
    assert alignment_score(0.03, 0.04) == pytest.approx(0.75)
    assert alignment_score(0.05, 0.04) == pytest.approx(0.75)
    assert alignment_score(0.10, 0.04) == 0.0  # clipped at 0, not -0.5
    assert alignment_score(0.0, 0.0) == 1.0
    assert alignment_score(0.01, 0.0) == 0.0


def test_conversion_alignment_is_mean_over_merchants():
    real = {"a": _buyers(100, 4), "b": _buyers(50, 5), "c": _buyers(200, 10)}
    sim = {"a": _buyers(100, 3), "b": _buyers(50, 5), "c": _buyers(100, 8)}
    # a: 1-|.03-.04|/.04 = .75; b: 1; c: 1-|.08-.05|/.05 = .4
    res = rate_alignment(real, sim, n_boot=200, seed=1)
    assert res.alignment.value == pytest.approx((0.75 + 1.0 + 0.4) / 3)
    assert res.per_merchant["c"] == pytest.approx({"real": 0.05, "sim": 0.08, "alignment": 0.4})
    assert res.alignment.lo <= res.alignment.value <= res.alignment.hi
    assert res.correlation is not None and -1 <= res.correlation.value <= 1


def test_correlation_hand_value():
    real = {m: _buyers(100, k) for m, k in zip("abc", (2, 4, 6))}
    sim = {m: _buyers(100, k) for m, k in zip("abc", (3, 5, 7))}
    assert rate_alignment(real, sim, n_boot=50).correlation.value == pytest.approx(1.0)


def test_funnel_alignment_averages_stages():
    real = {"m": np.array([[1, 1], [1, 0], [1, 0], [0, 0]], bool)}  # rates .75, .25
    sim = {"m": np.array([[1, 0], [0, 0], [1, 1], [0, 0]], bool)}  # rates .5, .25
    res = funnel_alignment(real, sim, ["view", "cart"], n_boot=100)
    assert res["view"].alignment.value == pytest.approx(1 - 0.25 / 0.75)
    assert res["cart"].alignment.value == pytest.approx(1.0)
    assert res["funnel"].alignment.value == pytest.approx((1 - 0.25 / 0.75 + 1) / 2)
    assert res["funnel"].correlation is None  # one merchant


def test_interval_narrows_with_more_buyers():
    small = rate_alignment({"a": _buyers(50, 5)}, {"a": _buyers(50, 5)}, n_boot=500, seed=0)
    big = rate_alignment({"a": _buyers(5000, 500)}, {"a": _buyers(5000, 500)}, n_boot=500, seed=0)
    assert (big.alignment.hi - big.alignment.lo) < (small.alignment.hi - small.alignment.lo)


def test_bootstrap_is_seeded():
    real, sim = {"a": _buyers(80, 7)}, {"a": _buyers(90, 6)}
    assert rate_alignment(real, sim, seed=3) == rate_alignment(real, sim, seed=3)


def test_bad_inputs_name_the_problem():
    with pytest.raises(DataError, match="no merchant is on both sides"):
        rate_alignment({"a": _buyers(3, 1)}, {"b": _buyers(3, 1)})
    with pytest.raises(DataError, match="no simulated buyers"):
        rate_alignment({"a": _buyers(3, 1)}, {"a": _buyers(0, 0)})
    with pytest.raises(DataError, match="shape"):
        funnel_alignment({"a": np.zeros((3, 2), bool)}, {"a": np.zeros((3, 3), bool)}, ["x", "y"])


def test_funnel_correlation_is_across_merchants_not_across_stages():
    # views ~1 and purchases ~0 everywhere: pooled, the stages alone would correlate ~1
    rng = np.random.default_rng(0)
    real, sim = {}, {}
    for m, (rp, sp) in zip("abcd", [(0.02, 0.08), (0.04, 0.06), (0.06, 0.04), (0.08, 0.02)]):
        real[m] = np.column_stack([np.ones(400, bool), rng.random(400) < rp])
        sim[m] = np.column_stack([np.ones(400, bool), rng.random(400) < sp])
    res = funnel_alignment(real, sim, ["view", "buy"], n_boot=100)
    assert res["buy"].correlation.value < -0.5  # purchase rates ordered oppositely
    assert res["funnel"].correlation.value == pytest.approx(res["buy"].correlation.value)


def test_expected_alignment_of_a_perfect_simulator_at_n_buyers():
    from simpersona_env.evaluation.alignment import expected_rate_alignment

    # a rate of 0 or 1 leaves nothing to chance; one buyer at 0.5 always misses by 100 %
    assert expected_rate_alignment([0.0, 1.0], [0.0, 1.0], 5).value == 1.0
    assert expected_rate_alignment([0.5], [0.5], 1).value == 0.0
    # two buyers at 0.5: 0 or 1 (score 0) half the time, exactly 0.5 (score 1) half the time
    e = expected_rate_alignment([0.5], [0.5], 2, draws=20000)
    assert e.value == pytest.approx(0.5, abs=0.02) and (e.lo, e.hi) == (0.0, 1.0)
    # more simulated buyers cost less; the same seed gives the same figure
    few = expected_rate_alignment([0.05, 0.02], [0.06, 0.02], 80).value
    many = expected_rate_alignment([0.05, 0.02], [0.06, 0.02], 5000).value
    assert few < many <= 1.0
    assert expected_rate_alignment([0.05], [0.06], 80, seed=3).value == \
        expected_rate_alignment([0.05], [0.06], 80, seed=3).value
    with pytest.raises(DataError, match="one per merchant"):
        expected_rate_alignment([0.1, 0.2], [0.1], 10)
    with pytest.raises(DataError, match="at least 1"):
        expected_rate_alignment([0.1], [0.1], 0)


# ------------------------------------------------------------------- paired comparison

def _plans(flags, unseen=()) -> np.ndarray:
    """(plans, 1) float reach; the indices in ``unseen`` left no event (NaN rows)."""
    out = np.asarray(flags, float).reshape(-1, 1).copy()
    out[list(unseen)] = np.nan
    return out


def test_paired_difference_hand_values_and_unseen_buyers():
    from simpersona_env.evaluation.alignment import paired_alignment_difference

    real = {"a": _buyers(100, 4).reshape(-1, 1), "b": _buyers(50, 5).reshape(-1, 1)}
    # a: 3 of 100 convert (alignment .75); b: 5 of 50 seen (alignment 1), 10 unseen plans
    sim_a = {"a": _plans(_buyers(100, 3)), "b": _plans(_buyers(60, 5), unseen=range(50, 60))}
    # the other run: 4 of 100 (1.0) and 2 of 50 seen (alignment .4)
    sim_b = {"a": _plans(_buyers(100, 4)), "b": _plans(_buyers(60, 2), unseen=range(50, 60))}
    d = paired_alignment_difference(real, sim_a, sim_b, ["buy"], n_boot=300, seed=0)
    assert d["buy"]["a"] == pytest.approx((0.75 + 1.0) / 2)
    assert d["buy"]["b"] == pytest.approx((1.0 + 0.4) / 2)
    assert d["buy"]["value"] == pytest.approx(0.875 - 0.7)
    assert d["buy"]["lo"] <= d["buy"]["value"] <= d["buy"]["hi"]
    assert d["funnel"]["value"] == pytest.approx(d["buy"]["value"])  # one stage
    assert d["merchants"] == ["a", "b"]
    # the point values are the unpaired figures of each run (unseen buyers out of both)
    seen = {m: x[np.isfinite(x[:, 0])].astype(bool) for m, x in sim_a.items()}
    assert rate_alignment({m: r[:, 0] for m, r in real.items()},
                          {m: s[:, 0] for m, s in seen.items()}, n_boot=10).alignment.value \
        == pytest.approx(d["buy"]["a"])


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    from simpersona_env.evaluation.alignment import paired_alignment_difference

    real = {"m": _buyers(200, 12).reshape(-1, 1)}
    sim = {"m": _plans(np.random.default_rng(0).random(150) < 0.05)}
    d = paired_alignment_difference(real, sim, sim, ["buy"], n_boot=200)["buy"]
    assert d["value"] == d["lo"] == d["hi"] == 0.0
    assert d["p_a_better"] == 0.0


def test_paired_interval_is_narrower_than_the_unpaired_ones():
    """Two runs that differ in a few buyers: the real side's noise and the shared buyers'
    noise cancel in the paired interval, which two separate intervals cannot show."""
    from simpersona_env.evaluation.alignment import paired_alignment_difference

    rng = np.random.default_rng(1)
    real = {m: (rng.random(120) < 0.1).reshape(-1, 1) for m in "xyz"}
    base = {m: rng.random(240) < 0.1 for m in "xyz"}
    better = {m: v.copy() for m, v in base.items()}
    for m in "xyz":  # run b converts 3 more buyers per merchant
        better[m][np.flatnonzero(~better[m])[:3]] = True
    sim_a, sim_b = ({m: _plans(v) for m, v in s.items()} for s in (base, better))
    d = paired_alignment_difference(real, sim_a, sim_b, ["buy"], n_boot=500, seed=0)["buy"]
    ua = rate_alignment({m: r[:, 0] for m, r in real.items()}, base, n_boot=500).alignment
    ub = rate_alignment({m: r[:, 0] for m, r in real.items()}, better, n_boot=500).alignment
    assert d["value"] == pytest.approx(ua.value - ub.value)
    assert d["hi"] - d["lo"] < 0.5 * min(ua.hi - ua.lo, ub.hi - ub.lo)


def test_paired_bad_inputs_name_the_problem():
    from simpersona_env.evaluation.alignment import paired_alignment_difference

    real = {"m": _buyers(10, 2).reshape(-1, 1)}
    with pytest.raises(DataError, match="one shape"):
        paired_alignment_difference(real, {"m": _plans(_buyers(5, 1))},
                                    {"m": _plans(_buyers(6, 1))}, ["buy"])
    with pytest.raises(DataError, match="nothing to compare"):  # run b: nobody seen
        paired_alignment_difference(real, {"m": _plans(_buyers(5, 1))},
                                    {"m": _plans(_buyers(5, 1), unseen=range(5))}, ["buy"])


def test_paired_contrasts_compare_only_the_buyers_both_runs_played():
    """A run resumed with more buyers: the extra ones have no partner and stay out."""
    from simpersona_env.evaluation.alignment import paired_alignment_difference
    from simpersona_env.evaluation.population import paired_contrasts

    real = {"m": _buyers(100, 5).reshape(-1, 1), "n": _buyers(80, 4).reshape(-1, 1)}
    long_a = {"m": _plans(_buyers(150, 9)), "n": _plans(_buyers(80, 2))}
    short_b = {"m": _plans(_buyers(100, 3)), "n": _plans(_buyers(80, 4))}
    [c] = paired_contrasts(real, {"a": long_a, "b": short_b}, ["purchase"], [("a", "b")],
                           bootstrap=200, seed=0)
    first = {"m": long_a["m"][:100], "n": long_a["n"]}
    expect = paired_alignment_difference(real, first, short_b, ["purchase"], n_boot=200,
                                         seed=0)
    assert c["conversion"] == expect["purchase"]
    assert c["buyers"] == {"m": 100, "n": 80}
    # run a converts 9 of its first 100 at m (real 5 of 100) and 2 of 80 at n (real 4)
    assert c["conversion"]["a"] == pytest.approx(((1 - 0.04 / 0.05) + (1 - 0.025 / 0.05)) / 2)
