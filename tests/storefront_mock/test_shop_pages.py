"""Every page of the shop renders to the page contract (docs/storefront.md), in both themes."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from storefront_mock import THEMES, create_app, make_stores

CHECKOUT = {"email": "ann@example.com", "name": "Ann Lee", "address": "1 Main Street",
            "city": "Springfield", "postcode": "12345", "country": "US"}


def ids(html: str) -> list[str]:
    return [n.attributes["data-sp-id"] for n in HTMLParser(html).css("[data-sp-id]")]


def page_kind(html: str) -> str:
    return HTMLParser(html).css_first("body").attributes["data-sp-page"]


def errors(html: str) -> dict[str, str]:
    nodes = HTMLParser(html).css("[data-sp-error]")
    return {n.attributes["data-sp-error"]: n.text() for n in nodes}


def _product_with_options(catalog):
    return next(p for p in catalog.products if len(p.options) == 2)


def _visit_every_page(client, store, product):
    """(path, html) of every page kind, driving a visit from home to the order page."""
    s = f"/s/{store.store_id}"
    coll = store.catalog.top_collections[0]
    pages = [("stores", client.get("/")), ("home", client.get(f"{s}/")),
             ("collection", client.get(f"{s}/collections/{coll.slug}")),
             ("collection", client.get(f"{s}/collections/{coll.slug}?page=2&sort=price-asc")),
             ("search", client.get(f"{s}/search?q=shoes")),
             ("search", client.get(f"{s}/search?q=zzzqqq")),
             ("search", client.get(f"{s}/search?q=")),
             ("product", client.get(f"{s}/products/{product.product_id}")),
             ("cart", client.get(f"{s}/cart")),
             ("checkout", client.get(f"{s}/checkout"))]
    form = {"product_id": product.product_id, "quantity": "2"}
    pages.append(("cart", client.post(f"{s}/cart/add", data=form)))
    pages.append(("checkout", client.get(f"{s}/checkout")))
    pages.append(("order", client.post(f"{s}/checkout", data=CHECKOUT)))
    return pages


@pytest.mark.parametrize("theme", THEMES)
def test_every_page_renders_with_its_kind_and_unique_ids(builtin_stores, make_client, theme):
    app = create_app(builtin_stores)
    client = make_client(app)
    store = builtin_stores[0]
    product = _product_with_options(store.catalog)
    client.get(f"/s/{store.store_id}/?theme={theme}")
    for kind, response in _visit_every_page(client, store, product):
        assert response.status_code == 200, (kind, response.url)
        html = response.text
        assert page_kind(html) == kind, response.url
        found = ids(html)
        dupes = [i for i, n in Counter(found).items() if n > 1]
        assert not dupes, (response.url, dupes)
        assert "<script" not in html.lower()  # the no-JavaScript contract
        if kind != "stores":
            body = HTMLParser(html).css_first("body").attributes
            assert body["data-sp-store"] == store.store_id and body["data-sp-theme"] == theme
            assert {"nav-home", "nav-cart", "search-input", "search-submit"} <= set(found)
            assert any(i.startswith("nav-collection-") for i in found)


def test_contract_ids_on_each_page(client, builtin_stores):
    store = builtin_stores[0]
    cat = store.catalog
    s = f"/s/{store.store_id}"
    home = ids(client.get(f"{s}/").text)
    assert {f"collection-{c.slug}" for c in cat.top_collections} <= set(home)
    assert {f"nav-collection-{c.slug}" for c in cat.top_collections} <= set(home)
    assert {f"product-{p.product_id}" for p in cat.featured(8)} <= set(home)

    coll = max(cat.top_collections, key=lambda c: len(c.product_ids))
    first = ids(client.get(f"{s}/collections/{coll.slug}").text)
    assert {"sort", "filter-brand", "filter-min-price", "filter-max-price", "filter-apply",
            "page-next"} <= set(first)
    assert "page-prev" not in first
    assert sum(i.startswith("product-") for i in first) == 12
    second = ids(client.get(f"{s}/collections/{coll.slug}?page=2").text)
    assert "page-prev" in second

    p = _product_with_options(cat)
    prod = ids(client.get(f"{s}/products/{p.product_id}").text)
    assert {f"option-{n.lower()}" for n in p.options} | {"quantity", "add-to-cart"} <= set(prod)
    assert f"product-{p.product_id}" not in prod  # the product links to others, not itself

    client.post(f"{s}/cart/add", data={"product_id": p.product_id})
    line = f"{p.product_id}-" + "-".join(v[0].lower() for v in p.options.values())
    cart = ids(client.get(f"{s}/cart").text)
    assert {f"cart-qty-{line}", f"cart-update-{line}", f"cart-remove-{line}",
            f"cart-item-{line}", "checkout"} <= set(cart)
    checkout = ids(client.get(f"{s}/checkout").text)
    assert {f"field-{f}" for f in CHECKOUT} | {"place-order"} <= set(checkout)
    order = client.post(f"{s}/checkout", data=CHECKOUT)
    assert "continue-shopping" in ids(order.text)


def test_both_themes_carry_the_same_elements_in_different_layouts(builtin_stores, make_client):
    store = builtin_stores[0]
    product = _product_with_options(store.catalog)
    seen = {}
    for theme in THEMES:
        client = make_client(create_app(builtin_stores), visitor=f"theme-{theme}")
        client.get(f"/s/{store.store_id}/?theme={theme}")
        seen[theme] = [(kind, r.text) for kind, r in _visit_every_page(client, store, product)]
    classic, grid = seen["classic"], seen["grid"]
    assert len(classic) == len(grid)
    for (kind, a), (_, b) in zip(classic, grid):
        if kind == "stores":
            continue
        # same ids, labels and values; another order and markup
        def elements(html):
            return sorted((n.attributes["data-sp-id"], n.text(strip=True),
                           n.attributes.get("value") or "")
                          for n in HTMLParser(html).css("[data-sp-id]"))

        assert elements(a) == elements(b), kind
        assert ids(a) != ids(b) or kind in ("order",), kind
        assert 'class="classic"' in a and 'class="grid"' in b
    # the listing itself differs: rows in a list vs cards in a grid, filters beside vs on top
    coll_a = dict(classic)["collection"]
    coll_b = dict(grid)["collection"]
    assert '<ul class="products">' in coll_a and "<aside>" in coll_a
    assert '<div class="cards">' in coll_b and "<aside>" not in coll_b


def test_theme_query_sets_a_per_store_cookie(client, builtin_stores):
    s = f"/s/{builtin_stores[0].store_id}"
    assert 'class="classic"' in client.get(f"{s}/").text  # the store's default
    r = client.get(f"{s}/?theme=grid")
    assert "sp_theme_builtin=grid" in r.headers["set-cookie"]
    assert 'class="grid"' in client.get(f"{s}/cart").text  # kept without the parameter
    n = len(client.app.state.shop.event_log)
    bad = client.get(f"{s}/?theme=neon")
    assert bad.status_code == 400 and page_kind(bad.text) == "error"
    assert "classic, grid" in bad.text
    assert len(client.app.state.shop.event_log) == n  # a rejected request logs nothing


def test_echoed_input_is_escaped(client, builtin_stores):
    s = f"/s/{builtin_stores[0].store_id}"
    attack = '<script>alert("x")</script>'
    r = client.get(f"{s}/search", params={"q": attack})
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    r = client.get(f"{s}/collections/apparel", params={"brand": attack, "min_price": attack})
    assert "<script>" not in r.text and r.status_code == 200
    p = builtin_stores[0].catalog.products[0]
    client.post(f"{s}/cart/add", data={"product_id": p.product_id})
    r = client.post(f"{s}/checkout", data={**CHECKOUT, "email": attack, "name": attack})
    assert page_kind(r.text) == "checkout" and "<script>" not in r.text
    field = HTMLParser(r.text).css_first('[data-sp-id="field-name"]')
    assert field.attributes["value"] == attack  # kept, and escaped in the markup


def test_search_results_and_empty_results(client, builtin_stores):
    store = builtin_stores[0]
    s = f"/s/{store.store_id}"
    r = client.get(f"{s}/search?q=running+shoes")
    found = [i for i in ids(r.text) if i.startswith("product-")]
    assert found[0] == f"product-{store.catalog.search('running shoes')[0].product_id}"
    empty = client.get(f"{s}/search?q=zzzqqq").text
    assert "No products match “zzzqqq”" in empty
    assert not [i for i in ids(empty) if i.startswith("product-")]
    assert [i for i in ids(empty) if i.startswith("collection-")]  # somewhere to go next
    assert "Type what you are looking for" in client.get(f"{s}/search?q=").text


def test_listing_filters_via_the_url(client, builtin_stores):
    cat = builtin_stores[0].catalog
    s = f"/s/{builtin_stores[0].store_id}"
    coll = cat.collection("apparel")
    brand = cat.listing(coll).brands[0][0]
    html = client.get(f"{s}/collections/apparel", params={"brand": brand}).text
    shown = [i.removeprefix("product-") for i in ids(html) if i.startswith("product-")]
    assert shown and all(cat.by_id[i].brand == brand for i in shown)
    html = client.get(f"{s}/collections/apparel?sort=price-desc&max_price=40").text
    prices = [cat.by_id[i.removeprefix("product-")].price for i in ids(html)
              if i.startswith("product-")]
    assert prices == sorted(prices, reverse=True) and max(prices) <= 40
    bad = client.get(f"{s}/collections/apparel?min_price=abc&sort=weird").text
    assert set(errors(bad)) == {"min_price", "sort"}
    tree = HTMLParser(bad)
    assert tree.css_first('[data-sp-id="sort"] option[selected]').attributes["value"] == \
        "popularity"


def test_unknown_pages_are_404_error_pages(client, builtin_stores):
    s = f"/s/{builtin_stores[0].store_id}"
    for path in ("/s/nope/", f"{s}/products/nope", f"{s}/collections/nope",
                 f"{s}/orders/nope"):
        r = client.get(path)
        assert r.status_code == 404 and page_kind(r.text) == "error", path
        assert "nav-home" in ids(r.text)
    assert client.get(s, follow_redirects=True).status_code == 200  # no trailing slash


def test_posts_answer_303_to_a_get_page(client, builtin_stores):
    store = builtin_stores[0]
    s = f"/s/{store.store_id}"
    p = next(p for p in store.catalog.products if not p.options) if any(
        not p.options for p in store.catalog.products) else store.catalog.products[0]
    cases = [
        (f"{s}/cart/add", {"product_id": p.product_id}, f"{s}/cart"),
        (f"{s}/cart/add", {"product_id": p.product_id, "quantity": "0"},
         f"{s}/products/{p.product_id}"),
        (f"{s}/cart/update", {"line": "nope", "quantity": "1"}, f"{s}/cart"),
        (f"{s}/checkout", {"email": "x"}, f"{s}/checkout"),
    ]
    for path, form, target in cases:
        r = client.post(path, data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == target, path
    r = client.post(f"{s}/checkout", data=CHECKOUT, follow_redirects=False)
    assert r.status_code == 303 and re.fullmatch(rf"{s}/orders/[0-9a-f]{{10}}",
                                                 r.headers["location"])


@pytest.mark.data
def test_real_catalog_pages_render(data_dir, make_client):
    stores = make_stores("flipkart,amazon", data_dir=data_dir)
    client = make_client(create_app(stores))
    for store in stores:
        s = f"/s/{store.store_id}"
        for coll in store.catalog.top_collections:
            r = client.get(f"{s}/collections/{coll.slug}")
            assert r.status_code == 200 and page_kind(r.text) == "collection"
        for p in store.catalog.products[::97]:
            r = client.get(f"{s}/products/{p.product_id}")
            assert r.status_code == 200 and p.title.split()[0] in r.text
        assert "₹" in client.get(f"{s}/").text


def test_a_store_built_from_an_event_log_keeps_missing_values_missing(make_client):
    from datetime import datetime, timezone

    import polars as pl

    from storefront_mock import stores_from_events

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    log = pl.DataFrame({
        "merchant_id": ["m", "m"], "buyer_id": ["b", "b"], "session_id": ["s", "s"],
        "ts": [t, t], "event": ["product_view", "product_view"],
        "product_id": ["1004856", "77"], "category": ["electronics.smartphone", None],
        "brand": ["samsung", None], "price": [125.5, None], "query": [None, None],
        "source": ["rees46", "rees46"]})
    app = create_app(stores_from_events(log))
    c = make_client(app, visitor="x")
    html = c.get("/s/m/products/77").text
    assert "Product 77" in html and "Price unavailable" in html and "Brand:" not in html
    r = c.post("/s/m/cart/add", data={"product_id": "77"})
    assert 'data-sp-id="cart-item-77"' in r.text
    assert 'data-sp-id="collection-electronics"' in c.get("/s/m/").text
    add = app.state.shop.event_log.rows()[1]
    assert add["event"] == "add_to_cart" and add["price"] is None and add["category"] is None


def test_ab_split_assigns_each_visitor_one_theme_stably(make_client):
    stores = make_stores("builtin", n_products=20, theme="ab")
    app = create_app(stores)
    arms = {}
    for i in range(16):
        vid = f"ab-{i}"
        c = make_client(app, visitor=vid)
        seen = {HTMLParser(c.get(path).text).css_first("body").attributes["data-sp-theme"]
                for path in ("/s/builtin/", "/s/builtin/cart", "/s/builtin/search?q=mug")}
        assert seen == {stores[0].theme_for(vid)}
        arms[vid] = seen.pop()
    assert set(arms.values()) == set(THEMES)
    # the assignment is a function of the ids alone: a new app assigns the same
    again = make_stores("builtin", n_products=20, theme="ab")[0]
    assert all(again.theme_for(v) == t for v, t in arms.items())
    # an explicit choice still wins
    c = make_client(app, visitor="ab-0")
    other = next(t for t in THEMES if t != arms["ab-0"])
    assert f'data-sp-theme="{other}"' in c.get(f"/s/builtin/?theme={other}").text
    assert f'data-sp-theme="{other}"' in c.get("/s/builtin/cart").text


def test_a_store_with_many_collections_keeps_its_header_small(make_client):
    from datetime import datetime, timezone

    import polars as pl

    from storefront_mock import stores_from_events
    from storefront_mock.catalog import COLLECTIONS_PER_PAGE, NAV_LIMIT

    n = 100  # one top collection per category, as a log keyed by category ids gives
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    log = pl.DataFrame({
        "merchant_id": ["m"] * n, "buyer_id": ["b"] * n, "session_id": ["s"] * n,
        "ts": [t] * n, "event": ["product_view"] * n, "product_id": [str(i) for i in range(n)],
        "category": [f"c{i:03d}" for i in range(n)], "brand": [None] * n,
        "price": [1.0] * n, "query": [None] * n, "source": ["test"] * n})
    app = create_app(stores_from_events(log))
    c = make_client(app, visitor="x")
    home = c.get("/s/m/").text
    nav = [i for i in ids(home) if i.startswith("nav-collection-")]
    assert len(nav) == NAV_LIMIT and "nav-collections" in ids(home)
    seen, page = [], c.get("/s/m/collections")
    while True:
        assert page_kind(page.text) == "collections"
        seen += [i for i in ids(page.text) if i.startswith("collection-")]
        nxt = HTMLParser(page.text).css_first('[data-sp-id="page-next"]')
        if nxt is None:
            break
        page = c.get(nxt.attributes["href"])
    assert len(seen) == len(set(seen)) == n  # every collection, once, over the pages
    assert -(-n // COLLECTIONS_PER_PAGE) == int(page.url.params.get("page", 1))
    events = [r["event"] for r in app.state.shop.event_log.rows()]
    assert events.count("page_view") == 1 + -(-n // COLLECTIONS_PER_PAGE)
