"""Cart, checkout and orders; visitors kept apart; the event log of a visit, row by row."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import httpx
import pyarrow.parquet as pq
import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from storefront_mock import EventLog, StorefrontError, create_app, serve
from storefront_mock.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA

CHECKOUT = {"email": "ann@example.com", "name": "Ann Lee", "address": "1 Main Street",
            "city": "Springfield", "postcode": "12345", "country": "US"}


def errors(html: str) -> dict[str, str]:
    nodes = HTMLParser(html).css("[data-sp-error]")
    return {n.attributes["data-sp-error"]: n.text() for n in nodes}


def value_of(html: str, sp_id: str) -> str | None:
    node = HTMLParser(html).css_first(f'[data-sp-id="{sp_id}"]')
    if node is None:
        return None
    if node.tag == "select":
        chosen = node.css_first("option[selected]")
        return chosen.attributes.get("value") if chosen else ""
    return node.attributes.get("value")


def cart_lines(app, store_id: str, visitor: str) -> dict[str, int]:
    shop = app.state.shop
    return {k: ln.quantity for k, ln in shop.visitors[visitor].carts.get(store_id, {}).items()}


def test_cart_add_update_remove_with_options(client, app, builtin_stores):
    cat = builtin_stores[0].catalog
    s = "/s/builtin"
    p = next(p for p in cat.products if len(p.options) == 2 and
             all(len(v) > 1 for v in p.options.values()))
    (o1, v1), (o2, v2) = [(k, v) for k, v in p.options.items()]
    form = {"product_id": p.product_id, f"option-{o1.lower()}": v1[1],
            f"option-{o2.lower()}": v2[0], "quantity": "2"}
    client.post(f"{s}/cart/add", data=form)
    client.post(f"{s}/cart/add", data={**form, "quantity": "3"})  # same line: merged
    client.post(f"{s}/cart/add", data={**form, f"option-{o1.lower()}": v1[0]})  # another line
    visitor = client.cookies["sp_visitor"]
    line_a = f"{p.product_id}-{v1[1].lower()}-{v2[0].lower()}".replace(" ", "-")
    line_b = f"{p.product_id}-{v1[0].lower()}-{v2[0].lower()}".replace(" ", "-")
    assert cart_lines(app, "builtin", visitor) == {line_a: 5, line_b: 2}
    html = client.get(f"{s}/cart").text
    assert value_of(html, f"cart-qty-{line_a}") == "5"
    assert "Cart (7)" in html
    client.post(f"{s}/cart/update", data={"line": line_a, "quantity": "1"})
    client.post(f"{s}/cart/remove", data={"line": line_b})
    assert cart_lines(app, "builtin", visitor) == {line_a: 1}
    client.post(f"{s}/cart/update", data={"line": line_a, "quantity": "0"})
    html = client.get(f"{s}/cart").text
    assert cart_lines(app, "builtin", visitor) == {} and "Your cart is empty." in html


def test_bad_cart_input_is_shown_on_the_page_and_loses_nothing(client, app, builtin_stores):
    cat = builtin_stores[0].catalog
    s = "/s/builtin"
    p = next(p for p in cat.products if "Size" in p.options)
    r = client.post(f"{s}/cart/add", data={"product_id": p.product_id, "option-size": "XXXL",
                                           "quantity": "many"})
    assert set(errors(r.text)) == {"option-size", "quantity"}
    assert value_of(r.text, "quantity") == "many"  # what was typed stays
    assert cart_lines(app, "builtin", client.cookies["sp_visitor"]) == {}
    assert errors(client.get(f"{s}/products/{p.product_id}").text) == {}  # shown once
    client.post(f"{s}/cart/add", data={"product_id": p.product_id})
    line = next(iter(cart_lines(app, "builtin", client.cookies["sp_visitor"])))
    r = client.post(f"{s}/cart/update", data={"line": line, "quantity": "-3"})
    assert set(errors(r.text)) == {f"cart-qty-{line}"}
    assert cart_lines(app, "builtin", client.cookies["sp_visitor"]) == {line: 1}
    r = client.post(f"{s}/cart/add", data={"product_id": "no-such-product"})
    assert r.status_code == 404


def test_checkout_invalid_then_valid(client, app, builtin_stores, make_client):
    cat = builtin_stores[0].catalog
    s = "/s/builtin"
    a, b = [p for p in cat.products if not p.options][:1] + [cat.products[0]]
    empty = client.get(f"{s}/checkout").text
    assert "Your cart is empty." in empty and value_of(empty, "place-order") is None
    client.post(f"{s}/cart/add", data={"product_id": a.product_id, "quantity": "2"})
    client.post(f"{s}/cart/add", data={"product_id": b.product_id})
    typed = {**CHECKOUT, "email": "ann@", "postcode": "!", "country": ""}
    r = client.post(f"{s}/checkout", data=typed)
    assert str(r.url).endswith("/checkout")
    assert set(errors(r.text)) == {"form", "email", "postcode", "country"}
    assert value_of(r.text, "field-email") == "ann@"
    assert value_of(r.text, "field-name") == "Ann Lee"  # valid fields kept too
    assert value_of(r.text, "field-country") == ""
    assert not app.state.shop.orders
    r = client.post(f"{s}/checkout", data=CHECKOUT)
    assert HTMLParser(r.text).css_first("body").attributes["data-sp-page"] == "order"
    (order,) = app.state.shop.orders.values()
    total = round(2 * a.price + b.price, 2)
    assert order.store_id == "builtin" and order.visitor_id == client.cookies["sp_visitor"]
    assert order.lines[0] == (a.product_id, {}, 2, a.price)
    assert order.lines[1][0] == b.product_id and order.total == total
    assert order.contact == CHECKOUT
    assert order.order_id in r.text and f"{total:,.2f}" in r.text
    assert cart_lines(app, "builtin", order.visitor_id) == {}
    # another visitor cannot see this order
    other = make_client(app)
    assert other.get(f"{s}/orders/{order.order_id}").status_code == 404


def test_order_ids_are_reproducible_for_a_chosen_visitor(builtin_stores, make_client):
    seen = []
    for _ in range(2):
        app = create_app(builtin_stores)
        c = make_client(app, visitor="buyer-42")
        c.post("/s/builtin/cart/add", data={"product_id": builtin_stores[0].catalog.products[1]
                                            .product_id})
        r = c.post("/s/builtin/checkout", data=CHECKOUT)
        seen.append(str(r.url))
    assert seen[0] == seen[1] and "/orders/" in seen[0]


def test_concurrent_visitors_never_share_carts(builtin_stores):
    # One app served by uvicorn in a thread and called in process at the same time:
    # 12 socket visitors + 4 in-process visitors, each adding its own product.
    app = create_app(builtin_stores)
    products = builtin_stores[0].catalog.products[:16]
    failures = []

    def shop(i, client):
        try:
            p = products[i]
            for _ in range(3):
                client.get("/s/builtin/")
                client.get(f"/s/builtin/products/{p.product_id}")
            client.post("/s/builtin/cart/add", data={"product_id": p.product_id,
                                                      "quantity": str(i + 1)})
            html = client.get("/s/builtin/cart").text
            shown = [n.attributes["data-sp-id"] for n in
                     HTMLParser(html).css('[data-sp-id^="cart-item-"]')]
            assert len(shown) == 1 and shown[0].startswith(f"cart-item-{p.product_id}")
            assert f"Cart ({i + 1})" in html
        except Exception as exc:  # surfaced below, with the visitor
            failures.append((i, repr(exc)))

    with serve(app) as server:
        from starlette.testclient import TestClient

        clients = [httpx.Client(base_url=server.url, follow_redirects=True) for _ in range(12)]
        clients += [TestClient(app, base_url="http://shop.test") for _ in range(4)]
        threads = [threading.Thread(target=shop, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
    assert not failures
    rows = app.state.shop.event_log.rows()
    adds = [r for r in rows if r["event"] == "add_to_cart"]
    assert len(adds) == 16 and len({r["buyer_id"] for r in adds}) == 16
    assert sum(r["event"] == "product_view" for r in rows) == 48
    # 3 home pages, the cart the add redirects to, the cart page: 5 each
    assert sum(r["event"] == "page_view" for r in rows) == 16 * 5


def test_scripted_visit_gives_exactly_the_expected_rows(builtin_stores, make_client, step_clock):
    clock = step_clock(step=60.0)
    app = create_app(builtin_stores, session_timeout_s=1800, clock=clock)
    c = make_client(app, visitor="v1")
    cat = builtin_stores[0].catalog
    p = next(p for p in cat.products if "Size" in p.options)
    coll = cat.collection("shoes")
    c.get("/s/builtin/")                                                     # 0 page_view
    c.get("/s/builtin/collections/shoes?sort=price-asc")                     # 1 collection_view
    c.get("/s/builtin/search?q=  Running Shoes ")                            # 2 search
    c.get(f"/s/builtin/products/{p.product_id}")                             # 3 product_view
    c.post("/s/builtin/cart/add", data={"product_id": p.product_id, "quantity": "x"})
    #                                      4 rejected: no row; 303 -> 5 product_view
    c.post("/s/builtin/cart/add", data={"product_id": p.product_id, "quantity": "2"})
    #                                      6 add_to_cart; 303 -> 7 cart page_view
    line = next(iter(cart_lines(app, "builtin", "v1")))
    c.post("/s/builtin/cart/update", data={"line": line, "quantity": "3"})   # 8 add, 9 page
    c.get("/s/builtin/checkout")                                             # 10 checkout_start
    c.post("/s/builtin/checkout", data={**CHECKOUT, "email": "no"})          # 11 -, 12 page_view
    clock.offset = 3600.0  # an hour idle: a new session starts
    c.post("/s/builtin/checkout", data=CHECKOUT)                             # 13 purchase, 14 page
    c.get("/s/builtin/search?q=")                                            # 15 page_view

    t0 = clock.start
    def ts(i, offset=0.0):
        return datetime.fromtimestamp(t0 + offset + 60.0 * i, timezone.utc)

    prod = {"product_id": p.product_id, "category": p.category_path, "brand": p.brand,
            "price": p.price}
    empty = {"product_id": None, "category": None, "brand": None, "price": None, "query": None}
    def row(i, event, session="v1-1", offset=0.0, **kw):
        return {"merchant_id": "builtin", "buyer_id": "v1", "session_id": session,
                "ts": ts(i, offset), "event": event, **empty, **kw, "source": "storefront"}

    expected = [
        row(0, "page_view"),
        row(1, "collection_view", category=coll.category_path),
        row(2, "search", query="Running Shoes"),
        row(3, "product_view", **prod),
        row(5, "product_view", **prod),
        row(6, "add_to_cart", **prod),
        row(7, "page_view"),
        row(8, "add_to_cart", **prod),
        row(9, "page_view"),
        row(10, "checkout_start"),
        row(12, "page_view"),
        row(13, "purchase", "v1-2", 3600.0, **prod),
        row(14, "page_view", "v1-2", 3600.0),
        row(15, "page_view", "v1-2", 3600.0),
    ]
    rows = app.state.shop.event_log.rows()
    assert rows == expected
    assert coll.category_path == "shoes" and "." in p.category_path


def test_event_log_writes_the_canonical_schema(tmp_path, builtin_stores, make_client):
    log = EventLog(stream_to=tmp_path / "live.jsonl")
    app = create_app(builtin_stores, event_log=log)
    c = make_client(app, visitor="w")
    c.get("/s/builtin/search?q=mug")
    c.get(f"/s/builtin/products/{builtin_stores[0].catalog.products[0].product_id}")
    live = [json.loads(x) for x in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert [r["event"] for r in live] == ["search", "product_view"]  # streamed as it came
    assert list(live[0]) == list(CANONICAL_COLUMNS) and live[0]["ts"].endswith("Z")
    table = log.to_arrow()
    assert table.schema.equals(CANONICAL_SCHEMA) and table.num_rows == 2
    back = pq.read_table(log.write(tmp_path / "log.parquet"))
    assert back.schema.equals(CANONICAL_SCHEMA) and back.to_pylist() == log.rows()
    lines = log.write_jsonl(tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == live
    assert log.rows(1) == log.rows()[1:] and len(log.rows(buyer_id="nobody")) == 0
    with pytest.raises(StorefrontError, match="jsonl or .parquet"):
        log.write(tmp_path / "log.csv")
    with pytest.raises(StorefrontError, match="unknown event type"):
        log.append(merchant_id="m", buyer_id="b", session_id="s", ts=datetime.now(timezone.utc),
                   event="click")
    log.close()


def test_real_server_on_loopback(builtin_stores):
    with serve(builtin_stores) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        with httpx.Client(base_url=server.url, follow_redirects=True) as c:
            r = c.get("/s/builtin/")
            assert r.status_code == 200 and 'data-sp-page="home"' in r.text
            assert "sp_visitor" in r.cookies
            r = c.post("/s/builtin/cart/add",
                       data={"product_id": builtin_stores[0].catalog.products[3].product_id})
            assert r.status_code == 200 and 'data-sp-page="cart"' in r.text
        assert len(server.shop.event_log) == 3
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    with serve(builtin_stores) as first, pytest.raises(StorefrontError, match="cannot listen"):
        serve(builtin_stores, port=first.port)


def test_create_app_rejects_bad_store_lists(builtin_stores):
    with pytest.raises(StorefrontError, match="at least one store"):
        create_app([])
    with pytest.raises(StorefrontError, match="two stores with id 'builtin'"):
        create_app(builtin_stores * 2)


def test_event_log_in_constant_memory_and_a_datetime_clock(tmp_path, builtin_stores,
                                                             make_client):
    with pytest.raises(StorefrontError, match="stream_to"):
        EventLog(keep_rows=False)
    log = EventLog(stream_to=tmp_path / "e.jsonl", keep_rows=False)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    app = create_app(builtin_stores, event_log=log, clock=lambda: when)
    c = make_client(app, visitor="m")
    for _ in range(3):
        c.get("/s/builtin/")
    assert len(log) == 3 and log.rows() == []
    rows = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [r["ts"] for r in rows] == ["2026-03-01T12:00:00Z"] * 3
    log.close()
