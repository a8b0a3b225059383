"""Chromium for the ``playwright`` backend: where it is, how it is launched, one per process.

Every launch flag lives in :data:`LAUNCH_ARGS` and every path rule in :func:`find_browser`.
:func:`shared_browser` starts one Chromium per process (per executable) the first time a
browser env needs it, and each env gets its own *context* (its own cookies, so its own visitor
and cart) from it; a second Chromium per env would cost hundreds of MB each.

The browser runs on Playwright's asyncio API in one private thread; envs call into it with
:meth:`SharedBrowser.call`. That is what lets envs in several threads share one browser
(Playwright's sync API is bound to the thread that started it) and keeps working when the
caller itself runs an asyncio loop (a notebook).

Example:
    >>> browser = shared_browser()  # doctest: +SKIP
    >>> ctx = browser.call(browser.new_context())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import os
import shutil
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from simpersona_env.errors import BrowserNotFoundError

__all__ = ["INSTALL_HINT", "LAUNCH_ARGS", "SharedBrowser", "find_browser", "shared_browser"]

T = TypeVar("T")

#: The one place that says how Chromium is started (ARCHITECTURE.md, "Environment facts").
LAUNCH_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Said whenever no browser can be found or launched.
INSTALL_HINT = ("install Chromium with `python -m playwright install chromium` (or, as root on "
                "Debian/Ubuntu, `apt-get install chromium`), or point SIMPERSONA_BROWSER or the "
                "browser_path setting at a Chromium/Chrome executable")

_SYSTEM_BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def _playwright_chromium() -> str | None:
    """Playwright's own downloaded Chromium, if ``playwright install chromium`` was run."""
    root = (os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
            or str(Path.home() / ".cache" / "ms-playwright"))
    found = sorted(glob.glob(os.path.join(root, "chromium-*", "chrome-linux*", "chrome")))
    return found[-1] if found else None


def find_browser(path: str | None = None) -> str:
    """The Chromium executable to launch.

    Order: ``path`` (a config value) if given, else ``$SIMPERSONA_BROWSER``, else Playwright's
    own Chromium if installed, else ``/usr/bin/chromium`` or ``chromium`` on ``PATH``.

    Raises:
        BrowserNotFoundError: nothing found, or the given path does not exist; says how to
            install one.
    """
    path = path or os.environ.get("SIMPERSONA_BROWSER") or None
    if path:
        resolved = shutil.which(path) or (path if os.path.isfile(path) else None)
        if not resolved:
            raise BrowserNotFoundError(f"no browser executable at {path!r}; {INSTALL_HINT}")
        return resolved
    found = _playwright_chromium()
    if found:
        return found
    for name in _SYSTEM_BROWSERS:
        resolved = shutil.which(name) or (name if os.path.isfile(name) else None)
        if resolved:
            return resolved
    raise BrowserNotFoundError(f"no Chromium found; {INSTALL_HINT}")


class SharedBrowser:
    """One Chromium, driven from a private asyncio thread, handing out contexts.

    Args:
        executable: the Chromium executable (see :func:`find_browser`).
        timeout_s: the longest a single call may take before it is abandoned.
    """

    def __init__(self, executable: str, timeout_s: float = 60.0):
        self.executable = executable
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="simpersona-browser")
        self._thread.start()
        self._pw: Any = None
        self.browser: Any = None
        self._lock = threading.Lock()
        try:
            self.call(self._start())
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        try:
            self.browser = await self._pw.chromium.launch(
                executable_path=self.executable, headless=True, args=list(LAUNCH_ARGS))
        except PlaywrightError as exc:
            raise BrowserNotFoundError(f"could not launch the browser {self.executable!r}: "
                                       f"{str(exc).splitlines()[0]}; {INSTALL_HINT}") from exc

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the browser's thread and wait for its result."""
        if not self._loop.is_running():
            coro.close()
            raise BrowserNotFoundError("the shared browser has been closed; make a new env")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout_s or self.timeout_s)
        except FutureTimeout:
            fut.cancel()
            raise TimeoutError(f"the browser did not answer within "
                               f"{timeout_s or self.timeout_s}s") from None

    async def new_context(self) -> Any:
        """A fresh browser context (own cookies and cache); to be awaited via :meth:`call`."""
        return await self.browser.new_context(java_script_enabled=True,
                                              service_workers="block")

    def close(self) -> None:
        """Close the browser and stop its thread (idempotent)."""
        with self._lock:
            if not self._loop.is_running():
                return

            async def stop() -> None:
                try:
                    if self.browser is not None:
                        await self.browser.close()
                finally:
                    if self._pw is not None:
                        await self._pw.stop()

            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


_shared: dict[str, SharedBrowser] = {}
_shared_lock = threading.Lock()


def shared_browser(path: str | None = None) -> SharedBrowser:
    """The process's browser for this executable, started on first use, closed at exit.

    Raises:
        BrowserNotFoundError: no browser found or it would not start (with the install hint).
    """
    executable = find_browser(path)
    with _shared_lock:
        browser = _shared.get(executable)
        if browser is None or not browser._loop.is_running():
            browser = _shared[executable] = SharedBrowser(executable)
        return browser


@atexit.register
def _close_all() -> None:
    for browser in list(_shared.values()):
        browser.close()
    _shared.clear()
