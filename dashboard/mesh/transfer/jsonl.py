"""The export file: JSON Lines, one object per key, exact for every key and value.

Each line is one JSON object (UTF-8; a line holding a lone surrogate is written with
``\\uXXXX`` escapes instead):

- ``key``: the key; a key that is not UTF-8 (a Redis key of raw bytes) is ``key_b64``
  instead (standard base64 of its bytes);
- ``value``: a string's value as text; bytes that are not UTF-8 (Redis) are ``value_b64``;
- ``type`` and ``content`` for a Redis hash (``{field: value}``), list (``[value]``), set
  (``[member]``), zset (``[[member, score]]``) or stream (``[[id, {field: value}]]``),
  whole; when one element is not UTF-8, ``"content_encoding": "base64"`` and every
  field, value and member is base64 (ids and scores stay as they are);
- ``ttl_ms``: milliseconds left when exported, ``null`` for no expiry; ``ttl_known``:
  ``false`` when the store could not tell (ToskaStore 0.8 and v0.9.1; ``ttl_ms`` is then
  ``null`` without meaning "no expiry"); ``expires_at_ms``: the expiry as Unix epoch
  milliseconds (``ttl_ms`` counted from the export), so an import can tell how much is left;
- ``version`` and ``lease_id`` where the store reports them (for the record: an import
  never re-attaches a lease, which belongs to the other store; the key gets its TTL).

A zset score that is infinite is the string ``"inf"`` or ``"-inf"`` (JSON has no infinity;
the writer never emits ``Infinity`` or ``NaN``: ``allow_nan=False``).

An export that could not read the whole prefix (a legacy server's listing cap, a store
that failed midway) ends with one more line, its end marker::

    {"incomplete": true, "prefix": "profiles:", "keys": 100, "reason": "..."}

``keys`` counts the key lines before it. Import reads the marker (``read_line`` returns an
``Incomplete``) and says the file is a partial backup; it is never a key.

Reading (``decode_line``) is strict: an unknown member (``ttl`` for ``ttl_ms``) is an error,
never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from dashboard.mesh.text import has_surrogates
from dashboard.stores.entries import Dumped

#: Redis types an export may hold beside strings
COLLECTIONS = ("hash", "list", "set", "zset", "stream")
FIELDS = frozenset({"key", "key_b64", "value", "value_b64", "type", "content",
                    "content_encoding", "ttl_ms", "ttl_known", "expires_at_ms", "version",
                    "lease_id"})
_STREAM_ID = re.compile(r"\d+-\d+")
#: the latest expiry a store is asked to keep: 9999-12-31 23:59:59.999 UTC (the dashboard,
#: Python and .NET dates end there; Redis refuses a PX whose expiry overflows)
MAX_EXPIRES_AT_MS = 253_402_300_799_999
#: the members of an export's end marker
MARKER_FIELDS = frozenset({"incomplete", "prefix", "keys", "reason"})
#: how an infinite zset score is written (JSON has no infinity)
_SCORES_OUT = {math.inf: "inf", -math.inf: "-inf"}
_SCORES_IN = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


class InvalidLine(ValueError):
    """A line that is not an export record; ``str()`` says why, for the operator."""


@dataclass(frozen=True)
class Incomplete:
    """An export's end marker: the file holds only part of ``prefix`` (``reason`` says why)."""

    prefix: str
    keys: int
    reason: str

    def sentence(self) -> str:
        return (f"This file is an incomplete export: it holds only the first {self.keys} key(s) "
                f"under {self.prefix!r} ({self.reason}). Importing it restores those keys only; "
                "keys missing from the file are not deleted or restored")


# --------------------------------------------------------------------------- writing


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key_fields(key: str) -> dict[str, str]:
    if has_surrogates(key):
        try:  # a Redis key of raw bytes, decoded with surrogateescape
            return {"key_b64": _b64(key.encode("utf-8", "surrogateescape"))}
        except UnicodeEncodeError:
            pass  # a lone surrogate from a JSON escape: kept as text (escaped on output)
    return {"key": key}


def _all_text(values: list[bytes]) -> bool:
    try:
        for value in values:
            value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _content(item: Dumped) -> tuple[Any, bool]:
    """The members as JSON (text, or base64 when any is not UTF-8) and whether base64."""
    members = item.members
    if item.type == "hash":
        flat = [*members.keys(), *members.values()]
    elif item.type in ("list", "set"):
        flat = list(members)
    elif item.type == "zset":
        flat = [member for member, _ in members]
    else:
        flat = [part for _, fields in members for pair in fields.items() for part in pair]
    b64 = not _all_text(flat)

    def out(value: bytes) -> str:
        return _b64(value) if b64 else value.decode("utf-8")

    if item.type == "hash":
        return {out(f): out(v) for f, v in members.items()}, b64
    if item.type in ("list", "set"):
        return [out(v) for v in members], b64
    if item.type == "zset":
        return [[out(m), _SCORES_OUT.get(s, s)] for m, s in members], b64
    return [[i.decode("ascii") if isinstance(i, bytes) else i,
             {out(f): out(v) for f, v in fields.items()}] for i, fields in members], b64


def record(item: Dumped) -> dict[str, Any]:
    """The JSON object of one exported key."""
    out: dict[str, Any] = _key_fields(item.key)
    if item.type == "string":
        if item.value is not None:
            out["value"] = item.value
        else:
            data = item.data or b""
            try:
                out["value"] = data.decode("utf-8")
            except UnicodeDecodeError:
                out["value_b64"] = _b64(data)
    else:
        out["type"] = item.type
        content, b64 = _content(item)
        out["content"] = content
        if b64:
            out["content_encoding"] = "base64"
    out["ttl_ms"] = item.ttl_ms if item.ttl_known else None
    if not item.ttl_known:
        out["ttl_known"] = False
    if item.ttl_known and item.expires_at_ms is not None:
        out["expires_at_ms"] = item.expires_at_ms
    if item.version is not None:
        out["version"] = item.version
    if item.lease_id is not None:
        out["lease_id"] = item.lease_id
    return out


def encode_line(item: Dumped) -> bytes:
    """One line of the export, newline included."""
    return _line(record(item))


def marker_line(prefix: str, keys: int, reason: str) -> bytes:
    """The end marker of an incomplete export (see the module docstring)."""
    return _line({"incomplete": True, "prefix": prefix, "keys": keys, "reason": reason})


def _line(data: dict[str, Any]) -> bytes:
    """``data`` as one line of strict JSON (RFC 8259: never NaN or Infinity)."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        # line and paragraph separators only occur inside strings: escaped, so no tool
        # that splits lines on them (str.splitlines) cuts a record
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: \\uXXXX escapes keep it exactly
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


# --------------------------------------------------------------------------- reading


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise InvalidLine(f"member {name!r} appears twice")
        found[name] = value
    return found


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidLine(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidLine(f"{what} is not valid base64") from None


def _bytes(value: Any, b64: bool, what: str) -> bytes:
    if b64:
        return _unb64(value, what)
    if not isinstance(value, str):
        raise InvalidLine(f"{what} must be a string")
    return _utf8(value, what)


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate from a \uXXXX escape
        raise InvalidLine(f"{what} holds a lone surrogate (U+{ord(text[error.start]):04X}), "
                          'which is not text: write it base64 ("content_encoding": "base64")'
                          ) from None


def _score(value: Any) -> float | int | None:
    """A zset score: a number, or "inf"/"-inf"; None when it is neither."""
    if isinstance(value, str):
        return _SCORES_IN.get(value.lower())
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return value


def _members(type_name: str, content: Any, b64: bool) -> Any:
    if type_name == "hash":
        if not isinstance(content, dict) or not content:
            raise InvalidLine("a hash's content must be a non-empty object of strings")
        return {_unb64(f, "a hash field") if b64 else _utf8(f, "a hash field"):
                _bytes(v, b64, "a hash value") for f, v in content.items()}
    if type_name in ("list", "set"):
        if not isinstance(content, list) or not content:
            raise InvalidLine(f"a {type_name}'s content must be a non-empty array of strings")
        members = [_bytes(v, b64, f"a {type_name} element") for v in content]
        if type_name == "set" and len(set(members)) != len(members):
            raise InvalidLine("a set's content holds the same member twice")
        return members
    if type_name == "zset":
        if not isinstance(content, list) or not content:
            raise InvalidLine("a zset's content must be a non-empty array of [member, score]")
        pairs = []
        for pair in content:
            score = _score(pair[1]) if isinstance(pair, list) and len(pair) == 2 else None
            if score is None:
                raise InvalidLine('a zset\'s content must be [member, score] pairs with numeric '
                                  'scores ("inf" and "-inf" for infinite ones)')
            pairs.append([_bytes(pair[0], b64, "a zset member"), score])
        return pairs
    if not isinstance(content, list) or not content:
        raise InvalidLine("a stream's content must be a non-empty array of [id, {field: value}]")
    entries = []
    for pair in content:
        if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                or not _STREAM_ID.fullmatch(pair[0]) or not isinstance(pair[1], dict)
                or not pair[1]):
            raise InvalidLine("a stream's content must be [id, {field: value}] pairs with ids "
                              "like 1700000000000-0")
        entries.append([pair[0].encode("ascii"), {
            _bytes(f, b64, "a stream field"): _bytes(v, b64, "a stream value")
            for f, v in pair[1].items()}])
    return entries


def read_line(text: str) -> Dumped | Incomplete:
    """The key one line describes, or the export's end marker; ``InvalidLine`` otherwise."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except InvalidLine:
        raise
    except (ValueError, RecursionError) as error:
        raise InvalidLine(f"not valid JSON ({getattr(error, 'msg', error)})") from None
    if not isinstance(data, dict):
        raise InvalidLine("not a JSON object")
    if "incomplete" in data:
        return _marker(data)
    return _item(data)


def decode_line(text: str) -> Dumped:
    """The key one line describes; ``InvalidLine`` saying what is wrong with it."""
    found = read_line(text)
    if isinstance(found, Incomplete):
        raise InvalidLine("the end marker of an incomplete export, not a key")
    return found


def _marker(data: dict[str, Any]) -> Incomplete:
    unknown = sorted(set(data) - MARKER_FIELDS)
    if unknown:
        raise InvalidLine(f"an end marker with unknown member(s) {', '.join(map(repr, unknown))}")
    prefix, keys, reason = data.get("prefix", ""), data.get("keys"), data.get("reason", "")
    if (data["incomplete"] is not True or not isinstance(prefix, str) or not _int(keys)
            or keys < 0 or not isinstance(reason, str)):
        raise InvalidLine('an end marker is {"incomplete": true, "prefix": "...", "keys": N, '
                          '"reason": "..."}')
    return Incomplete(prefix, keys, reason or "the export did not finish")


def _item(data: dict[str, Any]) -> Dumped:
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidLine(f"unknown member(s) {', '.join(map(repr, unknown))}")
    if ("key" in data) == ("key_b64" in data):
        raise InvalidLine('needs exactly one of "key" or "key_b64"')
    if "key" in data:
        key = data["key"]
        if not isinstance(key, str):
            raise InvalidLine('"key" must be a string')
    else:
        key = _unb64(data["key_b64"], '"key_b64"').decode("utf-8", "surrogateescape")
    if not key:
        raise InvalidLine("the key is empty")
    type_name = data.get("type", "string")
    if type_name != "string" and type_name not in COLLECTIONS:
        raise InvalidLine(f'"type" {type_name!r} is not string, {", ".join(COLLECTIONS)}')
    encoding = data.get("content_encoding")
    if encoding not in (None, "base64"):
        raise InvalidLine('"content_encoding" must be "base64" when given')
    value: str | None = None
    raw: bytes | None = None
    members: Any = None
    if type_name == "string":
        if "content" in data or encoding is not None:
            raise InvalidLine('a string has "value" (or "value_b64"), not "content"')
        if ("value" in data) == ("value_b64" in data):
            raise InvalidLine('needs exactly one of "value" or "value_b64"')
        if "value" in data:
            value = data["value"]
            if not isinstance(value, str):
                raise InvalidLine('"value" must be a string (stores keep strings; a JSON '
                                  'document is written as its text)')
        else:
            raw = _unb64(data["value_b64"], '"value_b64"')
    else:
        if "value" in data or "value_b64" in data:
            raise InvalidLine(f'a {type_name} has "content", not "value"')
        if "content" not in data:
            raise InvalidLine(f'a {type_name} needs "content"')
        members = _members(type_name, data["content"], encoding == "base64")
    ttl_known = data.get("ttl_known", True)
    if not isinstance(ttl_known, bool):
        raise InvalidLine('"ttl_known" must be true or false')
    ttl_ms = data.get("ttl_ms")
    if ttl_ms is not None and (not _int(ttl_ms) or ttl_ms < 0):
        raise InvalidLine('"ttl_ms" must be null (no expiry) or milliseconds (0 or more)')
    if ttl_ms is not None and ttl_ms > MAX_EXPIRES_AT_MS:
        raise InvalidLine(f'"ttl_ms" {ttl_ms} is longer than any store keeps a key (an expiry '
                          'after the year 9999); use null for no expiry')
    if ttl_ms is not None and not ttl_known:
        raise InvalidLine('"ttl_known": false goes with "ttl_ms": null')
    expires_at = data.get("expires_at_ms")
    if expires_at is not None and (not _int(expires_at) or expires_at <= 0
                                   or expires_at > MAX_EXPIRES_AT_MS):
        raise InvalidLine('"expires_at_ms" must be Unix epoch milliseconds between 1970 and the '
                          'year 9999')
    if expires_at is not None and ttl_ms is None:
        raise InvalidLine('"expires_at_ms" needs "ttl_ms" (a key without expiry has none)')
    version = data.get("version")
    if version is not None and not _int(version):
        raise InvalidLine('"version" must be an integer')
    lease_id = data.get("lease_id")
    if lease_id is not None and not isinstance(lease_id, str):
        raise InvalidLine('"lease_id" must be a string')
    return Dumped(key=key, type=type_name, value=value, data=raw, members=members,
                  ttl_ms=ttl_ms, ttl_known=ttl_known, expires_at_ms=expires_at,
                  version=version, lease_id=lease_id)
