"""ToskaMesh semantics above the providers: service prefixes and the ``__keys`` index.

Both stores share these rules (mesh-kv.md): a service is a key prefix ending in ``:``;
an indexed service keeps a JSON array of its keys, without the prefix, at
``<prefix><KeyIndexKey>``, which never lists itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from .providers.base import NO_TTL, Entry, KeyValueProvider
from .providers.errors import Conflict, NotFound, ProviderError

SEPARATOR = ":"
DEFAULT_INDEX_KEY = "__keys"


def normalise_prefix(prefix: str) -> str:
    """The runtime appends ``:`` unless the prefix already ends with one."""
    return prefix if prefix.endswith(SEPARATOR) else prefix + SEPARATOR


@dataclass(frozen=True)
class Service:
    """One service's slice of the store."""

    name: str
    prefix: str
    #: the index key *inside* the prefix (``__keys``); the full key is ``index_full_key``
    index_key: str = DEFAULT_INDEX_KEY
    #: listed in Dashboard:Services (else discovered from the keys)
    configured: bool = False

    @property
    def index_full_key(self) -> str:
        return self.prefix + self.index_key


class MalformedIndex(ProviderError):
    """The ``__keys`` index exists but is not a JSON array of strings."""

    kind = "malformed-index"
    http_status = 409


def configured_services(settings) -> list[Service]:
    default_index = settings.toskastore.key_index_key or DEFAULT_INDEX_KEY
    return [
        Service(s.name, normalise_prefix(s.key_prefix), s.key_index_key or default_index, True)
        for s in settings.dashboard.services
    ]


def service_for_key(settings, key: str) -> Service | None:
    """The service a full key belongs to: the longest configured prefix, else its first segment."""
    matches = [s for s in configured_services(settings) if key.startswith(s.prefix)]
    if matches:
        return max(matches, key=lambda s: len(s.prefix))
    head, sep, _ = key.partition(SEPARATOR)
    if not sep:
        return None
    default_index = settings.toskastore.key_index_key or DEFAULT_INDEX_KEY
    return Service(head, head + SEPARATOR, default_index)


def parse_index(entry: Entry) -> list[str]:
    """The index's entries in stored order (duplicates kept); raises ``MalformedIndex`` if malformed."""
    try:
        data = json.loads(entry.value or "")
    except json.JSONDecodeError as error:
        raise MalformedIndex(
            f"index {entry.key!r} is not valid JSON ({error.msg} at position {error.pos}); "
            f"it starts with {(entry.value or '')[:200]!r}", key=entry.key,
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise MalformedIndex(
            f"index {entry.key!r} is not a JSON array of strings; it starts with "
            f"{(entry.value or '')[:200]!r}", key=entry.key,
        )
    return data


def serialise_index(keys: Iterable[str]) -> str:
    """The runtime's format: a compact JSON array of strings."""
    return json.dumps(list(keys), ensure_ascii=False, separators=(",", ":"))


def read_index(provider: KeyValueProvider, service: Service) -> tuple[list[str], Entry] | None:
    """The parsed index and the entry it came from, or None when the service has none."""
    try:
        entry = provider.get(service.index_full_key)
    except NotFound:
        return None
    return parse_index(entry), entry


def has_index(provider: KeyValueProvider, service: Service) -> bool:
    try:
        provider.get(service.index_full_key)
    except NotFound:
        return False
    return True


def update_index(
    provider: KeyValueProvider, service: Service, *, add: Iterable[str] = (),
    remove: Iterable[str] = (), attempts: int = 8,
) -> bool:
    """Add/remove keys (without the prefix) in the service's index, compare-and-swap.

    Unlike the runtime's blind read-modify-write, a concurrent change makes us re-read and
    re-apply, so nothing another writer added is lost. Returns False if there is no index.
    """
    add = [k for k in add if k != service.index_key]
    remove = set(remove)
    for _ in range(attempts):
        current = read_index(provider, service)
        if current is None:
            return False
        keys, entry = current
        updated = [k for k in keys if k not in remove]
        present = set(updated)
        updated.extend(k for k in dict.fromkeys(add) if k not in present)
        if updated == keys:
            return True
        try:
            provider.put(entry.key, serialise_index(updated), ttl=NO_TTL, expected=entry.token)
            return True
        except Conflict:
            continue
    raise Conflict(
        f"the index {service.index_full_key!r} kept changing; gave up after {attempts} attempts",
        store=provider.name, key=service.index_full_key,
    )
