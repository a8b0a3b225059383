"""How the env drives a page: ``http`` (the bundled shop in process) or ``playwright``.

A backend does the primitive moves (go to a URL, click, fill, choose, submit a search) and
reads the current page; the env validates actions against the parsed page first, so both
backends give the same errors, and the shared renderer turns the page into text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from simpersona_env.env.render import Element, Page

__all__ = ["BACKENDS", "Backend"]

#: backend name -> "module:class" (imported only when chosen)
BACKENDS: dict[str, str] = {
    "http": "simpersona_env.env.backends.http_backend:HttpBackend",
    "playwright": "simpersona_env.env.backends.playwright_backend:PlaywrightBackend",
}


class Backend(Protocol):
    """What the env needs from a backend. Agent mistakes raise ``ActionError``."""

    def new_visitor(self) -> None:
        """Forget cookies and history: the next page is a new visitor's first."""

    def goto(self, url: str) -> None:
        """Load ``url`` with GET."""

    def click(self, element: Element) -> None:
        """Follow a link, submit a button's form, toggle a checkbox."""

    def fill(self, element: Element, text: str) -> None:
        """Replace the text of a text box."""

    def choose(self, element: Element, value: str) -> None:
        """Select the option with this value in a dropdown."""

    def submit_search(self, element: Element, text: str) -> None:
        """Fill the search box and submit its form as pressing Enter would."""

    def read(self) -> tuple[Page, Mapping[str, str | bool]]:
        """The current page and the form values not yet written into it."""

    def cookie(self, name: str) -> str | None:
        """The value of a cookie of the current site (the shop's visitor id)."""

    def close(self) -> None:
        """Release what the backend holds (idempotent)."""
