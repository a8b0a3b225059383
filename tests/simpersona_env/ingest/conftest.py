"""Helpers for the ingest tests: a small CSV format with its mapping, written per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpersona_env.ingest import LogMapping, MerchantKey, SourceMapping, TimestampSpec

HEADER = "shop,user,sess,time,action,item,price"


def shop_source(path: Path, **over) -> SourceMapping:
    """Mapping of the test format: shop,user,sess,time,action,item,price."""
    kw = dict(
        path=str(path), format="csv",
        columns={"buyer_id": "user", "session_id": "sess", "ts": "time", "event": "action",
                 "product_id": "item", "price": "price"},
        events={"view": "product_view", "cart": "add_to_cart", "buy": "purchase"},
        timestamp=TimestampSpec(format="%Y-%m-%d %H:%M:%S", timezone="UTC"),
        merchant=MerchantKey(column="shop"), source="test")
    kw.update(over)
    return SourceMapping(**kw)


def shop_mapping(path: Path, **over) -> LogMapping:
    return LogMapping(name="test", sources=[shop_source(path, **over)])


@pytest.fixture
def write(tmp_path):
    """write(name, text or bytes) -> path."""

    def _write(name: str, content: str | bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        return p

    return _write
