"""Serve the shop with uvicorn in a background thread on a loopback port.

The env's browser backend and the tests use this: a real HTTP server, an ephemeral port,
no global state, stopped by the handle.

Example:
    >>> from storefront_mock import make_stores, serve
    >>> with serve(make_stores("builtin")) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:43121
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from storefront_mock.errors import StorefrontError
from storefront_mock.stores import Store

__all__ = ["serve", "ServerHandle"]


class ServerHandle:
    """A running server: ``url``, ``app`` (``app.state.shop`` holds its state), ``stop()``."""

    def __init__(self, server: Any, thread: threading.Thread, app: Starlette, host: str,
                 port: int):
        self._server, self._thread = server, thread
        self.app, self.host, self.port = app, host, port
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}"

    @property
    def shop(self) -> Any:
        """The app's :class:`~storefront_mock.app.ShopState`."""
        return self.app.state.shop

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerHandle({self.url!r})"


def serve(stores: Sequence[Store] | Starlette, host: str = "127.0.0.1", port: int = 0, *,
          startup_timeout: float = 15.0, **app_kwargs: Any) -> ServerHandle:
    """Start the shop on ``host:port`` (port 0 = a free ephemeral one) in a daemon thread.

    Args:
        stores: the stores, or an app already made by :func:`create_app` (to serve the same
            state that is also called in process).
        host: the interface; loopback unless told otherwise.
        port: the port; 0 picks a free one, read back from ``handle.url``.
        **app_kwargs: passed to :func:`create_app` (``event_log``, ``session_timeout_s``, ...).

    Raises:
        StorefrontError: the port is taken or the server did not start in time.
    """
    import uvicorn

    from storefront_mock.app import create_app

    app = stores if isinstance(stores, Starlette) else create_app(stores, **app_kwargs)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StorefrontError(f"cannot listen on {host}:{port}: {exc}; pick another port "
                              "or port=0 for a free one") from exc
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    # signal handlers belong to the main thread's owner, not to a library server
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"storefront:{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise StorefrontError(f"the shop did not start on {host}:{bound_port}")
        time.sleep(0.01)
    return ServerHandle(server, thread, app, host, bound_port)
