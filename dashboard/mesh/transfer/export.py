"""Exporting a prefix: its keys, page by page, as JSON Lines (``jsonl``).

The walk is ``provider.dump`` pages (whole, exact values), consumed as they arrive: an
export of any size holds one page in memory (plus, on Redis, the keys already written,
because SCAN may return a key twice). The web streams the lines as they are read (the
download's growth is its progress); the CLI reports progress on stderr.

An export that could not read the whole prefix says so in the file: its last line is the
end marker (``jsonl.marker_line``) when a legacy server listed only its first
``Dashboard__LegacyListCap`` keys, or when the store failed after some keys were written
(before any, the error is raised: nothing was written, the caller reports it).

A prefix with no keys is refused (``NothingToExport``, raised before any line): a mistyped
prefix must not "succeed" with an empty file. The error names the prefix and the closest
known service prefixes (``did you mean 'profiles:'?``). An empty export is only written when
the caller says so (``allow_empty``: ``toska-kv export --allow-empty``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dashboard.mesh.services import SEPARATOR, known_services
from dashboard.mesh.transfer.jsonl import encode_line, marker_line
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.errors import ProviderError

if TYPE_CHECKING:
    from dashboard.settings.model import Settings

#: keys read per store call
PAGE_SIZE = 500
#: at most this many close prefixes are suggested
SUGGESTIONS = 3


class NothingToExport(Exception):
    """No key under the prefix: most likely a typo. ``str()`` is the one line to show:
    ``no keys under 'profile:' (did you mean 'profiles:'?)``."""

    def __init__(self, prefix: str, suggestions: list[str] | None = None) -> None:
        self.prefix = prefix
        #: the closest known service prefixes, best first (none when nothing is close)
        self.suggestions = list(suggestions or [])
        hint = ""
        if self.suggestions:
            hint = f" (did you mean {' or '.join(repr(s) for s in self.suggestions)}?)"
        super().__init__(f"no keys under {prefix!r}{hint}")


def close_prefixes(provider: KeyValueProvider, prefix: str,
                   settings: Settings | None = None) -> list[str]:
    """The known service prefixes closest to ``prefix`` (configured ones, when ``settings``
    are given, and discovered ones), best first; none when the store cannot list them."""
    try:
        if settings is not None:
            known = [service.prefix for service in known_services(provider, settings)[0]]
        else:
            known = sorted(provider.list_segments("", sep=SEPARATOR, limit=1000).folders)
    except ProviderError:
        return []
    candidates = [p for p in dict.fromkeys(known) if p != prefix and provider.reads_under(p)]
    return difflib.get_close_matches(prefix, candidates, n=SUGGESTIONS, cutoff=0.6)


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
    settings: Settings | None = None, allow_empty: bool = False,
) -> Iterator[bytes]:
    """Every key under ``prefix`` as one JSON line each, read page by page, then the end
    marker if the export is incomplete (see the module docstring).

    No key under ``prefix``: ``NothingToExport`` (raised before any line, so a caller that
    reads the first line before writing anything writes nothing), unless ``allow_empty``.
    ``settings`` add the configured services to the suggestions."""
    stats = stats if stats is not None else ExportStats()
    if not provider.reads_under(prefix):
        provider.check_read(prefix)  # refused, saying why: nothing there may be exported
    yield from _key_lines(provider, prefix, page_size, stats, on_page)
    if not stats.keys and not allow_empty:
        raise NothingToExport(prefix, close_prefixes(provider, prefix, settings))
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
