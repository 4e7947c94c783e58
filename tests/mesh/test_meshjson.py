"""dashboard.mesh.meshjson: the runtime's exact bytes (System.Text.Json, default encoder, compact)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.mesh.meshjson import (
    MAX_DEPTH,
    JsonObject,
    JsonTooDeep,
    Number,
    dumps,
    is_mesh_form,
    loads,
    pretty,
    to_mesh_form,
)

# --- escaping of strings: the default encoder's rules -------------------------------------------------

STRING_VECTORS = [
    ("Zoë <b>", r'"Zo\u00EB \u003Cb\u003E"'),
    ('say "hi"', r'"say \u0022hi\u0022"'),
    ("😀", r'"\uD83D\uDE00"'),
    ("\U0010ffff", r'"\uDBFF\uDFFF"'),
    ("it's", r'"it\u0027s"'),
    ("a&b", r'"a\u0026b"'),
    ("1+1", r'"1\u002B1"'),
    ("`cmd`", r'"\u0060cmd\u0060"'),
    (">", r'"\u003E"'),
    ("\x7f", r'"\u007F"'),
    ("\x00\x01\x0b\x1f", r'"\u0000\u0001\u000B\u001F"'),
    ("\x85\xa0", r'"\u0085\u00A0"'),
    ("\u2028\ufeff\uffff", r'"\u2028\uFEFF\uFFFF"'),
    ("back\\slash", r'"back\\slash"'),
    ("l1\nl2\r\tx\by\fz", r'"l1\nl2\r\tx\by\fz"'),
    ("config/theme", '"config/theme"'),
    ("\ud800", r'"\uD800"'),  # lone surrogate: kept (System.Text.Json would write \uFFFD or throw)
    ("\udc80x", r'"\uDC80x"'),
    (" !#$%()*,-.:;=?@[]^_{|}~azAZ09", '" !#$%()*,-.:;=?@[]^_{|}~azAZ09"'),
    ("", '""'),
]


@pytest.mark.parametrize(("value", "expected"), STRING_VECTORS)
def test_strings_escape_like_the_default_encoder(value, expected):
    assert dumps(value) == expected
    assert loads(expected) == value


def test_the_documented_example_value():
    text = '{"id":"alice","displayName":"Zoë <b>"}'
    assert to_mesh_form(text) == r'{"id":"alice","displayName":"Zo\u00EB \u003Cb\u003E"}'


def test_member_names_are_escaped_like_strings():
    assert to_mesh_form('{"é":1,"<a>":2,"😀":3,"q\\"":4}') == (
        r'{"\u00E9":1,"\u003Ca\u003E":2,"\uD83D\uDE00":3,"q\u0022":4}'
    )


def test_output_is_compact_and_ascii():
    out = to_mesh_form('{ "a" : [ 1 , 2 , { "b" : null } ] ,\n\t"c" : "é" }')
    assert out == r'{"a":[1,2,{"b":null}],"c":"\u00E9"}'
    assert out.isascii()


# --- numbers ------------------------------------------------------------------------------------------

FLOAT_VECTORS = [
    (1.0, "1"),
    (1.5, "1.5"),
    (1e20, "1E+20"),
    (1e-7, "1E-07"),
    (-1.5e-10, "-1.5E-10"),
    (0.0, "0"),
    (-0.0, "-0"),
    (0.1, "0.1"),
    (1 / 3, "0.3333333333333333"),
    (100.0, "100"),
    (-60.0, "-60"),
    (12345.678, "12345.678"),
    (0.0001, "0.0001"),
    (0.00001, "1E-05"),
    (0.00012, "0.00012"),
    (1e16, "10000000000000000"),
    (99999999999999999.0, "1E+17"),
    (1e17, "1E+17"),
    (123456789012345678.0, "1.2345678901234568E+17"),
    (2.0**53, "9007199254740992"),
    (1234567890123456.7, "1234567890123456.8"),
    (1e300, "1E+300"),
    (1.7976931348623157e308, "1.7976931348623157E+308"),
    (5e-324, "5E-324"),
]


@pytest.mark.parametrize(("value", "expected"), FLOAT_VECTORS)
def test_floats_are_written_like_dotnet_double_tostring(value, expected):
    assert dumps(value) == expected
    assert float(expected) == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ValueError):
        dumps(value)


def test_number_literals_are_kept_as_written():
    value = loads("[1.50,1e400,-0,0.0,1E+20,-1.5e-7,12345678901234567890123]")
    literals = ("1.50", "1e400", "-0", "0.0", "1E+20", "-1.5e-7", "12345678901234567890123")
    assert value == [Number(literal) for literal in literals]
    assert dumps(value) == "[1.50,1e400,-0,0.0,1E+20,-1.5e-7,12345678901234567890123]"


def test_huge_integers_do_not_hit_pythons_digit_limit():
    literal = "9" * 5000
    with pytest.raises(ValueError):
        json.loads(literal)  # the stdlib default does raise: this is what loads must avoid
    assert loads(literal) == Number(literal)
    assert to_mesh_form(f"[{literal}]") == f"[{literal}]"
    assert dumps(10**5000) == "1" + "0" * 5000


def test_python_scalars_and_containers():
    assert dumps(["profile:alice", "profile:bob"]) == '["profile:alice","profile:bob"]'
    assert dumps({"b": [1, -2, 2.5, True, False, None], "a": ()}) == '{"b":[1,-2,2.5,true,false,null],"a":[]}'
    assert dumps(Number("1.50")) == "1.50"
    assert dumps(JsonObject([("a", 1), ("a", 2)])) == '{"a":1,"a":2}'


@pytest.mark.parametrize("bad", [object(), {1: "x"}, {b"k": 1}, [{1, 2}], b"bytes"])
def test_dumps_refuses_what_is_not_json(bad):
    with pytest.raises(TypeError):
        dumps(bad)


@pytest.mark.parametrize("bad", ["abc", "01", "1.", "+1", " 1", "NaN", ""])
def test_number_accepts_only_json_number_literals(bad):
    with pytest.raises(ValueError):
        Number(bad)


# --- loads: order, duplicates, strictness -----------------------------------------------------------


def test_loads_keeps_member_order_and_duplicates():
    value = loads('{"z":1,"a":{"y":true,"x":null},"z":"again"}')
    assert isinstance(value, JsonObject)
    assert value == [("z", Number("1")), ("a", JsonObject([("y", True), ("x", None)])), ("z", "again")]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN]",
        '{"a":Infinity}',
        "[1,]",
        '{"a":1,}',
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        '"\x01"',
        '"\\x"',
        '"unterminated',
        "[1 2]",
        '{"a" 1}',
        "{1:2}",
        "{'a':1}",
        "tru",
        "[1]x",
        "[1]]",
        "[",
        '{"a":',
        "\ufeff[]",
    ],
)
def test_loads_rejects_what_is_not_json(text):
    with pytest.raises(ValueError):
        loads(text)
    assert not is_mesh_form(text)
    assert pretty(text) is None


def test_loads_wants_a_string():
    with pytest.raises(TypeError):
        loads(b"[]")


# --- depth ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[" * 50_000 + "]" * 50_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 50_000],
)
def test_deep_nesting_raises_a_clear_error(text):
    with pytest.raises(JsonTooDeep, match=str(MAX_DEPTH)):
        loads(text)
    assert issubclass(JsonTooDeep, ValueError)
    assert not is_mesh_form(text)
    assert pretty(text) is None


def test_max_depth_is_allowed_one_more_is_not():
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert is_mesh_form(deepest)  # no RecursionError: neither direction recurses
    assert to_mesh_form(pretty(deepest)) == deepest
    with pytest.raises(JsonTooDeep):
        loads("[" + deepest + "]")


def test_dumps_refuses_the_same_depth():
    value: list = []
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert dumps(value) == "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(JsonTooDeep):
        dumps([value])
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(JsonTooDeep):
        dumps(cyclic)


# --- mesh form and the pretty round trip ------------------------------------------------------------

MESH_VALUES = [
    r'{"id":"alice","displayName":"Zo\u00EB \u003Cb\u003E"}',
    '{"a":1,"a":2,"a":{"a":[]}}',
    '{"z":1,"a":2,"m":[3,{"b":null,"a":true}]}',
    "[1.50,1e400,-0,0.0,1E+20,-1.5e-7,1E-07]",
    "[" + "7" * 5000 + "]",
    r'"\uD83D\uDE00 \u0022 \\ \n \u0027 \u0026 \u002B \u0060 \u007F / \u2028"',
    r'{"\u00E9t\u00E9":"x","":""}',
    r'["\uD800","\uDC00x"]',
    "{}",
    "[]",
    "[[],{},[{}]]",
    '""',
    "null",
    "true",
    "false",
    "0",
    '["profile:alice","profile:bob"]',
]


@pytest.mark.parametrize("value", MESH_VALUES)
def test_mesh_values_survive_pretty_and_back(value):
    assert is_mesh_form(value)
    assert to_mesh_form(value) == value
    shown = pretty(value)
    assert shown is not None
    assert to_mesh_form(shown) == value
    # a textarea submits CRLF line breaks; they are whitespace between tokens
    assert to_mesh_form(shown.replace("\n", "\r\n")) == value


def test_pretty_is_indented_and_shows_non_ascii_as_is():
    value = r'{"n":"Zo\u00EB \u003Cb\u003E \uD83D\uDE00","a":[1.50,{}],"e":[],"n":"\u0022\n\u0001"}'
    assert pretty(value) == (
        "{\n"
        '  "n": "Zoë <b> 😀",\n'
        '  "a": [\n'
        "    1.50,\n"
        "    {}\n"
        "  ],\n"
        '  "e": [],\n'
        '  "n": "\\"\\n\\u0001"\n'
        "}"
    )


def test_pretty_escapes_what_cannot_travel_through_a_textarea():
    shown = pretty(r'"\u007F\u0085\uD800"')
    assert shown == r'"\u007F\u0085\uD800"'
    shown.encode("utf-8")  # no lone surrogate left to break the page


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        ' {"a":1}',
        '{"a":1}\n',
        '[1, 2]',
        r'"\u00e9"',  # lower-case hex
        '"é"',  # not escaped
        r'"\""',  # Python's json style, the runtime writes \u0022
        '"<b>"',
        r'"\/"',
        r'"\u0041"',  # needless escape
        r'"\u00E9\u00e9"',
        "[1,2",
        "not json",
        "",
        "\x7f",
    ],
)
def test_is_mesh_form_false(text):
    assert is_mesh_form(text) is False


@pytest.mark.parametrize("value", [None, b"[]", 42, ["[]"]])
def test_is_mesh_form_never_raises(value):
    assert is_mesh_form(value) is False


def test_to_mesh_form_rewrites_other_writers_output():
    python_written = json.dumps({"name": "Zoë", "tags": ["<a>", "x'y"]}, indent=2)
    assert to_mesh_form(python_written) == r'{"name":"Zo\u00EB","tags":["\u003Ca\u003E","x\u0027y"]}'
    with pytest.raises(ValueError):
        to_mesh_form("not json")


# --- properties (hypothesis) ----------------------------------------------------------------------------

_ESCAPE_TOKEN = re.compile(r'\\(u[0-9A-Fa-f]{4}|.)', re.DOTALL)
_HTML_SENSITIVE = set("\"'&+<>`")


def _same(loaded, original) -> bool:
    """loads() output says what original (plain Python data) says: order, types, exact number values."""
    if isinstance(original, dict):
        original = JsonObject(original.items())
    if isinstance(original, JsonObject):
        return (
            isinstance(loaded, JsonObject)
            and len(loaded) == len(original)
            and all(
                name == _utf16(original_name) and _same(member, original_member)
                for (name, member), (original_name, original_member) in zip(loaded, original, strict=True)
            )
        )
    if isinstance(original, (list, tuple)):
        return (
            type(loaded) is list
            and len(loaded) == len(original)
            and all(_same(item, original_item) for item, original_item in zip(loaded, original, strict=True))
        )
    if isinstance(original, bool) or original is None:
        return loaded is original
    if isinstance(original, float):  # repr: -0.0 must stay -0.0
        return isinstance(loaded, Number) and repr(float(loaded.text)) == repr(original)
    if isinstance(original, int):
        return isinstance(loaded, Number) and int(loaded.text) == original
    return isinstance(loaded, str) and loaded == _utf16(original)


def _utf16(text: str) -> str:
    """Adjacent surrogate code points joined into the character they encode, as any JSON reader does."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _string_escapes_are_mesh_form(encoded: str) -> bool:
    """Only printable, non-sensitive ASCII raw; escapes upper-case, short where the runtime uses short."""
    body = encoded[1:-1]
    if any(c in _HTML_SENSITIVE or not " " <= c <= "~" for c in _ESCAPE_TOKEN.sub("", body)):
        return False
    for token in _ESCAPE_TOKEN.findall(body):
        if not token.startswith("u"):
            if token not in ("n", "r", "t", "b", "f", "\\"):
                return False
            continue
        digits = token[1:]
        char = chr(int(digits, 16))
        if digits != digits.upper() or char in "\n\r\t\b\f\\":
            return False
        if " " <= char <= "~" and char not in _HTML_SENSITIVE:
            return False  # a needless escape
    return True


_chars = st.characters(exclude_categories=()) | st.sampled_from("\"'&+<>`/\\\x7f\n\r\t\b\f\x00é😀\ud800")
_strings = st.text(alphabet=_chars, max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _strings
)
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_strings, inner, max_size=4),
    max_leaves=25,
)
_json_no_floats = st.recursive(
    st.none() | st.booleans() | st.integers() | _strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_strings, inner, max_size=4),
    max_leaves=25,
)
_settings = settings(database=None, deadline=None, max_examples=300)

@_settings
@given(_json)
def test_property_dumps_is_ascii_mesh_form_and_round_trips(value):
    out = dumps(value)
    assert out.isascii()
    assert is_mesh_form(out)
    assert _same(loads(out), value)
    # an independent reader agrees on what was written
    stdlib = json.loads(out, object_pairs_hook=JsonObject, parse_int=Number, parse_float=Number)
    assert _same(stdlib, value)
    assert to_mesh_form(pretty(out)) == out

@_settings
@given(_strings)
def test_property_strings_use_only_the_runtimes_escapes(value):
    encoded = dumps(value)
    assert _string_escapes_are_mesh_form(encoded)
    assert json.loads(encoded) == _utf16(value)
    assert loads(encoded) == _utf16(value)

@_settings
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_floats_round_trip_in_dotnet_shape(value):
    out = dumps(value)
    assert float(out) == value
    assert re.fullmatch(r"-?(0|[1-9][0-9]{0,16})(\.[0-9]+)?(E[-+][0-9]{2,3})?", out)

@_settings
@given(_json_no_floats)
def test_property_other_writers_text_normalises_to_dumps(value):
    written = json.dumps(value, indent=2, ensure_ascii=False)
    assert to_mesh_form(written) == dumps(value)
    assert to_mesh_form(pretty(written)) == dumps(value)
