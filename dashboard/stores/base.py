"""The provider contract: what every key/value backend offers the dashboard.

Views talk to a ``KeyValueProvider`` only; they ask ``capabilities()`` what the store can
do and never check which store it is. Results are plain dataclasses: what a read returns
in ``entries.py``, what a write asks for in ``mutations.py``, listings in ``pages.py``;
failures are the ``ProviderError`` family from ``errors.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard.stores.entries import Dumped, Entry
from dashboard.stores.mutations import KEEP_TTL, NO_TTL, Compare, TtlChange, TxnOp, TxnResult
from dashboard.stores.pages import DumpPage, EntryPage, KeyPage, ListingSource, SegmentListing


@dataclass(frozen=True)
class Capabilities:
    """What a store can do, so views can adapt without knowing which store it is."""

    listing: ListingSource
    #: pages come in global key order (False for SCAN: each page is sorted on its own)
    ordered: bool
    #: the store keeps a version number per key
    versions: bool
    #: the store reports TTLs; False means a TTL is *unknown*, not absent
    ttl_visible: bool
    #: conditional writes are checked atomically by the store
    atomic_cas: bool
    #: bulk lookups report TTLs too
    mget_ttl: bool
    #: keys may hold hashes, lists, sets, zsets or streams (shown read-only)
    non_string_types: bool
    #: the store can stream changes (ToskaStore /kv/watch, Redis keyspace events)
    watch: bool = False
    #: several keys can be compared and written all or nothing (ToskaStore ``/kv/txn``)
    transactions: bool = False
    #: keys can be attached to leases whose expiry they follow (ToskaStore main)
    leases: bool = False
    #: keys are any bytes, not only UTF-8 text (Redis; they arrive surrogate-escaped)
    binary_keys: bool = False

    @property
    def key_listing(self) -> bool:
        """The server itself can list keys (otherwise listing comes from an index)."""
        return self.listing != "index"


@dataclass(frozen=True)
class StoreInfo:
    """Health and statistics of the store, for the status banner and /readyz."""

    kind: str
    name: str
    healthy: bool
    generation: str
    detail: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


class KeyValueProvider(ABC):
    """A key/value store as the dashboard sees it; one instance per process, thread-safe."""

    #: "toskastore" or "redis"
    kind: str = ""
    #: a display name without secrets, e.g. "ToskaStore http://kv:4000"
    name: str = ""

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """Report what this store can do (may contact the store once to detect it)."""

    @abstractmethod
    def list_keys(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> KeyPage:
        """One page of keys starting with ``prefix``; pass ``next_cursor`` back for the next."""

    @abstractmethod
    def scan(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
        preview_bytes: int | None = None, work: Any = None,
    ) -> EntryPage:
        """One page of entries (values, TTLs, metadata) under ``prefix``, in few round trips.

        With ``preview_bytes``, a store that can read part of a value (Redis ``GETRANGE``)
        reads only that much of each: such entries are ``partial`` (a preview, never the
        base of a write) and ``size`` is the whole value's. Other stores read values whole.
        With ``work`` (a ``budget.WorkBudget``) the page's reads are charged to it and stop
        at its byte budget: a ``budget.BudgetedPage`` whose ``unread`` keys follow.
        """

    @abstractmethod
    def get(self, key: str, *, max_bytes: int | None = None) -> Entry:
        """Read one key; raises ``NotFound`` when it does not exist.

        With ``max_bytes``, a store that can read part of a value reads at most that much
        of a longer string (the entry is then ``partial``: for display, never a write).
        Otherwise the entry's ``token`` is of its exact content (a Redis collection is
        digested on the server, as by ``mget(exact=True)``).
        """

    @abstractmethod
    def mget(self, keys: Sequence[str], *, exact: bool = False) -> dict[str, Entry | None]:
        """Read many keys in batched bulk requests; missing keys map to None, input order kept.

        With ``exact`` every entry can be the base of a write (its ``token`` is of the exact
        content): Redis then digests each hash, list, set, zset or stream on the server (one
        more command per such key, in the same round trip). Without it such entries carry
        an ``UNVERIFIED`` token; strings are exact either way.
        """

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The exact stored bytes of a string value (a download), read whole.

        ``NotFound`` when the key does not exist; ``InvalidRequest`` when it holds a Redis
        hash, list, set, zset or stream. A store that keeps text answers its UTF-8 bytes
        (a lone surrogate as its three bytes, as ``Entry.size`` counts it).
        """

    # -- access (``mesh.access``): a store itself lets its caller reach every key; the
    # -- guarded view a web request works on answers for its operator ----------------------

    def may_read(self, key: str) -> bool:
        """Whether the caller may read ``key`` (or the keys under a prefix)."""
        return True

    def may_write(self, key: str) -> bool:
        """Whether the caller may change ``key`` now."""
        return True

    def reads_under(self, prefix: str) -> bool:
        """Whether the caller may read some key under ``prefix``."""
        return True

    def check_read(self, key: str) -> None:  # noqa: B027 - a store itself refuses nothing
        """Raise a ``ProviderError`` (403) saying why, unless the caller may read ``key``."""

    def exists_many(self, keys: Sequence[str]) -> dict[str, bool]:
        """Which of ``keys`` exist, without reading their values where the store allows.

        This default reads them with ``mget``; stores override it with a metadata-only or
        existence-only request (a 47 MB index need not travel to learn it is there).
        """
        found = self.mget(keys)
        return {key: found.get(key) is not None for key in keys}

    @abstractmethod
    def put(
        self, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
        expected: str | None = None, create_only: bool = False,
    ) -> Entry:
        """Write a string value.

        ``ttl`` keeps, sets or drops the expiry. ``expected`` is the ``Entry.token`` the
        operator saw: the write happens only if the key still matches it, else ``Conflict``
        carrying the current entry. ``create_only`` fails with ``Conflict`` if the key exists.
        """

    @abstractmethod
    def delete(self, key: str, *, expected: str | None = None) -> bool:
        """Delete a key, only if it still matches ``expected`` when given; True if it existed."""

    @abstractmethod
    def info(self) -> StoreInfo:
        """Health and statistics; raises ``Unavailable``/``Unauthorized`` when unreachable."""

    def close(self) -> None:  # noqa: B027 - optional hook: not every provider holds a pool
        """Release pooled connections."""

    def transact(
        self, compare: Sequence[Compare], success: Sequence[TxnOp],
        failure: Sequence[TxnOp] = (),
    ) -> TxnResult:
        """Run ``success`` if every compare holds, else ``failure``, all or nothing.

        Only stores whose ``capabilities().transactions`` is True implement it.
        """
        from dashboard.stores.errors import Unsupported

        raise Unsupported("this store has no multi-key transactions", store=self.name)

    def iter_keys(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[str]:
        """Every key under ``prefix``, page by page, each at most once."""
        cursor: str | None = None
        seen_unordered: set[str] | None = None if self.capabilities().ordered else set()
        while True:
            page = self.list_keys(prefix, cursor=cursor, limit=page_size)
            for key in page.keys:
                if seen_unordered is not None:
                    if key in seen_unordered:
                        continue
                    seen_unordered.add(key)
                yield key
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def list_segments(
        self, prefix: str = "", *, sep: str = ":", limit: int = 500, walk_cap: int = 20_000,
    ) -> SegmentListing:
        """Group the keys under ``prefix`` by their next ``sep`` segment.

        This default walks the keys (at most ``walk_cap``); stores with an ordered range
        API override it to skip from one segment to the next instead.
        """
        folders: dict[str, None] = {}
        leaves: list[str] = []
        complete = True
        for walked, key in enumerate(self.iter_keys(prefix), start=1):
            rest = key[len(prefix):]
            cut = rest.find(sep)
            if cut >= 0:
                folders[prefix + rest[: cut + 1]] = None
            else:
                leaves.append(key)
            if walked >= walk_cap or len(folders) + len(leaves) >= limit:
                complete = False
                break
        return SegmentListing(sorted(folders), sorted(leaves), complete)

    def count_keys(self, prefix: str = "", *, cap: int = 1000) -> tuple[int, bool]:
        """Count keys under ``prefix`` up to ``cap``; returns (count, exact)."""
        count = 0
        for _ in self.iter_keys(prefix, page_size=min(max(cap, 1), 1000)):
            count += 1
            if count > cap:
                return cap, False
        return count, True

    # -- export and import (``dashboard.mesh.transfer``): whole, exact entries -------------------

    def dump(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> DumpPage:
        """One page of whole, exact entries under ``prefix``, for an export.

        Unlike ``scan`` nothing is a preview: a string is its whole value and a Redis hash,
        list, set, zset or stream its whole contents. This default is ``scan``, whose
        values are exact on a store that holds text (ToskaStore); Redis, whose values are
        bytes, reads them as bytes.
        """
        page = self.scan(prefix, cursor=cursor, limit=limit)
        return DumpPage([Dumped.of(entry) for entry in page.entries], page.next_cursor,
                        page.truncated)

    def restore(
        self, item: Dumped, *, ttl_ms: int | None = None, create_only: bool = False,
        expected: str | None = None,
    ) -> Entry:
        """Write ``item`` exactly (an import), with ``ttl_ms`` (None: no expiry).

        ``create_only`` and ``expected`` as for ``put``. This default writes text strings
        with ``put``; bytes that are not UTF-8 and non-string types need a store that holds
        them (Redis), else ``Unsupported``.
        """
        from dashboard.stores.errors import Unsupported

        text = item.text
        if item.type != "string" or text is None:
            what = "bytes that are not UTF-8 text" if item.type == "string" else \
                f"a Redis {item.type}"
            raise Unsupported(f"key {item.key!r} holds {what}; this store keeps text strings "
                              "only", store=self.name, key=item.key)
        ttl = TtlChange.set(ttl_ms) if ttl_ms is not None else NO_TTL
        return self.put(item.key, text, ttl=ttl, expected=expected, create_only=create_only)

    # -- search (``stores/search.py``): bounded by a budget, resumable --------------------

    @abstractmethod
    def scan_matching(
        self, prefix: str = "", pattern: str = "*", *, cursor: str | None = None,
        limit: int = 100, budget: int = 20_000, preview_bytes: int | None = None,
    ):
        """One bounded step of a key search: keys under ``prefix`` whose rest matches the
        Redis glob ``pattern``, a ``search.SearchPage``.

        At most ``budget`` keys are examined (Redis: about that many, in SCAN calls); the
        page says how many were examined so far, of about how many, and holds a cursor to
        continue. ``preview_bytes`` as for ``scan`` where the store can read a part.
        """

    @abstractmethod
    def search_values(
        self, prefix: str = "", query: str = "", *, regex: bool = False, icase: bool = False,
        cursor: str | None = None, limit: int = 50, budget: int = 2_000,
        byte_budget: int = 16 * 1024 * 1024, work: Any = None,
    ):
        """One bounded step of a value search under ``prefix``: a ``search.SearchPage``
        whose ``hits`` hold each matching value with an excerpt around its first match.

        At most ``budget`` keys and ``byte_budget`` bytes of values are read; only the
        first ``search.VALUE_SEARCH_BYTES`` of a value are searched. A bad or too slow
        regular expression raises ``search.BadPattern`` (an ``InvalidRequest``).
        """

    # -- live changes (``providers/changes.py``, ``dashboard/live.py``) --------------------

    def watch_unavailable_reason(self) -> str | None:
        """Why this store cannot stream changes, in words for the live pages; None if it can."""
        if self.capabilities().watch:
            return None
        return "this store cannot stream key changes"

    def key_history(self, key: str, *, limit: int = 200) -> list:
        """The changes of ``key`` the store itself retains (``changes.ChangeEvent``s),
        newest first, at most ``limit``: writes made by anyone, the dashboard or not.

        Only stores that keep a change history (ToskaStore main) implement it; others raise
        ``Unsupported`` saying so. ``HistoryGone`` when the history cannot be read back.
        """
        from dashboard.stores.errors import Unsupported

        raise Unsupported("this store keeps no history of changes", store=self.name)

    def watch(self, prefix: str, since_revision: int | None = None):
        """Stream the changes of keys under ``prefix``: a ``changes.ChangeStream``.

        With ``since_revision`` (a revision an earlier stream reported), the changes after
        it come first, so a reader resumes without gap or double; ``HistoryGone`` when
        they cannot be had. Only stores whose ``capabilities().watch`` is True implement
        it; others raise ``Unsupported`` with ``watch_unavailable_reason()``.
        """
        from dashboard.stores.errors import Unsupported

        reason = self.watch_unavailable_reason() or "this store cannot stream key changes"
        raise Unsupported(f"live view unavailable: {reason}", store=self.name)

