"""The dev store's data: string keys and values with versions, TTLs and a sorted index.

Everything happens under one lock, so each method is atomic. Expiry is lazy: an entry
whose ``expires_at <= now`` counts as absent everywhere and is dropped when touched.

Key order is Python ``str`` order (code points), which is the same as the UTF-8 byte
order ToskaStore documents. Listing pages come from a sorted key list with ``bisect``,
so a page costs O(log n + page) rather than a scan of the whole store.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

#: removed keys stay in the sorted list as tombstones until they outnumber live keys
#: (and this floor), so a delete never shifts a 100,000-element list
_COMPACT_FLOOR = 1024


def now_ms() -> int:
    """Wall-clock time in Unix epoch milliseconds, the unit of every ToskaStore timestamp."""
    return time.time_ns() // 1_000_000


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
    ``not_versions``: it must be none of these (``If-None-Match: "<v>"``).
    ``exists``: True requires the key (``if_present``, ``If-Match: *``), False requires
    it absent (``if_absent``, ``If-None-Match: *``).
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
        return {"key": key, "value": self.value, "metadata": self.metadata()}


@dataclass(frozen=True)
class Position:
    """Where a listing page starts: at ``key`` (inclusive) or just after it."""

    key: str
    after: bool = False


@dataclass
class Page:
    """One listing page: entries as ``Entry``-shaped dicts, and where the next page starts."""

    items: list[dict[str, Any]]
    next: Position | None


class DevStore:
    """An in-memory, thread-safe ToskaStore keyspace.

    ``legacy`` and ``no_key_listing`` describe how a server built on this store should
    behave (``start_devstore`` turns a mode on when either it or the store asks for it);
    the data itself is the same in every mode.
    """

    def __init__(self, legacy: bool = False, no_key_listing: bool = False) -> None:
        self.legacy = legacy
        self.no_key_listing = no_key_listing
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # None marks a tombstone: the key is still in _sorted but not live
        self._data: dict[str, _Entry | None] = {}
        self._sorted: list[str] = []
        # new keys that sort before the end of _sorted wait here; one sort merges them
        self._pending: list[str] = []
        self._tombstones = 0
        self._revision = 0

    # -- public helpers for seeding and inspecting without HTTP --------------------------

    def put(self, key: str, value: str, ttl_ms: int | None = None) -> int:
        """Write ``key`` unconditionally and return its new version.

        ``ttl_ms`` None means no expiry; a non-positive TTL deletes the key (as over
        HTTP) and returns 0.
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
            entry = self._live(key, now_ms())
            reason = conditions.failure(None if entry is None else entry.version)
            if reason:
                raise ConditionFailed(reason, None if entry is None else entry.version)
            if entry is None:
                return False
            self._remove(key)
            self._revision += 1
            return True

    def keys(self) -> list[str]:
        """Every live key, sorted."""
        with self._lock:
            self._purge_expired(now_ms())
            return [k for k in self._index() if self._data[k] is not None]

    def clear(self) -> None:
        """Drop every key (the revision counter restarts too)."""
        with self._lock:
            self._reset()

    def __len__(self) -> int:
        with self._lock:
            self._purge_expired(now_ms())
            return len(self._data) - self._tombstones

    def __bool__(self) -> bool:
        # truthy even when empty, so ``store or DevStore()`` never swaps a given store out
        return True

    @property
    def revision(self) -> int:
        """A counter bumped by every write and delete."""
        with self._lock:
            return self._revision

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

        Raises ``ConditionFailed``. The version starts at 1 and grows with each write;
        ``created_at`` survives updates; no TTL means no expiry, even if the key had one.
        """
        if not isinstance(value, str):
            raise TypeError("values are strings")
        with self._lock:
            now = now_ms()
            entry = self._live(key, now)
            reason = conditions.failure(None if entry is None else entry.version)
            if reason:
                raise ConditionFailed(reason, None if entry is None else entry.version)
            if ttl_ms is not None and ttl_ms <= 0:
                if entry is not None:
                    self._remove(key)
                    self._revision += 1
                return None
            self._revision += 1
            expires_at = None if ttl_ms is None else now + ttl_ms
            if entry is None:
                entry = _Entry(value, 1, now, now, expires_at, lease_id)
                self._insert(key, entry)
            else:
                entry.value = value
                entry.version += 1
                entry.updated_at = now
                entry.expires_at = expires_at
                entry.lease_id = lease_id
            return entry.as_dict(key)

    def mget(self, keys: list[str]) -> dict[str, str | None]:
        """Values by key; None for keys that are absent or expired."""
        with self._lock:
            now = now_ms()
            values: dict[str, str | None] = {}
            for key in keys:
                entry = self._live(key, now)
                values[key] = None if entry is None else entry.value
            return values

    def page(self, prefix: str = "", start: Position | None = None, limit: int | None = 100) -> Page:
        """Up to ``limit`` (None: all) live entries whose keys start with ``prefix``, in order.

        ``start`` (a cursor position or a ``start`` bound) narrows the first key further.
        ``Page.next`` is None when nothing matching is left.
        """
        with self._lock:
            now = now_ms()
            index = self._index()
            pos = bisect_left(index, prefix)
            if start is not None:
                bound = (bisect_right if start.after else bisect_left)(index, start.key)
                pos = max(pos, bound)
            items: list[dict[str, Any]] = []
            expired: list[str] = []
            next_position = None
            for i in range(pos, len(index)):
                key = index[i]
                if not key.startswith(prefix):
                    break
                entry = self._data[key]
                if entry is None:
                    continue
                if entry.expired(now):
                    expired.append(key)
                    continue
                if len(items) == limit:
                    # after the last key returned, so keys written meanwhile are not skipped;
                    # an empty page (limit 0) has no last key and resumes at this one
                    next_position = Position(items[-1]["key"], after=True) if items else Position(key)
                    break
                items.append(entry.as_dict(key))
            for key in expired:
                self._remove(key)
            return Page(items, next_position)

    def live_keys(self, prefix: str = "") -> list[str]:
        """Every live key starting with ``prefix``, sorted (for the unpaged legacy listing)."""
        page = self.page(prefix, limit=None)
        return [item["key"] for item in page.items]

    # -- internals (call with the lock held) ---------------------------------------------

    def _live(self, key: str, now: int) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expired(now):
            self._remove(key)
            return None
        return entry

    def _insert(self, key: str, entry: _Entry) -> None:
        if key in self._data:  # a tombstone: the key is still indexed
            self._tombstones -= 1
        elif not self._pending and (not self._sorted or key > self._sorted[-1]):
            self._sorted.append(key)
        else:
            self._pending.append(key)
        self._data[key] = entry

    def _remove(self, key: str) -> None:
        self._data[key] = None
        self._tombstones += 1

    def _purge_expired(self, now: int) -> None:
        for key, entry in self._data.items():
            if entry is not None and entry.expired(now):
                self._data[key] = None
                self._tombstones += 1

    def _index(self) -> list[str]:
        if self._pending:
            # timsort finds the sorted run and merges the new keys in about O(n + k log k)
            self._sorted.extend(self._pending)
            self._pending.clear()
            self._sorted.sort()
        if self._tombstones > max(_COMPACT_FLOOR, len(self._data) - self._tombstones):
            self._sorted = [k for k in self._sorted if self._data[k] is not None]
            self._data = {k: self._data[k] for k in self._sorted}
            self._tombstones = 0
        return self._sorted
