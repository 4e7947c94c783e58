"""Upstream's value normalisers (``Integer.parse``, ``normalize_ttl``, ...), shared by the
store and the HTTP layer. Each mirrors the Elixir function it is named after."""

from __future__ import annotations

import re
import time
from typing import Any

_ELIXIR_INT = re.compile(r"[+-]?[0-9]+")


class Invalid(Exception):
    """A value upstream's normaliser rejects; the caller maps it to its error answer."""


def elixir_int(text: str) -> int | None:
    """``Integer.parse(text)`` that must consume the whole string: optional sign, ASCII
    digits, nothing else (no spaces, no underscores, unlike Python's ``int``)."""
    if isinstance(text, str) and _ELIXIR_INT.fullmatch(text):
        return int(text)
    return None


def is_int(value: Any) -> bool:
    """A JSON integer (``true``/``false`` are not integers, as in Elixir)."""
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_ttl(raw: Any) -> int | None:
    """``normalize_ttl``: an integer (also as a string of digits) is a TTL in ms, where
    <= 0 means "delete now"; anything else (null, float, bool, other text) means no expiry."""
    if is_int(raw):
        return raw
    if isinstance(raw, str):
        return elixir_int(raw)
    return None


def _positive(raw: Any) -> int | None:
    """An integer > 0, also given as digits; None otherwise."""
    if is_int(raw) and raw > 0:
        return raw
    parsed = elixir_int(raw) if isinstance(raw, str) else None
    return parsed if parsed is not None and parsed > 0 else None


def normalize_version(raw: Any) -> int | None:
    """``normalize_version``: None, or an integer > 0 (also as digits); else ``Invalid``."""
    if raw is None:
        return None
    version = _positive(raw)
    if version is None:
        raise Invalid("version")
    return version


def normalize_bool(raw: Any) -> bool:
    """``normalize_bool``: None is false; booleans; "true"/"false" in any case; else ``Invalid``."""
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise Invalid("bool")


def normalize_id(raw: Any, *, required: bool) -> str | None:
    """``normalize_optional_id``/``normalize_required_id``: a non-empty string (or None
    when optional); else ``Invalid``."""
    if raw is None and not required:
        return None
    if isinstance(raw, str) and raw != "":
        return raw
    raise Invalid("id")


def normalize_positive(raw: Any) -> int:
    """``normalize_lease_ttl``: an integer > 0 (also as digits); else ``Invalid``."""
    value = _positive(raw)
    if value is None:
        raise Invalid("positive integer")
    return value


def now_ms() -> int:
    """Wall-clock time in Unix epoch milliseconds, the unit of every ToskaStore timestamp."""
    return time.time_ns() // 1_000_000
