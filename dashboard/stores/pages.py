"""What a listing returns: pages of keys, entries or dumped keys, and ``:`` segments.

Each page carries an opaque ``next_cursor`` (None on the last page) and says where it came
from (``ListingSource``) and whether the store stopped at a cap (``truncated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dashboard.stores.entries import Dumped, Entry

#: how the store lists keys: an ordered range API, cursor pages, one legacy unpaged
#: request, a service's ``__keys`` index (no listing on the server), or Redis SCAN
ListingSource = Literal["range", "cursor", "legacy", "index", "scan"]


@dataclass(frozen=True)
class KeyPage:
    """One page of key names; ``next_cursor`` is opaque and None on the last page."""

    keys: list[str]
    next_cursor: str | None
    #: the store stopped listing at a cap (legacy servers): there are more keys than shown
    truncated: bool = False
    source: ListingSource = "range"


@dataclass(frozen=True)
class EntryPage:
    """One page of entries with values and TTL/metadata."""

    entries: list[Entry]
    next_cursor: str | None
    truncated: bool = False
    source: ListingSource = "range"


@dataclass(frozen=True)
class SegmentListing:
    """The next ``:`` level under a prefix: sub-prefixes ("folders") and keys directly there."""

    folders: list[str]
    leaves: list[str]
    #: False when the walk stopped at a cap: there may be more folders or keys
    complete: bool = True


@dataclass(frozen=True)
class DumpPage:
    """One page of ``Dumped`` entries; ``next_cursor`` None on the last page."""

    items: list[Dumped]
    next_cursor: str | None
    truncated: bool = False
