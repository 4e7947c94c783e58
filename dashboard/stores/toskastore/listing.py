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

from dashboard.stores import errors
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.budget import BudgetedPage, Unread, WorkBudget
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.pages import EntryPage, KeyPage, ListingSource, SegmentListing
from dashboard.stores.toskastore.metadata import listed_metadata, lists_metadata
from dashboard.stores.toskastore.stream import parse_answer, read_answer, salvage_values, values_of
from dashboard.stores.toskastore.wire import decode_local_cursor, encode_local_cursor, query

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

    def _legacy_keys(self, prefix: str, work: WorkBudget | None = None
                     ) -> tuple[list[str], bool]:
        # legacy /kv/keys has no cursor and no order: one request for up to cap+1 keys
        # (the extra one tells us the cap was hit), sorted here
        path = "/kv/keys?" + query(prefix=prefix, limit=self._legacy_list_cap + 1)
        if work is None:
            data = self._json(self._request("GET", path), "legacy key listing")
        else:
            text, _ = read_answer(self, "GET", path, work=work, limit=None,
                                  what="legacy key listing")
            data = parse_answer(self, text, "legacy key listing")
        keys = sorted({k for k in self._string_list(data.get("keys"), "legacy key listing: 'keys'")
                       if k.startswith(prefix)})
        truncated = len(keys) > self._legacy_list_cap
        return keys[:self._legacy_list_cap], truncated

    def _index_keys(self, prefix: str, work: WorkBudget | None = None) -> list[str]:
        located = self._index_key_for(prefix)
        if not located:
            return []
        service_prefix, index_key = located
        try:
            if work is None:
                text = self.get(index_key).value or ""
            else:  # the index's bytes are read for this request too: charged
                self._detected()
                answer, _ = read_answer(self, "GET", self._key_path(index_key), work=work,
                                        limit=None, what="GET key")
                text = self._entry(parse_answer(self, answer, "GET key"), index_key,
                                   what="GET key").value or ""
        except errors.NotFound:
            return []  # no index yet: nothing to list, not an error
        try:
            names = json.loads(text)
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
        preview_bytes: int | None = None, work: WorkBudget | None = None,
    ) -> EntryPage:
        """One page of entries: one range request (current), else a key page + one mget.

        ToskaStore has no partial reads: values come whole (``preview_bytes`` is ignored).
        With ``work`` the values are read through its byte budget (``budgeted_items``):
        a ``BudgetedPage`` whose ``unread`` keys follow the entries read.
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        if work is not None:
            items, following, truncated, source = self.budgeted_items(
                prefix, cursor=cursor, limit=limit, work=work)
            return BudgetedPage(
                [i for i in items if isinstance(i, Entry)], following, truncated, source,
                unread=[i for i in items if isinstance(i, Unread)],
                bytes_read=work.bytes_read, byte_budget=work.bytes)
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

    # -- reading through a byte budget (``budget.py``) ----------------------------------

    def budgeted_items(
        self, prefix: str, *, cursor: str | None, limit: int, work: WorkBudget,
    ) -> tuple[list[Entry | Unread], str | None, bool, ListingSource]:
        """One page as (entries read, then ``Unread`` keys; next cursor, truncated, source).

        The keys come first, with their metadata where the server lists it (range: no
        values travel), then the values through ``read_values``: a page of 30 values of
        8 MB reads the budget's worth of them, not 240 MB.
        """
        keys, meta, following, truncated, listing = self.budgeted_keys(
            prefix, cursor=cursor, limit=limit, work=work, metadata=True)
        return self.read_values(keys, work, meta), following, truncated, listing

    def budgeted_keys(
        self, prefix: str, *, cursor: str | None, limit: int, work: WorkBudget,
        metadata: bool = False,
    ) -> tuple[list[str], dict[str, Any], str | None, bool, ListingSource]:
        """One page of keys as ``list_keys`` lists it, its answer charged to ``work``:
        (keys, their listed metadata where asked and the server lists it, next cursor,
        truncated, source). A whole listing (legacy, index) is read once per call."""
        limit = max(1, min(int(limit), MAX_PAGE))
        listing = self._ensure_detected()
        meta: dict[str, Any] = {}
        truncated = False
        following: str | None
        if listing == "range":
            text, _ = read_answer(self, "GET", "/kv?" + query(
                prefix=prefix, limit=limit, cursor=cursor or None,
                include_metadata=True if metadata else None,
            ), work=work, limit=None, what="range listing")
            data = parse_answer(self, text, "range listing")
            items = data.get("items")
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
            ):
                raise self._bad("range listing: 'items' is not a list of {key}")
            keys = [i["key"] for i in items]
            if metadata:
                meta = {i["key"]: i.get("metadata") for i in items}
            following = self._next_cursor(data)
        elif listing == "cursor":
            text, _ = read_answer(self, "GET", "/kv/keys?" + query(
                prefix=prefix, limit=limit, cursor=cursor or None,
            ), work=work, limit=None, what="key listing")
            data = parse_answer(self, text, "key listing")
            keys = self._string_list(data.get("keys"), "key listing: 'keys'")
            following = self._next_cursor(data)
        else:
            if listing == "legacy":
                whole, truncated = self._legacy_keys(prefix, work)
            else:
                whole = self._index_keys(prefix, work)
            page = self._local_page(whole, cursor, limit, truncated=truncated, source=listing)
            keys, following = page.keys, page.next_cursor
        return keys, meta, following, truncated, listing

    def read_values(
        self, keys: Sequence[str], work: WorkBudget, meta: dict[str, Any] | None = None,
    ) -> list[Entry | Unread]:
        """The values of ``keys`` (in their order) through ``work``'s byte budget.

        ``POST /kv/mget`` answers are read as they arrive and no further than the bytes
        left (at least the start of a first value): the keys whose values did not arrive
        whole are ``Unread``, every one after the first of them too, so what was read is
        a run of keys in order. Keys that no longer exist, and those up to ``work.after``
        (examined by an earlier step), drop out. ``meta`` maps keys to
        the metadata their listing gave (TTL, version), for display: a write reads again.
        Without ``meta`` (a key search's hits), a server that lists metadata (main) is asked
        for that of the values read, through ``work`` too (``metadata.listed_metadata``).
        """
        fill = meta is None and lists_metadata(self)
        meta = meta or {}
        keys = [key for key in keys if work.wanted(key)]
        result: list[Entry | Unread] = []
        unread = False
        now = now_ms()
        for start in range(0, len(keys), self._mget_batch):
            batch = list(keys[start:start + self._mget_batch])
            limit = work.read_limit(first=not result)
            if unread or (limit is not None and limit <= 0):
                result.extend(Unread(key) for key in batch)
                unread = True
                continue
            text, complete = read_answer(self, "POST", "/kv/mget", json_body={"keys": batch},
                                         work=work, limit=limit, what="mget")
            cut: tuple[str, str] | None = None
            if complete:
                values = values_of(self, parse_answer(self, text, "mget"))
            else:
                values, cut = salvage_values(text)
            for key in batch:
                if not unread and key in values:
                    value = values[key]
                    if value is None:
                        continue  # gone since it was listed
                    if not isinstance(value, str):
                        raise self._bad(f"mget: value of {key!r} is not a string or null", key)
                    result.append(self._entry({"value": value, "metadata": meta.get(key)},
                                              key, what="mget", now=now))
                    continue
                unread = True
                if cut is not None and cut[0] == key:
                    start_text = cut[1]
                    result.append(Unread(key, start_text,
                                         len(start_text.encode("utf-8", "surrogatepass"))))
                else:
                    result.append(Unread(key))
        if fill:
            listed = listed_metadata(self, [i.key for i in result if isinstance(i, Entry)], work)
            result = [self._entry({"value": i.value, "metadata": listed[i.key]}, i.key,
                                  what="mget", now=now)
                      if isinstance(i, Entry) and i.key in listed else i for i in result]
        return result
