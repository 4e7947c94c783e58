"""How the ToskaMesh .NET runtime reads its own settings, in Python.

``char.IsWhiteSpace``/``string.IsNullOrWhiteSpace``, ``Enum.TryParse(value, ignoreCase:
true)``, and the runtime rules built on them: ``BuildPrefix`` (a service's key prefix) and
``GetProvider`` (``Mesh:KeyValue:Provider``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Literal


def is_dotnet_whitespace(ch: str) -> bool:
    """``char.IsWhiteSpace``: the Unicode White_Space characters (U+0009-U+000D, U+0085 and
    the Zs/Zl/Zp categories). Unlike ``str.isspace`` it excludes U+001C-U+001F."""
    return ch in "\t\n\v\f\r\x85" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_null_or_whitespace(value: str | None) -> bool:
    """``string.IsNullOrWhiteSpace``."""
    return value is None or all(is_dotnet_whitespace(ch) for ch in value)


def _dotnet_trim(text: str, *, end: bool = True) -> str:
    """``ReadOnlySpan<char>.Trim()`` (or ``TrimStart()`` with ``end=False``)."""
    start, stop = 0, len(text)
    while start < stop and is_dotnet_whitespace(text[start]):
        start += 1
    while end and stop > start and is_dotnet_whitespace(text[stop - 1]):
        stop -= 1
    return text[start:stop]


def service_prefix(key_prefix: str | None, service_name: str | None) -> str | None:
    """The runtime's ``BuildPrefix``: ``key_prefix`` unless null/whitespace, else
    ``service_name``; ``:`` appended unless it already ends with one (both used verbatim).
    None when neither is set (where the runtime would use its "mesh-service" default)."""
    prefix = service_name if is_null_or_whitespace(key_prefix) else key_prefix
    if prefix is None or is_null_or_whitespace(prefix):
        return None
    return prefix if prefix.endswith(":") else prefix + ":"


#: ``enum MeshKeyValueProvider { Redis, ToskaStore }``: declared names and values
PROVIDER_MEMBERS: dict[str, int] = {"Redis": 0, "ToskaStore": 1}
_PROVIDER_IDS: dict[int, Literal["redis", "toskastore"]] = {0: "redis", 1: "toskastore"}
#: what Number.TryParseBinaryIntegerStyle accepts with AllowLeadingSign | AllowTrailingWhite
#: (invariant culture) after the leading whitespace is gone; trailing NULs are tolerated
_DOTNET_INTEGER = re.compile(r"([+-]?[0-9]+)[\t\n\v\f\r ]*\x00*")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def dotnet_enum_try_parse(value: str | None, members: Mapping[str, int]) -> int | None:
    """``Enum.TryParse<TEnum>(value, ignoreCase: true, out result)`` for an ``int``-backed
    enum (.NET 8 ``Enum.TryParseByValueOrName``): the parsed value, None when it fails.

    Leading whitespace is skipped. A value starting with an ASCII digit, ``+`` or ``-`` is
    first read as an Int32 (sign, digits, trailing ASCII whitespace); any in-range number
    succeeds even when no member has it; out of range fails outright; otherwise it falls
    back to names. Names: split on ``,``, each piece trimmed and matched case-insensitively
    (ordinal; only ASCII letters fold here) against the declared names, their values
    OR-ed; an empty piece, a trailing comma, a number inside a list or an unknown name
    fails.
    """
    if value is None:
        return None
    text = _dotnet_trim(value, end=False)
    if not text:
        return None
    if text[0] in "0123456789+-":
        number = _DOTNET_INTEGER.fullmatch(text)
        if number is not None:
            parsed = int(number.group(1))
            return parsed if _INT32_MIN <= parsed <= _INT32_MAX else None
    result = 0
    rest = text
    while rest:
        comma = rest.find(",")
        if comma < 0:
            piece, rest = rest, ""
        elif comma != len(rest) - 1:
            piece, rest = rest[:comma], rest[comma + 1 :]
        else:
            return None  # a trailing separator
        piece = _dotnet_trim(piece)
        for name, member in members.items():
            if _ascii_casefold(piece) == _ascii_casefold(name):
                result |= member
                break
        else:
            return None
    return result


def _ascii_casefold(text: str) -> str:
    return "".join(ch.lower() if ch.isascii() else ch for ch in text)


def parse_provider(value: str | None) -> tuple[Literal["redis", "toskastore"], str | None]:
    """``Mesh:KeyValue:Provider`` as the runtime's ``GetProvider`` reads it: the provider and,
    when the value is set but names no provider (so the runtime falls back to Redis), why.
    Unset, empty or whitespace is Redis without a problem."""
    if is_null_or_whitespace(value):
        return "redis", None
    parsed = dotnet_enum_try_parse(value, PROVIDER_MEMBERS)
    if parsed is None:
        return "redis", "is not Redis, ToskaStore, 0 or 1"
    if parsed not in _PROVIDER_IDS:
        return "redis", f"is the number {parsed}, which is no provider (0 = Redis, 1 = ToskaStore)"
    return _PROVIDER_IDS[parsed], None
