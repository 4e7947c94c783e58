"""Searching a service: keys by glob pattern, values by text or regular expression.

Both are bounded by work, not by results (docs/design.md, "Cost habits"): one request
examines at most a budget of keys (and, for values, of bytes), then answers with what it
found, how far it got and a cursor to continue from. The cursor is ours and opaque: the
store's own listing cursor, the last key examined in the page that cursor lists (so a
page cut short by the budget resumes where it stopped) and the running totals.

Stores plug in a *page fetcher*: ``fetch(inner_cursor) -> (sorted items, next inner
cursor)``. Ordered stores list keys (or entries) page by page; a store that lists
everything at once (legacy servers, a ``__keys`` index) answers one page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .base import Entry, EntryPage, KeyValueProvider, ListingSource
from .glob import compile_glob

#: keys one key search request examines by default
KEY_BUDGET = 20_000
#: keys and value bytes one value search request reads by default
VALUE_KEY_BUDGET = 2_000
VALUE_BYTE_BUDGET = 16 * 1024 * 1024
#: the start of each value a value search looks at (Redis reads only this much)
VALUE_SEARCH_BYTES = 256 * 1024
#: wall-clock a value search spends matching one request (a slow regex stops here)
MATCH_SECONDS = 2.0
#: one value's regex search may take this long before the pattern is refused
REGEX_TIMEOUT = 0.25
MAX_PATTERN = 500
_CURSOR_PREFIX = "q1."


@dataclass(frozen=True)
class ValueHit:
    """One value that matched: where, and the text around the first match."""

    entry: Entry
    before: str
    match: str
    after: str
    #: the value was longer than what was searched (only its start was looked at)
    clipped: bool = False


@dataclass(frozen=True)
class SearchPage:
    """One bounded step of a search: what matched, how far it got, where to go on.

    ``scanned`` counts every key examined since the search began (all continues);
    ``total`` is the number of keys the walk covers when the store can tell (exact when
    ``total_exact``, else an estimate, e.g. the size of a whole Redis keyspace), else None.
    """

    entries: list[Entry]
    next_cursor: str | None
    scanned: int
    total: int | None = None
    total_exact: bool = False
    source: ListingSource = "range"
    #: the listing stopped at a cap (legacy servers): keys past it were not searched
    truncated: bool = False
    #: value search: each matching value with its excerpt
    hits: list[ValueHit] = field(default_factory=list)
    #: value search: bytes of values read since the search began
    bytes_read: int = 0

    @property
    def complete(self) -> bool:
        return self.next_cursor is None

    def rows(self) -> EntryPage:
        """The entries as a browse page with no next page (the search has its own)."""
        return EntryPage(self.entries, None, self.truncated, self.source)


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


def walk(
    fetch: Fetch, state: _State, *, key: Callable[[Any], str], accept: Callable[[Any], bool],
    limit: int, budget: int, byte_budget: int | None = None,
    size: Callable[[Any], int] | None = None,
) -> tuple[list[Any], bool]:
    """Examine items page by page until ``limit`` accepted, the budget, or the end.

    Updates ``state`` to where the next request goes on; returns (accepted, finished).
    """
    found: list[Any] = []
    examined = read = 0
    while True:
        items, following = fetch(state.inner)
        start = _resume(items, state.after, key)
        stopped = False
        for item in items[start:]:
            examined += 1
            if size is not None:
                read += size(item)
            if accept(item):
                found.append(item)
            state.after = key(item)
            if (len(found) >= limit or examined >= budget
                    or (byte_budget is not None and read >= byte_budget)):
                stopped = True
                break
        state.scanned += examined
        state.bytes_read += read
        examined = read = 0
        if stopped and state.after != key(items[-1]):
            return found, False  # go on inside this page next time
        if not following:
            return found, True
        state.inner, state.after = following, None
        if stopped:
            return found, False


def _budgets(limit: int, budget: int) -> tuple[int, int]:
    if limit < 1 or budget < 1:
        raise ValueError("limit and budget must be positive")
    return limit, budget


def match_keys(
    provider: KeyValueProvider, prefix: str, pattern: str, fetch: Fetch, *,
    cursor: str | None, limit: int, budget: int, preview_bytes: int | None,
    total: int | None = None, source: ListingSource = "range", truncated: bool = False,
) -> SearchPage:
    """A key search over sorted key pages: glob-filter here, then read the hits' values."""
    limit, budget = _budgets(limit, budget)
    check_pattern(pattern, provider.name)
    state = decode_cursor(cursor, provider.name, "keys", prefix, pattern)
    matches = compile_glob(pattern)
    keys, finished = walk(fetch, state, key=str, accept=lambda k: matches(k[len(prefix):]),
                          limit=limit, budget=budget)
    entries: list[Entry] = []
    if keys:
        # values only for the hits: keys that vanished since the listing drop out
        values = provider.mget(keys)
        entries = [e for k in keys if (e := values.get(k)) is not None]
    if finished:
        total, exact = state.scanned, True
    else:
        exact = total is not None and source != "scan"
    return SearchPage(entries, None if finished else encode_cursor(
        state, "keys", prefix, pattern), state.scanned, total, exact, source, truncated)


def listed_keys(provider: KeyValueProvider, prefix: str, page_size: int = 1000) -> Fetch:
    """Pages of the store's keys-only listing under ``prefix``."""

    def fetch(inner: str | None) -> tuple[list[str], str | None]:
        page = provider.list_keys(prefix, cursor=inner, limit=page_size)
        return page.keys, page.next_cursor

    return fetch


def check_pattern(pattern: str, store: str) -> None:
    if len(pattern) > MAX_PATTERN:
        raise errors.InvalidRequest(
            f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN}", store=store)


# --- values ---------------------------------------------------------------------------

class BadPattern(errors.InvalidRequest):
    """A search text or regular expression that cannot be used, with the reason."""


def value_matcher(query: str, *, regex: bool, icase: bool,
                  store: str = "") -> Callable[[str], tuple[int, int] | None]:
    """``text -> (start, end)`` of the first match, or None.

    Regular expressions run in the ``regex`` package with a timeout per value: a
    catastrophic pattern (``(a+)+$``) is stopped and refused, never left to hang a worker.
    """
    import regex as rx

    if not query:
        raise BadPattern("type something to search for", store=store)
    if len(query) > MAX_PATTERN:
        raise BadPattern(f"the search is {len(query)} characters long; at most {MAX_PATTERN}",
                         store=store)
    flags = rx.V0 | (rx.IGNORECASE | rx.FULLCASE if icase else 0)
    try:
        compiled = rx.compile(query if regex else rx.escape(query), flags)
    except (rx.error, ValueError, OverflowError, RecursionError) as exc:
        raise BadPattern(f"not a valid regular expression: {exc}", store=store) from exc

    def find(text: str) -> tuple[int, int] | None:
        try:
            found = compiled.search(text, timeout=REGEX_TIMEOUT)
        except TimeoutError as exc:
            raise BadPattern(
                f"the regular expression took longer than {REGEX_TIMEOUT:g} s on one value "
                "and was stopped (nested repetition such as (a+)+ backtracks without end); "
                "simplify it", store=store) from exc
        return found.span() if found is not None else None

    return find


def _value_bytes(entry: Entry) -> int:
    if entry.value is None:
        return 0
    return entry.size


def _searched_text(entry: Entry) -> tuple[str, bool]:
    """The part of the value searched: at most ``VALUE_SEARCH_BYTES`` (characters here)."""
    value = entry.value or ""
    clipped = entry.partial or len(value) > VALUE_SEARCH_BYTES
    return value[:VALUE_SEARCH_BYTES], clipped


def excerpt(text: str, start: int, end: int, width: int = 80) -> tuple[str, str, str]:
    """(before, match, after) around a match, at most ``width`` characters each side."""
    before = text[max(0, start - width):start]
    shown = text[start:min(end, start + 4 * width)]
    after = text[end:end + width]
    if start - width > 0:
        before = "…" + before
    if end + width < len(text):
        after = after + "…"
    return before, shown, after


def search_values(
    provider: KeyValueProvider, prefix: str, query: str, fetch: Fetch, *, regex: bool,
    icase: bool, cursor: str | None, limit: int, budget: int, byte_budget: int,
    source: ListingSource = "range", total: int | None = None,
) -> SearchPage:
    """A value search over sorted entry pages (values read with the listing)."""
    limit, budget = _budgets(limit, budget)
    find = value_matcher(query, regex=regex, icase=icase, store=provider.name)
    state = decode_cursor(cursor, provider.name, "values", prefix, query,
                          "r" if regex else "t", "i" if icase else "c")
    hits: list[ValueHit] = []
    deadline = time.monotonic() + MATCH_SECONDS

    def accept(entry: Entry) -> bool:
        if entry.value is None:
            return False  # hashes, lists ...: not searched
        text, clipped = _searched_text(entry)
        span = find(text)
        if span is None:
            return False
        hits.append(ValueHit(entry, *excerpt(text, *span), clipped=clipped))
        return True

    def timed(inner: str | None):
        if time.monotonic() > deadline and state.scanned:
            raise _OutOfTime
        return fetch(inner)

    try:
        _, finished = walk(timed, state, key=lambda e: e.key, accept=accept, limit=limit,
                           budget=budget, byte_budget=byte_budget, size=_value_bytes)
    except _OutOfTime:
        finished = False
    if finished:
        total, exact = state.scanned, True
    else:
        exact = total is not None and source != "scan"
    next_cursor = None if finished else encode_cursor(
        state, "values", prefix, query, "r" if regex else "t", "i" if icase else "c")
    return SearchPage([h.entry for h in hits], next_cursor, state.scanned, total, exact, source,
                      hits=hits, bytes_read=state.bytes_read)


class _OutOfTime(Exception):
    """The request's matching time is spent: answer with what was found."""


def scanned_entries(provider: KeyValueProvider, prefix: str, page_size: int = 250) -> Fetch:
    """Pages of entries (values read whole where the store cannot read a part)."""

    def fetch(inner: str | None) -> tuple[list[Entry], str | None]:
        page = provider.scan(prefix, cursor=inner, limit=page_size,
                             preview_bytes=VALUE_SEARCH_BYTES)
        return page.entries, page.next_cursor

    return fetch
