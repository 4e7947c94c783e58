"""Redis backend: SCAN listing, pipelined reads, WATCH/MULTI compare-and-set.

Cost model (see docs/design.md, "Cost habits"): a page of keys is one SCAN sequence and
never ``KEYS``; a page of entries adds one pipelined round trip (TYPE + PTTL + GET per
key), plus a second one only when the page holds non-string types, whose read command
depends on the type.

Bytes and text: Redis keys and values are bytes. Keys are decoded as UTF-8 with
``errors="surrogateescape"`` so that *any* key, even one that is not valid UTF-8,
round-trips exactly: a key taken from a page and passed back addresses the same bytes.
Values (and the members shown in previews) are decoded with ``errors="replace"``: they
are only displayed and edited as text, so a non-UTF-8 value shows U+FFFD where its bad
bytes were, and writing it back stores that text. Tokens are computed over the decoded
text, consistently on read and on compare.

Not supported: Redis Cluster (the server answers MOVED/CROSSSLOT, reported as
``Unsupported``); only one database of a standalone server or a replica is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import errors
from .base import (
    KEEP_TTL,
    Capabilities,
    Entry,
    EntryPage,
    KeyPage,
    KeyValueProvider,
    StoreInfo,
    TtlChange,
    now_ms,
)

#: elements shown for a hash, list, set, zset or stream
PREVIEW_ELEMENTS = 100
#: how often a conditional write or a read is retried when the key changes under it
_ATTEMPTS = 3
#: characters that are special in a SCAN MATCH glob
_GLOB_SPECIAL = frozenset(b"*?[]\\")
_CURSOR_PREFIX = "s:"

_CAPABILITIES = Capabilities(
    listing="scan", ordered=False, versions=False, ttl_visible=True, atomic_cas=True,
    mget_ttl=True, non_string_types=True, watch=False,
)


def glob_escape(prefix: bytes) -> bytes:
    """Escape ``prefix`` so SCAN MATCH treats every byte literally."""
    out = bytearray()
    for byte in prefix:
        if byte in _GLOB_SPECIAL:
            out.append(0x5C)  # backslash
        out.append(byte)
    return bytes(out)


def _key_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _Raced(Exception):
    """A key changed type between the commands that read it; read it again."""


class RedisProvider(KeyValueProvider):
    """A Redis server (standalone or replica) as a key/value provider.

    Thread-safe: every call borrows connections from one pool owned by the provider.
    """

    kind = "redis"

    def __init__(
        self, *, host: str = "localhost", port: int = 6379, db: int = 0,
        username: str | None = None, password: str | None = None, ssl: bool = False,
        timeout: float = 5.0, mget_batch: int = 500, scan_count: int = 1000,
        name: str | None = None,
    ) -> None:
        """Create the connection pool; nothing is contacted until the first call."""
        if mget_batch < 1 or scan_count < 1:
            raise ValueError("mget_batch and scan_count must be positive")
        self.host, self.port, self.db = host, port, db
        self.timeout = timeout
        self.mget_batch = mget_batch
        self.scan_count = scan_count
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # the password never goes into the name: the name is shown and logged
        self.name = name or f"Redis {address}/{db}"
        self._address = address
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

    # -- contract -------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """SCAN listing (unordered), no versions, visible TTLs, WATCH-based CAS."""
        return _CAPABILITIES

    def list_keys(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
    ) -> KeyPage:
        """One SCAN page of keys under ``prefix``, sorted by key bytes; may exceed ``limit``."""
        with self._translate():
            keys, next_cursor = self._scan_keys(prefix, cursor, limit)
        return KeyPage([_key_text(k) for k in keys], next_cursor, source="scan")

    def scan(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
    ) -> EntryPage:
        """One SCAN page of entries: the keys, then one pipeline (two with non-strings)."""
        with self._translate():
            keys, next_cursor = self._scan_keys(prefix, cursor, limit)
            # keys that vanished between SCAN and the read are left out
            entries = [e for e in self._read_entries(keys) if e is not None]
        return EntryPage(entries, next_cursor, source="scan")

    def get(self, key: str) -> Entry:
        """Read one key of any type; ``NotFound`` when it does not exist."""
        raw_key = self._encode_key(key)
        with self._translate(key):
            entry = self._read_entries([raw_key])[0]
        if entry is None:
            raise errors.NotFound(f"key {key!r} does not exist", store=self.name, key=key)
        return entry

    def mget(self, keys: Sequence[str]) -> dict[str, Entry | None]:
        """Read many keys, ``mget_batch`` per pipeline; duplicates once, input order kept."""
        unique = list(dict.fromkeys(keys))
        raw = [self._encode_key(k) for k in unique]
        result: dict[str, Entry | None] = {}
        with self._translate():
            for start in range(0, len(unique), self.mget_batch):
                batch = raw[start:start + self.mget_batch]
                entries = self._read_entries(batch)
                result.update(zip(unique[start:start + self.mget_batch], entries, strict=True))
        return result

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
            for _ in range(_ATTEMPTS):
                try:
                    return self._replace(key, raw_key, raw_value, ttl, expected)
                except rx.WatchError:
                    # Changed between our read and EXEC: compare again with a fresh read;
                    # a change that kept the token (same value rewritten) may still pass.
                    continue
            current = self._read_one(raw_key)
        raise errors.Conflict(
            f"key {key!r} kept changing while being written; nothing was written",
            store=self.name, key=key, current=current,
        )

    def delete(self, key: str, *, expected: str | None = None) -> bool:
        """Delete a key (only if it still matches ``expected``); False if it was already gone."""
        raw_key = self._encode_key(key)
        with self._translate(key, write=True):
            if expected is None:
                return bool(self._client.delete(raw_key))
            for _ in range(_ATTEMPTS):
                try:
                    with self._client.pipeline(transaction=True) as pipe:
                        pipe.watch(raw_key)
                        current = self._read_one(raw_key)
                        if current is None:
                            return False
                        self._check_expected(key, expected, current)
                        pipe.multi()
                        pipe.delete(raw_key)
                        (deleted,) = pipe.execute()
                        return bool(deleted)
                except rx.WatchError:
                    continue
            current = self._read_one(raw_key)
        raise errors.Conflict(
            f"key {key!r} kept changing while being deleted; nothing was deleted",
            store=self.name, key=key, current=current,
        )

    def info(self) -> StoreInfo:
        """PING and INFO (server, memory, keyspace, replication) in one round trip."""
        with self._translate():
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
        """Disconnect every pooled connection."""
        self._pool.disconnect()

    # -- listing --------------------------------------------------------------------

    def _scan_keys(
        self, prefix: str, cursor: str | None, limit: int,
    ) -> tuple[list[bytes], str | None]:
        """SCAN until ``limit`` distinct keys or the end; sorted keys and the next cursor."""
        if limit < 1:
            raise errors.InvalidRequest(f"limit must be positive, got {limit}", store=self.name)
        position = self._parse_cursor(cursor)
        match = glob_escape(self._encode_key(prefix)) + b"*"
        found: set[bytes] = set()
        while True:
            # SCAN may repeat keys (during a rehash) and gives no order: a set, then sort
            position, keys = self._client.scan(position, match=match, count=self.scan_count)
            found.update(keys)
            if position == 0 or len(found) >= limit:
                break
        next_cursor = f"{_CURSOR_PREFIX}{position}" if position else None
        return sorted(found), next_cursor

    def _parse_cursor(self, cursor: str | None) -> int:
        if cursor is None:
            return 0
        digits = cursor[len(_CURSOR_PREFIX):] if cursor.startswith(_CURSOR_PREFIX) else ""
        if not digits.isdigit() or not digits.isascii():
            raise errors.InvalidRequest(
                f"invalid cursor {cursor!r}: pass back a next_cursor from this store",
                store=self.name,
            )
        return int(digits)

    # -- reading: the one path that turns replies into Entries ----------------------

    def _read_one(self, raw_key: bytes) -> Entry | None:
        return self._read_entries([raw_key])[0]

    def _read_entries(self, keys: Sequence[bytes]) -> list[Entry | None]:
        """Entries for ``keys`` (None where missing); retries keys that change type mid-read."""
        result: list[Entry | None] = [None] * len(keys)
        pending = list(range(len(keys)))
        for _ in range(_ATTEMPTS):
            raced = self._read_pass([keys[i] for i in pending])
            still: list[int] = []
            for index, entry in zip(pending, raced, strict=True):
                if isinstance(entry, _Raced):
                    still.append(index)
                else:
                    result[index] = entry
            pending = still
            if not pending:
                return result
        raise errors.BadResponse(
            f"key {_key_text(keys[pending[0]])!r} kept changing type while being read; "
            "try again", store=self.name, key=_key_text(keys[pending[0]]),
        )

    def _read_pass(self, keys: Sequence[bytes]) -> list[Entry | None | _Raced]:
        """Pipeline 1: TYPE + PTTL + GET for all keys; pipeline 2: reads for other types."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.pttl(key)
            pipe.get(key)
        # GET on a hash answers WRONGTYPE: collect errors per command instead of raising
        replies = pipe.execute(raise_on_error=False)
        now = now_ms()
        out: list[Entry | None | _Raced] = []
        others: list[tuple[int, str, int]] = []
        for i, key in enumerate(keys):
            type_reply, pttl, value = replies[3 * i:3 * i + 3]
            _raise_if_error(type_reply)
            _raise_if_error(pttl)
            type_name = _text(type_reply)
            if type_name == "none":
                out.append(None)
            elif type_name == "string":
                if isinstance(value, bytes):
                    out.append(self._entry(key, pttl, now, value=_text(value)))
                elif value is None:
                    out.append(None)  # deleted between TYPE and GET
                elif _is_wrongtype(value):
                    out.append(_Raced())
                else:
                    raise value
            else:
                out.append(None)
                others.append((i, type_name, pttl))
        if others:
            for (i, _type, _pttl), entry in zip(
                others, self._read_collections(keys, others, now), strict=True,
            ):
                out[i] = entry
        return out

    def _read_collections(
        self, keys: Sequence[bytes], others: list[tuple[int, str, int]], now: int,
    ) -> list[Entry | None | _Raced]:
        """One pipeline: TYPE again (to notice a change), length and preview per key."""
        pipe = self._client.pipeline(transaction=False)
        counts: list[int] = []
        for i, type_name, _pttl in others:
            pipe.type(keys[i])
            commands = _COLLECTION_READS.get(type_name)
            if commands:
                commands[0](pipe, keys[i])
                commands[1](pipe, keys[i])
            counts.append(1 + (2 if commands else 0))
        replies = pipe.execute(raise_on_error=False)
        out: list[Entry | None | _Raced] = []
        offset = 0
        for (i, type_name, pttl), count in zip(others, counts, strict=True):
            type_reply, *reads = replies[offset:offset + count]
            offset += count
            _raise_if_error(type_reply)
            now_type = _text(type_reply)
            if now_type == "none":
                out.append(None)
                continue
            if now_type != type_name or any(_is_wrongtype(r) for r in reads):
                out.append(_Raced())
                continue
            for reply in reads:
                _raise_if_error(reply)
            if not reads:
                # a module type (JSON, vector set...): name it, show no contents
                out.append(self._entry(keys[i], pttl, now, type_name=type_name))
                continue
            length, preview = reads
            out.append(self._entry(
                keys[i], pttl, now, type_name=type_name, length=int(length),
                content=_PREVIEWS[type_name](preview),
            ))
        return out

    def _entry(
        self, key: bytes, pttl: int, now: int, *, value: str | None = None,
        type_name: str = "string", content: Any = None, length: int | None = None,
    ) -> Entry:
        """Build an Entry from pipelined replies; PTTL -1 means no expiry."""
        # PTTL is -1 without expiry and -2 if the key vanished after TYPE: no TTL either way
        ttl_ms = pttl if pttl >= 0 else None
        return Entry(
            key=_key_text(key), value=value, ttl_ms=ttl_ms,
            expires_at_ms=now + ttl_ms if ttl_ms is not None else None,
            type=type_name, content=content, length=length,
        )

    # -- writing --------------------------------------------------------------------

    def _create(self, key: str, raw_key: bytes, raw_value: bytes, ttl: TtlChange) -> Entry:
        """SET NX; Conflict carrying the current entry when the key exists."""
        pipe = self._client.pipeline(transaction=False)
        # a new key has no TTL to keep: "keep" and "none" both mean no expiry
        pipe.set(raw_key, raw_value, nx=True, px=ttl.ms if ttl.mode == "set" else None)
        pipe.pttl(raw_key)
        created, pttl = pipe.execute()
        if not created:
            current = self._read_one(raw_key)
            raise errors.Conflict(
                f"key {key!r} already exists; nothing was written",
                store=self.name, key=key, current=current,
            )
        return self._entry(raw_key, pttl, now_ms(), value=_text(raw_value))

    def _replace(
        self, key: str, raw_key: bytes, raw_value: bytes, ttl: TtlChange, expected: str | None,
    ) -> Entry:
        """WATCH, read, compare, then SET + PTTL in MULTI/EXEC; WatchError if it changed."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(raw_key)
            # Read on another pooled connection: WATCH is already in place, so any change
            # after this read (by anyone) makes EXEC fail.
            current = self._read_one(raw_key)
            if expected is not None:
                if current is None:
                    raise errors.Conflict(
                        f"key {key!r} no longer exists; nothing was written",
                        store=self.name, key=key, current=None,
                    )
                self._check_expected(key, expected, current)
            if current is not None and current.type != "string":
                raise errors.InvalidRequest(
                    f"key {key!r} holds a Redis {current.type}; the dashboard shows non-string "
                    "types read-only and will not replace one with a string",
                    store=self.name, key=key,
                )
            pipe.multi()
            if ttl.mode == "keep":
                pipe.set(raw_key, raw_value, keepttl=True)
            elif ttl.mode == "set":
                pipe.set(raw_key, raw_value, px=ttl.ms)
            else:
                pipe.set(raw_key, raw_value)  # a plain SET drops any TTL
            pipe.pttl(raw_key)
            _, pttl = pipe.execute()
        return self._entry(raw_key, pttl, now_ms(), value=_text(raw_value))

    def _check_expected(self, key: str, expected: str, current: Entry) -> None:
        if current.token != expected:
            raise errors.Conflict(
                f"key {key!r} changed since it was read; nothing was written",
                store=self.name, key=key, current=current,
            )

    # -- encoding and errors --------------------------------------------------------

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

    @contextmanager
    def _translate(self, key: str | None = None, *, write: bool = False) -> Iterator[None]:
        """Turn every redis-py exception into the matching ``ProviderError``.

        In a write, a timeout does not mean the server did not run the command.
        """
        try:
            yield
        except rx.RedisError as exc:
            error = self._provider_error(exc, key)
            error.maybe_written = write and isinstance(exc, rx.TimeoutError)
            raise error from exc

    def _provider_error(self, exc: rx.RedisError, key: str | None) -> errors.ProviderError:
        kw: dict[str, Any] = {"store": self.name, "key": key}
        code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
        if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
            if code == "NOAUTH":
                return errors.Unauthorized(
                    "Redis requires a password and none is configured", **kw)
            return errors.Unauthorized(
                f"Redis refused the configured username/password ({exc})", **kw)
        if isinstance(exc, rx.NoPermissionError):
            return errors.Forbidden(f"the Redis user may not do this ({exc})", **kw)
        if isinstance(exc, rx.ReadOnlyError):
            return errors.Forbidden(
                "this Redis server is a read-only replica; writes must go to the primary", **kw)
        if isinstance(exc, rx.BusyLoadingError):
            return errors.Unavailable("Redis is still loading its data set into memory", **kw)
        if isinstance(exc, rx.TimeoutError):
            return errors.Unavailable(
                f"Redis at {self._address} did not answer within {self.timeout:g} s", **kw)
        if isinstance(exc, rx.ConnectionError):
            return errors.Unavailable(f"cannot reach Redis at {self._address}: {exc}", **kw)
        if isinstance(exc, rx.OutOfMemoryError):
            return errors.Unavailable(
                "Redis is out of memory (maxmemory reached) and refuses writes", **kw)
        if isinstance(exc, rx.ClusterDownError | rx.TryAgainError):
            return errors.Unavailable(f"Redis is not serving requests ({exc})", **kw)
        if isinstance(exc, rx.AskError | rx.ClusterCrossSlotError):
            return errors.Unsupported(
                "this Redis server is part of a Redis Cluster, which this provider "
                "does not support", **kw)
        if isinstance(exc, rx.DataError):
            return errors.InvalidRequest(f"invalid request for Redis: {exc}", **kw)
        if isinstance(exc, rx.ResponseError):
            message = str(exc)
            if code in ("BUSY", "MISCONF"):
                return errors.Unavailable(f"Redis is not accepting commands ({message})", **kw)
            if code == "WRONGTYPE":
                return errors.InvalidRequest(
                    f"wrong Redis type for this operation ({message})", **kw)
            if "unknown command" in message or "syntax error" in message:
                return errors.Unsupported(
                    f"this Redis server does not support a command the dashboard needs "
                    f"(Redis 6.2 or later is required, and commands must not be renamed): "
                    f"{message}", **kw)
            if code == "ERR":
                return errors.InvalidRequest(f"Redis rejected the request: {message}", **kw)
            return errors.BadResponse(f"Redis answered with an error: {message}", **kw)
        return errors.BadResponse(f"unexpected answer from Redis: {exc}", **kw)


def _raise_if_error(reply: Any) -> None:
    if isinstance(reply, Exception):
        raise reply


def _is_wrongtype(reply: Any) -> bool:
    return isinstance(reply, rx.ResponseError) and str(reply).startswith("WRONGTYPE")


# Per type: (length command, preview command). HSCAN/SSCAN return everything in one call
# for small collections and roughly COUNT elements for big ones, without HGETALL/SMEMBERS'
# risk of pulling a million members.
_COLLECTION_READS = {
    "hash": (lambda p, k: p.hlen(k), lambda p, k: p.hscan(k, 0, count=PREVIEW_ELEMENTS)),
    "list": (lambda p, k: p.llen(k), lambda p, k: p.lrange(k, 0, PREVIEW_ELEMENTS - 1)),
    "set": (lambda p, k: p.scard(k), lambda p, k: p.sscan(k, 0, count=PREVIEW_ELEMENTS)),
    "zset": (lambda p, k: p.zcard(k),
             lambda p, k: p.zrange(k, 0, PREVIEW_ELEMENTS - 1, withscores=True)),
    "stream": (lambda p, k: p.xlen(k),
               lambda p, k: p.xrange(k, "-", "+", count=PREVIEW_ELEMENTS)),
}

# Per type: the reply of the preview command -> the Entry.content shown to operators.
# Hash fields and set members are sorted so a preview (and its token) is stable.
_PREVIEWS = {
    "hash": lambda reply: dict(sorted(
        (_text(f), _text(v)) for f, v in reply[1].items())[:PREVIEW_ELEMENTS]),
    "list": lambda reply: [_text(v) for v in reply],
    "set": lambda reply: sorted(_text(m) for m in reply[1])[:PREVIEW_ELEMENTS],
    "zset": lambda reply: [[_text(m), score] for m, score in reply],
    "stream": lambda reply: [
        [_text(entry_id), {_text(f): _text(v) for f, v in fields.items()}]
        for entry_id, fields in reply
    ],
}
