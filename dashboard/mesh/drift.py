"""The drift check: how one service's ``__keys`` index differs from its live keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.mesh.index import MalformedIndex, parse_index, read_index_entry
from dashboard.mesh.services import Service
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import now_ms
from dashboard.stores.errors import ProviderError

#: index entries checked per bulk read when the store cannot list keys
CHECK_BATCH = 1000
#: keys asked for per listing page
CHECK_PAGE = 1000


class NoSuchService(ProviderError):
    """A prefix with no keys and no index: most likely a typo, never "consistent"."""

    kind = "no-such-service"
    http_status = 404


class NoIndex(ProviderError):
    """The service has keys but no index, and nothing says its runtime keeps one."""

    kind = "no-index"
    http_status = 404


@dataclass(frozen=True)
class DriftReport:
    """How one service's ``__keys`` index differs from its live keys, at ``checked_at_ms``.

    Key lists hold FULL keys (prefix included), sorted; ``index_entries`` is the index
    exactly as read (inner keys, stored order, duplicates kept): the base of a repair.
    """

    service: Service
    index_exists: bool
    #: None, or why the index is unusable (parse error and its first 200 characters),
    #: or ``missing: ...`` when the service has keys but no index
    malformed: str | None
    #: entries in the index, duplicates counted
    indexed: int
    #: live keys under the prefix, the index key itself excluded (when the store cannot
    #: list keys: the index entries that exist)
    live: int
    #: distinct index entries that are live
    in_both: int
    #: in the index, not live (expired keys included)
    stale: list[str]
    #: live, not in the index (when ``unindexed_detectable`` is False: empty without a key
    #: listing, only those found by a capped legacy listing)
    unindexed: list[str]
    #: listed more than once in the index, each once
    duplicates: list[str]
    #: False when the store cannot list every key (no key listing, or a legacy listing
    #: cut at its cap): then ``unindexed`` is unknown or incomplete
    unindexed_detectable: bool
    checked_at_ms: int
    seconds: float
    #: ``Entry.token`` of the index as read (None when there is no index)
    index_token: str | None
    index_entries: tuple[str, ...] = ()
    #: why the listing was incomplete, for the operator (None when it was complete)
    listing_note: str | None = None

    @property
    def consistent(self) -> bool:
        """No drift that matters. Duplicates do not count: the runtime de-duplicates the
        index on read and its next write removes them."""
        return not (self.stale or self.unindexed or self.malformed)

    @property
    def strictly_consistent(self) -> bool:
        """Consistent and without duplicate entries either (``check-index --strict``)."""
        return self.consistent and not self.duplicates

    @property
    def checked_at(self) -> datetime:
        return datetime.fromtimestamp(self.checked_at_ms / 1000, tz=UTC)

    def to_json(self) -> dict:
        """The CLI's ``--json`` document for one service (and the web's JSON download)."""
        return {
            "service": self.service.name,
            "prefix": self.service.prefix,
            "index_key": self.service.index_full_key,
            "index_exists": self.index_exists,
            "indexed": self.indexed,
            "live": self.live,
            "in_both": self.in_both,
            "stale": list(self.stale),
            "unindexed": list(self.unindexed),
            "duplicates": list(self.duplicates),
            "malformed": self.malformed,
            "unindexed_detectable": self.unindexed_detectable,
            "listing_note": self.listing_note,
            "consistent": self.consistent,
            "strictly_consistent": self.strictly_consistent,
            "checked_at": self.checked_at.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "seconds": round(self.seconds, 3),
        }


def check_index(
    provider: KeyValueProvider, service: Service, *,
    on_progress: Callable[[int], None] | None = None,
) -> DriftReport:
    """Compare ``service``'s index with its live keys; see ``DriftReport``.

    On a store that lists keys in order, the sorted index and the listing are merged as
    the pages arrive: nothing but the index and the answer is held, whatever the number of
    live keys. Otherwise (SCAN order, a capped legacy listing) the listing is streamed into
    one set of inner keys. A store that cannot list keys only lets us check the index
    entries themselves, with bulk reads.
    """
    started = time.monotonic()
    checked_at = now_ms()
    prefix, own = service.prefix, service.index_key
    entry = read_index_entry(provider, service)
    if entry is None:
        _require_index_or_keys(provider, service)
    malformed: str | None = None
    entries: list[str] = []
    if entry is not None:
        try:
            entries = parse_index(entry)
        except MalformedIndex as error:
            malformed = error.message
    listing = provider.capabilities().listing
    note: str | None = None
    detectable = listing != "index"

    if detectable and provider.capabilities().ordered:
        merged = _merged(provider, service, entries, on_progress)
        if merged is not None:
            stale, unindexed, in_both, live_count = merged
            if entry is None:
                malformed, note = _absent_index(live_count)
            return DriftReport(
                service=service, index_exists=entry is not None, malformed=malformed,
                indexed=len(entries), live=live_count, in_both=in_both, stale=stale,
                unindexed=unindexed, duplicates=_duplicates(prefix, entries),
                unindexed_detectable=True, checked_at_ms=checked_at,
                seconds=time.monotonic() - started,
                index_token=entry.token if entry is not None else None,
                index_entries=tuple(entries), listing_note=note,
            )

    live: set[str] = set()
    if detectable:
        truncated = False
        cursor: str | None = None
        while True:
            page = provider.list_keys(prefix, cursor=cursor, limit=CHECK_PAGE)
            truncated = truncated or page.truncated
            cut = len(prefix)
            live.update(key[cut:] for key in page.keys if key.startswith(prefix))
            if on_progress is not None:
                on_progress(len(live))
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        live.discard(own)
        if truncated:
            # keys past the server's cap are unknown: confirm index entries by bulk reads
            # so stale stays exact; the unindexed keys found are only a part
            detectable = False
            note = (f"the store listed only part of the keys under {prefix!r} (legacy "
                    "listing cap): stale entries are exact, unindexed keys may be missing")
            unseen = [e for e in dict.fromkeys(entries) if e not in live and e != own]
            live.update(_existing(provider, prefix, unseen, on_progress, len(live)))
    else:
        note = "the store cannot list keys: only the index entries were checked"
        candidates = [e for e in dict.fromkeys(entries) if e != own]
        live.update(_existing(provider, prefix, candidates, on_progress, 0))

    listed = set(entries)
    if entry is None:
        malformed, absent_note = _absent_index(len(live))
        note = absent_note or note  # a capped listing's note stays
    return DriftReport(
        service=service,
        index_exists=entry is not None,
        malformed=malformed,
        indexed=len(entries),
        live=len(live),
        in_both=len(listed & live),
        stale=sorted(prefix + e for e in listed - live),
        # without a listing, live keys are index entries: none can be unindexed
        unindexed=sorted(prefix + k for k in live - listed),
        duplicates=_duplicates(prefix, entries),
        unindexed_detectable=detectable,
        checked_at_ms=checked_at,
        seconds=time.monotonic() - started,
        index_token=entry.token if entry is not None else None,
        index_entries=tuple(entries),
        listing_note=note,
    )


def _absent_index(live_count: int) -> tuple[str | None, str | None]:
    """(malformed, note) for a missing index, which only a runtime that keeps one misses
    (see ``_require_index_or_keys``)."""
    if live_count:
        return (f"missing: the service has {live_count} keys but no index, and its runtime "
                "keeps one (EnableKeyIndex)"), None
    return None, "no keys and no index yet: the runtime creates the index with the first key"


def _duplicates(prefix: str, entries: list[str]) -> list[str]:
    """Full keys listed more than once, each once, sorted (adjacent after a sort: no dict)."""
    ordered = sorted(entries)
    repeated = [b for a, b in zip(ordered, ordered[1:], strict=False) if a == b]
    return [prefix + k for i, k in enumerate(repeated) if i == 0 or repeated[i - 1] != k]


def _merged(
    provider: KeyValueProvider, service: Service, entries: list[str],
    on_progress: Callable[[int], None] | None,
) -> tuple[list[str], list[str], int, int] | None:
    """(stale, unindexed, in both, live count) by merging the sorted index with the listing.

    None when the listing is capped or not strictly in order after all: the caller then
    compares sets instead.
    """
    prefix, own, cut = service.prefix, service.index_key, len(service.prefix)
    ordered = sorted(entries)
    unique = [k for i, k in enumerate(ordered) if i == 0 or ordered[i - 1] != k]
    del ordered
    stale: list[str] = []
    unindexed: list[str] = []
    at = in_both = live = 0
    previous: str | None = None
    cursor: str | None = None
    while True:
        page = provider.list_keys(prefix, cursor=cursor, limit=CHECK_PAGE)
        if page.truncated:
            return None
        for key in page.keys:
            if not key.startswith(prefix):
                continue
            inner = key[cut:]
            if previous is not None and inner <= previous:
                return None
            previous = inner
            if inner == own:
                continue
            live += 1
            while at < len(unique) and unique[at] < inner:
                stale.append(prefix + unique[at])
                at += 1
            if at < len(unique) and unique[at] == inner:
                in_both += 1
                at += 1
            else:
                unindexed.append(prefix + inner)
        if on_progress is not None:
            on_progress(live)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    stale.extend(prefix + k for k in unique[at:])
    return stale, unindexed, in_both, live


def _require_index_or_keys(provider: KeyValueProvider, service: Service) -> None:
    """Refuse to report a service without an index as consistent, unless its runtime keeps one.

    A prefix with no keys at all is most likely a typo (``NoSuchService``); one with keys
    but no index, where nothing says the runtime keeps one, has nothing to check
    (``NoIndex``): a "missing index" alarm there would be false.
    """
    if service.keeps_index:
        return
    has_keys = provider.capabilities().key_listing and bool(
        provider.list_keys(service.prefix, limit=1).keys)
    if not has_keys:
        raise NoSuchService(
            f"no such service: nothing is stored under {service.prefix!r} and it has no index "
            f"{service.index_full_key!r}; check the prefix (it must match the keys exactly)",
            store=provider.name, key=service.index_full_key)
    why = ("the Redis runtime keeps no index" if service.keeps_index is False else
           "no setting says its runtime keeps one (Mesh:KeyValue:ToskaStore:EnableKeyIndex for "
           "the mesh's own service, or Dashboard:Services:N:EnableKeyIndex)")
    raise NoIndex(f"{service.prefix!r} has keys but no index {service.index_full_key!r}, and {why}: "
                  "there is nothing to check", store=provider.name, key=service.index_full_key)


def _existing(
    provider: KeyValueProvider, prefix: str, inner: Sequence[str],
    on_progress: Callable[[int], None] | None, done: int,
) -> Iterable[str]:
    """The inner keys of ``inner`` that exist, by bulk reads of ``CHECK_BATCH`` keys."""
    for start in range(0, len(inner), CHECK_BATCH):
        batch = inner[start:start + CHECK_BATCH]
        found = provider.mget([prefix + k for k in batch])
        yield from (k for k in batch if found.get(prefix + k) is not None)
        if on_progress is not None:
            on_progress(done + start + len(batch))
