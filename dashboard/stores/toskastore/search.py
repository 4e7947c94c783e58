"""Key and value search on ToskaStore: the dashboard filters the server's listing.

Range (main) and cursor (v0.9.1) servers are walked with their keys-only listing, page
by page. A legacy (0.8) server's unpaged listing and a service's ``__keys`` index
(servers without key listing) arrive whole: they are read once per request and searched
in memory, with an exact total. Values are read with ``mget`` only for the keys of the
step (a key search: its hits), through the request's ``WorkBudget``, which the listings
are charged to as well: an answer is read no further than the bytes left
(``toskastore_stream``).
"""

from __future__ import annotations

from typing import Any

from dashboard.stores import search
from dashboard.stores.budget import Unread, WorkBudget, browse_budget
from dashboard.stores.entries import Entry

#: values read per mget while searching values of a listing that arrived whole
VALUE_BATCH = 250
#: keys per listing page a key search walks (range and cursor servers)
KEY_PAGE = 1000


def _whole_listing(provider: Any, prefix: str, work: WorkBudget | None = None
                   ) -> tuple[list[str], bool] | None:
    """(sorted keys, truncated) where the listing arrives whole, else None."""
    listing = provider._ensure_detected()
    if listing == "legacy":
        return provider._legacy_keys(prefix, work)
    if listing == "index":
        return provider._index_keys(prefix, work), False
    return None


def scan_matching(
    provider: Any, prefix: str, pattern: str, *, cursor: str | None, limit: int, budget: int,
    preview_bytes: int | None, work: WorkBudget | None = None,
) -> search.SearchPage:
    """A key search whose hits' values are read through ``work`` (a browse page's budget
    unless given): ToskaStore reads values whole, so the hits past the byte budget are
    ``unread``, and the listings walked are charged to ``work`` too (what the page says
    it read is what arrived)."""
    if work is None:
        work = browse_budget()
    listing = provider._ensure_detected()
    whole = _whole_listing(provider, prefix, work)
    if whole is None:
        def paged(inner: str | None) -> tuple[list[str], str | None]:
            keys, _, following, _, _ = provider.budgeted_keys(
                prefix, cursor=inner, limit=KEY_PAGE, work=work)
            return keys, following

        return search.match_keys(
            provider, prefix, pattern, paged, cursor=cursor, limit=limit, budget=budget,
            preview_bytes=preview_bytes, source=listing, work=work,
            read=provider.read_values)
    keys, truncated = whole
    return search.match_keys(
        provider, prefix, pattern, lambda inner: (keys, None), cursor=cursor, limit=limit,
        budget=budget, preview_bytes=preview_bytes, total=len(keys), source=listing,
        truncated=truncated, work=work, read=provider.read_values)


def search_values(
    provider: Any, prefix: str, query: str, *, regex: bool = False, icase: bool = False,
    cursor: str | None = None, limit: int = 50, budget: int = search.VALUE_KEY_BUDGET,
    byte_budget: int = search.VALUE_BYTE_BUDGET, work: WorkBudget | None = None,
) -> search.SearchPage:
    """Values read through ``work`` (ToskaStore reads values whole: the byte budget is
    what stops a page of big values, see ``ListingMixin.read_values``)."""
    work = work or search.value_budget(budget, byte_budget)
    options: dict[str, Any] = {"regex": regex, "icase": icase, "cursor": cursor,
                               "limit": limit, "work": work}
    listing = provider._ensure_detected()
    if listing in ("range", "cursor"):
        def paged(inner: str | None) -> tuple[list[Entry | Unread], str | None]:
            items, following, _, _ = provider.budgeted_items(
                prefix, cursor=inner, limit=VALUE_BATCH, work=work)
            return items, following

        return search.search_values(provider, prefix, query, paged, source=listing,
                                    **options)
    keys, _ = (provider._legacy_keys(prefix, work) if listing == "legacy"
               else (provider._index_keys(prefix, work), False))

    def fetch(inner: str | None) -> tuple[list[Entry | Unread], str | None]:
        # the inner cursor is the position in the listing read once above
        start = int(inner) if inner and inner.isdigit() else 0
        batch = keys[start:start + VALUE_BATCH]
        following = start + VALUE_BATCH
        return (provider.read_values(batch, work),
                str(following) if following < len(keys) else None)

    return search.search_values(provider, prefix, query, fetch, total=len(keys),
                                source=listing, **options)
