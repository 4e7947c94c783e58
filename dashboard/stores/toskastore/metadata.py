"""TTLs and versions for bulk reads on a range server (main), whose ``POST /kv/mget``
answers values only.

``POST /kv/mget`` answers ``{values: {key: value | null}}`` on every release: a bulk read
alone cannot say a key's TTL. Main's range listing can, with ``include_metadata=true``
and no values: ``listed_metadata`` lists from each wanted key on (``start``), under the
common prefix of the keys still wanted, and sizes each request by how dense the wanted
keys turned out to be (the hits of the request before, doubled): adjacent keys (a
service's page) come up to ``MAX_PAGE`` a request, scattered keys one small request each
(about a hundred bytes a key, never a value). A big lookup runs a few walks side by side
(``WORKERS``); a read through a ``WorkBudget`` walks once, each answer charged to it.

0.8 and v0.9.1 cannot report TTLs at all: nothing is asked of them (``lists_metadata``).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dashboard.stores.budget import WorkBudget
from dashboard.stores.toskastore.stream import parse_answer, read_answer
from dashboard.stores.toskastore.wire import query

#: the server refuses pages over this size (as ``listing.MAX_PAGE``)
MAX_PAGE = 1000
#: walks run side by side for one lookup (each on the provider's pooled client)
WORKERS = 4
#: fewest wanted keys one of those walks takes
MIN_CHUNK = 16


def lists_metadata(provider: Any) -> bool:
    """Whether the server lists metadata in its range listing (main), so bulk reads can
    report TTLs; False on 0.8 and v0.9.1 (no range listing, no metadata)."""
    server = provider._detected()
    return server.listing == "range" and server.metadata is not False


def _sendable(key: Any) -> bool:
    if not isinstance(key, str) or not key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False  # the read itself refuses it, with its own error
    return True


def _walk(provider: Any, keys: list[str], fetch: Callable[[str], dict]) -> dict[str, Any]:
    """The listed metadata of those of the sorted ``keys`` that exist."""
    wanted = set(keys)
    found: dict[str, Any] = {}
    i = 0
    limit = min(len(keys), MAX_PAGE)
    while i < len(keys):
        start = keys[i]
        data = fetch("/kv?" + query(prefix=os.path.commonprefix([start, keys[-1]]),
                                    start=start, limit=limit, include_metadata=True))
        items = data.get("items")
        if not isinstance(items, list):
            raise provider._bad("range listing: 'items' is not a list")
        hits = 0
        last: str | None = None
        for item in items:
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str) or key < start:
                raise provider._bad("range listing: an item has no string 'key' at or after "
                                    "the start")
            last = key
            if key in wanted:
                hits += 1
                found[key] = item.get("metadata")
        if last is None or provider._next_cursor(data) is None:
            break  # nothing more under the prefix: the keys not listed do not exist
        i = bisect.bisect_right(keys, last, i)
        limit = max(2, min(2 * hits, len(keys) - i, MAX_PAGE))
    return found


def listed_metadata(provider: Any, keys: Sequence[str],
                    work: WorkBudget | None = None) -> dict[str, Any]:
    """``{key: metadata}`` from the range listing for those of ``keys`` that exist.

    With ``work`` every answer is charged to it (one walk); without, a lookup of many keys
    is split into up to ``WORKERS`` walks that run side by side.
    """
    wanted = sorted({key for key in keys if _sendable(key)})
    if not wanted:
        return {}
    if work is not None:
        def charged(path: str) -> dict:
            text, _ = read_answer(provider, "GET", path, work=work, limit=None,
                                  what="range listing")
            return parse_answer(provider, text, "range listing")

        found = _walk(provider, wanted, charged)
    else:
        def plain(path: str) -> dict:
            return provider._json(provider._request("GET", path), "range listing")

        size = min(MAX_PAGE, max(MIN_CHUNK, -(-len(wanted) // WORKERS)))
        chunks = [wanted[at:at + size] for at in range(0, len(wanted), size)]
        if len(chunks) == 1:
            found = _walk(provider, wanted, plain)
        else:
            found = {}
            with ThreadPoolExecutor(max_workers=min(WORKERS, len(chunks))) as pool:
                for part in pool.map(lambda chunk: _walk(provider, chunk, plain), chunks):
                    found.update(part)
    if any(isinstance(meta, dict) for meta in found.values()):
        provider._note_metadata(True)
    return found
