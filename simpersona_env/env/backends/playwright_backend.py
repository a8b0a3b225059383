"""The ``playwright`` backend: a real Chromium page in a context of the process's one browser.

Each env owns one browser context (its own cookies: its own visitor and cart) and one page in
it; the browser is shared (:func:`simpersona_env.env.browser.shared_browser`). Before a page
is read, :data:`~simpersona_env.env.render.SYNC_DOM_JS` numbers elements that lack a
``data-sp-id`` and copies the live form values into the DOM, so the shared renderer sees what
was typed and selected, exactly as the ``http`` backend renders its own form state.

Example:
    >>> from simpersona_env.env.browser import shared_browser
    >>> b = PlaywrightBackend(shared_browser())  # doctest: +SKIP
    >>> b.goto("https://example.com/"); b.read()[0].title  # doctest: +SKIP
    'Example Domain'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simpersona_env.env.actions import ActionError
from simpersona_env.env.browser import SharedBrowser
from simpersona_env.env.render import INTERACTIVE, SYNC_DOM_JS, Element, Page, parse_page
from simpersona_env.errors import UnreachableURLError

__all__ = ["PlaywrightBackend"]


def _sel(element: Element) -> str:
    return f'[data-sp-id="{element.id}"]'


class PlaywrightBackend:
    """Drive a Chromium page.

    Args:
        browser: the shared browser to take a context from.
        action_timeout_s: how long a click or fill waits for its element (a hidden element
            fails with an error in the observation after this long).
        navigation_timeout_s: how long a page load may take.
    """

    name = "playwright"

    def __init__(self, browser: SharedBrowser, action_timeout_s: float = 5.0,
                 navigation_timeout_s: float = 30.0):
        self.browser = browser
        self.action_timeout_ms = action_timeout_s * 1000
        self.navigation_timeout_ms = navigation_timeout_s * 1000
        self._context: Any = None
        self._page: Any = None
        self._prefetched: tuple[str, str] | None = None

    # -- the moves -------------------------------------------------------------------------

    def new_visitor(self, cookies: list[dict[str, Any]] | None = None) -> None:
        """A fresh context; ``cookies`` (Playwright cookie dicts with a ``url``) are set first."""
        self.browser.call(self._new_context(cookies or []))

    async def _new_context(self, cookies: list[dict[str, Any]]) -> None:
        if self._context is not None:
            await self._context.close()
        self._prefetched = None
        self._context = await self.browser.new_context()
        self._context.set_default_timeout(self.action_timeout_ms)
        self._context.set_default_navigation_timeout(self.navigation_timeout_ms)
        if cookies:
            await self._context.add_cookies(cookies)
        self._page = await self._context.new_page()

    def goto(self, url: str) -> None:
        self.browser.call(self._goto(url))

    async def _goto(self, url: str) -> None:
        from playwright.async_api import Error as PlaywrightError

        if self._page is None:
            await self._new_context([])
        self._prefetched = None
        try:
            await self._page.goto(url, wait_until="domcontentloaded")
        except PlaywrightError as exc:
            raise UnreachableURLError(f"could not load {url}: {str(exc).splitlines()[0]}; check "
                                      "that the site is up and the URL is right") from exc
        self._prefetched = await self._read()

    def click(self, element: Element) -> None:
        self.browser.call(self._act(self._page.click(_sel(element)), element))

    def fill(self, element: Element, text: str) -> None:
        self.browser.call(self._act(self._page.fill(_sel(element), text), element))

    def choose(self, element: Element, value: str) -> None:
        self.browser.call(self._act(self._page.select_option(_sel(element), value=value), element))

    def submit_search(self, element: Element, text: str) -> None:
        async def both() -> None:
            await self._page.fill(_sel(element), text)
            await self._page.press(_sel(element), "Enter")

        self.browser.call(self._act(both(), element))

    async def _act(self, move: Any, element: Element) -> None:
        from playwright.async_api import Error as PlaywrightError

        self._prefetched = None
        try:
            await move
            # a click or Enter that navigates returns once the navigation has started
            await self._page.wait_for_load_state("domcontentloaded")
        except PlaywrightError as exc:
            first = str(exc).splitlines()[0]
            raise ActionError(f"could not act on [{element.id}]: {first}") from exc
        # read the page in the same call: one thread hop per step instead of two
        self._prefetched = await self._read()

    def read(self) -> tuple[Page, Mapping[str, str | bool]]:
        fetched, self._prefetched = self._prefetched, None
        url, html = fetched if fetched is not None else self.browser.call(self._read())
        return parse_page(html, url), {}

    async def _read(self) -> tuple[str, str]:
        from playwright.async_api import Error as PlaywrightError

        for _ in range(3):
            try:
                url, html = await self._page.evaluate(SYNC_DOM_JS, INTERACTIVE)
                return url, html
            except PlaywrightError:
                # a navigation (e.g. a meta refresh) replaced the document mid-read: wait, retry
                await self._page.wait_for_load_state("domcontentloaded")
        url, html = await self._page.evaluate(SYNC_DOM_JS, INTERACTIVE)
        return url, html

    def cookie(self, name: str) -> str | None:
        async def get() -> str | None:
            for c in await self._context.cookies():
                if c["name"] == name:
                    return c["value"]
            return None

        return self.browser.call(get()) if self._context is not None else None

    def close(self) -> None:
        if self._context is None:
            return
        context, self._context, self._page = self._context, None, None
        try:
            self.browser.call(context.close(), timeout_s=10)
        except Exception:
            pass
