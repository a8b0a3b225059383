"""Per-page latency of the bundled shop, called in process, against a floor in the same run.

The floor is a one-route Starlette app answering a fixed 5 kB HTML page through the same
direct ASGI call: what routing and the response cost with no shop work at all. Each page's
ratio to the floor is what to compare across machines, not its absolute time.

    .venv/bin/python bench/shop_pages.py [--store builtin] [--n 400] [--out out/bench]

Writes ``shop_pages.json`` and ``shop_pages.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from tqdm import tqdm

from storefront_mock import create_app, make_stores


def _scope(method: str, path: str, query: str = "", body: bool = False) -> dict:
    headers = [(b"host", b"shop"), (b"cookie", b"sp_visitor=bench")]
    if body:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": headers, "scheme": "http",
            "server": ("shop", 80), "client": ("127.0.0.1", 1), "http_version": "1.1",
            "root_path": ""}


async def _call(app, scope: dict, body: bytes = b"") -> int:
    sent = False
    status = 0

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _time(loop, app, scope, body: bytes, n: int) -> list[float]:
    loop.run_until_complete(_call(app, scope, body))  # warm caches
    out = []
    for _ in range(n):
        t = time.perf_counter()
        loop.run_until_complete(_call(app, scope, body))
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="builtin")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()

    stores = make_stores(args.store)
    store = stores[0]
    cat = store.catalog
    app = create_app(stores)
    page = "<html><body>" + "<p>x</p>" * 600 + "</body></html>"
    floor = Starlette(routes=[Route("/", lambda request: HTMLResponse(page))])
    s = f"/s/{store.store_id}"
    coll = max(cat.top_collections, key=lambda c: len(c.product_ids)).slug
    pid = cat.featured(1)[0].product_id
    cases = {
        "floor (static 5 kB page)": (floor, _scope("GET", "/"), b""),
        "home": (app, _scope("GET", f"{s}/"), b""),
        "collection (sorted, page 2)": (app, _scope("GET", f"{s}/collections/{coll}",
                                                    "sort=price-asc&page=2"), b""),
        "collection (brand + price filter)": (app, _scope(
            "GET", f"{s}/collections/{coll}", "min_price=10&max_price=5000"), b""),
        "search": (app, _scope("GET", f"{s}/search", "q=blue+cotton+shirt"), b""),
        "product": (app, _scope("GET", f"{s}/products/{pid}"), b""),
        "add to cart (POST)": (app, _scope("POST", f"{s}/cart/add", body=True),
                               f"product_id={pid}".encode()),
        "cart": (app, _scope("GET", f"{s}/cart"), b""),
        "checkout": (app, _scope("GET", f"{s}/checkout"), b""),
    }
    loop = asyncio.new_event_loop()
    result = {"store": store.store_id, "products": len(cat), "n": args.n, "pages": {}}
    for name, (target, scope, body) in tqdm(cases.items(), desc="pages"):
        lat = _time(loop, target, scope, body, args.n)
        result["pages"][name] = {"median_ms": statistics.median(lat) * 1e3,
                                 "p90_ms": sorted(lat)[int(0.9 * len(lat))] * 1e3}
    base = result["pages"]["floor (static 5 kB page)"]["median_ms"]
    for v in result["pages"].values():
        v["ratio_to_floor"] = v["median_ms"] / base
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shop_pages.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["pages"])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, [result["pages"][k]["ratio_to_floor"] for k in names])
    ax.set_xlabel("median latency / floor (same run)")
    ax.set_title(f"bundled shop, store={store.store_id}, in process")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "shop_pages.png", dpi=120)
    for k in names:
        v = result["pages"][k]
        print(f"{k:36s} median {v['median_ms']:.3f} ms  p90 {v['p90_ms']:.3f} ms  "
              f"x{v['ratio_to_floor']:.1f} floor")
    print(f"wrote {out / 'shop_pages.json'} and {out / 'shop_pages.png'}")


if __name__ == "__main__":
    main()
