"""The action language: parsing, the prompt text, valid actions."""

import pytest

from simpersona_env.env.actions import (
    ACTIONS,
    Action,
    ActionError,
    describe_actions,
    parse_action,
    valid_actions,
)


@pytest.mark.parametrize("text, expected", [
    ("click[add-to-cart]", Action("click", ("add-to-cart",))),
    ("  Click[ add-to-cart ]  ", Action("click", ("add-to-cart",))),
    ("type[field-email][ann@example.com]", Action("type", ("field-email", "ann@example.com"))),
    ("type[q][ two  spaces ]", Action("type", ("q", " two  spaces "))),  # free text verbatim
    ("type[q][a]b]", Action("type", ("q", "a]b"))),  # the last parameter may contain ]
    ("search[running shoes]", Action("search", ("running shoes",))),
    ("search[]", Action("search", ("",))),
    ("select[sort][Price: low to high]", Action("select", ("sort", "Price: low to high"))),
    ("back", Action("back")),
    ("STOP", Action("stop")),
])
def test_parse(text, expected):
    assert parse_action(text) == expected
    assert parse_action(str(expected)) == expected  # round trip


@pytest.mark.parametrize("text, fragment", [
    ("", "must start with one of"),
    ("jump[x]", "must start with one of"),
    ("click", "expected click[id]"),
    ("click[a][b]", "expected click[id]"),
    ("type[only-id]", "expected type[id][text]"),
    ("back[x]", "expected back"),
    ("click[x", "expected click[id]"),
    (42, "an action is a string"),
])
def test_parse_errors_name_the_expected_form(text, fragment):
    with pytest.raises(ActionError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_action(text)


def test_prompt_is_generated_from_the_table():
    lines = describe_actions().splitlines()
    assert len(lines) == len(ACTIONS)
    for spec, line in zip(ACTIONS.values(), lines, strict=True):
        assert line.startswith(spec.signature + ": ")
        assert parse_action(spec.example).name == spec.name  # every example parses


def test_valid_actions_from_rendered_elements():
    text = "\n".join([
        "# Shop", "path: /", '[nav-cart] link "Cart (0)"', '[q] textbox "Search" value=""',
        '[sort] combobox "Sort" value="Featured" options=["Featured", "Price \\"low\\""]',
        '[agree] checkbox "I agree" checked', "Some text [not-an-element] here"])
    assert valid_actions({"text": text}) == [
        "click[nav-cart]", "type[q][<text>]", "select[sort][Featured]",
        'select[sort][Price "low"]', "click[agree]", "search[<text>]", "back", "stop"]


def test_fill_form_types_what_differs_in_page_order_then_the_country():
    from simpersona_env.env.actions import element_values, fill_form

    page = ('[field-name] textbox "Full name" value="Bob"\n'  # filled, not with the profile's
            '[field-email] textbox "Email" value="ann@example.com"\n'  # already right
            '[field-city] textbox "City" value=""\n'
            '[field-country] combobox "Country" value="Select a country" '
            'options=["Select a country", "France"]\n'
            '[place-order] button "Place order"')
    assert element_values(page) == {"field-name": "Bob", "field-email": "ann@example.com",
                                    "field-city": "", "field-country": "Select a country",
                                    "place-order": None}
    profile = {"field-email": "ann@example.com", "field-name": "Ann Lee", "field-city": "Lyon",
               "field-postcode": "69001"}  # no postcode box on this page: nothing to type
    assert fill_form({"text": page}, profile, "France") == [
        "type[field-name][Ann Lee]", "type[field-city][Lyon]", "select[field-country][France]"]
    assert fill_form(page, profile) == ["type[field-name][Ann Lee]", "type[field-city][Lyon]"]
    done = page.replace('"Bob"', '"Ann Lee"').replace('value=""', 'value="Lyon"').replace(
        'value="Select a country"', 'value="France"')
    assert fill_form(done, profile, "France") == []
