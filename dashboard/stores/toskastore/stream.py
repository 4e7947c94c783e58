"""Reading ToskaStore answers through a byte budget (ToskaStore cannot read part of a value).

An answer is read as it arrives, in chunks, and no further once the budget is spent: the
connection is then closed, so the rest of a 240 MB page never enters the process. A
complete answer is parsed as JSON; a cut one is salvaged with ``salvage_values``: the
members of ``{"values": {...}}`` that arrived whole, and the start of the one being read.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

import httpx

from dashboard.stores.budget import WorkBudget
from dashboard.stores.toskastore.wire import status_error

_SPACE = " \t\r\n"
_DECODER = json.JSONDecoder()


class _Cut(Exception):
    """The text ends here (the answer was cut at the budget)."""


def read_answer(
    provider: Any, method: str, path: str, *, work: WorkBudget, limit: int | None,
    json_body: Any = None, what: str,
) -> tuple[str, bool]:
    """(the answer's text, complete?) of one request, read until ``limit`` bytes.

    Every byte that arrived is charged to ``work`` (one call), whether or not it is used.
    A chunk may take the read a little past ``limit``: what is charged is what arrived.
    """
    work.call()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    parts: list[str] = []
    got = 0
    complete = True
    try:
        with provider._client.stream(method, path, json=json_body) as response:
            status = response.status_code
            if not 200 <= status < 300:
                response.read()
                work.read(response.num_bytes_downloaded)
                raise status_error(response, method, store=provider.name, key=None,
                                   write=False, has_token=provider._has_token)
            for chunk in response.iter_bytes():
                parts.append(decoder.decode(chunk))
                got += len(chunk)
                if limit is not None and got >= limit:
                    complete = False
                    break
            work.read(response.num_bytes_downloaded)
    except httpx.HTTPError as exc:
        raise provider._transport_error(exc, None) from exc
    if complete:
        parts.append(decoder.decode(b"", final=True))
    text = "".join(parts)
    if complete and not text:
        raise provider._bad(f"{what}: empty answer")
    return text, complete


def parse_answer(provider: Any, text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise provider._bad(f"{what}: the answer is not JSON") from exc
    if not isinstance(data, dict):
        raise provider._bad(f"{what}: expected a JSON object")
    return data


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    if pos >= len(text):
        raise _Cut
    return pos


def _string(text: str, pos: int) -> tuple[str, int]:
    try:
        return scanstring(text, pos + 1)
    except json.JSONDecodeError as exc:
        if "Unterminated" in exc.msg:
            raise _Cut from exc
        raise


def partial_string(text: str, pos: int) -> str:
    """The decoded start of a JSON string that begins at ``pos`` and is cut short."""
    body = text[pos + 1:]
    # drop an escape cut in the middle (``\``, ``\u12``) and try again
    for trim in range(0, 7):
        end = len(body) - trim
        if end < 0:
            break
        try:
            value, _ = scanstring(body[:end] + '"', 0)
        except json.JSONDecodeError:
            continue
        return value
    return ""


def _next_member(text: str, pos: int) -> tuple[str, int] | None:
    """The object member after ``pos`` (just past ``{`` or a value): (its name, where its
    value starts), or None at the object's ``}``."""
    pos = _skip(text, pos)
    if text[pos] == "}":
        return None
    if text[pos] == ",":
        pos = _skip(text, pos + 1)
    name, pos = _string(text, pos)
    pos = _skip(text, pos)
    return name, _skip(text, pos + 1)  # past ':'


def salvage_values(text: str) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """From the start of a ``{"values": {key: value}}`` answer: (members read whole,
    (key, start of its value) for the member being read when the text ends, or None)."""
    found: dict[str, Any] = {}
    try:
        pos = _skip(text, 0)
        if text[pos] != "{":
            return found, None
        pos += 1
        while (member := _next_member(text, pos)) is not None:
            name, pos = member
            if name != "values":
                _, pos = _DECODER.raw_decode(text, pos)  # another member: not ours
                continue
            if text[pos] != "{":
                return found, None
            pos += 1
            while (member := _next_member(text, pos)) is not None:
                key, pos = member
                if text[pos] == '"':
                    try:
                        value, pos = _string(text, pos)
                    except _Cut:
                        return found, (key, partial_string(text, pos))
                else:
                    try:
                        value, pos = _DECODER.raw_decode(text, pos)
                    except json.JSONDecodeError:
                        return found, None  # null/number cut short: nothing of it
                found[key] = value
            return found, None
        return found, None
    except (_Cut, IndexError, json.JSONDecodeError):
        return found, None


def values_of(provider: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    values = data.get("values")
    if not isinstance(values, dict):
        raise provider._bad("mget: 'values' is not an object")
    return values
