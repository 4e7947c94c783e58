"""Searching a service: keys by glob pattern, values by text or regular expression.

Both are bounded by work, not by results (docs/design.md, "Cost habits"): one request
examines at most a budget of keys (and, for values, of bytes), then answers with what it
found, how far it got and a cursor to continue from. The walk over the store's pages and
that cursor are shared by both (``search_walk.py``); this module holds the searches, their
budgets and what a step answers (``SearchPage``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dashboard.stores import errors
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.budget import BudgetedPage, Unread, WorkBudget
from dashboard.stores.entries import Entry
from dashboard.stores.glob import compile_glob
from dashboard.stores.pages import ListingSource
from dashboard.stores.search_walk import Fetch, decode_cursor, encode_cursor, walk

#: keys one key search request examines by default
KEY_BUDGET = 20_000
#: keys and value bytes one value search request reads by default
VALUE_KEY_BUDGET = 2_000
VALUE_BYTE_BUDGET = 16 * 1024 * 1024
#: the start of each value a value search looks at (Redis reads only this much)
VALUE_SEARCH_BYTES = 256 * 1024
#: wall-clock one value search request may spend (reading and matching, checked per
#: value: a slow regex stops here and the step answers what it has, with "continue")
MATCH_SECONDS = 2.0
#: one value's regex search may take this long before the pattern is refused
REGEX_TIMEOUT = 0.25
MAX_PATTERN = 500


@dataclass(frozen=True)
class ValueHit:
    """One value that matched: where, and the text around the first match."""

    entry: Entry
    before: str
    match: str
    after: str
    #: the value was longer than what was searched (only its start was looked at)
    clipped: bool = False
    #: False when only the start of the value was read (a store without partial reads, past
    #: the byte budget): ``entry.size`` is then what was read, the value is longer
    size_known: bool = True


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
    #: value search: bytes read from the store since the search began (every step's
    #: answers as they arrived, listings included where the store's reads are metered)
    bytes_read: int = 0
    #: why this step stopped before the end (``WorkBudget.note``), "" otherwise
    stopped: str = ""
    #: key search: the hits of this step whose values were not read within the step's
    #: byte budget (``byte_budget``), after ``entries`` in key order
    unread: list[Unread] = field(default_factory=list)
    #: key search: the byte budget the hits' values were read through (None: unbudgeted)
    byte_budget: int | None = None
    #: key search: the bytes this step read from the store (listings and values, as they
    #: arrived; ``bytes_read`` counts since the search began)
    step_bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.next_cursor is None

    def rows(self) -> BudgetedPage:
        """The entries (then the unread hits) as a browse page with no next page (the
        search has its own)."""
        return BudgetedPage(self.entries, None, self.truncated, self.source,
                            unread=self.unread, bytes_read=self.step_bytes,
                            byte_budget=self.byte_budget)


def _budgets(limit: int, budget: int) -> tuple[int, int]:
    if limit < 1 or budget < 1:
        raise ValueError("limit and budget must be positive")
    return limit, budget


#: ``read(keys, work) -> entries read, then Unread keys`` (in key order): the values of
#: a key search's hits through ``work``'s byte budget (``ListingMixin.read_values``)
ReadValues = Callable[[list[str], WorkBudget], Sequence["Entry | Unread"]]


def match_keys(
    provider: KeyValueProvider, prefix: str, pattern: str, fetch: Fetch, *,
    cursor: str | None, limit: int, budget: int, preview_bytes: int | None,
    total: int | None = None, source: ListingSource = "range", truncated: bool = False,
    work: WorkBudget | None = None, read: ReadValues | None = None,
) -> SearchPage:
    """A key search over sorted key pages: glob-filter here, then read the hits' values.

    ``budget`` counts the keys examined. With ``work`` and ``read`` the hits' values are
    read through ``work``'s byte budget (a browse page's: the hits past it are
    ``unread``, still shown) and the page reports ``work``'s bytes, the listings ``fetch``
    charged to it included; without them, one plain ``mget``.
    """
    limit, budget = _budgets(limit, budget)
    check_pattern(pattern, provider.name)
    state = decode_cursor(cursor, provider.name, "keys", prefix, pattern)
    matches = compile_glob(pattern)
    keys, finished = walk(fetch, state, key=str,
                          accept=lambda k, _first: matches(k[len(prefix):]),
                          limit=limit, work=WorkBudget(items=budget))
    entries: list[Entry] = []
    unread: list[Unread] = []
    if keys and work is not None and read is not None:
        # values only for the hits, as far as the byte budget goes; gone keys drop out
        for item in read(keys, work):
            if isinstance(item, Unread):
                unread.append(item)
            else:
                entries.append(item)
    elif keys:
        # values only for the hits: keys that vanished since the listing drop out
        values = provider.mget(keys)
        entries = [e for k in keys if (e := values.get(k)) is not None]
    step_bytes = work.bytes_read if work is not None else 0
    state.bytes_read += step_bytes
    if finished:
        total, exact = state.scanned, True
    else:
        exact = total is not None and source != "scan"
    return SearchPage(entries, None if finished else encode_cursor(
        state, "keys", prefix, pattern), state.scanned, total, exact, source, truncated,
        bytes_read=state.bytes_read, unread=unread,
        byte_budget=work.bytes if work is not None else None, step_bytes=step_bytes)


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


class OutOfTime(Exception):
    """Matching one value ran into the request's time budget (not the pattern's fault)."""


def value_matcher(query: str, *, regex: bool, icase: bool,
                  store: str = "") -> Callable[..., tuple[int, int] | None]:
    """``find(text, time_left=inf) -> (start, end)`` of the first match, or None.

    Regular expressions run in the ``regex`` package with a timeout per value: a
    catastrophic pattern (``(a+)+$``) is stopped and refused, never left to hang a worker.
    The timeout is capped by ``time_left`` (what remains of the request's budget): a
    value stopped by that cap raises ``OutOfTime`` instead, and the step ends there.
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

    def find(text: str, time_left: float = float("inf")) -> tuple[int, int] | None:
        capped = time_left < REGEX_TIMEOUT
        try:
            found = compiled.search(text, timeout=max(time_left, 0.0) if capped
                                    else REGEX_TIMEOUT)
        except TimeoutError as exc:
            if capped:
                raise OutOfTime from exc
            raise BadPattern(
                f"the regular expression took longer than {REGEX_TIMEOUT:g} s on one value "
                "and was stopped (nested repetition such as (a+)+ backtracks without end); "
                "simplify it", store=store) from exc
        return found.span() if found is not None else None

    return find


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


def value_budget(budget: int = VALUE_KEY_BUDGET, byte_budget: int = VALUE_BYTE_BUDGET,
                 seconds: float | None = None) -> WorkBudget:
    """The budget of one value search request (``MATCH_SECONDS`` unless ``seconds``)."""
    return WorkBudget(seconds=MATCH_SECONDS if seconds is None else seconds,
                      bytes=byte_budget, items=budget)


def search_values(
    provider: KeyValueProvider, prefix: str, query: str, fetch: Fetch, *, regex: bool,
    icase: bool, cursor: str | None, limit: int, work: WorkBudget,
    source: ListingSource = "range", total: int | None = None,
) -> SearchPage:
    """A value search over sorted pages of entries (and ``Unread`` keys) read through
    ``work``: time, bytes and keys are checked per value."""
    if limit < 1:
        raise ValueError("limit must be positive")
    find = value_matcher(query, regex=regex, icase=icase, store=provider.name)
    state = decode_cursor(cursor, provider.name, "values", prefix, query,
                          "r" if regex else "t", "i" if icase else "c")
    hits: list[ValueHit] = []

    def accept(item: Entry | Unread, first: bool) -> bool | None:
        size_known = True
        if isinstance(item, Unread):
            if not first or item.start is None:
                return None  # its value was not read: the next step starts with it
            # a value bigger than the whole budget: its start is what a step can read
            entry = Entry(key=item.key, value=item.start, ttl_known=False,
                          stored_size=item.start_bytes)
            size_known = False
        else:
            entry = item
        if entry.value is None:
            return False  # hashes, lists ...: not searched
        text, clipped = _searched_text(entry)
        try:
            span = find(text, float("inf") if first else work.time_left())
        except OutOfTime:
            work.stopped = work.stopped or "time"
            return None
        if span is None:
            return False
        hits.append(ValueHit(entry, *excerpt(text, *span), clipped=clipped,
                             size_known=size_known))
        return True

    def key(item: Entry | Unread) -> str:
        return item.key

    _, finished = walk(fetch, state, key=key, accept=accept, limit=limit, work=work)
    if finished:
        total, exact = state.scanned, True
    else:
        exact = total is not None and source != "scan"
    next_cursor = None if finished else encode_cursor(
        state, "values", prefix, query, "r" if regex else "t", "i" if icase else "c")
    return SearchPage([h.entry for h in hits], next_cursor, state.scanned, total, exact, source,
                      hits=hits, bytes_read=state.bytes_read,
                      stopped="" if finished else work.note())


def scanned_entries(provider: KeyValueProvider, prefix: str, work: WorkBudget,
                    page_size: int = 250) -> Fetch:
    """Pages of entries read through ``work`` (the start of each value where the store
    can read a part; else whole values, as far as the byte budget goes), then the page's
    ``Unread`` keys."""

    def fetch(inner: str | None) -> tuple[list[Entry | Unread], str | None]:
        page = provider.scan(prefix, cursor=inner, limit=page_size,
                             preview_bytes=VALUE_SEARCH_BYTES, work=work)
        return [*page.entries, *getattr(page, "unread", ())], page.next_cursor

    return fetch
