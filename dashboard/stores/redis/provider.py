"""Redis backend: a standalone server or a Redis Cluster, detected on the first call.

Cost model (see docs/design.md, "Cost habits"): a page of keys is one SCAN sequence and
never ``KEYS``; a page of entries adds one pipelined round trip (PTTL + GET per key, no
TYPE; on a cluster, one per node holding keys of the page, sent together), plus two more
only when the page holds non-string types (their reads answered WRONGTYPE): TYPE for those
keys, then the read commands of each type.

The work is split by concern: ``redis_connect`` (detection, the cluster client, errors,
cluster statistics), ``redis_listing`` (SCAN under one opaque cursor, over every cluster
primary), ``redis_reads`` (replies to ``Entry``), ``redis_writes`` (SET NX and WATCH/MULTI
compare-and-set, on the key's primary in a cluster).

Bytes and text: Redis keys and values are bytes. Keys are decoded as UTF-8 with
``errors="surrogateescape"`` so that *any* key, even one that is not valid UTF-8,
round-trips exactly: a key taken from a page and passed back addresses the same bytes.
Values (and the members shown in previews) are decoded with ``errors="replace"`` for
display: a non-UTF-8 value shows U+FFFD where its bad bytes were, and writing edited text
back stores that text. What a write compares is exact, never the decoded text: a string
read whole keeps its bytes (``Entry.data`` when they are not UTF-8) and its token is their
digest; a hash, list, set, zset or stream read by ``get`` (or ``mget(exact=True)``) carries
a digest of its whole content computed on the server (``redis_digest``). ``read_bytes``
answers a string's stored bytes (downloads).

A standalone server is read on the first endpoint of the connection string, one database.
A Redis Cluster has only database 0; another configured database is a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.stores import errors
from dashboard.stores.base import Capabilities, KeyValueProvider, StoreInfo
from dashboard.stores.entries import Entry
from dashboard.stores.mutations import KEEP_TTL, TtlChange
from dashboard.stores.pages import EntryPage, KeyPage
from dashboard.stores.redis.connect import RedisConnection, show_endpoint
from dashboard.stores.redis.listing import RedisListing, glob_escape
from dashboard.stores.redis.reads import PREVIEW_ELEMENTS, RedisReads, key_text
from dashboard.stores.redis.writes import RedisWrites

__all__ = ["PREVIEW_ELEMENTS", "RedisProvider", "glob_escape"]

#: SCAN calls a key count may make: a services page row costs at most this many
COUNT_STEPS = 16

_CAPABILITIES = Capabilities(
    listing="scan", ordered=False, versions=False, ttl_visible=True, atomic_cas=True,
    mget_ttl=True, non_string_types=True, watch=False, binary_keys=True,
)
_CAPABILITIES_WITH_WATCH = replace(_CAPABILITIES, watch=True)


class RedisProvider(RedisConnection, RedisListing, RedisReads, RedisWrites, KeyValueProvider):
    """A Redis server (standalone, replica, or Redis Cluster) as a key/value provider.

    Thread-safe: every call borrows connections from pools owned by the provider.
    """

    kind = "redis"

    def __init__(
        self, *, host: str = "localhost", port: int = 6379, db: int = 0,
        username: str | None = None, password: str | None = None, ssl: bool = False,
        timeout: float = 5.0, mget_batch: int = 500, scan_count: int = 1000,
        name: str | None = None, endpoints: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Create the connection pool; nothing is contacted until the first call.

        ``endpoints`` are every ``host:port`` of the connection string (default: just
        ``host``/``port``); a cluster is started from all of them.
        """
        if mget_batch < 1 or scan_count < 1:
            raise ValueError("mget_batch and scan_count must be positive")
        self._endpoints = list(endpoints) or [(host, port)]
        host, port = self._endpoints[0]
        self.host, self.port, self.db = host, port, db
        self.timeout = timeout
        self.mget_batch = mget_batch
        self.scan_count = scan_count
        address = show_endpoint(host, port)
        # the password never goes into the name: the name is shown and logged
        self.name = name or f"Redis {self._shown_endpoints()}/{db}"
        self._address = address
        self._connect_kwargs: dict[str, Any] = {
            "username": username, "password": password, "socket_timeout": timeout,
            "socket_connect_timeout": timeout, "decode_responses": False,
        }
        if ssl:
            self._connect_kwargs["ssl"] = True
        pool_kwargs: dict[str, Any] = {
            "host": host, "port": port, "db": db, "username": username,
            "password": password, "socket_timeout": timeout,
            "socket_connect_timeout": timeout, "decode_responses": False,
            # One immediate retry on a dropped connection (a restarted server leaves
            # stale pooled sockets); no retry on timeouts, which already waited.
            "retry": Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,)),
        }
        if ssl:
            pool_kwargs["connection_class"] = redis.SSLConnection
        self._pool = redis.ConnectionPool(**pool_kwargs)
        self._client = redis.Redis(connection_pool=self._pool)
        self._init_connection()

    # -- contract -------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """SCAN listing (unordered), no versions, visible TTLs, WATCH-based CAS.

        The same on a standalone server and on a cluster, so no detection is needed;
        ``watch`` only where keyspace notifications are on (``redis_watch``, re-checked
        every few seconds).
        """
        from dashboard.stores.redis import watch as redis_watch

        if redis_watch.unavailable_reason(self) is None:
            return _CAPABILITIES_WITH_WATCH
        return _CAPABILITIES

    def list_keys(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
    ) -> KeyPage:
        """One SCAN page of keys under ``prefix``, sorted by key bytes; may exceed ``limit``."""
        with self._translate():
            keys, next_cursor = self._scan_keys(prefix, cursor, limit)
        return KeyPage([key_text(k) for k in keys], next_cursor, source="scan")

    def count_keys(self, prefix: str = "", *, cap: int = 1000) -> tuple[int, bool]:
        """Count keys under ``prefix`` with a bounded walk: at most ``COUNT_STEPS`` SCAN calls.

        Exact when the walk ended (or the cap was reached: then "at least ``cap``"); when the
        budget ran out first, the keys found so far with ``exact`` False ("≥ N").
        """
        with self._translate():
            keys, next_cursor = self._scan_keys(prefix, None, cap + 1, max_steps=COUNT_STEPS)
        if len(keys) > cap:
            return cap, False
        return len(keys), next_cursor is None

    def scan(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
        preview_bytes: int | None = None, work: Any = None,
    ) -> EntryPage:
        """One SCAN page of entries: the keys, then one pipeline (three with non-strings).

        With ``preview_bytes`` each string is read with ``STRLEN`` + ``GETRANGE``: a page
        listing a 100 MB value moves only its first bytes. With ``work`` the values are
        read through its byte budget (``RedisListing._budgeted_page``).
        """
        with self._translate():
            keys, next_cursor = self._scan_keys(prefix, cursor, limit)
            if work is not None:
                return self._budgeted_page(keys, next_cursor, preview_bytes, work)
            # keys that vanished between SCAN and the read are left out
            entries = [e for e in self._read_entries(keys, preview_bytes=preview_bytes)
                       if e is not None]
        return EntryPage(entries, next_cursor, source="scan")

    def get(self, key: str, *, max_bytes: int | None = None) -> Entry:
        """Read one key of any type; ``NotFound`` when it does not exist.

        With ``max_bytes`` a longer string is read with ``STRLEN`` + ``GETRANGE`` (partial).
        """
        raw_key = self._encode_key(key)
        with self._translate(key):
            entry = self._read_entries([raw_key], preview_bytes=max_bytes, exact=True)[0]
        if entry is None:
            raise errors.NotFound(f"key {key!r} does not exist", store=self.name, key=key)
        return entry

    def mget(self, keys: Sequence[str], *, exact: bool = False) -> dict[str, Entry | None]:
        """Read many keys, ``mget_batch`` per pipeline; duplicates once, input order kept.

        On a cluster each batch's pipeline is split by node and the replies put back in
        the order asked. ``exact`` adds the server's digest of each collection (one EVAL
        per hash, list, set, zset or stream, in the same round trip).
        """
        unique = list(dict.fromkeys(keys))
        raw = [self._encode_key(k) for k in unique]
        result: dict[str, Entry | None] = {}
        with self._translate():
            for start in range(0, len(unique), self.mget_batch):
                batch = raw[start:start + self.mget_batch]
                entries = self._read_entries(batch, exact=exact)
                result.update(zip(unique[start:start + self.mget_batch], entries, strict=True))
        return result

    def read_bytes(self, key: str) -> bytes:
        """GET: the stored bytes, exactly; ``InvalidRequest`` for another type."""
        raw_key = self._encode_key(key)
        with self._translate(key):
            try:
                data = self._redis.get(raw_key)
            except rx.ResponseError as error:
                if not str(error).startswith("WRONGTYPE"):
                    raise
                raise errors.InvalidRequest(
                    f"key {key!r} is not a string: only a string's bytes can be downloaded",
                    store=self.name, key=key) from None
        if data is None:
            raise errors.NotFound(f"key {key!r} does not exist", store=self.name, key=key)
        return bytes(data)

    def put(
        self, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
        expected: str | None = None, create_only: bool = False,
    ) -> Entry:
        """Write a string value, conditional on ``expected`` (see the base class).

        ``create_only`` is ``SET NX`` and ignores ``expected``. Otherwise the key is
        WATCHed, read and compared, then written in MULTI/EXEC, so a change between the
        compare and the write aborts it. A key holding a hash, list, set, zset or stream
        is never overwritten (``InvalidRequest``): those types are read-only here.
        """
        raw_key = self._encode_key(key)
        raw_value = self._encode_value(key, value)
        with self._translate(key, write=True):
            if create_only:
                return self._create(key, raw_key, raw_value, ttl)
            return self._conditional(
                key, raw_key, lambda: self._replace(key, raw_key, raw_value, ttl, expected),
                doing="written", undone="written")

    def delete(self, key: str, *, expected: str | None = None) -> bool:
        """Delete a key (only if it still matches ``expected``); False if it was already gone."""
        raw_key = self._encode_key(key)
        with self._translate(key, write=True):
            if expected is None:
                return bool(self._redis.delete(raw_key))
            return self._conditional(key, raw_key, lambda: self._delete_if(key, raw_key, expected),
                                     doing="deleted", undone="deleted")

    def info(self) -> StoreInfo:
        """PING and INFO (server, memory, keyspace, replication) in one round trip.

        On a cluster: CLUSTER INFO and every node's INFO; a node down is ``Unavailable``.
        """
        with self._translate():
            if self._cluster is not None:
                return self._cluster_info()
            pipe = self._client.pipeline(transaction=False)
            pipe.ping()
            for section in ("server", "memory", "keyspace", "replication"):
                pipe.info(section)
            pipe.dbsize()
            ping, server, memory, keyspace, replication, dbsize = pipe.execute(
                raise_on_error=False)
            if isinstance(ping, Exception):
                raise ping
        # INFO may be renamed or denied by ACL on managed servers: show what we got
        server, memory, keyspace, replication = (
            part if isinstance(part, dict) else {}
            for part in (server, memory, keyspace, replication)
        )
        version = server.get("redis_version")
        db_stats = keyspace.get(f"db{self.db}", {})
        stats: dict[str, Any] = {
            "version": version,
            "mode": server.get("redis_mode"),
            "role": replication.get("role"),
            "db": self.db,
            "dbsize": dbsize if isinstance(dbsize, int) else None,
            "keys_with_expiry": db_stats.get("expires", 0) if isinstance(db_stats, dict) else None,
            "used_memory_human": memory.get("used_memory_human"),
            "maxmemory_human": memory.get("maxmemory_human"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "uptime_in_seconds": server.get("uptime_in_seconds"),
        }
        detail = ""
        if replication.get("role") == "slave":
            detail = (f"replica of {replication.get('master_host')}:"
                      f"{replication.get('master_port')}; writes go to the primary")
        return StoreInfo(
            kind="redis", name=self.name, healthy=True,
            generation=f"redis {version}" if version else "redis (version hidden)",
            detail=detail, stats={k: v for k, v in stats.items() if v is not None},
        )

    def close(self) -> None:
        """Disconnect every pooled connection (the cluster's too)."""
        self._pool.disconnect()
        if self._cluster is not None:
            self._cluster.close()

    # -- encoding -------------------------------------------------------------------

    def _encode_key(self, key: str) -> bytes:
        try:
            return key.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise errors.InvalidRequest(
                f"key {key!r} cannot be encoded for Redis: {exc.reason}", store=self.name, key=key,
            ) from exc

    def _encode_value(self, key: str, value: str) -> bytes:
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise errors.InvalidRequest(
                f"the value for {key!r} is not valid text: {exc.reason}", store=self.name, key=key,
            ) from exc

    # -- export and import: whole, exact values of every type (``redis_types``) -----------

    def dump(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100):
        """One SCAN page of whole entries: strings as bytes, collections whole."""
        from dashboard.stores.redis import types as redis_types

        return redis_types.dump_page(self, prefix, cursor, limit)

    def restore(self, item, *, ttl_ms: int | None = None, create_only: bool = False,
                expected: str | None = None) -> Entry:
        """Write a string's exact bytes or a whole hash, list, set, zset or stream."""
        from dashboard.stores.redis import types as redis_types

        return redis_types.restore(self, item, ttl_ms=ttl_ms, create_only=create_only,
                                   expected=expected)

    # -- search: SCAN MATCH with the operator's glob (``redis_search``) --------------------

    def scan_matching(
        self, prefix: str = "", pattern: str = "*", *, cursor: str | None = None,
        limit: int = 100, budget: int = 20_000, preview_bytes: int | None = None,
    ):
        """SCAN MATCH escaped-prefix + ``pattern``, about ``budget`` keys examined per step."""
        from dashboard.stores.redis import search as redis_search

        return redis_search.scan_matching(self, prefix, pattern, cursor=cursor, limit=limit,
                                          budget=budget, preview_bytes=preview_bytes)

    def search_values(
        self, prefix: str = "", query: str = "", *, regex: bool = False, icase: bool = False,
        cursor: str | None = None, limit: int = 50, budget: int = 2_000,
        byte_budget: int = 16 * 1024 * 1024, work: Any = None,
    ):
        """The shared value search over this store's budgeted scan (``stores.search``)."""
        from dashboard.stores import search

        work = work or search.value_budget(budget, byte_budget)
        return search.search_values(
            self, prefix, query, search.scanned_entries(self, prefix, work), regex=regex,
            icase=icase, cursor=cursor, limit=limit, work=work,
            source=self.capabilities().listing)

    # -- live changes: keyspace notifications (``redis_watch``) ----------------------------

    def watch_unavailable_reason(self) -> str | None:
        """Why this Redis cannot stream changes (notifications off, or not checkable)."""
        from dashboard.stores.redis import watch as redis_watch

        return redis_watch.unavailable_reason(self)

    def watch(self, prefix: str, since_revision: int | None = None):
        """Stream changes under ``prefix`` from keyspace notifications (every primary).

        Redis keeps no history: ``since_revision`` cannot replay anything, so a stream
        asked to resume starts with ``HistoryGone`` (events may have been missed).
        ``Unsupported`` when notifications are off or could not be checked.
        """
        from dashboard.stores.redis import watch as redis_watch

        reason = redis_watch.unavailable_reason(self)
        if reason is not None:
            raise errors.Unsupported(f"live view unavailable: {reason}", store=self.name)
        stream = redis_watch.watch(self, prefix)
        if since_revision is not None:
            stream._emit(errors.HistoryGone(
                "Redis keeps no history of changes: what happened while the stream was "
                "closed cannot be replayed", store=self.name))
        return stream
