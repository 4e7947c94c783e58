"""Parsing and encoding details of the ToskaStore wire format, kept out of the handler."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from dashboard.devstore.values import elixir_int

#: upstream main's ``@max_key_list_limit`` (0.9.1 and 0.8 have no cap)
MAX_PAGE = 1000
DEFAULT_PAGE = 100

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class ApiError(Exception):
    """An error answer: JSON ``{"error": ..., **fields}`` with ``status``.

    The ``error`` strings are upstream's, case by case ("Not Found", "Unauthorized",
    ...); fields that are None are left out.
    """

    def __init__(
        self, status: int, error: str, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(error)
        self.status = status
        self.headers = headers or {}
        self.body = {"error": error, **{k: v for k, v in fields.items() if v is not None}}


def dumps(body: Any) -> bytes:
    """JSON as Jason writes it: compact, UTF-8, and keys in order (Erlang's small maps
    iterate their keys sorted, so upstream's objects come out alphabetically)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def parse_limit_main(raw: str | None) -> int:
    """Main's ``parse_key_list_limit``: 100 when absent; an integer 0..1000; else 400."""
    if raw is None:
        return DEFAULT_PAGE
    limit = elixir_int(raw)
    if limit is None or limit < 0:
        raise ApiError(400, "Invalid limit")
    if limit > MAX_PAGE:
        raise ApiError(400, "Limit too large", max=MAX_PAGE)
    return limit


def parse_limit_lenient(raw: str | None) -> int:
    """0.8/0.9.1's ``parse_int(limit, 100)``: a non-negative integer, anything else is 100;
    no cap at all."""
    limit = elixir_int(raw) if raw is not None else None
    return DEFAULT_PAGE if limit is None or limit < 0 else limit


def parse_flag(raw: str | None, default: bool) -> bool | None:
    """``true``/``1``/``false``/``0`` in any case; None when the text is none of those."""
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None


def if_match_version(header: str | None) -> str | None:
    """Main's ``parse_etag_version``: trim, drop a leading ``W/``, strip quotes.

    The result is validated later as a version, so ``*``, a list of tags or any other
    text becomes a 400 "Invalid conditions", never a 412.
    """
    if header is None:
        return None
    return header.strip().removeprefix("W/").strip('"')


def etag(version: int) -> str:
    return f'"{version}"'


def encode_cursor(last_key: str, prefix: str) -> str:
    """Upstream's ``Toska.Cursor.encode``: base64url, no padding, of ``{"k":key,"p":prefix}``."""
    raw = dumps({"k": last_key, "p": prefix})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[str, str] | None:
    """``Toska.Cursor.decode``: (key, prefix), or None for anything it would reject."""
    if not cursor or not _BASE64URL.fullmatch(cursor) or len(cursor) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(decoded, dict):
        return None
    key, prefix = decoded.get("k"), decoded.get("p")
    if not isinstance(key, str) or not isinstance(prefix, str):
        return None
    return key, prefix


def cursor_key(cursor: str | None, prefix: str) -> str | None:
    """The key a cursor resumes after; None without one. A cursor that does not decode,
    or was issued for another prefix, is 400 "Invalid cursor" (main and 0.9.1)."""
    if cursor is None or cursor == "":
        return None
    decoded = decode_cursor(cursor)
    if decoded is None or decoded[1] != prefix:
        raise ApiError(400, "Invalid cursor")
    return decoded[0]


def legacy_order(key: str) -> bytes:
    """Sort key for 0.8 listings: a stable hash order, like an ETS set's iteration."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
