"""Page -> text: the one rendering both backends share.

:func:`parse_page` reads a page's HTML once into a :class:`Page` (title, the visible text in
document order with the interactive elements in place, and the forms with every control
they submit); :meth:`Page.render` turns it into the observation text, with the current form
values. The ``http`` backend renders the server's HTML plus the values it tracks itself; the
``playwright`` backend first copies the live values into the DOM (``value``/``checked``/
``selected`` attributes, see :data:`SYNC_DOM_JS`) and renders ``outerHTML``. Both go through
the same HTML5 parser (lexbor), so the same page gives the same text on both.

The text looks like::

    # Cart | Acme
    path: /s/acme/cart
    [nav-home] link "Home"
    Your cart
    [cart-qty-p1] textbox "Quantity" value="2"
    [field-country] combobox "Country" value="Germany" options=["France", "Germany"]

Elements carry the bundled shop's ``data-sp-id``; on other sites an id ``e<n>`` is given to the
n-th element matched by :data:`INTERACTIVE` (in the browser by :data:`SYNC_DOM_JS`, here for
HTML that did not come from a browser), so both number elements the same way.

Example:
    >>> page = parse_page('<title>T</title><p>Hi</p><a href="/x" data-sp-id="go">Go on</a>',
    ...                   "http://shop/s/a/?q=1")
    >>> print(page.render())
    # T
    path: /s/a/?q=1
    Hi
    [go] link "Go on"
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["Element", "Form", "INTERACTIVE", "Page", "SYNC_DOM_JS", "parse_page"]

#: What counts as interactive on a site without ``data-sp-id`` (numbered in document order).
INTERACTIVE = ('a[href], button, input:not([type="hidden"]), select, textarea, '
               '[role="button"], [role="link"], [role="checkbox"]')

#: Run in the page before reading it (playwright backend): number the interactive elements
#: that have no ``data-sp-id`` and copy the live form state into attributes, so that
#: ``outerHTML`` shows what the user typed and selected. Returns ``[url, html]``.
SYNC_DOM_JS = """(sel) => {
  document.querySelectorAll(sel).forEach((el, i) => {
    if (!el.hasAttribute('data-sp-id')) el.setAttribute('data-sp-id', 'e' + i);
  });
  for (const el of document.querySelectorAll('input, textarea, select')) {
    if (el.tagName === 'SELECT') {
      for (const o of el.options) {
        if (o.selected && !o.hasAttribute('selected')) o.setAttribute('selected', '');
        else if (!o.selected && o.hasAttribute('selected')) o.removeAttribute('selected');
      }
    } else if (el.tagName === 'TEXTAREA') {
      if (el.value !== el.textContent) el.textContent = el.value;
    } else if (el.type === 'checkbox' || el.type === 'radio') {
      if (el.checked && !el.hasAttribute('checked')) el.setAttribute('checked', '');
      else if (!el.checked && el.hasAttribute('checked')) el.removeAttribute('checked');
    } else if (el.type !== 'file' && el.value !== (el.getAttribute('value') ?? '')) {
      el.setAttribute('value', el.value);
    }
  }
  return [location.href, document.documentElement.outerHTML];
}"""

_SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "option",
         "datalist"}
_BLOCK = {"address", "article", "aside", "blockquote", "body", "br", "dd", "details", "dialog",
          "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
          "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
          "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul", "legend",
          "caption"}
_CELL = {"td", "th"}
_BUTTON_INPUTS = {"submit", "button", "reset", "image"}
_ROLES = {"button", "link", "checkbox", "radio", "textbox", "combobox"}
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


@dataclass(frozen=True)
class Element:
    """An element an agent may act on."""

    id: str
    tag: str  #: a, button, input, select, textarea (or any tag with a role)
    role: str  #: link, button, textbox, combobox, checkbox, radio
    label: str
    type: str = ""  #: the input or button type ("" where none)
    name: str = ""  #: the form field name
    value: str = ""  #: the value in the HTML: input value, textarea text, selected option value
    href: str | None = None
    options: tuple[tuple[str, str], ...] = ()  #: (value, text) of each option of a select
    checked: bool = False
    disabled: bool = False
    form: int | None = None  #: index into Page.forms

    def option_value(self, choice: str) -> str | None:
        """The value of the option whose text or value is ``choice`` (case-insensitive)."""
        for value, text in self.options:
            if choice in (text, value):
                return value
        low = choice.casefold()
        for value, text in self.options:
            if low in (text.casefold(), value.casefold()):
                return value
        return None

    def option_text(self, value: str) -> str:
        for v, text in self.options:
            if v == value:
                return text
        return value


@dataclass(frozen=True)
class Control:
    """One control of a form, as submitted (hidden inputs included)."""

    name: str
    kind: str  #: "text", "checkbox", "radio", "select", "textarea", "submit"
    value: str
    checked: bool = False
    id: str | None = None  #: its data-sp-id, when it has one


@dataclass(frozen=True)
class Form:
    action: str  #: as written ("" = the page's own URL)
    method: str  #: "get" or "post"
    controls: tuple[Control, ...]


@dataclass
class Page:
    """A parsed page: what :meth:`render` needs and what the http backend acts on."""

    url: str
    title: str
    kind: str  #: the bundled shop's ``data-sp-page`` ("" on other sites)
    lines: list[str | Element]
    elements: dict[str, Element]
    forms: list[Form]
    html: str = field(repr=False, default="")

    def render(self, values: Mapping[str, str | bool] | None = None) -> str:
        """The observation text; ``values`` (id -> text, option value or checked) override
        the values written in the HTML (the http backend's form state)."""
        values = values or {}
        parts = urlsplit(self.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        out = [f"# {self.title}", f"path: {path}"]
        for line in self.lines:
            out.append(line if isinstance(line, str) else _element_line(line, values.get(line.id)))
        return "\n".join(out)


def _element_line(el: Element, override: str | bool | None) -> str:
    line = f"[{el.id}] {el.role} {json.dumps(el.label, ensure_ascii=False)}"
    if el.role == "textbox":
        value = el.value if override is None else str(override)
        line += f" value={json.dumps(value, ensure_ascii=False)}"
    elif el.role == "combobox":
        value = el.value if override is None else str(override)
        line += (f" value={json.dumps(el.option_text(value), ensure_ascii=False)}"
                 f" options={json.dumps([t for _, t in el.options], ensure_ascii=False)}")
    elif el.role in {"checkbox", "radio"}:
        if (el.checked if override is None else bool(override)):
            line += " checked"
    if el.disabled:
        line += " disabled"
    return line


def _hidden(tag: str, attrs: dict) -> bool:
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if tag == "input" and (attrs.get("type") or "").lower() == "hidden":
        return True
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _select_state(node: LexborNode) -> tuple[tuple[tuple[str, str], ...], str]:
    options, selected = [], None
    for opt in node.css("option"):
        a = opt.attributes
        text = _norm(opt.text(deep=True))
        value = a.get("value")
        value = text if value is None else value
        options.append((value, text))
        if "selected" in a and selected is None:
            selected = value
    if selected is None:
        selected = options[0][0] if options else ""
    return tuple(options), selected


def _role(tag: str, attrs: dict) -> tuple[str, str]:
    """(role, input type) of an interactive element."""
    explicit = (attrs.get("role") or "").lower()
    typ = (attrs.get("type") or "").lower()
    if tag == "a":
        return explicit if explicit in _ROLES else "link", ""
    if tag == "button":
        return "button", typ or "submit"
    if tag == "select":
        return "combobox", ""
    if tag == "textarea":
        return "textbox", "textarea"
    if tag == "input":
        typ = typ or "text"
        if typ in _BUTTON_INPUTS:
            return "button", typ
        if typ in {"checkbox", "radio"}:
            return typ, typ
        return "textbox", typ
    return explicit if explicit in _ROLES else "button", ""


def _control_value(node: LexborNode, tag: str, attrs: dict) -> str:
    if tag == "textarea":
        return node.text(deep=True)
    if tag == "select":
        return _select_state(node)[1]
    typ = (attrs.get("type") or "").lower()
    value = attrs.get("value")
    if value is None:
        return "on" if typ in {"checkbox", "radio"} else ""
    return value


def parse_page(html: str, url: str) -> Page:
    """Parse a page once; see :class:`Page`."""
    tree = LexborHTMLParser(html)
    # number elements without a data-sp-id exactly as SYNC_DOM_JS does in the browser
    for i, node in enumerate(tree.css(INTERACTIVE)):
        if "data-sp-id" not in node.attributes:
            node.attrs["data-sp-id"] = f"e{i}"

    forms: list[Form] = []
    form_of: dict[str, int] = {}
    form_ids: dict[str, int] = {}
    for fi, fnode in enumerate(tree.css("form")):
        fa = fnode.attributes
        if fa.get("id"):
            form_ids[fa["id"]] = fi
        controls = []
        for c in fnode.css("input, select, textarea, button"):
            ca = c.attributes
            cid = ca.get("data-sp-id")
            if cid:
                form_of[cid] = fi
            tag = c.tag
            typ = (ca.get("type") or ("submit" if tag == "button" else "text")).lower()
            kind = ("select" if tag == "select" else "textarea" if tag == "textarea"
                    else "submit" if typ in _BUTTON_INPUTS else typ if typ in {"checkbox", "radio"}
                    else "text")
            controls.append(Control(name=ca.get("name") or "", kind=kind,
                                    value=_control_value(c, tag, ca), checked="checked" in ca,
                                    id=cid))
        forms.append(Form(action=fa.get("action") or "", method=(fa.get("method") or "get").lower(),
                          controls=tuple(controls)))

    labels: dict[str, str] = {}
    for lab in tree.css("label[for]"):
        labels.setdefault(lab.attributes["for"] or "", _norm(lab.text(deep=True)))
    # a <label for> of an element the agent sees is that element's label, not separate text
    labelled = {n.attributes.get("id") for n in tree.css("[data-sp-id][id]")} & set(labels)

    lines: list[str | Element] = []
    elements: dict[str, Element] = {}
    buf: list[str] = []

    def flush() -> None:
        if buf:
            text = _norm("".join(buf))
            if text:
                lines.append(text)
            buf.clear()

    def element(node: LexborNode, tag: str, attrs: dict) -> Element:
        role, typ = _role(tag, attrs)
        own = ""
        if tag == "input":
            own = attrs.get("value") or "" if typ in _BUTTON_INPUTS else ""
        elif tag not in {"select", "textarea"}:
            own = _norm(node.text(deep=True))
        label = _norm(attrs.get("aria-label") or "") or own
        if not label and attrs.get("id"):
            label = labels.get(attrs["id"], "")
        label = (label or _norm(attrs.get("placeholder") or "") or _norm(attrs.get("title") or "")
                 or _norm(attrs.get("name") or ""))
        options, value = ((), "")
        if tag == "select":
            options, value = _select_state(node)
        elif role == "textbox":
            value = _control_value(node, tag, attrs)
        eid = attrs["data-sp-id"]
        form = form_of.get(eid)
        if attrs.get("form") in form_ids:
            form = form_ids[attrs["form"]]
        return Element(id=eid, tag=tag, role=role, label=label, type=typ,
                       name=attrs.get("name") or "", value=value, href=attrs.get("href"),
                       options=options, checked="checked" in attrs,
                       disabled="disabled" in attrs, form=form)

    def walk(node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                buf.append(child.text_content or "")
                continue
            if tag[0] == "-" or tag in _SKIP:
                continue
            attrs = child.attributes
            if _hidden(tag, attrs) or (tag == "label" and attrs.get("for") in labelled):
                continue
            if "data-sp-id" in attrs:
                flush()
                el = element(child, tag, attrs)
                if el.id not in elements:  # ids are unique by contract; keep the first if not
                    elements[el.id] = el
                    lines.append(el)
                continue
            if tag in _BLOCK:
                flush()
                walk(child)
                flush()
            else:
                if tag in _CELL:
                    buf.append(" ")
                walk(child)
                if tag in _CELL:
                    buf.append(" ")

    body = tree.body
    if body is not None:
        walk(body)
    flush()
    title_node = tree.css_first("title")
    body_attrs = body.attributes if body is not None else {}
    return Page(url=url, title=_norm(title_node.text()) if title_node else "",
                kind=body_attrs.get("data-sp-page") or "", lines=lines, elements=elements,
                forms=forms, html=html)
