"""The shared walk of a search: bounded steps over sorted pages, resumed by a cursor.

A search (``search.py``) is bounded by work, not by results: each step examines items
until its budget is spent, then answers with a cursor to continue from. The cursor is
ours and opaque: the store's own listing cursor, the last key examined in the page that
cursor lists (so a page cut short by the budget resumes where it stopped) and the running
totals, tied to the search it belongs to (its prefix, pattern and options).

Stores plug in a *page fetcher*: ``fetch(inner_cursor) -> (sorted items, next inner
cursor)``. Ordered stores list keys (or entries) page by page; a store that lists
everything at once (legacy servers, a ``__keys`` index) answers one page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.stores import errors
from dashboard.stores.budget import WorkBudget

_CURSOR_PREFIX = "q1."


@dataclass
class _State:
    inner: str | None = None
    after: str | None = None
    scanned: int = 0
    bytes_read: int = 0


def _digest(*parts: str) -> str:
    data = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:12]


def encode_cursor(state: _State, *scope: str) -> str:
    """The ``continue`` cursor for ``state``, tied to the search ``scope`` names."""
    body = {"c": state.inner, "a": state.after, "n": state.scanned, "b": state.bytes_read,
            "s": _digest(*scope)}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass")
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, store: str, *scope: str) -> _State:
    """The state a ``continue`` cursor carries; one from another search is refused."""
    if not cursor:
        return _State()
    bad = errors.InvalidRequest(
        "invalid search cursor: start the search again from its first page", store=store)
    if not cursor.startswith(_CURSOR_PREFIX):
        raise bad
    text = cursor[len(_CURSOR_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise bad from exc
    if not isinstance(body, dict) or body.get("s") != _digest(*scope):
        raise errors.InvalidRequest(
            "this continue link belongs to another search (prefix or pattern changed): "
            "start again from the first page", store=store)
    inner, after, scanned, read = body.get("c"), body.get("a"), body.get("n"), body.get("b", 0)
    if (not isinstance(inner, str | None) or not isinstance(after, str | None)
            or not isinstance(scanned, int) or not isinstance(read, int)):
        raise bad
    return _State(inner, after, scanned, read)


def _resume(items: Sequence[Any], after: str | None, key: Callable[[Any], str]) -> int:
    """Where to go on in a re-listed page: after the key examined last."""
    if after is None:
        return 0
    for position, item in enumerate(items):
        if key(item) == after:
            return position + 1
    # the key is gone meanwhile: the first one past it (pages are sorted)
    for position, item in enumerate(items):
        if key(item) > after:
            return position
    return len(items)


Fetch = Callable[[str | None], tuple[Sequence[Any], str | None]]
#: ``accept(item, first) -> True (a hit), False (examined, no hit) or None``: None when
#: the item could not be examined within the budget (its value not read, or the time
#: ran out while matching it); ``first`` is True for the first item of the step
Accept = Callable[[Any, bool], "bool | None"]


def walk(
    fetch: Fetch, state: _State, *, key: Callable[[Any], str], accept: Accept,
    limit: int, work: WorkBudget,
) -> tuple[list[Any], bool]:
    """Examine items page by page until ``limit`` accepted, ``work`` is spent, or the end.

    The budget (time, store calls, bytes read, items) is checked before every item, not
    between pages; a step always examines its first item, so every step makes progress.
    Updates ``state`` to where the next request goes on (and adds every byte ``work``, the
    request's budget, has read, listings read before the walk included); returns
    (accepted, finished).
    """
    found: list[Any] = []
    examined = 0
    try:
        while True:
            work.after = state.after  # budgeted reads skip what was examined already
            items, following = fetch(state.inner)
            start = _resume(items, state.after, key)
            stopped = False
            for item in items[start:]:
                if examined and work.exhausted():
                    stopped = True
                    break
                outcome = accept(item, examined == 0)
                if outcome is None:
                    stopped = True
                    break
                examined += 1
                work.item()
                if outcome:
                    found.append(item)
                state.after = key(item)
                if len(found) >= limit:
                    stopped = True
                    break
            if stopped and (not items or state.after != key(items[-1])):
                return found, False  # go on inside this page next time
            if not following:
                return found, True
            state.inner, state.after = following, None
            if stopped or work.exhausted():
                return found, False
    finally:
        state.scanned += examined
        state.bytes_read += work.bytes_read
