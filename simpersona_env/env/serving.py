"""One loopback server per bundled-shop app, shared by the browser envs that use that app.

Example:
    >>> from storefront_mock import create_app, make_stores
    >>> app = create_app(make_stores("builtin"))
    >>> serve_shared(app) is serve_shared(app)
    True
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

__all__ = ["serve_shared"]

_shared: dict[int, tuple[Any, Any]] = {}
_lock = threading.Lock()


def serve_shared(app: Any) -> Any:
    """The process's server for ``app`` (``storefront_mock.serve`` on 127.0.0.1, an ephemeral
    port), started on first use and stopped at exit; has ``url`` and ``stop()``."""
    from storefront_mock import serve

    with _lock:
        entry = _shared.get(id(app))
        if entry is None or entry[0] is not app or not entry[1]._thread.is_alive():
            entry = _shared[id(app)] = (app, serve(app))
        return entry[1]


@atexit.register
def _stop_all() -> None:
    for _, served in list(_shared.values()):
        served.stop()
    _shared.clear()
