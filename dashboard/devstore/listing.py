"""The dev store's keys in order: the sorted index and the listings walked from it.

Key order is Python ``str`` order (code points), the same as the UTF-8 byte order of
upstream's ordered ETS index. Pages come from a sorted key list with ``bisect``: a key
past the end is appended, others wait in a pending list that one sort merges in, and a
removed key stays in the list as a tombstone (None in ``_data``) until the next listing
that finds tombstones outnumbering live keys compacts it.

Mixed into ``DevStore`` (``store.py``), which provides the lock and the entries. The
public methods take the store lock; the ``_`` ones expect it held.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashboard.devstore.values import now_ms

if TYPE_CHECKING:
    import threading

    from dashboard.devstore.store import _Entry

#: removed keys stay in the sorted list as tombstones until they outnumber live keys
#: (and this floor), so a delete never shifts a 100,000-element list
_COMPACT_FLOOR = 1024


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


class ListingMixin:
    """The stored entries in key order, and ``DevStore``'s listings (``page``, ``range``,
    ``live_keys``)."""

    _lock: threading.Lock

    def _reset_listing(self) -> None:
        # None marks a tombstone: the key is still in _sorted but not stored
        self._data: dict[str, _Entry | None] = {}
        self._sorted: list[str] = []
        # new keys that sort before the end of _sorted wait here; one sort merges them
        self._pending: list[str] = []
        self._tombstones = 0

    def page(self, prefix: str = "", start: Position | None = None, limit: int | None = 100) -> Page:
        """Up to ``limit`` (None: all) live entries whose keys start with ``prefix``, in order.

        ``start`` narrows the first key further. ``Page.next`` is None when nothing
        matching is left. (A convenience for callers; HTTP listings use ``range``.)
        """
        with self._lock:
            now = now_ms()
            index = self._index()
            pos = bisect_left(index, prefix)
            if start is not None:
                pos = max(pos, (bisect_right if start.after else bisect_left)(index, start.key))
            items: list[dict[str, Any]] = []
            for i in range(pos, len(index)):
                key = index[i]
                if not key.startswith(prefix):
                    break
                entry = self._data[key]
                if entry is None or entry.expired(now):
                    continue
                if len(items) == limit:
                    last = Position(items[-1]["key"], after=True) if items else Position(key)
                    return Page(items, last)
                items.append(entry.as_dict(key))
            return Page(items, None)

    def range(
        self, prefix: str, limit: int, *, start: str | None = None, after: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Upstream main's ``list_range`` walk: up to ``limit`` live entries and "more left".

        ``after`` (a cursor's key) starts strictly after that key; otherwise the walk
        starts at the larger of ``prefix`` and ``start``. Like upstream, it stops at the
        first stored key that lacks the prefix, so a ``start`` past the prefix range
        yields nothing.
        """
        with self._lock:
            now = now_ms()
            index = self._index()
            if after is not None:
                pos = bisect_right(index, after)
            else:
                lower = prefix if start is None else (start if prefix == "" or start > prefix else prefix)
                pos = bisect_left(index, lower)
            items: list[dict[str, Any]] = []
            for i in range(pos, len(index)):
                key = index[i]
                entry = self._data[key]
                if entry is None:  # a tombstone is not in upstream's index at all
                    continue
                if not key.startswith(prefix):
                    break
                if entry.expired(now):
                    continue
                if len(items) == limit:
                    return items, True
                items.append(entry.as_dict(key))
            return items, False

    def live_keys(self, prefix: str = "") -> list[str]:
        """Every live key starting with ``prefix``, sorted."""
        with self._lock:
            now = now_ms()
            index = self._index()
            keys = []
            for i in range(bisect_left(index, prefix), len(index)):
                key = index[i]
                if not key.startswith(prefix):
                    break
                entry = self._data[key]
                if entry is not None and not entry.expired(now):
                    keys.append(key)
            return keys

    # -- internals (call with the lock held) ---------------------------------------------

    def _insert(self, key: str, entry: _Entry) -> None:
        if key in self._data:  # stored or a tombstone: the key is already indexed
            if self._data[key] is None:
                self._tombstones -= 1
        elif not self._pending and (not self._sorted or key > self._sorted[-1]):
            self._sorted.append(key)
        else:
            self._pending.append(key)
        self._data[key] = entry

    def _remove(self, key: str) -> None:
        """Drop the stored entry of ``key``, leaving a tombstone in the sorted list."""
        self._data[key] = None
        self._tombstones += 1

    def _stored(self) -> list[tuple[str, _Entry]]:
        """Every stored entry, expired ones included, in key order."""
        return [(k, e) for k in self._index() if (e := self._data[k]) is not None]

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
