"""The replay of real sessions as storefront traces: hand-written sessions (no data), the CLI
end to end on a generated log, and a hand-checked real REES46 session (data marker)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from agents.replay import REASONS, Coverage, Replayer, checkout_details, hindsight_goal
from agents.traces import read_episodes
from simpersona_env.errors import ConfigError, DataError
from storefront_mock.canonical import CANONICAL_SCHEMA, default_data_dir

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
# the merchant's products: (id, category, brand, price)
PRODUCTS = [("101", "shoes.running", "acme", 50.0), ("102", "shoes.running", "acme", 60.0),
            ("103", "shoes.sandals", "zeta", 20.0), ("104", "bags", "zeta", 30.0),
            ("105", None, "acme", None)]


def _row(event, i, *, pid=None, query=None, category=None, buyer="b1", session="s1",
         merchant="shop"):
    meta = {p[0]: p for p in PRODUCTS}.get(pid)
    return {"merchant_id": merchant, "buyer_id": buyer, "session_id": session,
            "ts": T0 + timedelta(seconds=10 * i), "event": event, "product_id": pid,
            "category": meta[1] if meta else category, "brand": meta[2] if meta else None,
            "price": meta[3] if meta else None, "query": query, "source": "test"}


def _log(rows):
    return pl.DataFrame(rows, schema=pl.Schema(CANONICAL_SCHEMA))


def _catalog_log():
    # the catalog: every product seen once by another buyer, and ten more popular ones (seen
    # three times) that fill the home page's featured row, so reaching ours takes a route
    rows = [_row("product_view", i, pid=p[0], buyer="other", session="o1")
            for i, p in enumerate(PRODUCTS)]
    rows += [{**_row("product_view", 9, buyer="other", session="o1"), "product_id": f"2{i:02d}",
              "category": "misc", "brand": "other", "price": 5.0 + i}
             for i in range(10) for _ in range(3)]
    return _log(rows)


@pytest.fixture(scope="module")
def replayer():
    r = Replayer(_catalog_log())
    yield r
    r.close()


def _actions(result):
    return [[s.action for s in ep.steps] for ep in result.episodes]


def test_every_event_type_is_replayed_and_found_in_the_shop_log(replayer):
    rows = [_row("page_view", 0), _row("search", 1, query="acme running"),
            _row("collection_view", 2, category="shoes.running"),
            _row("product_view", 3, pid="101"), _row("add_to_cart", 4, pid="101"),
            _row("product_view", 5, pid="102"), _row("add_to_cart", 6, pid="102"),
            _row("remove_from_cart", 7, pid="102"), _row("checkout_start", 8),
            _row("purchase", 9, pid="101"), _row("product_view", 10, pid="104")]
    res = replayer.replay(rows)
    assert res.outcomes == [""] * len(rows), (res.outcomes, res.errors)
    details, country = checkout_details("b1")
    # checked by hand against docs/storefront.md: the home link, the search box, the nav to
    # the top collection then its sub-collection, the listing's product links; after an add
    # the shop shows the cart, which does not link 102, so a search for its brand and type;
    # the cart's line buttons, the checkout form; the purchase ends the episode, the next
    # view starts a new one (a new visitor on the home page) that ends with stop
    assert _actions(res) == [
        ["click[nav-home]", "search[acme running]", "click[nav-collection-shoes]",
         "click[collection-shoes-running]", "click[product-101]", "click[add-to-cart]",
         "search[acme Running]", "click[product-102]", "click[add-to-cart]",
         "click[cart-remove-102]", "click[checkout]",
         *[f"type[{k}][{v}]" for k, v in details.items()],
         f"select[field-country][{country}]", "click[place-order]"],
        ["search[zeta Bags]", "click[product-104]", "stop"]]
    cov = res.coverage
    assert (cov.events, cov.reproduced, cov.share, cov.episodes) == (11, 11, 1.0, 2)
    assert cov.by_event == cov.reproduced_by_event
    # the navigation added events the real log does not have; they are counted, by type
    assert cov.inserted["collection_view"] == 1 and cov.inserted["search"] == 2
    # the first episode bought: a hindsight goal in the goal task's form, seen in every step
    goal = hindsight_goal(replayer.stores["shop"].catalog.by_id["101"], "s1")
    assert res.episodes[0].goal == goal["instruction"] == "Buy a running, price lower than 50.00."
    assert {s.observation["goal"] for s in res.episodes[0].steps} == {goal["instruction"]}
    assert res.episodes[1].goal == ""
    # the shop's log has the real timestamps (its clock follows the replayed events)
    purchase = [r for r in res.shop_events if r["event"] == "purchase"]
    assert purchase[0]["ts"] == rows[9]["ts"]


def test_purchase_without_a_cart_event_adds_to_cart_first(replayer):
    rows = [_row("product_view", 0, pid="103"), _row("purchase", 1, pid="103")]
    res = replayer.replay(rows, persona=2)
    assert res.outcomes == ["", ""]
    steps = res.episodes[0].steps
    actions = [s.action for s in steps]
    assert actions[:4] == ["search[zeta Sandals]", "click[product-103]", "click[add-to-cart]",
                           "click[checkout]"]
    assert actions[-1] == "click[place-order]" and len(res.episodes) == 1
    assert res.coverage.inserted["add_to_cart"] == 1
    assert {s.observation["persona"] for s in steps} == {2} and res.episodes[0].persona == 2


def test_a_purchase_drops_what_was_carted_but_not_bought(replayer):
    rows = [_row("add_to_cart", 0, pid="101"), _row("add_to_cart", 1, pid="104"),
            _row("purchase", 2, pid="104")]
    res = replayer.replay(rows)
    assert res.outcomes == ["", "", ""]
    assert "click[cart-remove-101]" in _actions(res)[0]
    assert [r["product_id"] for r in res.shop_events if r["event"] == "purchase"] == ["104"]


def test_unreproducible_events_are_counted_by_reason(replayer):
    rows = [_row("product_view", 0, pid="999"), _row("product_view", 1, pid="101"),
            _row("favourite", 2, pid="101"), _row("collection_view", 3,
                                                    category="shoes.running.trail"),
            _row("product_view", 4), _row("checkout_start", 5), _row("search", 6, query=" ")]
    res = replayer.replay(rows)
    assert res.outcomes == ["product_not_in_catalog", "", "no_favourite_action",
                            "collection_not_in_store", "no_product_id",
                            "checkout_with_empty_cart", "empty_query"]
    cov = res.coverage
    assert (cov.events, cov.reproduced) == (7, 1)
    assert cov.share == pytest.approx(1 / 7)
    assert cov.reasons == {r: 1 for r in res.outcomes if r}
    assert set(cov.reasons) <= set(REASONS)
    assert _actions(res) == [["search[acme Running]", "click[product-101]", "stop"]]


def test_coverage_adds_up_over_sessions(replayer):
    a = replayer.replay([_row("product_view", 0, pid="101")])
    b = replayer.replay([_row("product_view", 0, pid="999", session="s2")])
    total = a.coverage + b.coverage
    assert (total.sessions, total.events, total.reproduced) == (2, 2, 1)
    d = total.to_dict()
    assert d["coverage"] == 0.5
    assert d["by_event"]["product_view"] == {"events": 2, "reproduced": 1, "coverage": 0.5}
    assert d["not_reproduced_by_reason"] == {"product_not_in_catalog": 1}
    assert Coverage().share == 1.0


def test_a_product_without_category_or_price_is_reached_and_bought_without_a_goal(replayer):
    res = replayer.replay([_row("product_view", 0, pid="105"), _row("purchase", 1, pid="105")])
    assert res.outcomes == ["", ""]
    assert res.episodes[0].goal == ""  # no category, so no product type to ask for
    assert res.coverage.goals_missing == 1


def test_a_product_without_price_gets_a_goal_without_a_price_limit():
    from storefront_mock.catalog import Product

    p = Product(product_id="9", title="acme running shoe", brand="acme", category=("shoes",),
                price=None, list_price=None, description="", attributes={"Colour": "red"},
                options={}, rating=None, product_type="running shoe")
    goal = hindsight_goal(p, "s9")
    assert goal is not None and goal["max_price"] is None
    assert goal["instruction"] == "Buy a running shoe with colour: red."


def test_many_collections_are_reached_through_the_collections_index():
    # a log keyed by many categories (as Taobao's category ids): the header links only the
    # largest, the rest are on the paginated collections index
    rows = [{**_row("product_view", 0, buyer="other", session="o1"), "product_id": f"p{i}",
             "category": f"cat{i:03d}", "brand": "b", "price": 1.0 + i} for i in range(60)]
    r = Replayer(_log(rows))
    try:
        target = [_row("collection_view", 1, category="cat059", buyer="b9", session="s9")]
        res = r.replay(target)
        assert res.outcomes == [""], res.errors
        actions = _actions(res)[0]
        assert "click[nav-collections]" in actions and "click[page-next]" in actions
        assert actions[-2] == "click[collection-cat059]"
    finally:
        r.close()


def test_step_cap_cuts_and_counts():
    rows = [_row("product_view", i, pid=PRODUCTS[i % 4][0]) for i in range(8)]
    r = Replayer(_log(rows), max_steps=5)
    res = r.replay(rows)
    assert res.coverage.cut_sessions == 1
    assert res.coverage.reasons["step_cap"] == res.outcomes.count("step_cap") > 0
    assert len(res.episodes[0].steps) == 5
    with pytest.raises(ConfigError, match="max_steps"):
        Replayer(_log(rows), max_steps=1)


def test_replay_rejects_mixed_sessions(replayer):
    with pytest.raises(DataError, match="one session"):
        replayer.replay([_row("page_view", 0), _row("page_view", 1, session="s2")])
    with pytest.raises(DataError):
        replayer.replay([])


def test_traces_command_end_to_end_on_a_generated_log(tmp_path):
    from simpersona_env.cli import main
    from simpersona_env.synthetic import generate_events

    log = generate_events(40, n_merchants=2, seed=3).events
    log.write_parquet(tmp_path / "events.parquet")
    buyers = log.select("merchant_id", "buyer_id").unique().sort("buyer_id")
    types = buyers.with_columns((pl.int_range(pl.len()) % 3).cast(pl.Int32).alias("type"))
    types.write_parquet(tmp_path / "types.parquet")
    out = tmp_path / "out"
    code = main(["traces", f"events={tmp_path / 'events.parquet'}",
                 f"persona_types={tmp_path / 'types.parquet'}", f"out_dir={out}",
                 "max_sessions=25", "progress=false"])
    assert code == 0
    report = json.loads((out / "coverage.json").read_text())
    total = report["total"]
    assert total["sessions"] == 25 and report["num_personas"] == 3
    assert total["coverage"] >= 0.95
    assert total["reproduced"] == sum(v["reproduced"] for v in total["by_event"].values())
    assert total["events"] - total["reproduced"] == sum(
        total["not_reproduced_by_reason"].values())
    eps = read_episodes(out / "traces.jsonl")
    assert len(eps) == total["episodes"] == report["episodes_written"]
    want = {(m, b): t for m, b, t in types.iter_rows()}
    merchants = set(log["merchant_id"].unique())
    assert {e.merchant_id for e in eps} <= merchants
    assert {e.persona for e in eps} <= {0, 1, 2} and set(want.values()) >= {e.persona
                                                                           for e in eps}
    assert all(e.steps and e.steps[0].observation["persona"] == e.persona for e in eps)
    assert (out / "coverage.png").stat().st_size > 1000
    # bad input: a missing assignment is a clear error, not a traceback
    assert main(["traces", f"events={tmp_path / 'events.parquet'}", "persona_types=nope.parquet",
                 f"out_dir={out}", "progress=false"]) == 2


# ---- a real session, checked by hand ------------------------------------------------------

REAL_SESSION = "895aed80-ccdc-4861-a23a-5514333db7fe"  # REES46 2019-Oct sample, electronics
REAL_ACTIONS = [
    # view 1004934 (vivo smartphone): a search for brand and type lists it on page 1
    "search[vivo Smartphone]", "click[product-1004934]",
    # view 1004838 (oppo): a new search
    "search[oppo Smartphone]", "click[product-1004838]",
    # view 1004990 (oppo): the same results list it; back to them
    "back", "click[product-1004990]",
    # view 1004708 (huawei), add to cart (the shop then shows the cart), purchase
    "search[huawei Smartphone]", "click[product-1004708]", "click[add-to-cart]",
    "click[checkout]", "type[field-email][taylor.novak791@example.com]",
    "type[field-name][Taylor Novak]", "type[field-address][143 Lake View]",
    "type[field-city][Perth]", "type[field-postcode][91659]",
    "select[field-country][Australia]", "click[place-order]"]


@pytest.mark.data
def test_a_real_rees46_session_is_reproduced_exactly(tmp_path):
    from simpersona_env.ingest import builtin_mapping, ingest, read_events

    if not (default_data_dir() / "rees46/2019-Oct-sample.csv").exists():
        pytest.skip(f"REES46 sample not found under {default_data_dir()} "
                    "(set SIMPERSONA_DATA_DIR)")
    res = ingest(builtin_mapping("rees46"), tmp_path / "rees46", buyers=False, bootstrap=10)
    events = read_events(res.out_dir).filter(pl.col("merchant_id") == "electronics").collect()
    session = events.filter(pl.col("session_id") == REAL_SESSION).sort("ts")
    assert session["event"].to_list() == ["product_view"] * 4 + ["add_to_cart", "purchase"]
    r = Replayer(events)
    out = r.replay(session.to_dicts())
    assert out.outcomes == [""] * 6
    assert len(out.episodes) == 1
    assert [s.action for s in out.episodes[0].steps] == REAL_ACTIONS
    assert out.episodes[0].goal == "Buy a smartphone, price lower than 160.00."
    shop = [(e["event"], e["product_id"]) for e in out.shop_events
            if e["event"] in ("product_view", "add_to_cart", "purchase")]
    assert shop == list(zip(session["event"], session["product_id"], strict=True))


def test_replay_is_deterministic_and_the_traces_are_what_the_env_shows(replayer):
    rows = [_row("product_view", 0, pid="103"), _row("add_to_cart", 1, pid="103"),
            _row("purchase", 2, pid="103"), _row("product_view", 3, pid="101")]
    first = replayer.replay(rows)
    again = Replayer(_catalog_log())
    second = again.replay(rows)
    assert [e.to_dict() for e in first.episodes] == [e.to_dict() for e in second.episodes]
    # stepping the recorded actions in the env again shows the recorded observations (another
    # visitor, so only an order page, whose id derives from the visitor, may differ)
    env = again.env("shop")
    for ep in first.episodes:
        obs, _ = env.reset(seed=0, options={"persona": ep.persona, "goal": ep.goal or None})
        for step in ep.steps:
            if "/orders/" not in step.observation["url"]:
                assert {k: obs[k] for k in step.observation} == step.observation
            obs, *_ = env.step(step.action)


def test_persona_assignment_errors_are_clear(tmp_path):
    from agents.commands_traces import load_personas

    with pytest.raises(DataError, match="personas assign"):
        load_personas(tmp_path / "missing.parquet")
    pl.DataFrame({"buyer_id": ["a"], "kind": [1]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="type"):
        load_personas(tmp_path / "bad.parquet")
    pl.DataFrame({"buyer_id": ["a", "b"], "type": [0, 4]}).write_parquet(tmp_path / "ok.parquet")
    table, k = load_personas(tmp_path / "ok.parquet")
    assert table == {("", "a"): 0, ("", "b"): 4} and k == 5
