"""Exporting a prefix: its keys, page by page, as JSON Lines (``jsonl``).

The walk is ``provider.dump`` pages (whole, exact values), consumed as they arrive: an
export of any size holds one page in memory (plus, on Redis, the keys already written,
because SCAN may return a key twice). The web streams the lines as they are read (the
download's growth is its progress); the CLI reports progress on stderr.

An export that could not read the whole prefix says so in the file: its last line is the
end marker (``jsonl.marker_line``) when a legacy server listed only its first
``Dashboard__LegacyListCap`` keys, or when the store failed after some keys were written
(before any, the error is raised: nothing was written, the caller reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dashboard.mesh.transfer.jsonl import encode_line, marker_line
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.errors import ProviderError

#: keys read per store call
PAGE_SIZE = 500


@dataclass
class ExportStats:
    """How far an export got: keys written, and whether the store stopped listing early."""

    keys: int = 0
    pages: int = 0
    #: a legacy server listed only its first ``Dashboard__LegacyListCap`` keys
    truncated: bool = False
    #: the store error that stopped the export after some keys ("" when none)
    error: str = ""

    @property
    def complete(self) -> bool:
        return not self.truncated and not self.error

    def reason(self) -> str:
        """Why the export is incomplete, for the end marker and the operator."""
        if self.error:
            return f"the store failed after {self.keys} key(s): {self.error}"
        return ("the store listed only part of the prefix (a legacy server's listing cap, "
                "Dashboard__LegacyListCap)")


def export_lines(
    provider: KeyValueProvider, prefix: str, *, page_size: int = PAGE_SIZE,
    stats: ExportStats | None = None,
    on_page: Callable[[ExportStats], None] | None = None,
) -> Iterator[bytes]:
    """Every key under ``prefix`` as one JSON line each, read page by page, then the end
    marker if the export is incomplete (see the module docstring)."""
    stats = stats if stats is not None else ExportStats()
    yield from _key_lines(provider, prefix, page_size, stats, on_page)
    if not stats.complete:
        yield marker_line(prefix, stats.keys, stats.reason())


def _key_lines(
    provider: KeyValueProvider, prefix: str, page_size: int, stats: ExportStats,
    on_page: Callable[[ExportStats], None] | None,
) -> Iterator[bytes]:
    seen: set[str] | None = None if provider.capabilities().ordered else set()
    cursor: str | None = None
    while True:
        try:
            page = provider.dump(prefix, cursor=cursor, limit=page_size)
        except ProviderError as error:
            if not stats.keys:
                raise  # nothing written yet: the caller says the export failed
            stats.error = str(error)
            return
        stats.pages += 1
        stats.truncated = stats.truncated or page.truncated
        for item in page.items:
            if seen is not None:
                if item.key in seen:
                    continue
                seen.add(item.key)
            stats.keys += 1
            yield encode_line(item)
        if on_page is not None:
            on_page(stats)
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def file_name(prefix: str) -> str:
    """A safe download name for the export of ``prefix``."""
    import re

    stem = re.sub(r"[^\w.-]+", "_", prefix.rstrip(":")).strip("_") or "all"
    return f"{stem}.jsonl"
