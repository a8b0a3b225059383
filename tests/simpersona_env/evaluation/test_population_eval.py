"""Population evaluation: held-out protocol, measurement, type profiles, goal benchmark, report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from simpersona_env.errors import ConfigError
from simpersona_env.evaluation.measure import (
    observed_event_types,
    project,
    reach_by_merchant,
    stages_observed,
    stats_by_type,
)

TINY = {"k": 4, "latent_dim": 8, "embed_dim": 8, "hidden_dim": 16, "max_len": 16}
RANDOM = {"_target_": "agents.policies.random.RandomPolicy", "seed": 0}
RULE_BASED = {"_target_": "agents.policies.rule_based.RuleBasedBuyer", "profiles": "auto",
              "seed": 0}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Generated 'real' traffic of 4 merchants on disk, its buyers, and a tiny VQ-VAE trained
    on the training merchants only."""
    from simpersona_env.buyers import build_buyers
    from simpersona_env.evaluation.population import pick_heldout_merchants
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import TrainConfig, train_personas
    from simpersona_env.synthetic import generate_events

    log = generate_events(500, n_merchants=4, seed=1)
    path = tmp_path_factory.mktemp("real") / "events.parquet"
    log.events.write_parquet(path)
    buyers = build_buyers(log.events)
    merchants = sorted(buyers["merchant_id"].unique().to_list())
    held = pick_heldout_merchants(merchants, fraction=0.5, seed=0)
    train = buyers.filter(~pl.col("merchant_id").is_in(held))
    typer = train_personas(train, PersonaVQVAEConfig(**TINY),
                           TrainConfig(epochs_pretrain=1, epochs=2, batch_size=64, progress=False))
    return {"path": path, "events": log.events, "buyers": buyers, "held": held,
            "typer": typer}


def _t(s: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=s)


def test_projection_and_reach_on_hand_made_events():
    ev = pl.DataFrame({
        "merchant_id": ["m", "m", "m", "m", "m", "n"],
        "buyer_id": ["a", "a", "a", "b", "c", "a"],
        "session_id": ["s1", "s1", "s1", "s2", "s3", "s4"],
        "ts": [_t(0), _t(5), _t(9), _t(0), _t(0), _t(0)],
        "event": ["page_view", "product_view", "purchase", "page_view", "product_view",
                  "product_view"],
        "category": [None] * 6, "price": [None, 2.0, 2.0, None, 3.0, 1.0]})
    assert observed_event_types(ev) == ["page_view", "product_view", "purchase"]
    # a log that records only product events never sees buyer b (home page only)
    seen = project(ev, ["product_view", "purchase"])
    stages = stages_observed(["product_view", "purchase"])
    assert stages == ["product_view", "purchase"]
    reach = reach_by_merchant(seen, stages)
    assert {m: r.tolist() for m, r in reach.items()} == {
        "m": [[True, True], [True, False]], "n": [[True, False]]}
    from simpersona_env.evaluation.measure import funnel_table

    by_type = stats_by_type(funnel_table(seen), {("m", "a"): 1, ("m", "c"): 1, ("n", "a"): 0},
                            bootstrap=50)
    assert by_type["1"]["buyers"] == 2 and by_type["1"]["conversion_rate"]["value"] == 0.5
    assert by_type["0"]["conversion_rate"]["value"] == 0.0


def test_heldout_halves_are_disjoint_and_cover_each_merchant(real):
    from simpersona_env.evaluation.measure import funnel_table
    from simpersona_env.evaluation.population import heldout_protocol

    funnel = funnel_table(real["events"])
    protocol = heldout_protocol(funnel, real["buyers"], real["typer"], real["held"],
                                min_buyers=5)
    assert set(protocol) <= set(real["held"]) and protocol
    for m, h in protocol.items():
        pop, rl = set(h.population_buyers), set(h.real_buyers)
        assert not pop & rl
        everyone = set(real["buyers"].filter(pl.col("merchant_id") == m)["buyer_id"])
        assert pop | rl == everyone
        assert sum(h.counts) == len(pop) and len(h.shares) == real["typer"].k
        assert set(h.real_funnel["buyer_id"]) == rl
        assert set(h.population_funnel["buyer_id"]) == pop
        # session-count shares per type, by hand from the population half's buyers
        half = real["buyers"].filter((pl.col("merchant_id") == m)
                                     & pl.col("buyer_id").is_in(h.population_buyers))
        types = np.asarray(real["typer"].assign(half))
        n = np.minimum(half["n_sessions"].to_numpy().astype(int), 5)
        assert h.pooled_sessions == pytest.approx([(n == j).mean() for j in range(1, 6)])
        for t in range(real["typer"].k):
            want = ([(n[types == t] == j).mean() for j in range(1, 6)] if (types == t).any()
                    else h.pooled_sessions)
            assert h.sessions[t] == pytest.approx(want)
    # a different split seed gives different halves
    other = heldout_protocol(funnel, real["buyers"], real["typer"], real["held"],
                             min_buyers=5, seed=5)
    m = next(iter(protocol))
    assert set(other[m].population_buyers) != set(protocol[m].population_buyers)


def test_type_profiles_per_session_chances_give_the_per_buyer_rates(tmp_path):
    """Buyers who come back twice: the profile's chances are per session, so that the share
    of buyers who buy in either session is the type's conversion."""
    from simpersona_env.evaluation.population import _per_session, type_profiles

    assert _per_session(0.36, [0.0, 1.0]) == pytest.approx(0.2)
    assert _per_session(0.3, [1.0]) == pytest.approx(0.3)
    n = 400
    two = np.arange(n) % 2 == 0  # half the buyers have 2 sessions
    converted = np.arange(n) % 5 == 0
    buyers = pl.DataFrame({"n_sessions": np.where(two, 2.0, 1.0), "n_product_views": np.full(n, 3.0),
                           "converted": converted.astype(float), "has_cart": converted,
                           "search_share": np.zeros(n)})
    types = np.zeros(n, np.int64)
    once = json.loads(type_profiles(buyers, types, 1, tmp_path / "a.json").read_text())["0"]
    back = json.loads(type_profiles(buyers, types, 1, tmp_path / "b.json",
                                    max_sessions=5).read_text())["0"]
    rng = np.random.default_rng(0)

    def per_session_buy(p):
        d = rng.poisson(p["views_per_session"], 400_000)
        d = d[d >= 1]
        return float((1 - (1 - p["view_to_cart"]) ** d).mean() * p["cart_to_purchase"])

    assert per_session_buy(once) == pytest.approx(0.2, abs=0.01)  # one session: the share
    q = per_session_buy(back)
    assert 0.5 * q + 0.5 * (1 - (1 - q) ** 2) == pytest.approx(0.2, abs=0.01)


def test_type_profiles_reproduce_each_types_funnel(tmp_path):
    from simpersona_env.evaluation.population import type_profiles

    n = 400
    rng = np.random.default_rng(0)
    views = np.where(np.arange(n) < 200, 1.0, rng.poisson(3.0, n) + 1.0)
    carted = np.arange(n) % 4 == 0
    converted = (np.arange(n) % 8 == 0) & (np.arange(n) >= 200)
    buyers = pl.DataFrame({"n_sessions": np.ones(n), "n_product_views": views,
                           "converted": converted.astype(float), "has_cart": carted,
                           "search_share": np.zeros(n)})
    types = (np.arange(n) >= 200).astype(np.int64)
    doc = json.loads(type_profiles(buyers, types, 3, tmp_path / "p.json").read_text())
    assert set(doc) == {"0", "1", "2"}  # the empty type gets the overall profile
    for t in ("0", "1"):
        p = doc[t]
        part = slice(0, 200) if t == "0" else slice(200, n)
        lam, q = p["views_per_session"], p["view_to_cart"]
        # simulate the rule-based buyer's funnel from the profile (D ~ Poisson | D >= 1)
        d = rng.poisson(lam, 200_000)
        d = d[d >= 1]
        reach = 1 - (1 - q) ** d
        if t == "1":  # deep enough to fit; type 0 (one view each) is floored at 90% visible
            assert d.mean() == pytest.approx(views[part].mean(), rel=0.05)
        else:
            assert -np.expm1(-lam) == pytest.approx(0.9)
        target = max(carted[part].mean(), converted[part].mean())
        assert reach.mean() == pytest.approx(target, abs=0.02)
        assert reach.mean() * p["cart_to_purchase"] == pytest.approx(converted[part].mean(),
                                                                     abs=0.02)
        assert p["bounce"] == 0.0


@pytest.mark.slow
def test_evaluate_population_end_to_end_with_report(real, tmp_path):
    from simpersona_env.evaluation.population import evaluate_population
    from simpersona_env.evaluation.report import PLOTS, headline, write_report

    res = evaluate_population(real["path"], real["typer"],
                              {"rule_based": RULE_BASED, "random": RANDOM,
                               "average": {**RULE_BASED, "_average": True}},
                              out_dir=tmp_path, buyers=real["buyers"], merchants=real["held"],
                              n_buyers=12, min_buyers=5, bootstrap=60, progress=False)
    held = res["protocol"]["heldout_merchants"]
    assert held and res["protocol"]["training_merchants"]
    assert not set(held) & set(res["protocol"]["training_merchants"])
    for name in ("rule_based", "random"):
        p = res["policies"][name]
        a = p["conversion"]["alignment"]
        assert 0.0 <= a["lo"] <= a["value"] <= a["hi"] <= 1.0
        assert set(p["conversion"]["per_merchant"]) <= set(held)
        assert set(p["funnel"]) == {*res["protocol"]["stages"], "funnel"}
        assert all(p["merchants"][m]["episodes"] == 12 for m in held)
    avg = res["policies"]["average"]
    assert avg["average_buyer"] and avg["fidelity"] is None and not avg["by_type"]
    avg_records = [json.loads(line) for line in
                   (tmp_path / "sim" / "average" / held[0] / "episodes.jsonl").read_text()
                   .splitlines()]
    assert {r["persona"] for r in avg_records} == {0}
    assert len(json.loads((tmp_path / "average_profile.json").read_text())) == 1
    fid = res["policies"]["rule_based"]["fidelity"]
    conf = np.array(fid["confusion"])
    assert conf.shape == (4, 4) and conf.sum() == fid["n"] > 0
    assert fid["accuracy"] == pytest.approx(np.trace(conf) / conf.sum())
    ab = res["ab"]
    assert ab["themes"] == ["classic", "grid"] and ab["n"] == 12
    d = ab["difference"]
    assert d["lo"] <= d["value"] <= d["hi"]
    # the two arms ran the same buyers: same personas, one theme each
    arms = [json.loads(line) for t in ab["themes"]
            for line in (tmp_path / "ab" / "rule_based" / held[0] / f"theme={t}" /
                         "episodes.jsonl").read_text().splitlines()]
    assert [r["persona"] for r in arms[:12]] == [r["persona"] for r in arms[12:]]
    assert {r["theme"] for r in arms[:12]} == {"classic"} and {r["theme"] for r in arms[12:]} \
        == {"grid"}

    # the reference: the population half's real conversion against the real half's, by hand
    from simpersona_env.evaluation.alignment import alignment_score
    from simpersona_env.evaluation.measure import funnel_table
    from simpersona_env.evaluation.population import heldout_protocol

    ref = res["reference"]["real_halves"]
    protocol = heldout_protocol(funnel_table(real["events"]), real["buyers"], real["typer"],
                                held, min_buyers=5)
    by_hand = [float(alignment_score(h.population_funnel["reached_purchase"].mean(),
                                     h.real_funnel["reached_purchase"].mean()))
               for h in protocol.values()]
    assert ref["conversion"]["alignment"]["value"] == pytest.approx(np.mean(by_hand))
    assert ref["buyers"] == {m: len(h.population_buyers) for m, h in protocol.items()}
    assert set(ref["funnel"]) == {*res["protocol"]["stages"], "funnel"}
    from simpersona_env.evaluation.alignment import expected_rate_alignment

    exact = res["reference"]["exact_rates"]
    per = ref["conversion"]["per_merchant"]
    assert exact["n_buyers"] == 12 and exact["conversion_alignment"]["value"] == pytest.approx(
        expected_rate_alignment([per[m]["sim"] for m in per], [per[m]["real"] for m in per], 12,
                                draws=60, seed=0).value)

    # buyers come back for as many sessions as their type's real buyers (up to 5)
    assert res["protocol"]["sessions"]["mode"] == "population"
    assert res["protocol"]["sessions"]["gap_median_s"] > 0
    sim_events = pl.read_parquet(tmp_path / "sim" / "rule_based" / held[0] / "events.parquet")
    recs = [json.loads(line) for line in (tmp_path / "sim" / "rule_based" / held[0] /
                                          "episodes.jsonl").read_text().splitlines()]
    assert any(len(r["sessions"]) > 1 for r in recs) and max(len(r["sessions"]) for r in recs) <= 5
    for r in recs:
        mine = sim_events.filter(pl.col("buyer_id") == r["visitor_id"])
        assert mine["session_id"].n_unique() <= len(r["sessions"])  # a session may log nothing
    per = res["policies"]["rule_based"]["merchants"][held[0]]
    assert per["sessions_per_buyer"] == pytest.approx(np.mean([len(r["sessions"]) for r in recs]))

    # paired: the first policy against each other one, over the same simulated buyers
    assert [(c["a"], c["b"]) for c in res["paired"]] == [("rule_based", "random"),
                                                          ("rule_based", "average")]
    for c in res["paired"]:
        a, b = (res["policies"][n]["conversion"] for n in (c["a"], c["b"]))
        conv = c["conversion"]
        assert conv["lo"] <= conv["value"] <= conv["hi"] and 0 <= conv["p_a_better"] <= 1
        assert conv["a"] - conv["b"] == pytest.approx(conv["value"])
        if set(a["per_merchant"]) == set(b["per_merchant"]) == set(c["merchants"]):
            assert conv["value"] == pytest.approx(a["alignment"]["value"] -
                                                  b["alignment"]["value"])
        assert c["buyers"] == {m: 12 for m in c["merchants"]}
        assert set(c["stages"]) == set(res["protocol"]["stages"])

    paths = write_report(res, tmp_path / "report")
    assert "## Paired comparisons" in paths["md"].read_text()
    for name in PLOTS:
        data = paths[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    md = paths["md"].read_text()
    for name in PLOTS:
        assert f"({name}.png)" in md
    assert all(line in md for line in headline(res))
    assert "reference: real population half" in md
    doc = json.loads(paths["json"].read_text())
    assert doc["population"]["protocol"]["heldout_merchants"] == held


def test_session_gap_median_by_hand():
    from simpersona_env.evaluation.population import session_gap_median

    ev = pl.DataFrame({"merchant_id": ["m"] * 6 + ["n"],
                       "buyer_id": ["a", "a", "a", "a", "b", "c", "a"],
                       "session_id": ["s1", "s1", "s2", "s3", "s4", "s5", "s6"],
                       "ts": [_t(0), _t(50), _t(3600), _t(3600 + 7200), _t(0), _t(99), _t(0)]})
    # buyer m/a: session starts 0, 3600, 10800 -> gaps 3600, 7200; m/b: one session
    assert session_gap_median(ev, {"m": ["a", "b"]}) == 5400.0
    assert session_gap_median(ev, {"m": ["b"], "n": ["a"]}) is None


def test_contrasts_name_policies_of_the_run(tmp_path):
    from simpersona_env.errors import ConfigError
    from simpersona_env.evaluation.population import evaluate_population

    pols = {"rule_based": RULE_BASED, "random": RANDOM}
    with pytest.raises(ConfigError, match=r"contrasts: \['nope'\] are not among the policies"):
        evaluate_population(tmp_path / "none", None, pols, out_dir=tmp_path,
                            contrasts=[["rule_based", "nope"]])
    with pytest.raises(ConfigError, match="is not a pair of two policies"):
        evaluate_population(tmp_path / "none", None, pols, out_dir=tmp_path,
                            contrasts=[["random", "random"]])
    with pytest.raises(ConfigError, match="sessions='twice'"):
        evaluate_population(tmp_path / "none", None, pols, out_dir=tmp_path, sessions="twice")


def test_goal_benchmark_same_tasks_for_every_policy(tmp_path):
    from simpersona_env.evaluation.goal import goal_benchmark
    from simpersona_env.simulation import read_episode_records

    res = goal_benchmark({"oracle": "oracle", "random": RANDOM}, out_dir=tmp_path,
                         catalogs=["builtin"], n_tasks=4, max_steps=15, bootstrap=50,
                         progress=False)
    assert res["policies"]["oracle"]["builtin"]["success"]["value"] == 1.0
    assert res["policies"]["oracle"]["all"]["reward"]["value"] == 1.0
    assert res["policies"]["random"]["builtin"]["success"]["value"] < 1.0
    goals = {p: [r["goal"] for r in read_episode_records(tmp_path / p / "builtin")]
             for p in ("oracle", "random")}
    assert goals["oracle"] == goals["random"] == res["tasks"]["builtin"]
    assert len(set(goals["oracle"])) > 1 and all(g.startswith("Buy a") for g in goals["oracle"])
    # task by task, in the same order for both: the paired difference is the success gap
    from simpersona_env.evaluation.goal import paired_difference

    per = {p: res["policies"][p]["all"]["per_task"] for p in ("oracle", "random")}
    assert per["oracle"]["success"] == [1.0] * 4 and len(per["random"]["success"]) == 4
    d = paired_difference(per["oracle"]["success"], per["random"]["success"], bootstrap=50)
    assert d["value"] == pytest.approx(1.0 - res["policies"]["random"]["all"]["success"]["value"])
    assert d["n"] == 4 and d["lo"] <= d["value"] <= d["hi"]
    # the benchmark's own contrast (the first policy against the other) is that difference
    assert [(c["a"], c["b"], c["n"]) for c in res["paired"]] == [("oracle", "random", 4)]
    assert res["paired"][0]["success"] == d  # same tasks, same bootstrap
    from simpersona_env.evaluation.report import headline, write_report

    assert any("oracle - random on the same 4 tasks" in line for line in headline({}, res))
    md = write_report(None, tmp_path / "report", goal=res)["md"].read_text()
    assert "Paired over the same tasks" in md
    with pytest.raises(ConfigError, match="same tasks"):
        paired_difference([1.0], [1.0, 0.0])
    with pytest.raises(ConfigError, match=r"contrasts: \['nope'\]"):
        goal_benchmark({"oracle": "oracle"}, out_dir=tmp_path, contrasts=[["oracle", "nope"]])


@pytest.mark.data
def test_goal_benchmark_on_the_real_catalogs(tmp_path):
    from simpersona_env.evaluation.goal import goal_benchmark
    from storefront_mock.canonical import default_data_dir

    if not (default_data_dir() / "catalogs" / "flipkart-1050.csv").exists():
        pytest.skip(f"real catalogs absent from {default_data_dir()} (set SIMPERSONA_DATA_DIR)")
    res = goal_benchmark({"oracle": "oracle"}, out_dir=tmp_path, catalogs=["flipkart", "amazon"],
                         n_tasks=3, bootstrap=50, progress=False)
    assert res["catalogs"] == ["flipkart", "amazon"] and not res["skipped"]
    for cat in ("flipkart", "amazon"):
        assert res["policies"]["oracle"][cat]["success"]["value"] == 1.0


def test_goal_benchmark_skips_a_catalog_without_its_data(tmp_path):
    from simpersona_env.errors import UnknownNameError
    from simpersona_env.evaluation.goal import goal_benchmark

    res = goal_benchmark({"oracle": "oracle"}, out_dir=tmp_path, catalogs=["builtin", "amazon"],
                         n_tasks=2, data_dir=str(tmp_path / "no-data"), progress=False,
                         bootstrap=20)
    assert res["catalogs"] == ["builtin"] and "amazon" in res["skipped"]
    with pytest.raises(UnknownNameError, match="catalog"):
        goal_benchmark({"oracle": "oracle"}, out_dir=tmp_path, catalogs=["amazn"], n_tasks=1,
                       progress=False)


@pytest.mark.slow
def test_evaluate_commands_on_generated_data(tmp_path):
    from simpersona_env.cli import main

    tiny = [f"model.{k}={v}" for k, v in TINY.items()]
    out = tmp_path / "eval"
    assert main(["evaluate", "real=synthetic", "synthetic.buyers=500", "synthetic.merchants=4",
                 *tiny, "train.epochs_pretrain=1", "train.epochs=2", "train.progress=false",
                 "eval=rule_based", "n_buyers=8", "min_buyers=5", "bootstrap=40",
                 "ab=false", "goal=true", "goal_benchmark.catalogs=[builtin]",
                 "goal_benchmark.n_tasks=2", f"out_dir={out}", "progress=false"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert "rule_based" in doc["population"]["policies"]
    assert doc["goal"]["policies"]["oracle"]["builtin"]["success"]["value"] == 1.0
    assert (out / "personas" / "model" / "personas.safetensors").exists()
    goal_out = tmp_path / "goal"
    assert main(["evaluate", "goal", "catalogs=[builtin]", "n_tasks=2", f"out_dir={goal_out}",
                 "progress=false", "bootstrap=20"]) == 0
    assert (goal_out / "goal_success.png").exists() and (goal_out / "report.md").exists()
    assert main(["evaluate", "real=/nonexistent/ingest", f"out_dir={out}"]) == 2


@pytest.mark.data
@pytest.mark.slow
def test_evaluate_population_on_rees46(tmp_path):
    """The real REES46 sample: ingest, a tiny VQ-VAE on the training merchants, the rule-based
    typed buyer on the held-out ones, measured like the real log (product events only)."""
    from simpersona_env.evaluation.population import evaluate_population, pick_heldout_merchants
    from simpersona_env.ingest import builtin_mapping, ingest
    from simpersona_env.personas.data import load_buyers
    from simpersona_env.personas.model import PersonaVQVAEConfig
    from simpersona_env.personas.train import TrainConfig, train_personas
    from storefront_mock.canonical import default_data_dir

    if not (default_data_dir() / "rees46").is_dir():
        pytest.skip(f"REES46 sample absent from {default_data_dir()} (set SIMPERSONA_DATA_DIR)")
    out = ingest(builtin_mapping("rees46"), tmp_path / "ingest", bootstrap=50).out_dir
    buyers = load_buyers(str(out))
    held = pick_heldout_merchants(sorted(buyers["merchant_id"].unique()), fraction=0.5)
    train = buyers.filter(~pl.col("merchant_id").is_in(held) & (pl.col("split") == "train"))
    typer = train_personas(train, PersonaVQVAEConfig(**TINY),
                           TrainConfig(epochs_pretrain=1, epochs=2, progress=False))
    res = evaluate_population(out, typer, {"rule_based": RULE_BASED}, out_dir=tmp_path / "ev",
                              buyers=buyers, merchants=held, n_buyers=40, min_buyers=10,
                              bootstrap=50, ab=False, progress=False)
    proto = res["protocol"]
    assert proto["observed_event_types"] == ["add_to_cart", "product_view", "purchase"]
    assert proto["stages"] == ["product_view", "add_to_cart", "purchase"]
    assert "electronics" in proto["heldout_merchants"]
    assert not set(proto["heldout_merchants"]) & set(proto["training_merchants"])
    p = res["policies"]["rule_based"]
    # every measured simulated buyer viewed a product, as every real buyer did
    assert p["funnel"]["product_view"]["alignment"]["value"] == 1.0
    real_cr = res["merchants"]["electronics"]["real"]["conversion_rate"]["value"]
    assert 0.02 < real_cr < 0.12  # about 6% in the sample's README
