"""`simpersona shop`: config composition, serving, the event file, errors."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from contextlib import redirect_stdout

import httpx
import pytest

from simpersona_env.commands import shop
from simpersona_env.config import compose, to_object
from simpersona_env.errors import ConfigError, DataError, UnknownNameError


@pytest.mark.parametrize("preset", ["builtin", "builtin_multi", "flipkart", "amazon", "multi",
                                    "events"])
def test_store_presets_compose(preset):
    cfg = compose("shop", [f"store={preset}", "port=0"])
    assert cfg.store.name == preset and cfg.host == "127.0.0.1"
    assert to_object(cfg, shop.ShopConfig).store["name"] == preset
    if preset == "events":  # its log is required
        with pytest.raises(ConfigError, match="store.events"):
            shop.build_stores(dict(cfg.store))


def test_store_events_serves_a_store_per_merchant(tmp_path):
    from datetime import datetime, timezone

    import polars as pl

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    path = tmp_path / "events.parquet"
    pl.DataFrame({
        "merchant_id": ["a", "a", "b"], "buyer_id": ["u"] * 3, "session_id": ["s"] * 3,
        "ts": [t] * 3, "event": ["product_view"] * 3, "product_id": ["1", "2", "3"],
        "category": ["x.y", None, "z"], "brand": [None, "acme", None], "price": [1.0, None, 3.0],
        "query": [None] * 3, "source": ["test"] * 3}).write_parquet(path)
    cfg = compose("shop", ["store=events", f"store.events={path}", "store.theme=grid"])
    stores = shop.build_stores(dict(cfg.store))
    assert [(s.store_id, s.theme, len(s.catalog)) for s in stores] == [
        ("a", "grid", 2), ("b", "grid", 1)]
    both = shop.build_stores({"name": "events,builtin", "events": str(path),
                              "merchants": ["b"], "n_products": 10})
    assert [s.store_id for s in both] == ["b", "builtin"]
    with pytest.raises(DataError, match="not found"):
        shop.build_stores({"name": "events", "events": str(tmp_path / "none.parquet")})


def test_shop_serves_and_writes_events(tmp_path):
    events = tmp_path / "events.jsonl"
    cfg = compose("shop", ["store=builtin", "store.n_products=30", "port=0", "duration_s=3",
                           f"events={events}", "store.theme=grid"])
    out = io.StringIO()
    result = {}

    def run():
        with redirect_stdout(out):
            result["code"] = shop.run(cfg)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 15
    while "Serving" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    url = re.search(r"at (http://127\.0\.0\.1:\d+)/", out.getvalue()).group(1)
    r = httpx.get(f"{url}/s/builtin/search?q=mug")
    assert r.status_code == 200 and 'data-sp-theme="grid"' in r.text
    thread.join(20)
    assert result["code"] == 0
    rows = [json.loads(x) for x in events.read_text().splitlines()]
    assert [(r["event"], r["query"]) for r in rows] == [("search", "mug")]
    assert "1 events written" in out.getvalue()


def test_shop_errors_are_library_errors(tmp_path):
    with pytest.raises(UnknownNameError,
                       match="amazon, builtin, builtin_multi, events, flipkart, multi"):
        shop.run(compose("shop", ["store.name=bultin", "port=0"]))
    with pytest.raises(DataError, match="SIMPERSONA_DATA_DIR"):
        shop.run(compose("shop", ["store=amazon", f"store.data_dir={tmp_path}", "port=0"]))
    with pytest.raises(ConfigError, match="jsonl or .parquet"):
        shop.run(compose("shop", ["port=0", "events=out.csv", "duration_s=0"]))
    with pytest.raises(ConfigError, match="store"):
        compose("shop", ["store=nope"])
