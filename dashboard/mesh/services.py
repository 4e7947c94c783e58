"""Services and their key prefixes: which service a key or prefix belongs to, which exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dashboard.stores import make_provider
from dashboard.stores.base import KeyValueProvider

if TYPE_CHECKING:
    from dashboard.settings.model import Settings

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
    #: the index key *inside* the prefix (``__keys``, verbatim: it may hold ``:`` or
    #: spaces); the full key is ``index_full_key``
    index_key: str = DEFAULT_INDEX_KEY
    #: listed in Dashboard:Services or the mesh's own KeyPrefix (else discovered from keys)
    configured: bool = False
    #: whether the service's runtime keeps a ``__keys`` index: True (ToskaStore with
    #: EnableKeyIndex), False (Redis, or EnableKeyIndex false), None (nothing says: an
    #: index that exists is kept, a missing one is not missed)
    keeps_index: bool | None = None

    @property
    def index_full_key(self) -> str:
        return self.prefix + self.index_key



def _index_name(configured: str | None, settings) -> str:
    # the runtime: IsNullOrWhiteSpace(KeyIndexKey) ? "__keys" : KeyIndexKey (verbatim)
    for name in (configured, settings.toskastore.key_index_key):
        if name is not None and name.strip():
            return name
    return DEFAULT_INDEX_KEY


def _keeps_index(settings, said: bool | None) -> bool | None:
    if settings.provider != "toskastore":
        return False  # the Redis runtime never keeps an index
    return said


def configured_services(settings) -> list[Service]:
    """Dashboard:Services, then the mesh's own service prefix (KeyPrefix or ServiceName)."""
    services = {
        normalise_prefix(s.key_prefix): Service(
            s.name, normalise_prefix(s.key_prefix), _index_name(s.key_index_key, settings), True,
            _keeps_index(settings, s.enable_key_index),
        )
        for s in settings.dashboard.services
    }
    own = settings.own_service_prefix
    if own:
        own_keeps = _keeps_index(settings, settings.toskastore.enable_key_index)
        listed = services.get(own)
        if listed is None:
            services[own] = Service(own[: -len(SEPARATOR)], own, _index_name(None, settings), True,
                                    own_keeps)
        elif listed.keeps_index is None:
            services[own] = replace(listed, keeps_index=own_keeps)
    return list(services.values())


def _default_service(settings, prefix: str) -> Service:
    """A service nothing configures: its index is kept only where one exists."""
    return Service(prefix[: -len(SEPARATOR)], prefix, _index_name(None, settings),
                   keeps_index=_keeps_index(settings, None))


def service_for_key(settings, key: str) -> Service | None:
    """The service a full key belongs to: the longest configured prefix, else its first segment."""
    matches = [s for s in configured_services(settings) if key.startswith(s.prefix)]
    if matches:
        return max(matches, key=lambda s: len(s.prefix))
    head, sep, _ = key.partition(SEPARATOR)
    if not sep:
        return None
    return _default_service(settings, head + SEPARATOR)




def service_for_prefix(settings, prefix: str) -> Service:
    """The service with exactly this prefix (normalised): configured, else a default one."""
    prefix = normalise_prefix(prefix)
    for service in configured_services(settings):
        if service.prefix == prefix:
            return service
    return _default_service(settings, prefix)


def known_services(provider: KeyValueProvider, settings) -> tuple[list[Service], bool]:
    """Configured services first (in configuration order), then discovered prefixes.

    Discovery takes the distinct first ``:`` segments of the store's keys (on a range
    server by skipping from one to the next). Returns the services and whether
    discovery saw every prefix.
    """
    services: dict[str, Service] = {s.prefix: s for s in configured_services(settings)
                                    if provider.reads_under(s.prefix)}
    discovered = provider.list_segments("", sep=SEPARATOR, limit=1000)
    for prefix in sorted(discovered.folders):
        services.setdefault(prefix, _default_service(settings, prefix))
    return list(services.values()), discovered.complete


def services_with_index(
    provider: KeyValueProvider, settings, known: list[Service] | None = None,
) -> list[Service]:
    """Known services whose runtime keeps an index: it exists, or configuration says so.

    None on Redis: that runtime keeps no index (a ``__keys`` key there is plain data).
    ``known`` is the service list when the caller has it (discovery is cached by the web
    app); existence is asked without reading the indexes.
    """
    if known is None:
        known = known_services(provider, settings)[0]
    candidates = [s for s in known if s.keeps_index is not False
                  and provider.may_read(s.index_full_key)]
    found = provider.exists_many([s.index_full_key for s in candidates]) if candidates else {}
    return [s for s in candidates if found.get(s.index_full_key) or s.keeps_index]


def index_key_resolver(settings: Settings) -> Callable[[str], tuple[str, str] | None]:
    """A function mapping a listing prefix to (service prefix, full key of its ``__keys`` index).

    The service is the one ``service_for_key`` finds: the longest configured prefix,
    else the prefix's first ``:`` segment. A prefix without ``:`` names no service.
    """

    def index_key_for(prefix: str) -> tuple[str, str] | None:
        service = service_for_key(settings, prefix)
        return None if service is None else (service.prefix, service.index_full_key)

    return index_key_for


def open_store(settings: Settings) -> KeyValueProvider:
    """The provider ``Mesh:KeyValue`` configures, knowing the mesh's services (see
    ``stores.make_provider``): what every entry point opens the store with."""
    return make_provider(settings, index_key_for=index_key_resolver(settings))
