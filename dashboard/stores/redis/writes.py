"""Writing Redis keys: ``SET NX`` for creates, WATCH/MULTI compare-and-set for the rest.

Compare-and-set WATCHes the key, reads it exactly and compares the operator's token with
its token (``Entry.token``: a digest of the exact content, see ``base.content_token``),
then writes in MULTI/EXEC, so any change after the read makes EXEC fail and the write is
compared again. The read is exact whatever the type: a string's bytes are digested here,
a hash, list, set, zset or stream is digested on the server (``redis_digest``, one EVAL in
the read's round trip), so a field set or a byte changed since the operator's read is
always a conflict. A token that is ``UNVERIFIED`` on either side (a collection too big to
digest, scripting denied) refuses the write: it could not be verified, so it is not made.

On a Redis Cluster the WATCH/MULTI/EXEC runs on a connection to the primary serving the
key's slot (redis-py's cluster pipeline only routes transactions within one slot; a
single key always is one). If the slot moved meanwhile (MOVED/ASK), the topology is
refreshed and the write is compared again.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions as rx

from dashboard.stores import errors
from dashboard.stores.entries import UNVERIFIED, Entry, now_ms
from dashboard.stores.mutations import TtlChange
from dashboard.stores.redis import digest as redis_digest
from dashboard.stores.redis.reads import _text

#: how often a conditional write is retried when the key changes (or moves) under it
ATTEMPTS = 3


class RedisWrites:
    """Mixin for ``RedisProvider``: the write paths behind ``put`` and ``delete``."""

    name: str
    _redis: Any
    _client: Any
    _cluster: Any

    def _create(self, key: str, raw_key: bytes, raw_value: bytes, ttl: TtlChange) -> Entry:
        """SET NX; Conflict carrying the current entry when the key exists."""
        pipe = self._redis.pipeline(transaction=False)
        # a new key has no TTL to keep: "keep" and "none" both mean no expiry
        pipe.set(raw_key, raw_value, nx=True, px=ttl.ms if ttl.mode == "set" else None)
        pipe.pttl(raw_key)
        created, pttl = pipe.execute()
        if not created:
            current = self._read_one(raw_key)  # type: ignore[attr-defined]
            raise errors.Conflict(
                f"key {key!r} already exists; nothing was written",
                store=self.name, key=key, current=current,
            )
        return self._entry(raw_key, pttl, now_ms(), value=_text(raw_value))  # type: ignore[attr-defined]

    def _conditional(self, key: str, raw_key: bytes, attempt: Any, *, doing: str,
                     undone: str) -> Any:
        """Run ``attempt()`` up to ``ATTEMPTS`` times; ``Conflict`` (with the key as it is
        now) when every attempt met a concurrent change.

        A WatchError means the key changed between our read and EXEC: compare again with
        a fresh read (a change that kept the token, the same value rewritten, may pass).
        """
        for _ in range(ATTEMPTS):
            try:
                return attempt()
            except rx.WatchError:
                continue
            except rx.AskError:  # MovedError too: the key's slot is on another node now
                if self._cluster is None:
                    raise
                self._refresh_topology()  # type: ignore[attr-defined]
                continue
        raise errors.Conflict(
            f"key {key!r} kept changing while being {doing}; nothing was {undone}",
            store=self.name, key=key, current=self._read_one(raw_key))  # type: ignore[attr-defined]

    def _watch_client(self, raw_key: bytes) -> Any:
        """The client whose connection WATCHes ``raw_key``: the key's primary on a cluster."""
        if self._cluster is None:
            return self._client
        node = self._cluster.get_node_from_key(raw_key)
        return self._cluster.get_redis_connection(node)

    def _replace(
        self, key: str, raw_key: bytes, raw_value: bytes, ttl: TtlChange, expected: str | None,
    ) -> Entry:
        """WATCH, read, compare, then SET + PTTL in MULTI/EXEC; WatchError if it changed."""
        with self._watch_client(raw_key).pipeline(transaction=True) as pipe:
            pipe.watch(raw_key)
            # Read on another pooled connection: WATCH is already in place, so any change
            # after this read (by anyone) makes EXEC fail.
            current = self._read_one(raw_key)  # type: ignore[attr-defined]
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
        return self._entry(raw_key, pttl, now_ms(), value=_text(raw_value))  # type: ignore[attr-defined]

    def _delete_if(self, key: str, raw_key: bytes, expected: str) -> bool:
        """WATCH, read, compare, then DEL in MULTI/EXEC; False when the key is gone."""
        with self._watch_client(raw_key).pipeline(transaction=True) as pipe:
            pipe.watch(raw_key)
            current = self._read_one(raw_key)  # type: ignore[attr-defined]
            if current is None:
                return False
            self._check_expected(key, expected, current)
            pipe.multi()
            pipe.delete(raw_key)
            (deleted,) = pipe.execute()
            return bool(deleted)

    def _check_expected(self, key: str, expected: str, current: Entry) -> None:
        if expected.startswith(UNVERIFIED) or current.token.startswith(UNVERIFIED):
            raise errors.Conflict(
                f"key {key!r} could not be verified exactly (a Redis {current.type} of "
                f"{current.length if current.length is not None else '?'} elements is more "
                f"than the {redis_digest.MAX_ELEMENTS:,} the dashboard compares, or scripting "
                "is not allowed); nothing was written",
                store=self.name, key=key, current=current,
            )
        if current.token != expected:
            raise errors.Conflict(
                f"key {key!r} changed since it was read; nothing was written",
                store=self.name, key=key, current=current,
            )

