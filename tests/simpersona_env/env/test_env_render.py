"""Page -> text: the shared rendering, and that the browser's live DOM renders the same."""

from urllib.parse import quote

import pytest

from simpersona_env.env.render import parse_page

SHOP = """<!doctype html><html><head><title>Tiny  shop</title><style>p{}</style></head>
<body data-sp-page="product">
<nav><a href="/" data-sp-id="nav-home">Home</a> <a href="/cart" data-sp-id="nav-cart" aria-label="Cart, 2 items">Cart</a></nav>
<h1>Blue <b>shirt</b></h1>
<p>Price: <span>$10</span></p>
<p hidden>secret hidden text</p><div style="display: none">also hidden</div>
<script>var x = "not text";</script>
<form action="/cart/add" method="post">
  <input type="hidden" name="product_id" value="p1">
  <label for="qty">Quantity</label><input id="qty" name="quantity" value="1" data-sp-id="quantity">
  <select name="size" data-sp-id="option-size" aria-label="Size">
    <option value="s">Small</option><option value="m" selected>Medium</option></select>
  <textarea name="note" data-sp-id="note" placeholder="A note">hi</textarea>
  <input type="checkbox" name="gift" data-sp-id="gift" aria-label="Gift wrap">
  <button type="submit" data-sp-id="add-to-cart">Add to cart</button>
  <button type="submit" data-sp-id="buy" disabled>Buy now</button>
</form>
</body></html>"""


def test_render_format():
    page = parse_page(SHOP, "http://shop.test/products/p1?x=1#top")
    assert page.kind == "product"
    assert page.render().splitlines() == [
        "# Tiny shop",
        "path: /products/p1?x=1",
        '[nav-home] link "Home"',
        '[nav-cart] link "Cart, 2 items"',  # aria-label first
        "Blue shirt",
        "Price: $10",
        '[quantity] textbox "Quantity" value="1"',  # <label for>
        '[option-size] combobox "Size" value="Medium" options=["Small", "Medium"]',
        '[note] textbox "A note" value="hi"',  # placeholder
        '[gift] checkbox "Gift wrap"',
        '[add-to-cart] button "Add to cart"',
        '[buy] button "Buy now" disabled',
    ]


def test_values_override_the_html():
    page = parse_page(SHOP, "http://shop.test/products/p1")
    text = page.render({"quantity": "3", "option-size": "s", "note": 'say "hi"', "gift": True})
    assert '[quantity] textbox "Quantity" value="3"' in text
    assert '[option-size] combobox "Size" value="Small"' in text
    assert '[note] textbox "A note" value="say \\"hi\\""' in text
    assert '[gift] checkbox "Gift wrap" checked' in text


def test_forms_list_every_submitted_control():
    page = parse_page(SHOP, "http://shop.test/products/p1")
    (form,) = page.forms
    assert (form.action, form.method) == ("/cart/add", "post")
    assert [(c.name, c.kind, c.value) for c in form.controls] == [
        ("product_id", "text", "p1"), ("quantity", "text", "1"), ("size", "select", "m"),
        ("note", "textarea", "hi"), ("gift", "checkbox", "on"), ("", "submit", ""),
        ("", "submit", "")]
    assert page.elements["add-to-cart"].form == 0


OTHER = """<html><head><title>Other</title></head><body>
<a href="/a">First</a><a>no href: not interactive</a>
<input type="hidden" name="t" value="1"><input name="q" placeholder="Search">
<button>Go</button><a href="/b" data-sp-id="mine">Mine</a><select name="s"><option>One</option></select>
</body></html>"""


def test_ids_from_the_dom_on_other_sites():
    page = parse_page(OTHER, "http://other.test/")
    # numbered in document order over the interactive selector; an existing data-sp-id wins
    assert list(page.elements) == ["e0", "e1", "e2", "mine", "e4"]
    assert page.elements["e1"].role == "textbox" and page.elements["e1"].name == "q"
    assert page.kind == ""


@pytest.mark.browser
def test_browser_dom_renders_like_the_parsed_html(chromium):
    """The live DOM after fills, selects and clicks renders exactly like the HTML plus the
    values the http backend tracks (SYNC_DOM_JS copies live state into attributes)."""
    from simpersona_env.env.backends.playwright_backend import PlaywrightBackend

    html = SHOP + OTHER.replace("<html><head><title>Other</title></head><body>", "<div>")
    html = html.replace("</body></html>", "", 1).replace("</body>\n</html>", "</div></body></html>")
    url = "data:text/html;charset=utf-8," + quote(html)
    backend = PlaywrightBackend(chromium)
    try:
        backend.new_visitor([])
        backend.goto(url)
        page, _ = backend.read()
        expected = parse_page(html, page.url)
        assert page.render() == expected.render()
        assert list(page.elements) == list(expected.elements)
        els = page.elements
        backend.fill(els["quantity"], "7")
        backend.choose(els["option-size"], "s")
        backend.fill(els["note"], "wrap it")
        backend.click(els["gift"])
        live, _ = backend.read()
        values = {"quantity": "7", "option-size": "s", "note": "wrap it", "gift": True}
        assert live.render() == expected.render(values)
    finally:
        backend.close()
