"""Parsing and encoding details of the ToskaStore wire format, kept out of the handler."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from .store import Position

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class ApiError(Exception):
    """An error answer: JSON ``{error, reason?, key?, ...}`` with ``status``.

    Fields that are None are left out, so ``key``/``reason`` appear only when known.
    """

    def __init__(
        self, status: int, error: str, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(error)
        self.status = status
        self.headers = headers or {}
        self.body = {"error": error, **{k: v for k, v in fields.items() if v is not None}}


def bad_request(reason: str, error: str = "invalid_request", **fields: Any) -> ApiError:
    return ApiError(400, error, reason=reason, **fields)


def parse_limit(raw: str | None, *, default: int | None, cap: int | None) -> int | None:
    """``limit``: a non-negative integer, at most ``cap`` when there is one."""
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request("limit must be an integer", error="invalid_limit") from None
    if limit < 0:
        raise bad_request("limit must not be negative", error="invalid_limit")
    if cap is not None and limit > cap:
        raise bad_request(f"limit must be at most {cap}", error="invalid_limit", max=cap)
    return limit


def parse_bool(name: str, raw: str | None) -> bool:
    """Query flags such as ``include_values``: true/false/1/0/yes/no, absent means false."""
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_request(f"{name} must be true or false")


def parse_version(name: str, raw: Any, *, from_query: bool = False) -> int | None:
    """A version precondition (``if_version``): an integer >= 1, None when absent.

    In a JSON body it must be a JSON integer; in the query string, its decimal text.
    """
    if raw is None:
        return None
    if isinstance(raw, str) and from_query:
        try:
            raw = int(raw)
        except ValueError:
            raise bad_request(f"{name} must be an integer >= 1") from None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise bad_request(f"{name} must be an integer >= 1")
    return raw


def parse_etags(header: str) -> tuple[bool, frozenset[int]]:
    """An ``If-Match``/``If-None-Match`` value: (is ``*``, versions listed).

    Tags are quoted versions (``"3"``); weak tags count too; a tag that is not a version
    can never match, which makes the condition fail (412) as HTTP prescribes.
    """
    star = False
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip()
        if tag == "*":
            star = True
            continue
        tag = tag.removeprefix("W/").strip('"')
        if tag.isascii() and tag.isdigit():
            versions.add(int(tag))
    return star, frozenset(versions)


def etag(version: int) -> str:
    return f'"{version}"'


def encode_cursor(position: Position | None) -> str | None:
    """An opaque cursor: "a"/"f" (after/from) plus the key, base64url without padding."""
    if position is None:
        return None
    raw = ("a" if position.after else "f") + position.key
    return base64.urlsafe_b64encode(raw.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("cursor is not one this server issued", error="invalid_cursor") from None
    if raw[:1] not in ("a", "f"):
        raise bad_request("cursor is not one this server issued", error="invalid_cursor")
    return Position(raw[1:], after=raw[0] == "a")


def legacy_order(key: str) -> bytes:
    """Sort key for legacy listings: a stable hash order, like a hash table's iteration."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
