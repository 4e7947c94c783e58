"""The provider contract: what every key/value backend offers the dashboard.

Views talk to a ``KeyValueProvider`` only; they ask ``capabilities()`` what the store can
do and never check which store it is. Results are plain dataclasses; failures are the
``ProviderError`` family from ``errors.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
    #: keys are any bytes, not only UTF-8 text (Redis; they arrive surrogate-escaped)
    binary_keys: bool = False

    @property
    def key_listing(self) -> bool:
        """The server itself can list keys (otherwise listing comes from an index)."""
        return self.listing != "index"


#: the prefix of a token that never matches: the content could not be read exactly (a Redis
#: collection too big to digest, or read as a preview), so no write may be based on it
UNVERIFIED = "u"


def _length_prefixed(part: bytes) -> bytes:
    return b"%d:" % len(part) + part


def _as_bytes(part: bytes | str) -> bytes:
    return part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")


def _score(score: float) -> bytes:
    return format(float(score), ".17g").encode("ascii")


def content_token(type_name: str, data: bytes | None = None, members: Any = None) -> str:
    """The token of exact stored content: ``x`` and a SHA-1 of a canonical serialisation.

    ``data`` is a string's bytes; ``members`` a collection in the ``Dumped.members`` shape.
    Redis computes the same digest server-side (``redis_digest.SCRIPT``, which this must
    match byte for byte), so a collection is compared without reading it here: every part
    is length-prefixed, a hash's field/value pairs, a set's members and a zset's
    member/score pairs are digested one by one and the digests sorted (an order that does
    not depend on the server's locale), lists and streams are taken in order.
    """
    sha1 = hashlib.sha1
    if type_name == "string":
        body = data or b""
    elif type_name == "hash":
        body = "".join(sorted(
            sha1(_length_prefixed(_as_bytes(f)) + _length_prefixed(_as_bytes(v))).hexdigest()
            for f, v in members.items())).encode("ascii")
    elif type_name == "set":
        body = "".join(sorted(sha1(_length_prefixed(_as_bytes(m))).hexdigest()
                              for m in members)).encode("ascii")
    elif type_name == "zset":
        body = "".join(sorted(sha1(_length_prefixed(_as_bytes(m)) + _score(s)).hexdigest()
                              for m, s in members)).encode("ascii")
    elif type_name == "list":
        body = b"".join(_length_prefixed(_as_bytes(e)) for e in members)
    elif type_name == "stream":
        body = b"".join(
            _length_prefixed(_as_bytes(entry_id)) + b"%d:" % len(fields)
            + b"".join(_length_prefixed(_as_bytes(f)) + _length_prefixed(_as_bytes(v))
                       for f, v in fields.items())
            for entry_id, fields in members)
    else:
        raise ValueError(f"no exact token for a {type_name}")
    return "x" + sha1(type_name.encode("ascii") + b"\n" + body).hexdigest()


class _computed_once:
    """``functools.cached_property`` without its lock (Python 3.11 takes a lock shared by
    every instance on each first read: a browse page reads ``size`` 500 times). The value
    goes into the instance ``__dict__``, which answers every later read; two threads
    reading at once both compute it, which is harmless for a pure function."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__
        self.name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


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
    #: the exact stored bytes where ``value`` cannot hold them (Redis bytes that are not
    #: UTF-8: ``value`` then shows U+FFFD in their place, for display only)
    data: bytes | None = None
    #: the token of the exact content, computed by the store (Redis: a server-side digest
    #: of a hash, list, set, zset or stream); None where the token comes from ``value``
    digest: str | None = None

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
        """What a later conditional write compares against: the version, else the token of
        the exact content (``content_token``: a string's bytes, a collection's digest).

        A leased key's version moves with every keepalive of its lease, so its token is
        the content's: an edit then fails only when the value itself changed. A preview
        (``partial``) has no token: it is never the base of a write. Content that was not
        read exactly (a collection shown as a preview, without ``digest``) has an
        ``UNVERIFIED`` token, which no write accepts.
        """
        if self.partial:
            raise ValueError(f"{self.key!r} was read as a preview: read it whole to write it")
        if self.version is not None and self.lease_id is None:
            return f"v{self.version}"
        return self.content_token

    @property
    def content_token(self) -> str:
        """The token of the exact content (never the version); ``UNVERIFIED...`` if unknown."""
        if self.digest is not None:
            return self.digest
        if self.type == "string" and self.value is not None and not self.partial:
            return content_token("string", self.exact_bytes)
        return f"{UNVERIFIED}:{self.type} not read exactly"

    @property
    def verifiable(self) -> bool:
        """A write can be compared exactly against what this entry shows."""
        if self.partial:
            return False
        return (self.version is not None and self.lease_id is None) or \
            not self.content_token.startswith(UNVERIFIED)

    @property
    def exact_bytes(self) -> bytes:
        """A string's stored bytes (``data``, else the text as UTF-8); a preview's start."""
        if self.data is not None:
            return self.data
        if self.value is None:
            raise ValueError(f"{self.key!r} holds a {self.type}, not bytes")
        return self.value.encode("utf-8", "surrogatepass")

    def matches(self, token: str) -> bool:
        """Whether this entry is still what a reader who got ``token`` saw.

        A content token compares the exact content; a version token compares the version
        (also for a leased key, whose own token is the content's). An ``UNVERIFIED``
        token matches nothing.
        """
        if token.startswith("v"):
            return self.version is not None and token == f"v{self.version}"
        if token.startswith(UNVERIFIED) or self.partial:
            return False
        return token == self.content_token

    @property
    def partial(self) -> bool:
        """``value`` is only the start of the stored value (read as a preview)."""
        return self.stored_size is not None

    @_computed_once
    def size(self) -> int:
        """Size of the value in UTF-8 bytes (0 for non-string types); encoded once."""
        if self.stored_size is not None:
            return self.stored_size
        if self.data is not None:
            return len(self.data)
        return len(self.value.encode("utf-8", "surrogatepass")) if self.value is not None else 0

    @property
    def editable(self) -> bool:
        return self.type == "string" and self.value is not None


def _fill_dict_init(cls: type) -> type:
    """Give a frozen dataclass an ``__init__`` that fills the instance ``__dict__`` at once.

    The generated one sets each field through ``object.__setattr__`` (frozen): ~1.7 µs
    for an ``Entry``, of which a browse page makes 500 and a bulk lookup 10,000. This one
    takes the same parameters with the same defaults (~0.8 µs). Classes with field
    options it does not handle (factories, keyword-only, ``init=False``, ``__post_init__``)
    keep the dataclass ``__init__``.
    """
    params = list(dataclasses.fields(cls))
    if hasattr(cls, "__post_init__") or any(
            not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING
            for f in params):
        return cls
    defaults = {f"_default_{f.name}": f.default for f in params
                if f.default is not dataclasses.MISSING}
    signature = ", ".join(
        f.name if f.default is dataclasses.MISSING else f"{f.name}=_default_{f.name}"
        for f in params)
    body = "\n".join(f"    d[{f.name!r}] = {f.name}" for f in params)
    source = f"def __init__(self, {signature}):\n    d = self.__dict__\n{body}\n"
    namespace: dict[str, Any] = {}
    exec(source, defaults, namespace)  # noqa: S102 - built from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls


_fill_dict_init(Entry)


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


@dataclass(frozen=True)
class Dumped:
    """One key whole and exact, as an export writes it and an import reads it back.

    A string is ``value`` (text) or, where the store holds bytes that are not UTF-8 (Redis),
    ``data``. A non-string Redis type is ``members``: whole, with every element as bytes
    (hash ``{field: value}``, list ``[value]``, set ``[member]`` sorted, zset
    ``[[member, score]]``, stream ``[[id, {field: value}]]``). TTL as on ``Entry``.
    """

    key: str
    type: str = "string"
    value: str | None = None
    data: bytes | None = None
    members: Any = None
    ttl_ms: int | None = None
    ttl_known: bool = True
    expires_at_ms: int | None = None
    version: int | None = None
    lease_id: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> Dumped:
        return cls(key=entry.key, type=entry.type, value=entry.value,
                   ttl_ms=entry.ttl_ms if entry.ttl_known else None, ttl_known=entry.ttl_known,
                   expires_at_ms=entry.expires_at_ms, version=entry.version,
                   lease_id=entry.lease_id)

    @property
    def text(self) -> str | None:
        """The string value as text; None for a non-string type or bytes that are not UTF-8."""
        if self.value is not None:
            return self.value
        if self.data is not None:
            try:
                return self.data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None


@dataclass(frozen=True)
class DumpPage:
    """One page of ``Dumped`` entries; ``next_cursor`` None on the last page."""

    items: list[Dumped]
    next_cursor: str | None
    truncated: bool = False
