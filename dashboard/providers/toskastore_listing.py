"""ToskaStore key listing, whichever way the server lists keys.

``range`` (main) and ``cursor`` (v0.9.1) servers page for us. A ``legacy`` (0.8)
server answers one unpaged, unordered request, and a server without key listing is
read from the service's ``__keys`` index: both are sorted and paged here with our own
cursor. ``scan`` is one range request on main, else a key page plus one mget.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from typing import Any

from . import errors
from .base import (
    EntryPage,
    KeyPage,
    KeyValueProvider,
    ListingSource,
    SegmentListing,
    now_ms,
)
from .toskastore_wire import decode_local_cursor, encode_local_cursor, query

#: the server refuses pages over this size (400), so every page request is clamped to it
MAX_PAGE = 1000

#: maps a listing prefix to (service prefix, full key of the ``__keys`` index covering it)
IndexLocator = Callable[[str], "tuple[str, str] | None"]


def default_index_key_for(prefix: str) -> tuple[str, str] | None:
    """The index covering ``prefix``: its first ``:`` segment's service and ``__keys``."""
    if ":" not in prefix:
        return None
    service = prefix.split(":", 1)[0] + ":"
    return service, service + "__keys"


class ListingMixin:
    """``list_keys``, ``list_segments`` and ``scan`` for every release's listing.

    Part of ``ToskaStoreProvider``; uses the provider's ``name``, ``_legacy_list_cap``
    and ``_index_key_for``, its transport (``_request``, ``_json``, ``_bad``),
    ``_ensure_detected`` (detection) and ``get``, ``mget``, ``_entry`` (operations).
    """

    name: str
    _legacy_list_cap: int
    _index_key_for: IndexLocator

    def list_keys(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100
    ) -> KeyPage:
        """One page of keys under ``prefix``, in key order, however the server lists them."""
        limit = max(1, min(int(limit), MAX_PAGE))
        listing = self._ensure_detected()
        if listing == "range":
            data = self._json(self._request(
                "GET", "/kv?" + query(prefix=prefix, limit=limit, cursor=cursor or None)
            ), "range listing")
            items = data.get("items")
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
            ):
                raise self._bad("range listing: 'items' is not a list of {key}")
            return KeyPage([i["key"] for i in items], self._next_cursor(data), source="range")
        if listing == "cursor":
            data = self._json(self._request(
                "GET", "/kv/keys?" + query(prefix=prefix, limit=limit, cursor=cursor or None)
            ), "key listing")
            keys = self._string_list(data.get("keys"), "key listing: 'keys'")
            return KeyPage(keys, self._next_cursor(data), source="cursor")
        if listing == "legacy":
            keys, truncated = self._legacy_keys(prefix)
            return self._local_page(keys, cursor, limit, truncated=truncated, source="legacy")
        return self._local_page(self._index_keys(prefix), cursor, limit, truncated=False,
                                source="index")

    def exists_many(self, keys: Sequence[str]) -> dict[str, bool]:
        """Which keys exist: one keys-only listing request per key on a sorted listing.

        A sorted listing from ``prefix=key`` starts with the key itself when it exists, so
        nothing of its value travels (a service's index can be tens of megabytes). Servers
        without a sorted listing answer through ``mget``.
        """
        if self._ensure_detected() not in ("range", "cursor"):
            return KeyValueProvider.exists_many(self, keys)
        return {key: self.list_keys(key, limit=1).keys[:1] == [key] for key in dict.fromkeys(keys)}

    def list_segments(
        self, prefix: str = "", *, sep: str = ":", limit: int = 500, walk_cap: int = 20_000,
    ) -> SegmentListing:
        """Next-segment folders and leaf keys; on a range server, one request per entry.

        Instead of reading every key, ask for the first key at or after a lower bound and
        then jump past its whole segment (``seg`` + the character after ``sep``), so a
        service with a million keys costs one request.
        """
        if self._ensure_detected() != "range":
            # the contract's default: walk the keys
            return KeyValueProvider.list_segments(self, prefix, sep=sep, limit=limit,
                                                  walk_cap=walk_cap)
        folders: list[str] = []
        leaves: list[str] = []
        start = prefix
        past_sep = chr(ord(sep) + 1)
        while len(folders) + len(leaves) < limit:
            data = self._json(self._request(
                "GET", "/kv?" + query(prefix=prefix, start=start, limit=1)
            ), "range listing")
            items = data.get("items")
            if not isinstance(items, list):
                raise self._bad("range listing: 'items' is not a list")
            if not items:
                return SegmentListing(folders, leaves, True)
            key = items[0].get("key") if isinstance(items[0], dict) else None
            if not isinstance(key, str) or not key.startswith(prefix) or key < start:
                raise self._bad("range listing: unexpected key after start")
            rest = key[len(prefix):]
            cut = rest.find(sep)
            if cut >= 0:
                folders.append(prefix + rest[: cut + 1])
                start = prefix + rest[:cut] + past_sep
            else:
                leaves.append(key)
                start = key + "\0"
        return SegmentListing(folders, leaves, False)

    def _next_cursor(self, data: dict) -> str | None:
        cursor = data.get("next_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise self._bad("'next_cursor' is not a string or null")
        return cursor or None

    def _string_list(self, value: Any, what: str, key: str | None = None) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise self._bad(f"{what} is not a list of strings", key)
        return value

    def _legacy_keys(self, prefix: str) -> tuple[list[str], bool]:
        # legacy /kv/keys has no cursor and no order: one request for up to cap+1 keys
        # (the extra one tells us the cap was hit), sorted here
        data = self._json(self._request(
            "GET", "/kv/keys?" + query(prefix=prefix, limit=self._legacy_list_cap + 1)
        ), "legacy key listing")
        keys = sorted({k for k in self._string_list(data.get("keys"), "legacy key listing: 'keys'")
                       if k.startswith(prefix)})
        truncated = len(keys) > self._legacy_list_cap
        return keys[:self._legacy_list_cap], truncated

    def _index_keys(self, prefix: str) -> list[str]:
        located = self._index_key_for(prefix)
        if not located:
            return []
        service_prefix, index_key = located
        try:
            entry = self.get(index_key)
        except errors.NotFound:
            return []  # no index yet: nothing to list, not an error
        try:
            names = json.loads(entry.value or "")
        except (ValueError, RecursionError) as exc:
            raise errors.BadResponse(f"key index {index_key!r} is not valid JSON",
                                     store=self.name, key=index_key) from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise errors.BadResponse(f"key index {index_key!r} is not a JSON array of strings",
                                     store=self.name, key=index_key)
        # index entries are stored without the service prefix (the index key itself
        # may hold ':', so the prefix comes from the locator, not from the key)
        full = {service_prefix + n for n in names}  # the index may hold duplicates
        return sorted(k for k in full if k.startswith(prefix))

    def _local_page(
        self, keys: list[str], cursor: str | None, limit: int, *, truncated: bool,
        source: ListingSource,
    ) -> KeyPage:
        """Page a sorted list with our own cursor: the last key served, base64-encoded."""
        start = 0
        if cursor:
            start = bisect.bisect_right(keys, decode_local_cursor(cursor, self.name))
        page = keys[start:start + limit]
        more = start + limit < len(keys)
        return KeyPage(page, encode_local_cursor(page[-1]) if more and page else None,
                       truncated=truncated, source=source)

    def scan(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
        preview_bytes: int | None = None,
    ) -> EntryPage:
        """One page of entries: one range request (current), else a key page + one mget.

        ToskaStore has no partial reads: values come whole (``preview_bytes`` is ignored).
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        if self._ensure_detected() == "range":
            data = self._json(self._request("GET", "/kv?" + query(
                prefix=prefix, limit=limit, cursor=cursor or None,
                include_values=True, include_metadata=True,
            )), "range scan")
            items = data.get("items")
            if not isinstance(items, list):
                raise self._bad("range scan: 'items' is not a list")
            entries = []
            append, entry = entries.append, self._entry
            now = now_ms()  # one clock reading for the whole answer's remaining TTLs
            for item in items:
                key = item.get("key") if isinstance(item, dict) else None
                if not isinstance(key, str):
                    raise self._bad("range scan: an item has no string 'key'")
                append(entry(item, key, what="range scan", now=now))
            return EntryPage(entries, self._next_cursor(data), source="range")
        page = self.list_keys(prefix, cursor=cursor, limit=limit)
        values = self.mget(page.keys) if page.keys else {}
        # keys that vanished between listing and mget (or stale index entries) drop out
        entries = [e for k in page.keys if (e := values.get(k)) is not None]
        return EntryPage(entries, page.next_cursor, truncated=page.truncated, source=page.source)
