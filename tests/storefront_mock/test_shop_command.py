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

from simpersona_env.config import compose, to_object
from simpersona_env.errors import ConfigError, DataError, UnknownNameError
from simpersona_env.commands import shop


@pytest.mark.parametrize("preset", ["builtin", "flipkart", "amazon", "multi"])
def test_store_presets_compose(preset):
    cfg = compose("shop", [f"store={preset}", "port=0"])
    conf = to_object(cfg, shop.ShopConfig)
    assert conf.store["name"] == preset and conf.host == "127.0.0.1"


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
    with pytest.raises(UnknownNameError, match="amazon, builtin, flipkart, multi"):
        shop.run(compose("shop", ["store.name=bultin", "port=0"]))
    with pytest.raises(DataError, match="SIMPERSONA_DATA_DIR"):
        shop.run(compose("shop", ["store=amazon", f"store.data_dir={tmp_path}", "port=0"]))
    with pytest.raises(ConfigError, match="jsonl or .parquet"):
        shop.run(compose("shop", ["port=0", "events=out.csv", "duration_s=0"]))
    with pytest.raises(ConfigError, match="store"):
        compose("shop", ["store=nope"])
