"""The dev store's data: string keys and values with versions, TTLs and a sorted index.

Everything happens under one lock, so each method is atomic, as upstream's single
KV GenServer makes every write. Expiry follows upstream main: an entry whose
``expires_at <= now`` counts as absent everywhere, but it stays stored until the
periodic ``cleanup_expired`` removes it with an ``expire`` event (the server runs it
every ``ttl_check_interval_ms``; tests call it directly to stay deterministic).

Every key change bumps the revision and publishes a watch event; lease and lock
operations bump the revision too, without an event (see ``coordination.py``).

The keys in order and the listings (``page``, ``range``, ``live_keys``) are in
``listing.py``; leases and locks in ``coordination.py``; ``txn`` in ``txn.py``.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from typing import Any

from dashboard.devstore.coordination import CoordinationMixin, LeaseNotFound
from dashboard.devstore.listing import ListingMixin
from dashboard.devstore.txn import TxnMixin
from dashboard.devstore.values import now_ms
from dashboard.devstore.watch import Watcher, WatchHub

DEFAULT_WATCH_HISTORY_LIMIT = 10_000

__all__ = ["ConditionFailed", "Conditions", "DevStore", "LeaseNotFound", "now_ms"]


class ConditionFailed(Exception):
    """A conditional write did not run; ``current_version`` is None when the key is absent."""

    def __init__(self, reason: str, current_version: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.current_version = current_version


@dataclass(frozen=True)
class Conditions:
    """Preconditions of a write; every one that is set must hold.

    ``versions``: the current version must be one of these (``if_version``, ``If-Match``).
    ``not_versions``: it must be none of these (kept for callers; upstream has no such test).
    ``exists``: True requires the key (``if_present``), False requires it absent
    (``if_absent``, ``If-None-Match: *``).
    """

    versions: frozenset[int] | None = None
    not_versions: frozenset[int] = frozenset()
    exists: bool | None = None

    def failure(self, current: int | None) -> str | None:
        """Why the conditions fail against ``current`` (the version, None if absent)."""
        if self.exists is True and current is None:
            return "key does not exist"
        if self.exists is False and current is not None:
            return "key already exists"
        if self.versions is not None and current not in self.versions:
            return "version does not match"
        if current is not None and current in self.not_versions:
            return "version matches If-None-Match"
        return None


NO_CONDITIONS = Conditions()


class _Entry:
    __slots__ = ("value", "version", "created_at", "updated_at", "expires_at", "lease_id")

    def __init__(
        self,
        value: str,
        version: int,
        created_at: int,
        updated_at: int,
        expires_at: int | None,
        lease_id: str | None,
    ) -> None:
        self.value = value
        self.version = version
        self.created_at = created_at
        self.updated_at = updated_at
        self.expires_at = expires_at
        self.lease_id = lease_id

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def metadata(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "lease_id": self.lease_id,
        }

    def as_dict(self, key: str) -> dict[str, Any]:
        """Upstream's ``entry_result``: ``{key, value, metadata}``."""
        return {"key": key, "value": self.value, "metadata": self.metadata()}


class DevStore(ListingMixin, CoordinationMixin, TxnMixin):
    """An in-memory, thread-safe ToskaStore keyspace with leases, locks and watch events.

    ``legacy``/``release`` and ``no_key_listing`` describe how a server built on this
    store should behave (``start_devstore`` turns a mode on when either it or the store
    asks for it); the data itself is the same for every release.
    """

    def __init__(
        self,
        legacy: bool = False,
        no_key_listing: bool = False,
        *,
        release: str | None = None,
        watch_history_limit: int = DEFAULT_WATCH_HISTORY_LIMIT,
    ) -> None:
        self.legacy = legacy or release in ("0.8", "v0.8.0", "0.8.0")
        self.release = release
        self.no_key_listing = no_key_listing
        self._lock = threading.Lock()
        self._watch_history_limit = watch_history_limit
        self._reset()

    def _reset(self) -> None:
        self._reset_listing()
        self._revision = 0
        # (expires_at, key) of every write with an expiry, so the sweep visits only what
        # is due instead of every stored key under the lock (2M keys: a stall of seconds);
        # an item whose key was rewritten or deleted since is skipped when it comes due
        self._expiries: list[tuple[int, str]] = []
        self._hub = WatchHub(self._watch_history_limit)
        self._reset_coordination()

    # -- public helpers for seeding and inspecting without HTTP --------------------------

    def put(self, key: str, value: str, ttl_ms: int | None = None) -> int:
        """Write ``key`` unconditionally and return its new version.

        ``ttl_ms`` None means no expiry; a non-positive TTL deletes the key (as over
        HTTP) and returns 0. The write detaches the key from any lease, as upstream.
        """
        entry = self.write(key, value, ttl_ms=ttl_ms)
        return 0 if entry is None else entry["metadata"]["version"]

    def get(self, key: str) -> dict[str, Any] | None:
        """The live entry as ``{key, value, metadata}``, or None when absent or expired."""
        with self._lock:
            entry = self._live(key, now_ms())
            return None if entry is None else entry.as_dict(key)

    def delete(self, key: str, conditions: Conditions = NO_CONDITIONS) -> bool:
        """Remove ``key``; True when a live entry was removed.

        Raises ``ConditionFailed`` when ``conditions`` do not hold.
        """
        with self._lock:
            now = now_ms()
            entry = self._checked(key, conditions, now)
            self._delete_entry(key, entry, now, "delete")
            return entry is not None

    def keys(self) -> list[str]:
        """Every live key, sorted."""
        return self.live_keys()

    def clear(self) -> None:
        """Drop every key, lease, lock and event (the revision counter restarts too)."""
        with self._lock:
            self._reset()

    def __len__(self) -> int:
        """Live keys (expired ones not counted even before the cleanup removes them)."""
        with self._lock:
            now = now_ms()
            return sum(1 for e in self._data.values() if e is not None and not e.expired(now))

    def __bool__(self) -> bool:
        # truthy even when empty, so ``store or DevStore()`` never swaps a given store out
        return True

    @property
    def revision(self) -> int:
        """Upstream's store revision: bumped by every key change and lease/lock operation."""
        with self._lock:
            return self._revision

    def stored_count(self) -> int:
        """Entries held, expired ones included until the cleanup runs (upstream's ``keys`` stat)."""
        with self._lock:
            return len(self._data) - self._tombstones

    # -- operations used by the HTTP layer -----------------------------------------------

    def write(
        self,
        key: str,
        value: str,
        *,
        ttl_ms: int | None = None,
        lease_id: str | None = None,
        conditions: Conditions = NO_CONDITIONS,
    ) -> dict[str, Any] | None:
        """Set ``key`` if ``conditions`` hold; the new entry, or None when TTL <= 0 deleted it.

        Raises ``ConditionFailed``, then (conditions first, as upstream) ``LeaseNotFound``.
        With ``lease_id`` the key expires with the lease and ``ttl_ms`` is ignored;
        without it the key is detached from any lease. The version starts at 1 and
        grows with each write; ``created_at`` survives updates.
        """
        if not isinstance(value, str):
            raise TypeError("values are strings")
        with self._lock:
            now = now_ms()
            entry = self._checked(key, conditions, now)
            if lease_id is not None:
                lease = self._active_lease(lease_id, now)
                if lease is None:
                    raise LeaseNotFound(lease_id)
                expires_at: int | None = lease.expires_at
            elif ttl_ms is not None and ttl_ms <= 0:
                self._delete_entry(key, entry, now, "delete")
                return None
            else:
                expires_at = None if ttl_ms is None else now + ttl_ms
            return self._put_entry(key, value, expires_at, entry, now, lease_id).as_dict(key)

    def mget(self, keys: list[str]) -> dict[str, str | None]:
        """Values by key; None for keys that are absent or expired."""
        with self._lock:
            now = now_ms()
            values: dict[str, str | None] = {}
            for key in keys:
                entry = self._live(key, now)
                values[key] = None if entry is None else entry.value
            return values


    def cleanup_expired(self) -> int:
        """Upstream's periodic TTL sweep; returns how many keys it removed.

        Expired leases are revoked first (their keys go with ``expire`` events), then
        every expired key is removed with an ``expire`` event.
        """
        with self._lock:
            now = now_ms()
            removed = self._expire_leases(now)
            due = set()
            while self._expiries and self._expiries[0][0] <= now:
                due.add(heapq.heappop(self._expiries)[1])
            for key in sorted(due):  # in key order, as a sweep over the sorted keys
                entry = self._data.get(key)
                if entry is not None and entry.expired(now):
                    self._delete_entry(key, entry, now, "expire")
                    removed += 1
            return removed

    # -- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, since_revision: int | None) -> tuple[Watcher, list[dict[str, Any]], int]:
        """Open a watch: (watcher, replayed events, current revision), atomically.

        Raises ``watch.HistoryUnavailable`` (HTTP 409). Close it with ``unwatch``.
        """
        with self._lock:
            events = self._hub.replay(prefix, since_revision, self._revision)
            return self._hub.subscribe(prefix), events, self._revision

    def unwatch(self, watcher: Watcher) -> None:
        """Close a watch opened with ``watch``."""
        with self._lock:
            self._hub.unsubscribe(watcher)

    def watch_stats(self) -> dict[str, int]:
        """``watch_history_size``, ``watch_history_limit`` and ``watchers`` for /stats."""
        with self._lock:
            return {
                "watch_history_size": len(self._hub.history),
                "watch_history_limit": self._hub.history_limit,
                "watchers": len(self._hub.watchers),
            }

    # -- internals (call with the lock held) ---------------------------------------------

    def _live(self, key: str, now: int) -> _Entry | None:
        entry = self._data.get(key)
        return None if entry is None or entry.expired(now) else entry

    def _checked(self, key: str, conditions: Conditions, now: int) -> _Entry | None:
        """The live entry of ``key`` (None if absent), once ``conditions`` hold against it.

        Raises ``ConditionFailed`` when they do not.
        """
        entry = self._live(key, now)
        current = None if entry is None else entry.version
        reason = conditions.failure(current)
        if reason:
            raise ConditionFailed(reason, current)
        return entry

    def _put_entry(
        self,
        key: str,
        value: str,
        expires_at: int | None,
        current: _Entry | None,
        now: int,
        lease_id: str | None,
    ) -> _Entry:
        """Upstream's ``next_entry`` + ``put_entry``: a new version, a revision, an event."""
        if current is None:
            entry = _Entry(value, 1, now, now, expires_at, lease_id)
        else:
            entry = _Entry(value, current.version + 1, current.created_at, now, expires_at, lease_id)
        self._revision += 1
        self._insert(key, entry)
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, key))
        self._hub.publish({**entry.as_dict(key), "op": "put", "revision": self._revision, "timestamp": now})
        return entry

    def _delete_entry(self, key: str, current: _Entry | None, now: int, op: str) -> None:
        """Upstream's ``delete_entry``: nothing for an absent key, else a revision and an event."""
        if current is None:
            return
        self._revision += 1
        self._remove(key)
        self._hub.publish(
            {
                "op": op,
                "key": key,
                "value": None,
                "metadata": current.metadata(),
                "revision": self._revision,
                "timestamp": now,
            }
        )

    def _bump_revision(self) -> None:
        """Lease and lock operations advance the revision without publishing an event."""
        self._revision += 1

