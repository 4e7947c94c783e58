"""The provider contract: what every key/value backend offers the dashboard.

Views talk to a ``KeyValueProvider`` only; they ask ``capabilities()`` what the store can
do and never check which store it is. Results are plain dataclasses; failures are the
``ProviderError`` family from ``errors.py``.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

#: how the store lists keys: an ordered range API, cursor pages, one legacy unpaged
#: request, a service's ``__keys`` index (no listing on the server), or Redis SCAN
ListingSource = Literal["range", "cursor", "legacy", "index", "scan"]


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

    @property
    def key_listing(self) -> bool:
        """The server itself can list keys (otherwise listing comes from an index)."""
        return self.listing != "index"


def value_token(kind: str, value: str | None, content: Any = None) -> str:
    """An opaque concurrency token for stores without versions: a digest of the value."""
    digest = hashlib.sha256(kind.encode())
    digest.update(b"\0")
    digest.update((value if value is not None else repr(content)).encode("utf-8", "surrogatepass"))
    return "h" + digest.hexdigest()[:40]


@dataclass(frozen=True)
class Entry:
    """One key as read from the store.

    TTL has three states: ``ttl_known`` False (the store cannot tell), ``ttl_ms`` None
    (no expiry), or ``ttl_ms`` milliseconds remaining when it was read.
    """

    key: str
    #: the string value; None for a non-string Redis type (see ``content``)
    value: str | None
    ttl_ms: int | None = None
    ttl_known: bool = True
    #: absolute expiry, Unix epoch milliseconds
    expires_at_ms: int | None = None
    version: int | None = None
    created_at_ms: int | None = None
    updated_at_ms: int | None = None
    lease_id: str | None = None
    #: Redis type name; "string" everywhere else
    type: str = "string"
    #: contents of a non-string type: dict (hash), list (list, zset pairs, stream), sorted list (set)
    content: Any = None
    #: length in elements for non-string types
    length: int | None = None
    #: the whole value's size in bytes when ``value`` holds only its start (a preview)
    stored_size: int | None = None
    #: milliseconds the read took (request to answer): a rewrite reaches the store about
    #: that much later, so a kept TTL is shortened by it (see ``ttl_to_keep_ms``)
    read_rtt_ms: int = 0

    def ttl_to_keep_ms(self) -> int | None:
        """The TTL a rewrite must send so the key expires no later than it does now.

        None when the key has no expiry. A plain "remaining time" would be counted from
        when the store receives the rewrite, one trip later: the key would live that
        much longer each time it is edited.
        """
        if self.expires_at_ms is None:
            return None
        return self.expires_at_ms - now_ms() - self.read_rtt_ms

    @property
    def token(self) -> str:
        """What a later conditional write compares against: version, else value digest.

        A leased key's version moves with every keepalive of its lease, so its token is
        the value's digest: an edit then fails only when the value itself changed. A
        preview (``partial``) has no token: it is never the base of a write.
        """
        if self.partial:
            raise ValueError(f"{self.key!r} was read as a preview: read it whole to write it")
        if self.version is not None and self.lease_id is None:
            return f"v{self.version}"
        return value_token(self.type, self.value, self.content)

    def matches(self, token: str) -> bool:
        """Whether this entry is still what a reader who got ``token`` saw.

        A value digest compares the value; a version token compares the version (also for
        a leased key, whose own token is a digest).
        """
        if token.startswith("h"):
            return token == value_token(self.type, self.value, self.content)
        return token == self.token or (self.version is not None and token == f"v{self.version}")

    @property
    def partial(self) -> bool:
        """``value`` is only the start of the stored value (read as a preview)."""
        return self.stored_size is not None

    @cached_property
    def size(self) -> int:
        """Size of the value in UTF-8 bytes (0 for non-string types); encoded once."""
        if self.stored_size is not None:
            return self.stored_size
        return len(self.value.encode("utf-8", "surrogatepass")) if self.value is not None else 0

    @property
    def editable(self) -> bool:
        return self.type == "string" and self.value is not None


@dataclass(frozen=True)
class TtlChange:
    """What a write does to the key's TTL: keep the remaining time, set a new one, or drop it."""

    mode: Literal["keep", "set", "none"] = "keep"
    ms: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("keep", "set", "none"):
            raise ValueError(f"unknown TTL mode {self.mode!r}")
        if self.mode == "set" and (self.ms is None or self.ms <= 0):
            raise ValueError("a TTL to set must be a positive number of milliseconds")

    @classmethod
    def set(cls, ms: int) -> TtlChange:
        return cls("set", ms)


KEEP_TTL = TtlChange("keep")
NO_TTL = TtlChange("none")


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: every field that is set must hold for ``key``."""

    key: str
    version: int | None = None
    exists: bool | None = None
    value: str | None = None


@dataclass(frozen=True)
class TxnOp:
    """One operation of a transaction: ``put`` (value, ``ttl_ms`` None = no expiry),
    ``delete`` or ``get``."""

    op: Literal["put", "delete", "get"]
    key: str
    value: str | None = None
    ttl_ms: int | None = None


@dataclass(frozen=True)
class TxnResult:
    """Whether every compare held (so the success ops ran), and each op's answer."""

    succeeded: bool
    responses: list[dict[str, Any]]


@dataclass(frozen=True)
class KeyPage:
    """One page of key names; ``next_cursor`` is opaque and None on the last page."""

    keys: list[str]
    next_cursor: str | None
    #: the store stopped listing at a cap (legacy servers): there are more keys than shown
    truncated: bool = False
    source: ListingSource = "range"


@dataclass(frozen=True)
class EntryPage:
    """One page of entries with values and TTL/metadata."""

    entries: list[Entry]
    next_cursor: str | None
    truncated: bool = False
    source: ListingSource = "range"


@dataclass(frozen=True)
class SegmentListing:
    """The next ``:`` level under a prefix: sub-prefixes ("folders") and keys directly there."""

    folders: list[str]
    leaves: list[str]
    #: False when the walk stopped at a cap: there may be more folders or keys
    complete: bool = True


@dataclass(frozen=True)
class StoreInfo:
    """Health and statistics of the store, for the status banner and /readyz."""

    kind: str
    name: str
    healthy: bool
    generation: str
    detail: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def now_ms() -> int:
    return int(time.time() * 1000)


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
        preview_bytes: int | None = None,
    ) -> EntryPage:
        """One page of entries (values, TTLs, metadata) under ``prefix``, in few round trips.

        With ``preview_bytes``, a store that can read part of a value (Redis ``GETRANGE``)
        reads only that much of each: such entries are ``partial`` (a preview, never the
        base of a write) and ``size`` is the whole value's. Other stores read values whole.
        """

    @abstractmethod
    def get(self, key: str, *, max_bytes: int | None = None) -> Entry:
        """Read one key; raises ``NotFound`` when it does not exist.

        With ``max_bytes``, a store that can read part of a value reads at most that much
        of a longer string (the entry is then ``partial``: for display, never a write).
        """

    @abstractmethod
    def mget(self, keys: Sequence[str]) -> dict[str, Entry | None]:
        """Read many keys in batched bulk requests; missing keys map to None, input order kept."""

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
        from .errors import Unsupported

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
