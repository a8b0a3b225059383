"""The http backend's browser emulation, against a small ASGI app written here."""

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

from simpersona_env.env.actions import ActionError
from simpersona_env.env.backends.http_backend import HttpBackend

FORM = """<html><head><title>{title}</title></head><body>
<p>seen: {seen}</p>
<a href="/echo?q=from+link" data-sp-id="link">Link</a>
<a href="#section" data-sp-id="anchor">Anchor</a>
<a href="javascript:void(0)" data-sp-id="js">JS</a>
<form action="/echo" method="get"><input name="q" data-sp-id="q" type="search">
  <button data-sp-id="go" name="btn" value="go">Go</button></form>
<form action="/post" method="post">
  <input type="hidden" name="token" value="t~*"><input name="text" value="def" data-sp-id="text">
  <input type="checkbox" name="flag" value="yes" data-sp-id="flag">
  <select name="pick" data-sp-id="pick"><option value="a">A</option><option value="b">B</option></select>
  <button type="submit" data-sp-id="send">Send</button>
  <button type="button" data-sp-id="noop">Nothing</button></form>
</body></html>"""


async def home(request):
    seen = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items())
    response = HTMLResponse(FORM.format(title="Home", seen=seen))
    if "visit" not in request.cookies:
        response.set_cookie("visit", "v1")
    return response


async def echo(request):
    seen = f"{request.url.query} cookie={request.cookies.get('visit')}"
    return HTMLResponse(FORM.format(title="Echo", seen=seen))


async def post(request):
    form = await request.form()
    seen = "&".join(f"{k}={v}" for k, v in form.multi_items())
    return RedirectResponse(f"/?posted={seen}", status_code=303)


APP = Starlette(routes=[Route("/", home), Route("/echo", echo), Route("/post", post, methods=["POST"])])


@pytest.fixture
def backend():
    b = HttpBackend(APP)
    b.goto("/")
    yield b
    b.close()


def _seen(b):
    page, _ = b.read()
    return next(line for line in page.lines if isinstance(line, str) and line.startswith("seen:"))


def test_link_get_and_cookie_jar(backend):
    page, _ = backend.read()
    assert backend.cookie("visit") == "v1"
    backend.click(page.elements["link"])
    assert _seen(backend) == "seen: q=from+link cookie=v1"
    assert backend.read()[0].url == "http://storefront.local/echo?q=from+link"


def test_get_form_as_a_browser_encodes_it(backend):
    page, _ = backend.read()
    backend.submit_search(page.elements["q"], "red shoes & ~more*")
    # Enter submits with the first submit button; spaces are '+', '~' escaped, '*' kept
    assert _seen(backend) == "seen: q=red+shoes+%26+%7Emore*&btn=go cookie=v1"


def test_post_form_with_typed_values_and_303(backend):
    page, _ = backend.read()
    backend.fill(page.elements["text"], "typed")
    backend.click(page.elements["flag"])
    backend.choose(page.elements["pick"], "b")
    rendered = page.render(backend.read()[1])
    assert '[text] textbox "text" value="typed"' in rendered and "[flag] checkbox" in rendered
    backend.click(page.elements["send"])
    assert backend.read()[0].title == "Home"  # 303 -> GET /
    assert _seen(backend) == "seen: posted=token=t~*&text=typed&flag=yes&pick=b"
    assert backend.read()[1] == {}  # a new page forgets typed values


def test_buttons_and_links_that_do_nothing(backend):
    page, _ = backend.read()
    backend.click(page.elements["noop"])
    backend.click(page.elements["anchor"])
    assert backend.read()[0] is page  # no request
    with pytest.raises(ActionError, match="needs JavaScript"):
        backend.click(page.elements["js"])


def test_works_inside_a_running_event_loop():
    """A notebook or Playwright's sync API runs a loop in the caller's thread."""
    import asyncio

    async def inside() -> str:
        b = HttpBackend(APP)
        try:
            b.goto("/echo?q=1")
            return _seen(b)
        finally:
            b.close()

    assert asyncio.run(inside()) == "seen: q=1 cookie=None"
