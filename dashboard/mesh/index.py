"""The ``__keys`` index itself: parse, serialise, read and update it (compare-and-swap)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from dashboard.mesh import meshjson
from dashboard.mesh.services import Service
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry
from dashboard.stores.errors import Conflict, NotFound, ProviderError, WriteUnknown
from dashboard.stores.mutations import NO_TTL


class MalformedIndex(ProviderError):
    """The ``__keys`` index exists but is not a JSON array of strings."""

    kind = "malformed-index"
    http_status = 409



def parse_index(entry: Entry) -> list[str]:
    """The index's entries in stored order (duplicates kept); raises ``MalformedIndex`` if malformed."""
    if entry.type != "string" or entry.value is None:
        raise MalformedIndex(
            f"index {entry.key!r} is a Redis {entry.type}, not a JSON array stored as a string",
            key=entry.key,
        )
    try:
        data = json.loads(entry.value or "")
    except json.JSONDecodeError as error:
        raise MalformedIndex(
            f"index {entry.key!r} is not valid JSON ({error.msg} at position {error.pos}); "
            f"it starts with {(entry.value or '')[:200]!r}", key=entry.key,
        ) from None
    except (ValueError, RecursionError):
        # nested too deep, or a number over Python's digit limit: no array of strings
        raise MalformedIndex(
            f"index {entry.key!r} is not a JSON array of strings (nested too deep or an "
            f"oversized number); it starts with {(entry.value or '')[:200]!r}", key=entry.key,
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise MalformedIndex(
            f"index {entry.key!r} is not a JSON array of strings; it starts with "
            f"{(entry.value or '')[:200]!r}", key=entry.key,
        )
    return data


def serialise_index(keys: Iterable[str]) -> str:
    """The runtime's bytes: System.Text.Json's compact array, non-ASCII escaped."""
    return meshjson.dumps(list(keys))


def read_index_entry(provider: KeyValueProvider, service: Service) -> Entry | None:
    """The stored index entry, unparsed, or None when the service has none."""
    try:
        return provider.get(service.index_full_key)
    except NotFound:
        return None


def read_index(provider: KeyValueProvider, service: Service) -> tuple[list[str], Entry] | None:
    """The parsed index and the entry it came from, or None when the service has none."""
    entry = read_index_entry(provider, service)
    return None if entry is None else (parse_index(entry), entry)


def has_index(provider: KeyValueProvider, service: Service) -> bool:
    """Whether the service's index exists, without reading it (it may be huge)."""
    return provider.exists_many([service.index_full_key])[service.index_full_key]


def swap_index(
    provider: KeyValueProvider, service: Service, entry: Entry | None, value: str,
) -> Entry | None:
    """Write ``value`` as the service's index if it is still ``entry`` (absent when None).

    The one compare-and-swap of an index, used by every entry point (edit, create, delete,
    import, repair). What it answers is what the store holds: the entry as written (None
    when the store did not say); ``Conflict`` when the index is not as read (nothing was
    written, or a write whose answer was lost was overtaken: read again and retry); and
    when the store's answer was lost (a timeout, a 5xx), it reads the index back: the new
    value there is "written", anything else ``WriteUnknown`` (the store may still apply it;
    never "not written").
    """
    key = service.index_full_key
    try:
        if entry is None:
            return provider.put(key, value, ttl=NO_TTL, create_only=True)
        return provider.put(entry.key, value, ttl=NO_TTL, expected=entry.token)
    except Conflict:
        raise
    except ProviderError as error:
        if not error.maybe_written:
            raise
        return _read_back(provider, service, entry, value, error)


def _read_back(provider: KeyValueProvider, service: Service, entry: Entry | None, value: str,
               error: ProviderError) -> Entry:
    """The index after a write whose answer was lost: written, or unknown (see ``swap_index``)."""
    key = service.index_full_key
    try:
        now = read_index_entry(provider, service)
    except ProviderError as again:
        raise WriteUnknown(
            f"The store did not confirm the update of the index {key!r} ({error.message}), and "
            f"reading it back failed too ({again.message}): the store may still apply it, or "
            "may not. Check the index in a moment.", store=provider.name, key=key) from error
    if now is not None and now.value == value:
        return now
    as_read = (now is None and entry is None) or (
        now is not None and entry is not None and now.matches(entry.token))
    if as_read:
        raise WriteUnknown(
            f"The store did not confirm the update of the index {key!r} ({error.message}), and "
            "reading it back shows it as it was: the store may still apply it (a busy server "
            "applies queued writes later), or may not. Check the index in a moment.",
            store=provider.name, key=key) from error
    raise Conflict(f"the index {key!r} changed while its update went unanswered",
                   store=provider.name, key=key, current=now)


def update_index(
    provider: KeyValueProvider, service: Service, *, add: Iterable[str] = (),
    remove: Iterable[str] = (), attempts: int = 8, create_missing: bool = False,
) -> str:
    """Add/remove keys (without the prefix) in the service's index, compare-and-swap.

    Unlike the runtime's blind read-modify-write, a concurrent change makes us re-read and
    re-apply, so nothing another writer added is lost. A missing index is created (with
    just the added keys, as the runtime's first write does) only with ``create_missing``.
    Returns "missing", "unchanged", "updated" or "created", each read back from the store
    when its answer was lost; raises ``WriteUnknown`` when that cannot tell (``swap_index``).
    """
    add = [k for k in add if k != service.index_key]
    remove = set(remove)
    for _ in range(attempts):
        current = read_index(provider, service)
        if current is None:
            if not create_missing:
                return "missing"
            try:
                swap_index(provider, service, None, serialise_index(dict.fromkeys(add)))
                return "created"
            except Conflict:
                continue
        keys, entry = current
        updated = [k for k in keys if k not in remove]
        present = set(updated)
        updated.extend(k for k in dict.fromkeys(add) if k not in present)
        if updated == keys:
            return "unchanged"
        try:
            swap_index(provider, service, entry, serialise_index(updated))
            return "updated"
        except Conflict:
            continue
    raise Conflict(
        f"the index {service.index_full_key!r} kept changing; gave up after {attempts} attempts",
        store=provider.name, key=service.index_full_key,
    )
