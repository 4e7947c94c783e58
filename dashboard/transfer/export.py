"""Exporting a prefix: its keys, page by page, as JSON Lines (``jsonl``).

The walk is ``provider.dump`` pages (whole, exact values), consumed as they arrive: an
export of any size holds one page in memory (plus, on Redis, the keys already written,
because SCAN may return a key twice). The web streams the lines as they are read (the
download's growth is its progress); the CLI reports progress on stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..providers.base import KeyValueProvider
from .jsonl import encode_line

#: keys read per store call
PAGE_SIZE = 500


@dataclass
class ExportStats:
    """How far an export got: keys written, and whether the store stopped listing early."""

    keys: int = 0
    pages: int = 0
    #: a legacy server listed only its first ``Dashboard__LegacyListCap`` keys
    truncated: bool = False


def export_lines(
    provider: KeyValueProvider, prefix: str, *, page_size: int = PAGE_SIZE,
    stats: ExportStats | None = None,
    on_page: Callable[[ExportStats], None] | None = None,
) -> Iterator[bytes]:
    """Every key under ``prefix`` as one JSON line each, read page by page."""
    stats = stats if stats is not None else ExportStats()
    seen: set[str] | None = None if provider.capabilities().ordered else set()
    cursor: str | None = None
    while True:
        page = provider.dump(prefix, cursor=cursor, limit=page_size)
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
