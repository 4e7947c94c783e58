"""Key and value search on ToskaStore: the dashboard filters the server's listing.

Range (main) and cursor (v0.9.1) servers are walked with their keys-only listing, page
by page (the contract's default). A legacy (0.8) server's unpaged listing and a
service's ``__keys`` index (servers without key listing) arrive whole: they are read
once per request and searched in memory, with an exact total; values are read with
``mget`` only for the keys of the step.
"""

from __future__ import annotations

from typing import Any

from . import search
from .base import Entry, KeyValueProvider

#: values read per mget while searching values of a listing that arrived whole
VALUE_BATCH = 250


def _whole_listing(provider: Any, prefix: str) -> tuple[list[str], bool] | None:
    """(sorted keys, truncated) where the listing arrives whole, else None."""
    listing = provider._ensure_detected()
    if listing == "legacy":
        return provider._legacy_keys(prefix)
    if listing == "index":
        return provider._index_keys(prefix), False
    return None


def scan_matching(
    provider: Any, prefix: str, pattern: str, *, cursor: str | None, limit: int, budget: int,
    preview_bytes: int | None,
) -> search.SearchPage:
    whole = _whole_listing(provider, prefix)
    if whole is None:
        return KeyValueProvider.scan_matching(provider, prefix, pattern, cursor=cursor,
                                              limit=limit, budget=budget,
                                              preview_bytes=preview_bytes)
    keys, truncated = whole
    return search.match_keys(
        provider, prefix, pattern, lambda inner: (keys, None), cursor=cursor, limit=limit,
        budget=budget, preview_bytes=preview_bytes, total=len(keys),
        source=provider._ensure_detected(), truncated=truncated)


def search_values(
    provider: Any, prefix: str, query: str, *, regex: bool = False, icase: bool = False,
    cursor: str | None = None, limit: int = 50, budget: int = search.VALUE_KEY_BUDGET,
    byte_budget: int = search.VALUE_BYTE_BUDGET,
) -> search.SearchPage:
    options: dict[str, Any] = {"regex": regex, "icase": icase, "cursor": cursor,
                               "limit": limit, "budget": budget, "byte_budget": byte_budget}
    whole = _whole_listing(provider, prefix)
    if whole is None:
        return KeyValueProvider.search_values(provider, prefix, query, **options)
    keys, _ = whole

    def fetch(inner: str | None) -> tuple[list[Entry], str | None]:
        # the inner cursor is the position in the listing read once above
        start = int(inner) if inner and inner.isdigit() else 0
        batch = keys[start:start + VALUE_BATCH]
        values = provider.mget(batch) if batch else {}
        following = start + VALUE_BATCH
        return ([e for k in batch if (e := values.get(k)) is not None],
                str(following) if following < len(keys) else None)

    return search.search_values(provider, prefix, query, fetch, total=len(keys),
                                source=provider._ensure_detected(), **options)
