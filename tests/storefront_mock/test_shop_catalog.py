"""Catalogs: loaders on the real CSVs, the generated catalog, search, listings, stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from storefront_mock import (
    SORTS,
    Catalog,
    DataMissingError,
    Product,
    StorefrontError,
    UnknownNameError,
    builtin,
    category_path,
    from_events,
    load_amazon,
    load_flipkart,
    make_stores,
    stores_from_events,
)
from storefront_mock.canonical import CANONICAL_SCHEMA
from storefront_mock.catalog import parse_price


def _product(pid, title, brand=None, category=("Misc",), price=10.0, popularity=0.0):
    return Product(pid, title, brand, category, price, None, "", {}, {}, None, category[-1],
                   popularity)


# ---- the generated catalog -----------------------------------------------------------------

def test_builtin_is_deterministic_per_seed():
    a, b, c = builtin(seed=7, n_products=50), builtin(seed=7, n_products=50), builtin(seed=8,
                                                                                       n_products=50)
    assert a.products == b.products
    assert [p.title for p in a.products] != [p.title for p in c.products]
    assert len(a) == 50 and len({p.product_id for p in a.products}) == 50


def test_builtin_has_departments_brands_attributes_and_options():
    cat = builtin(n_products=60)
    tops = {c.title for c in cat.top_collections}
    assert {"Apparel", "Shoes", "Electronics", "Home", "Beauty", "Books"} <= tops
    assert len({p.brand for p in cat.products}) >= 10
    assert all(p.attributes and p.price and p.price > 0 for p in cat.products)
    with_options = [p for p in cat.products if p.options]
    assert len(with_options) >= 50
    assert any(len(v) > 1 for p in with_options for v in p.options.values())
    shirt = next(p for p in cat.products if p.product_type == "T-Shirt")
    assert set(shirt.options) == {"Size", "Color"}
    assert set(shirt.options["Size"]) <= {"S", "M", "L", "XL"}


def test_builtin_rejects_empty_catalog():
    with pytest.raises(StorefrontError, match="n_products"):
        builtin(n_products=0)


# ---- search ----------------------------------------------------------------------------------

def test_search_ranks_the_matching_kind_first():
    cat = builtin(n_products=80)
    hits = cat.search("running shoes")
    n_running = sum(p.product_type == "Running Shoes" for p in cat.products)
    assert n_running >= 3
    assert [p.product_type for p in hits[:n_running]] == ["Running Shoes"] * n_running
    # plural folding: the singular finds the same products first
    assert {p.product_id for p in cat.search("running shoe")[:n_running]} == \
        {p.product_id for p in hits[:n_running]}


def test_search_weights_brand_and_category_over_title_and_breaks_ties_by_popularity():
    cat = Catalog("t", "T", [
        _product("a", "Red cotton shirt", brand="Bluefin", popularity=1),
        _product("b", "Plain shirt", brand="Red", popularity=0),
        _product("c", "Plain mug", category=("Red",), popularity=0),
        _product("d", "Other thing", popularity=9),
        _product("e", "Plain shirt", brand="Red", popularity=5),
    ])
    ids = [p.product_id for p in cat.search("red")]
    assert ids[:2] == ["e", "b"]  # brand hits (weight 2), the more popular first
    assert ids[2:] == ["c", "a"]  # category (1.5), then title (1)
    assert "d" not in ids


def test_search_empty_and_nonsense_queries_find_nothing():
    cat = builtin(n_products=30)
    assert cat.search("") == []
    assert cat.search("qwertyzzz") == []
    assert cat.search("<script>alert(1)</script>") == []


# ---- listings --------------------------------------------------------------------------------

def test_listing_sorts_filters_and_paginates():
    cat = builtin(n_products=100)
    coll = cat.collection("apparel")
    for sort in SORTS:
        seen = []
        first = cat.listing(coll, sort=sort, per_page=7)
        for page in range(1, first.pages + 1):
            seen += cat.listing(coll, sort=sort, per_page=7, page=page).items
        assert sorted(p.product_id for p in seen) == sorted(coll.product_ids)
        prices = [p.price for p in seen]
        if sort == "price-asc":
            assert prices == sorted(prices)
        elif sort == "price-desc":
            assert prices == sorted(prices, reverse=True)
        else:
            pops = [p.popularity for p in seen]
            assert pops == sorted(pops, reverse=True)
    brand = first.brands[0][0]
    only = cat.listing(coll, brand=brand.upper(), per_page=100)
    assert only.total == first.brands[0][1] and all(p.brand == brand for p in only.items)
    ranged = cat.listing(coll, min_price=20, max_price=60, per_page=100)
    expected = [p for p in (cat.by_id[i] for i in coll.product_ids) if 20 <= p.price <= 60]
    assert ranged.total == len(expected) > 0
    assert cat.listing(coll, per_page=7, page=999).page == first.pages  # clamped
    with pytest.raises(UnknownNameError, match="price-asc"):
        cat.listing(coll, sort="cheapest")


def test_listing_puts_unknown_prices_last_and_drops_them_from_price_ranges():
    cat = Catalog("t", "T", [_product("a", "A", price=None), _product("b", "B", price=5.0),
                             _product("c", "C", price=3.0)])
    ids = ["a", "b", "c"]
    assert [p.product_id for p in cat.listing(ids, sort="price-asc").items] == ["c", "b", "a"]
    assert [p.product_id for p in cat.listing(ids, sort="price-desc").items] == ["b", "c", "a"]
    # equal popularity: ties go by id
    assert [p.product_id for p in cat.listing(ids, max_price=100).items] == ["b", "c"]


def test_catalog_errors_name_the_problem():
    with pytest.raises(StorefrontError, match="duplicate product id 'a'"):
        Catalog("t", "T", [_product("a", "A"), _product("a", "B")])
    cat = builtin(n_products=20)
    with pytest.raises(UnknownNameError, match="did you mean 'apparel'"):
        cat.collection("aparel")


@pytest.mark.parametrize("raw, value", [
    ("₹1,099", 1099.0), ("Rs. 899", 899.0), ("1899.0", 1899.0), ("1,07,687", 107687.0),
    ("", None), (None, None), ("n/a", None), (12, 12.0), (float("nan"), None),
])
def test_parse_price(raw, value):
    assert parse_price(raw) == value


def test_category_path_is_dotted_snake_case():
    assert category_path(("Home Furnishing", "Curtains & Accessories")) == \
        "home_furnishing.curtains_accessories"
    assert category_path(("electronics", "audio")) == "electronics.audio"
    assert category_path(()) is None


# ---- from an event log -----------------------------------------------------------------------

def _events(tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [
        ("m1", "1004856", "electronics.smartphone", "samsung", 130.0),
        ("m1", "1004856", "electronics.smartphone", "samsung", 125.5),  # later: current price
        ("m1", "2001", None, None, None),  # nothing known: stays missing
        ("m1", "3002", "appliances.kitchen.kettle", None, 20.0),
        ("m2", "9999", "kids.toys", "lego", 40.0),
        ("m1", None, None, None, None),  # a search row: no product
    ]
    data = {c: [] for c in CANONICAL_SCHEMA.names}
    for i, (m, pid, cat, brand, price) in enumerate(rows):
        for c, v in (("merchant_id", m), ("buyer_id", "b"), ("session_id", "s"),
                     ("ts", t0 + timedelta(seconds=i)), ("event", "product_view"),
                     ("product_id", pid), ("category", cat), ("brand", brand),
                     ("price", price), ("query", None), ("source", "test")):
            data[c].append(v)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict(data, schema=CANONICAL_SCHEMA)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    return table, path


def test_from_events_builds_the_merchants_catalog(tmp_path):
    table, path = _events(tmp_path)
    for source in (pl.from_arrow(table), path, table):
        cat = from_events(source, "m1")
        assert [p.product_id for p in cat.products] == ["1004856", "2001", "3002"]
        phone = cat.by_id["1004856"]
        assert phone.title == "Samsung Smartphone 1004856"
        assert (phone.brand, phone.price, phone.category) == (
            "samsung", 125.5, ("electronics", "smartphone"))
        assert phone.category_path == "electronics.smartphone" and phone.popularity == 2
        unknown = cat.by_id["2001"]
        assert (unknown.brand, unknown.price, unknown.category) == (None, None, ())
        assert unknown.title == "Product 2001"
        assert cat.by_id["3002"].title == "Kettle 3002"
        # a product without a category is still reachable by browsing, from "all"
        assert [c.slug for c in cat.top_collections] == ["all", "electronics", "appliances"]
        assert cat.collection("all").product_ids == ("1004856", "2001", "3002")
        assert cat.collection("all").category_path is None
    with pytest.raises(UnknownNameError, match="m2"):
        from_events(table, "nope")
    stores = stores_from_events(path)
    assert [(st.store_id, st.theme, len(st.catalog)) for st in stores] == [
        ("m1", "classic", 3), ("m2", "grid", 1)]
    assert [st.store_id for st in stores_from_events(table, max_merchants=1)] == ["m1"]
    with pytest.raises(StorefrontError, match="lacks canonical column"):
        from_events(pl.DataFrame({"merchant_id": ["m1"]}), "m1")


# ---- the real catalogs -----------------------------------------------------------------------

@pytest.mark.data
def test_load_flipkart(data_dir):
    cat = load_flipkart(data_dir / "catalogs" / "flipkart-1050.csv")
    assert len(cat) == 1050 and cat.currency == "INR"
    assert [(c.title, len(c.product_ids)) for c in cat.top_collections] == [
        ("Home Furnishing", 150), ("Baby Care", 150), ("Watches", 150),
        ("Home Decor & Festive Needs", 150), ("Kitchen & Dining", 150),
        ("Beauty and Personal Care", 150), ("Computers", 150)]
    curtain = cat.product("CRNEG7BKMFFYHQ8Z")
    assert curtain.title == "Elegance Polyester Multicolor Abstract Eyelet Door Curtain"
    assert curtain.category == ("Home Furnishing", "Curtains & Accessories", "Curtains")
    assert (curtain.price, curtain.list_price, curtain.brand) == (899.0, 1899.0, "Elegance")
    assert curtain.options == {"Color": ("Multicolor",)}
    assert curtain.attributes["Type"] == "Eyelet" and "Brand" not in curtain.attributes
    assert curtain.product_type == "Curtains" and curtain.rating is None
    # per-brand tail of the tree is cut, and names the brand the brand column lacks
    watch = next(p for p in cat.products if p.title.startswith("Maserati Time R8851116001"))
    assert watch.category == ("Watches", "Wrist Watches") and watch.brand == "Maserati Time"
    # the one product without prices keeps them missing
    assert cat.product("BTWEG6SHXTDB2A2Y").price is None
    assert sum(p.price is None for p in cat.products) == 1


@pytest.mark.data
def test_load_amazon(data_dir):
    cat = load_amazon(data_dir / "catalogs" / "amazon-in.csv")
    assert len(cat) == 1349  # 1,463 rows, repeated product ids dropped
    assert len({p.category for p in cat.products}) == 211
    cable = cat.product("B07JW9H4J1")
    assert cable.brand == "Wayona"
    assert cable.category == ("Computers & Accessories", "Accessories & Peripherals",
                              "Cables & Accessories", "Cables", "USB Cables")
    assert (cable.price, cable.list_price, cable.rating, cable.popularity) == (
        399.0, 1099.0, 4.2, 24269.0)
    assert cable.options == {"Color": ("Grey",)} and cable.product_type == "USB Cables"
    assert "High Compatibility" in cable.attributes
    assert cat.product("B00NH11KIK").popularity == 107687.0  # first of its repeated rows
    assert [p.product_id for p in cat.products if p.rating is None] == ["B08L12N5H1"]  # "|"
    assert cat.search("boAt earphones")[0].brand == "boAt"


@pytest.mark.data
def test_store_presets_with_data(data_dir):
    stores = make_stores("multi", data_dir=data_dir, n_products=20)
    ids = [s.store_id for s in stores]
    assert ids[-1] == "builtin" and len(ids) == 8 and len(set(ids)) == 8
    assert {s.theme for s in stores} == {"classic", "grid"}
    assert all(len(s.catalog) == 150 for s in stores[:-1])
    both = make_stores("flipkart,amazon", data_dir=data_dir, theme="grid")
    assert [(s.store_id, s.theme) for s in both] == [("flipkart", "grid"), ("amazon", "grid")]
    with pytest.raises(StorefrontError, match="appear twice"):
        make_stores(["builtin", "multi"], data_dir=data_dir)


# ---- store presets ---------------------------------------------------------------------------

def test_store_presets_and_their_errors(tmp_path):
    assert [s.store_id for s in make_stores("builtin", n_products=10)] == ["builtin"]
    with pytest.raises(UnknownNameError) as err:
        make_stores("amazn")
    assert "amazon, builtin, builtin_multi, flipkart, multi" in str(err.value)
    assert "did you mean 'amazon'" in str(err.value)
    with pytest.raises(UnknownNameError, match="classic, grid"):
        make_stores("builtin", theme="dark")
    with pytest.raises(DataMissingError, match="SIMPERSONA_DATA_DIR"):
        make_stores("flipkart", data_dir=tmp_path)
    # several merchants with no data: the generated catalog's departments
    demo = make_stores("builtin_multi", n_products=40)
    assert [s.store_id for s in demo] == ["demo-apparel", "demo-shoes", "demo-electronics",
                                          "demo-home", "demo-beauty", "demo-books"]
    assert sum(len(s.catalog) for s in demo) == 40 and {s.theme for s in demo} == {"classic",
                                                                                   "grid"}


def test_from_an_ingest_output_folder_with_numeric_merchant_ids(tmp_path):
    # `simpersona ingest` writes events/merchant_id=<id>/part-*.parquet; a seller id such as
    # 101 must stay the string "101" although the partition folder makes it look numeric.
    table, _ = _events(tmp_path)
    df = pl.from_arrow(table).with_columns(
        pl.col("merchant_id").replace({"m1": "101", "m2": "202"}))
    (tmp_path / "run" / "events").mkdir(parents=True)
    df.write_parquet(tmp_path / "run" / "events", partition_by="merchant_id")
    stores = stores_from_events(tmp_path / "run")
    assert [(s.store_id, len(s.catalog)) for s in stores] == [("101", 3), ("202", 1)]
    assert from_events(tmp_path / "run" / "events", "202").by_id["9999"].brand == "lego"
    with pytest.raises(DataMissingError, match="simpersona ingest"):
        stores_from_events(tmp_path / "nothing-here")
