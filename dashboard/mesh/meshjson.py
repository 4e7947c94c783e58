"""JSON exactly as the mesh runtime writes it, so an edit changes only the bytes it means to.

ToskaMesh services store every value as the text of .NET System.Text.Json's
``JsonSerializer.Serialize`` with the default encoder, compact. Python's ``json`` module
cannot produce those bytes (it writes ``\\"`` and lower-case hex, keeps ``<``, loses member
duplicates and number spellings), so a value the dashboard re-serialised with it would
differ from what the runtime writes even where the operator changed nothing.

The runtime's output rules, which :func:`dumps` follows:

* compact: no whitespace between tokens;
* in strings and member names every character outside printable ASCII (0x20..0x7E) is
  written ``\\uXXXX`` with upper-case hex (an astral character as its UTF-16 surrogate
  pair, DEL as ``\\u007F``); so are ``" ' & + < >`` and the backtick (``"`` is
  ``\\u0022``); newline, carriage return, tab, backspace, form feed and backslash use
  the short forms ``\\n \\r \\t \\b \\f \\\\``; ``/`` is not escaped;
* doubles in the shortest form that reads back to the same value, formatted like
  .NET's ``double.ToString()``: ``1.0`` -> ``1``, ``1e20`` -> ``1E+20``, ``1e-7`` ->
  ``1E-07``, ``1e16`` -> ``10000000000000000``: exponent notation only below 0.0001 or
  from 1E+17 up (.NET's ``FormatGeneral`` with 17 digits); ``-0.0`` -> ``-0``; NaN and
  infinities are refused, as the runtime refuses them.

:func:`loads` keeps what those bytes depend on: member order and duplicate names
(objects come back as :class:`JsonObject`, a list of ``(name, value)`` pairs) and
numbers as written (:class:`Number`), so ``dumps(loads(v)) == v`` for every value the
runtime wrote. Both refuse nesting deeper than :data:`MAX_DEPTH` with
:class:`JsonTooDeep`; neither recurses, so no input reaches Python's recursion limit.

One deliberate difference: a lone surrogate (``"\\ud800"`` read by :func:`loads`) is
written back as ``\\uD800`` so nothing is lost; System.Text.Json would write U+FFFD or
throw (and the runtime cannot read such a value back).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from json import JSONDecodeError
from json.decoder import scanstring

__all__ = [
    "MAX_DEPTH",
    "JsonObject",
    "JsonTooDeep",
    "Number",
    "dumps",
    "is_mesh_form",
    "loads",
    "pretty",
    "to_mesh_form",
]

# Deepest nesting of arrays/objects read or written. System.Text.Json's serializer stops at
# 64, but values written by other tools can be deeper; 1,000 covers them and is still far
# from anything that could exhaust memory or time.
MAX_DEPTH = 1000

_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WS_RE = re.compile(r"[ \t\n\r]*")
# Everything but printable ASCII minus " & ' + < > \ and backtick: what the runtime escapes.
_MESH_ESCAPE_RE = re.compile(r"[^\x20\x21\x23-\x25\x28-\x2a\x2c-\x3b\x3d\x3f-\x5b\x5d-\x5f\x61-\x7e]")
# For the human-readable form: quotes, backslash, controls (C0, DEL, C1), lone surrogates.
_PRETTY_ESCAPE_RE = re.compile(r'[\x00-\x1f"\\\x7f-\x9f\ud800-\udfff]')
_NOT_MESH_CHAR_RE = re.compile(r"[^\x20-\x7e]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\\": "\\\\"}
_LITERALS = (("true", True), ("false", False), ("null", None))
_END = object()


class JsonTooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH arrays/objects."""


class JsonObject(list):
    """A JSON object as a list of (name, value) pairs, in document order, duplicates kept."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JsonObject({list.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Number:
    """A JSON number kept as its literal text (``1.50``, ``1e400``, ``-0``), never rounded."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not _NUMBER_RE.fullmatch(self.text):
            raise ValueError(f"not a JSON number: {self.text!r}")

    def __str__(self) -> str:
        return self.text


def _too_deep() -> JsonTooDeep:
    return JsonTooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")


def _member_name(text: str, pos: int) -> tuple[str, int]:
    """Read ``"name" :`` at pos (whitespace skipped before); return the name and the value's position."""
    if not text.startswith('"', pos):
        raise JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    name, pos = scanstring(text, pos + 1, True)
    pos = _WS_RE.match(text, pos).end()
    if not text.startswith(":", pos):
        raise JSONDecodeError("Expecting ':' delimiter", text, pos)
    return name, _WS_RE.match(text, pos + 1).end()


def loads(text: str) -> object:
    """Parse JSON text keeping member order, duplicate names and number literals (JsonObject, Number)."""
    if not isinstance(text, str):
        raise TypeError(f"JSON text must be str, not {type(text).__name__}")
    stack: list[list] = []  # open arrays and objects, innermost last
    names: list[str] = []  # pending member name of each open object
    pos = _WS_RE.match(text).end()
    while True:
        # A value starts at pos.
        char = text[pos : pos + 1]
        if char in ("[", "{"):
            if len(stack) >= MAX_DEPTH:
                raise _too_deep()
            container = JsonObject() if char == "{" else []
            pos = _WS_RE.match(text, pos + 1).end()
            if not text.startswith("}" if char == "{" else "]", pos):
                stack.append(container)
                if char == "{":
                    name, pos = _member_name(text, pos)
                    names.append(name)
                continue
            value, pos = container, pos + 1
        elif char == '"':
            value, pos = scanstring(text, pos + 1, True)
        elif match := _NUMBER_RE.match(text, pos):
            value, pos = Number(match.group()), match.end()
        else:
            for literal, constant in _LITERALS:
                if text.startswith(literal, pos):
                    value, pos = constant, pos + len(literal)
                    break
            else:
                raise JSONDecodeError("Expecting value", text, pos)
        # The value ends before pos: put it in its container, closing containers that end here.
        while True:
            pos = _WS_RE.match(text, pos).end()
            if not stack:
                if pos != len(text):
                    raise JSONDecodeError("Extra data", text, pos)
                return value
            parent = stack[-1]
            is_object = isinstance(parent, JsonObject)
            parent.append((names.pop(), value) if is_object else value)
            if text.startswith(",", pos):
                pos = _WS_RE.match(text, pos + 1).end()
                if is_object:
                    name, pos = _member_name(text, pos)
                    names.append(name)
                break
            if not text.startswith("}" if is_object else "]", pos):
                raise JSONDecodeError("Expecting ',' delimiter", text, pos)
            value, pos = stack.pop(), pos + 1


def _mesh_escape(match: re.Match) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _pretty_escape(match: re.Match) -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04X}"


def _mesh_string(value: str) -> str:
    return '"' + _MESH_ESCAPE_RE.sub(_mesh_escape, value) + '"'


def _pretty_string(value: str) -> str:
    return '"' + _PRETTY_ESCAPE_RE.sub(_pretty_escape, value) + '"'


def _format_double(value: float) -> str:
    """A float as .NET Core 3.0+ ``double.ToString()`` writes it: shortest round-trip digits."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not JSON (System.Text.Json refuses it too)")
    sign, digit_tuple, exponent = Decimal(float.__repr__(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    minus = "-" if sign else ""
    if not digits:
        return minus + "0"
    # value = 0.<digits> * 10**scale, as .NET's NumberBuffer holds it.
    scale = len(digit_tuple) + exponent
    if scale > max(len(digits), 17) or scale < -3:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}E{'-' if scale - 1 < 0 else '+'}{abs(scale - 1):02d}"
    if scale > 0:
        whole, fraction = digits[:scale].ljust(scale, "0"), digits[scale:]
    else:
        whole, fraction = "0", "0" * -scale + digits
    return minus + whole + ("." + fraction if fraction else "")


def _scalar(value: object, quote) -> str:
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Number):
        return value.text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:  # over Python's int-to-str digit limit; Decimal has none
            return str(Decimal(value))
    if isinstance(value, float):
        return _format_double(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(obj: object, quote, indent: str) -> str:
    """Serialise without recursion; indent "" means compact."""
    out: list[str] = []
    stack: list[list] = []  # [member iterator, is_object, members written so far]
    value = obj
    while True:
        if isinstance(value, (dict, list, tuple)):
            if len(stack) >= MAX_DEPTH:
                raise _too_deep()
            is_object = isinstance(value, (dict, JsonObject))
            out.append("{" if is_object else "[")
            stack.append([iter(value.items() if isinstance(value, dict) else value), is_object, 0])
        else:
            out.append(_scalar(value, quote))
        while stack:
            frame = stack[-1]
            item = next(frame[0], _END)
            if item is _END:
                stack.pop()
                if indent and frame[2]:
                    out.append("\n" + indent * len(stack))
                out.append("}" if frame[1] else "]")
                continue
            if frame[2]:
                out.append(",")
            frame[2] += 1
            if indent:
                out.append("\n" + indent * len(stack))
            if frame[1]:
                name, value = item
                if not isinstance(name, str):
                    raise TypeError(f"member names must be str, not {type(name).__name__}")
                out.append(quote(name) + (": " if indent else ":"))
            else:
                value = item
            break
        else:
            return "".join(out)


def dumps(obj: object) -> str:
    """Compact JSON byte-for-byte as System.Text.Json's default encoder writes it (pure ASCII)."""
    return _encode(obj, _mesh_string, "")


def to_mesh_form(text: str) -> str:
    """The JSON text re-serialised as the runtime would store it; ValueError if not JSON."""
    return dumps(loads(text))


def is_mesh_form(text: object) -> bool:
    """True when text is JSON already byte-for-byte in the runtime's form; never raises."""
    if not isinstance(text, str) or _NOT_MESH_CHAR_RE.search(text):
        return False
    try:
        return dumps(loads(text)) == text
    except (ValueError, TypeError):
        return False


def pretty(text: str) -> str | None:
    """Indented (2 spaces), non-ASCII unescaped, order/duplicates/numbers kept; None if not JSON."""
    try:
        return _encode(loads(text), _pretty_string, "  ")
    except ValueError:
        return None
