"""The ``http`` backend: a minimal browser that talks to an ASGI app in process.

No sockets and no browser: each request calls the ASGI callable directly on a private event
loop. What a browser does for a no-JavaScript page is emulated: a cookie jar, the current URL
and HTML, the form values typed so far, a link is a GET, a submit button submits its form
with the current values (and its own name/value), redirects are followed (303 turns POST into
GET). The bundled shop needs nothing more (docs/storefront.md, "No JavaScript"), which is what
makes this backend give the same observations as the real browser, hundreds of times faster.

Example:
    >>> from storefront_mock.app import create_app
    >>> from storefront_mock.stores import make_stores
    >>> b = HttpBackend(create_app(make_stores("builtin")))
    >>> b.goto("/s/builtin/")
    >>> b.read()[0].kind
    'home'
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote_plus, unquote, urljoin, urlsplit, urlunsplit

from simpersona_env.env.actions import ActionError
from simpersona_env.env.render import Element, Form, Page, parse_page

__all__ = ["HttpBackend"]

_CHARSET = re.compile(r"charset=([\w-]+)", re.I)
_MAX_REDIRECTS = 10


def _form_quote(text: str) -> str:
    # application/x-www-form-urlencoded as browsers write it: '*' stays, '~' is escaped
    return quote_plus(text, safe="*").replace("~", "%7E")


def _form_encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{_form_quote(k)}={_form_quote(v)}" for k, v in pairs)


class HttpBackend:
    """Drive an ASGI app (the bundled shop) without a browser.

    Args:
        app: an ASGI application, e.g. ``storefront_mock.app.create_app(stores)``.
        base_url: the origin the app believes it is served at (nothing listens there).
    """

    name = "http"

    def __init__(self, app: Any, base_url: str = "http://storefront.local"):
        self.app = app
        self.base_url = base_url.rstrip("/")
        # a private loop: no sockets, no thread hop, and each env (thread) has its own
        self._loop = asyncio.new_event_loop()
        self._helper: ThreadPoolExecutor | None = None
        self.cookies: dict[str, str] = {}
        self.page: Page | None = None
        self.values: dict[str, str | bool] = {}

    # -- the moves -------------------------------------------------------------------------

    def new_visitor(self) -> None:
        self.cookies.clear()
        self.page, self.values = None, {}

    def goto(self, url: str) -> None:
        self._navigate("GET", urljoin(self._here(), url))

    def click(self, element: Element) -> None:
        if element.role == "link":
            href = (element.href or "").strip()
            if href.lower().startswith("javascript:"):
                raise ActionError(f"[{element.id}] needs JavaScript, which the http backend "
                                  "does not run; use backend=playwright for this site")
            target = urljoin(self._here(), href)
            here = urlsplit(self._here())
            there = urlsplit(target)
            if there.fragment and there._replace(fragment="") == here._replace(fragment=""):
                return  # an in-page anchor: no request, as in a browser
            self._navigate("GET", target)
        elif element.role in {"checkbox", "radio"}:
            self._toggle(element)
        elif element.role == "button":
            if element.form is None or element.type in {"button", "reset"}:
                return  # a button that submits nothing does nothing without JavaScript
            self._submit(self._page().forms[element.form], submitter=element)

    def fill(self, element: Element, text: str) -> None:
        self.values[element.id] = text

    def choose(self, element: Element, value: str) -> None:
        self.values[element.id] = value

    def submit_search(self, element: Element, text: str) -> None:
        self.values[element.id] = text
        if element.form is None:
            raise ActionError(f"the search box [{element.id}] is not in a form; type into it "
                              "and click its button instead")
        form = self._page().forms[element.form]
        # pressing Enter submits with the form's default (first) submit button
        default = next((c for c in form.controls if c.kind == "submit"), None)
        submitter = self._page().elements.get(default.id) if default and default.id else None
        self._submit(form, submitter=submitter)

    def read(self) -> tuple[Page, Mapping[str, str | bool]]:
        return self._page(), self.values

    def cookie(self, name: str) -> str | None:
        return self.cookies.get(name)

    def close(self) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None
        if not self._loop.is_closed():
            self._loop.close()

    def __del__(self) -> None:  # envs made and dropped without close() (check_env does)
        try:
            self.close()
        except Exception:
            pass

    # -- browser emulation -----------------------------------------------------------------

    def _page(self) -> Page:
        if self.page is None:
            raise ActionError("no page is loaded")
        return self.page

    def _here(self) -> str:
        return self.page.url if self.page is not None else self.base_url + "/"

    def _toggle(self, element: Element) -> None:
        current = self.values.get(element.id, element.checked)
        if element.role == "radio":
            page = self._page()
            for other in page.elements.values():
                same_group = other.name == element.name and other.form == element.form
                if other.role == "radio" and same_group:
                    self.values[other.id] = False
            self.values[element.id] = True
        else:
            self.values[element.id] = not current

    def _submit(self, form: Form, submitter: Element | None) -> None:
        pairs: list[tuple[str, str]] = []
        for c in form.controls:
            if not c.name:
                continue
            if c.kind == "submit":
                if submitter is not None and c.id == submitter.id:
                    pairs.append((c.name, c.value))
                continue
            if c.kind in {"checkbox", "radio"}:
                checked = self.values.get(c.id, c.checked) if c.id else c.checked
                if checked:
                    pairs.append((c.name, c.value))
                continue
            value = self.values.get(c.id, c.value) if c.id else c.value
            pairs.append((c.name, str(value)))
        action = urljoin(self._here(), form.action) if form.action else self._here()
        data = _form_encode(pairs)
        if form.method == "post":
            self._navigate("POST", action, data.encode())
        else:
            parts = urlsplit(action)
            self._navigate("GET", urlunsplit(parts._replace(query=data, fragment="")))

    def _navigate(self, method: str, url: str, body: bytes = b"") -> None:
        for _ in range(_MAX_REDIRECTS + 1):
            status, headers, content = self._run(self._request(method, url, body))
            self._store_cookies(headers)
            location = next((v for k, v in headers if k == "location"), None)
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if status in (301, 302, 303):
                    method, body = "GET", b""
                continue
            ctype = next((v for k, v in headers if k == "content-type"), "")
            m = _CHARSET.search(ctype)
            html = content.decode(m.group(1) if m else "utf-8", errors="replace")
            # a new document: typed values belong to the old one
            url = urlsplit(url)._replace(fragment="").geturl()
            self.page, self.values = parse_page(html, url), {}
            return
        raise ActionError(f"too many redirects from {url}")

    def _run(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coro)
        # A loop already runs in this thread (a notebook, Playwright's sync API) and ours cannot
        # run inside it: run ours in a helper thread instead (one hop, only in this case).
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="simpersona-http")
        return self._helper.submit(self._loop.run_until_complete, coro).result()

    def _store_cookies(self, headers: list[tuple[str, str]]) -> None:
        for key, value in headers:
            if key != "set-cookie":
                continue
            first, *attrs = value.split(";")
            name, _, val = first.strip().partition("=")
            expired = any(a.strip().lower() in {"max-age=0", "max-age=-1"} for a in attrs)
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val.strip().strip('"')

    async def _request(self, method: str, url: str, body: bytes) -> tuple[int, list, bytes]:
        parts = urlsplit(url)
        host = parts.netloc or urlsplit(self.base_url).netloc
        headers = [(b"host", host.encode()), (b"user-agent", b"simpersona-http"),
                   (b"accept", b"text/html")]
        if self.cookies:
            jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            headers.append((b"cookie", jar.encode()))
        if method == "POST":
            headers += [(b"content-type", b"application/x-www-form-urlencoded"),
                        (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": method, "scheme": parts.scheme or "http",
            "path": unquote(parts.path or "/"), "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": (parts.hostname or "storefront.local",
                                                      parts.port or 80),
        }
        status = 500
        out_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        done = asyncio.Event()
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.extend((k.decode("latin-1").lower(), v.decode("latin-1"))
                                   for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        return status, out_headers, b"".join(chunks)
