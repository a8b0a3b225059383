"""Serve an in-process ASGI app (the bundled shop) on a loopback port for the browser.

Example:
    >>> from storefront_mock import create_app, make_stores
    >>> served = ServedApp(create_app(make_stores("builtin")))
    >>> served.url.startswith("http://127.0.0.1:")
    True
    >>> served.stop()
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

__all__ = ["ServedApp", "serve_shared"]


class ServedApp:
    """``app`` served by uvicorn in a daemon thread on ``host`` and an ephemeral port.

    Args:
        app: an ASGI app.
        host: the interface; loopback unless told otherwise.
        port: 0 picks a free port.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="simpersona-shop")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the shop could not be served on {host}:{port}")
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)


_shared: dict[int, tuple[Any, ServedApp]] = {}
_lock = threading.Lock()


def serve_shared(app: Any) -> ServedApp:
    """One server per app for the whole process (envs that share an app share its server)."""
    with _lock:
        entry = _shared.get(id(app))
        if entry is None or entry[0] is not app or not entry[1]._thread.is_alive():  # noqa: SLF001
            entry = _shared[id(app)] = (app, ServedApp(app))
        return entry[1]


@atexit.register
def _stop_all() -> None:
    for _, served in list(_shared.values()):
        served.stop()
    _shared.clear()
