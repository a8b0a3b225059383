"""The action language: one grammar, one table of actions, never ``exec``.

An action is one string such as ``click[add-to-cart]`` or ``type[field-email][ann@example.com]``.
:data:`ACTIONS` declares each action once (name, parameters, what it does, an example);
:func:`parse_action` parses against it, the backends dispatch on :attr:`Action.name`, and
:func:`describe_actions` renders the same table into the prompt, so the parser, the backends
and the prompt cannot drift apart.

Example:
    >>> parse_action("type[field-email][ann@example.com]")
    Action(name='type', args=('field-email', 'ann@example.com'))
    >>> str(parse_action(" CLICK[ add-to-cart ] "))
    'click[add-to-cart]'
    >>> print(describe_actions().splitlines()[0][:40])
    click[id]: click the link or button with
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIONS",
    "Action",
    "ActionError",
    "ActionSpec",
    "ELEMENT_LINE",
    "describe_actions",
    "element_values",
    "fill_form",
    "parse_action",
    "valid_actions",
]


@dataclass(frozen=True)
class ActionSpec:
    """One kind of action: its name, its bracketed parameters and what it does."""

    name: str
    params: tuple[str, ...]
    doc: str
    example: str

    @property
    def signature(self) -> str:
        return self.name + "".join(f"[{p}]" for p in self.params)


#: Every action the env understands, in the order the prompt lists them.
ACTIONS: Mapping[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("click", ("id",), "click the link or button with this id (follow the link, "
                   "submit the form, toggle the checkbox)", "click[add-to-cart]"),
        ActionSpec("type", ("id", "text"), "replace the text of the input with this id "
                   "(nothing is submitted until a button is clicked)",
                   "type[field-email][ann@example.com]"),
        ActionSpec("search", ("text",), "type the text into the page's search box and submit it",
                   "search[running shoes]"),
        ActionSpec("select", ("id", "option"), "choose an option (by its text or value) in the "
                   "dropdown with this id", "select[sort][Price: low to high]"),
        ActionSpec("back", (), "go back to the previous page", "back"),
        ActionSpec("stop", (), "leave the shop: the episode ends", "stop"),
    )
}

_HEAD = re.compile(r"\s*([A-Za-z_]+)\s*")


class ActionError(ValueError):
    """An action that cannot be parsed or applied: an agent mistake, shown in the observation.

    Never escapes the env: :class:`~simpersona_env.env.storefront_env.StorefrontEnv` turns it
    into ``observation["last_action_error"]``.
    """


@dataclass(frozen=True)
class Action:
    """A parsed action: ``name`` is a key of :data:`ACTIONS`, ``args`` its parameters."""

    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name + "".join(f"[{a}]" for a in self.args)


def parse_action(text: Any) -> Action:
    """Parse one action string.

    Ids are stripped of surrounding spaces; free text (what is typed or searched) is kept as
    written, and a last free-text parameter may itself contain ``]`` (everything up to the
    final ``]``).

    Raises:
        ActionError: when the string is not an action, naming what was expected.
    """
    if not isinstance(text, str):
        raise ActionError(f"an action is a string, got {type(text).__name__}")
    m = _HEAD.match(text)
    name = m.group(1).lower() if m else ""
    spec = ACTIONS.get(name)
    if spec is None:
        raise ActionError(f"cannot parse action {_short(text)!r}: it must start with one of "
                          f"{', '.join(ACTIONS)} (e.g. {ACTIONS['click'].example})")
    rest = text[m.end():].rstrip()  # type: ignore[union-attr]
    args: list[str] = []
    for i in range(len(spec.params)):
        last = i == len(spec.params) - 1
        if not rest.startswith("["):
            break
        # free text (the last of type/search/select) may itself contain "]"; ids may not
        end = rest.rfind("]") if last and spec.params[i] != "id" else rest.find("]")
        if end < 0:
            break
        args.append(rest[1:end])
        rest = rest[end + 1:].lstrip() if not last else rest[end + 1:]
    if len(args) != len(spec.params) or rest.strip():
        raise ActionError(f"cannot parse action {_short(text)!r}: expected {spec.signature}, "
                          f"e.g. {spec.example}")
    # ids and options are names, so spaces around them are noise; free text is kept verbatim
    args = [a if p == "text" else a.strip() for p, a in zip(spec.params, args, strict=True)]
    return Action(name, tuple(args))


def describe_actions() -> str:
    """The action part of the prompt, one line per action, generated from :data:`ACTIONS`."""
    return "\n".join(f"{s.signature}: {s.doc}" for s in ACTIONS.values())


#: One interactive element in the rendered text: ``[id] role "label"`` and its extras.
ELEMENT_LINE = re.compile(r'^\[(?P<id>[^\]\s]+)\] (?P<role>[a-z]+) (?P<label>"(?:[^"\\]|\\.)*")'
                          r'(?P<extra>.*)$', re.M)
_OPTIONS = re.compile(r'options=(\[.*\])\s*$')


def valid_actions(observation: Mapping[str, Any] | str) -> list[str]:
    """The concrete actions a policy can take on this observation.

    Links and buttons give ``click[id]``, dropdowns one ``select[id][option]`` per option,
    text boxes ``type[id][<text>]`` (``<text>`` to be filled in), and ``search[<text>]``,
    ``back``, ``stop`` are always listed.

    Example:
        >>> text = '[nav-cart] link "Cart"\\n[sort] combobox "Sort" value="A" options=["A", "B"]'
        >>> valid_actions({"text": text})
        ['click[nav-cart]', 'select[sort][A]', 'select[sort][B]', 'search[<text>]', 'back', 'stop']
    """
    import json

    text = observation if isinstance(observation, str) else observation.get("text", "")
    out: list[str] = []
    for m in ELEMENT_LINE.finditer(text):
        eid, role = m.group("id"), m.group("role")
        if role in {"link", "button", "checkbox", "radio"}:
            out.append(f"click[{eid}]")
        elif role == "textbox":
            out.append(f"type[{eid}][<text>]")
        elif role == "combobox":
            opts = _OPTIONS.search(m.group("extra"))
            for option in json.loads(opts.group(1)) if opts else []:
                out.append(f"select[{eid}][{option}]")
    return out + ["search[<text>]", "back", "stop"]


_VALUE = re.compile(r'\s*value=("(?:[^"\\]|\\.)*")')


def element_values(observation: Mapping[str, Any] | str) -> dict[str, str | None]:
    """Element id -> its current ``value`` (text boxes, dropdowns; ``None`` without one), in
    page order."""
    import json

    text = observation if isinstance(observation, str) else observation.get("text", "")
    out: dict[str, str | None] = {}
    for m in ELEMENT_LINE.finditer(text):
        v = _VALUE.match(m.group("extra"))
        out[m.group("id")] = json.loads(v.group(1)) if v else None
    return out


def fill_form(observation: Mapping[str, Any] | str, fields: Mapping[str, str],
              country: str | None = None) -> list[str]:
    """The actions that bring a form on this page to ``fields`` (text box id -> text) and
    ``country`` (the ``field-country`` dropdown): one ``type`` per field the page has whose
    value differs, in page order, then the ``select``. Empty when nothing is left to fill.

    Example:
        >>> page = ('[field-email] textbox "Email" value="a@b.c"\\n[field-name] textbox "Name" '
        ...         'value=""\\n[field-country] combobox "Country" value="Select" '
        ...         'options=["Select", "France"]')
        >>> fill_form(page, {"field-email": "a@b.c", "field-name": "Ann", "field-city": "X"},
        ...           "France")
        ['type[field-name][Ann]', 'select[field-country][France]']
    """
    values = element_values(observation)
    out = [f"type[{eid}][{fields[eid]}]" for eid, value in values.items()
           if eid in fields and value != fields[eid]]
    if country and "field-country" in values and values["field-country"] != country:
        out.append(f"select[field-country][{country}]")
    return out


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
