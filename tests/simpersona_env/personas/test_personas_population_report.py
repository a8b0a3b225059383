"""Per-merchant populations, seeded sampling, and the rendered report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simpersona_env.errors import DataError
from simpersona_env.personas.population import (
    ALL_MERCHANTS,
    Population,
    populations_from_types,
    read_populations,
    write_populations,
)


def test_populations_count_and_share(tmp_path):
    pops = populations_from_types(np.array(["a", "a", "b", "a"]), np.array([0, 2, 2, 2]), k=3)
    assert pops["a"].counts == [1, 0, 2] and pops["b"].counts == [0, 0, 1]
    assert pops[ALL_MERCHANTS].counts == [1, 0, 3]
    assert abs(sum(pops["a"].shares) - 1) < 1e-12
    back = read_populations(write_populations(pops, tmp_path / "p.json"))
    assert back == pops
    assert json.loads((tmp_path / "p.json").read_text())["k"] == 3


def test_sampling_is_seeded_and_follows_shares():
    pop = Population("m", [700, 0, 300])
    a, b = pop.sample(5000, seed=3), pop.sample(5000, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, pop.sample(5000, seed=4))
    assert 1 not in set(a.tolist())
    assert abs((a == 0).mean() - 0.7) < 0.03


def test_empty_population_and_bad_types():
    with pytest.raises(DataError, match="empty"):
        Population("m", [0, 0]).sample(3)
    with pytest.raises(DataError, match=r"0\.\.1"):
        populations_from_types(["a"], np.array([5]), k=2)


def test_report_renders(trained, synth_buyers, synth_log, tmp_path):
    from simpersona_env.personas.report import type_stats, write_report

    types = trained.assign(synth_buyers)
    path = write_report(synth_buyers, types, trained.k, tmp_path, events=synth_log.events)
    md = path.read_text()
    for name in ("types.png", "merchant_mix.png", "codebook_usage.png", "type_stats.json"):
        assert (tmp_path / name).stat().st_size > 1000 or name.endswith(".json")
    assert md.count("\n| T") >= trained.k  # one table row per type
    stats = type_stats(synth_buyers, types, trained.k, synth_log.events)
    used = stats.filter(stats["size"] > 0)
    assert used["size"].sum() == synth_buyers.height
    assert all(d and d != "unused" for d in used["description"])
    assert used["top_categories"].str.len_chars().max() > 0
    # the statistics are the buyers' own: recompute one type's conversion by hand
    t = int(used["type"][0])
    conv = synth_buyers.filter(types == t)["has_purchase"].mean()
    assert abs(used["conversion_rate"][0] - conv) < 1e-12


def test_descriptions_follow_the_statistics():
    from simpersona_env.personas.report import describe_type

    ref = {"bounce_rate": 0.5, "events_per_session": 3.0, "product_views": 3.0,
           "search_share": 0.05, "sessions": 1.3, "conversion_rate": 0.04, "cart_rate": 0.1,
           "price_level": 3.0}
    deep = dict(ref, bounce_rate=0.0, events_per_session=12.0, product_views=20.0,
                price_level=4.2, conversion_rate=0.01)
    assert describe_type(deep, ref) == "deep browser, high price, rarely buys"
    bounce = dict(ref, bounce_rate=0.95, conversion_rate=0.0)
    assert describe_type(bounce, ref).startswith("bouncer") and "never buys" in describe_type(
        bounce, ref)
    buyer = dict(ref, bounce_rate=0.0, conversion_rate=0.8, cart_rate=0.8, price_level=2.0)
    assert describe_type(buyer, ref) == "decisive buyer, low price, usually buys"
