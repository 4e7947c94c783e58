"""The service list every page asks for, discovered at most once per
``Dashboard:DiscoveryCacheSeconds`` per process.

Discovery walks the store's prefixes; the services page, the bulk lookup's selector and
the index overview all need the list, so walking it on each of their requests multiplied
the cost. A page may ask for a fresh walk (the services page's "refresh").

What a page shows from the list says how old it is (``age_seconds``). When a walk fails
(the store is down) and an earlier list is kept, that list is returned with the failure
(``error``), so the page shows it as what it is: the list from N seconds ago.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from flask import current_app

from dashboard import mesh
from dashboard.stores.errors import ProviderError
from dashboard.web.current import provider, shared_store


@dataclass(frozen=True)
class Discovered:
    """Known services, whether discovery saw every prefix, and when it ran."""

    services: list[mesh.Service]
    complete: bool
    #: time.monotonic() of the walk
    at: float
    #: why a newer walk failed (this list is the last one that succeeded), else ""
    error: str = ""

    @property
    def age_seconds(self) -> float:
        return time.monotonic() - self.at


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Discovered | None = None
        #: the dashboard changed keys since the walk: the next page walks again
        self.stale = False


def discovered(*, refresh: bool = False) -> Discovered:
    """The known services the operator may read (configured first, then discovered), from
    the cache when fresh: the cache holds every service, each operator sees theirs."""
    found = _discovered_by_anyone(refresh=refresh)
    guard = provider()
    return replace(found, services=[s for s in found.services if guard.reads_under(s.prefix)])


def _discovered_by_anyone(*, refresh: bool = False) -> Discovered:
    cache: _Cache = current_app.extensions.setdefault("discovery", _Cache())
    ttl = current_app.config["KV_SETTINGS"].dashboard.discovery_cache_seconds
    with cache.lock:  # one walk at a time; the others wait and reuse it
        value = cache.value
        if refresh or cache.stale or value is None or value.age_seconds >= ttl:
            try:
                services, complete = mesh.known_services(shared_store(),
                                                         current_app.config["KV_SETTINGS"])
            except ProviderError as error:
                if value is None:
                    raise
                return replace(value, error=str(error))  # the last list, said to be old
            value = cache.value = Discovered(services, complete, time.monotonic())
            cache.stale = False
        return value


def listed_age() -> float | None:
    """Seconds since the cached list was walked (None: no list is cached)."""
    cache: _Cache | None = current_app.extensions.get("discovery")
    value = cache.value if cache is not None else None
    return value.age_seconds if value is not None else None


def forget() -> None:
    """Walk again on the next page: the dashboard created or deleted a key, or a count
    found a listed service empty. The old list is kept only to show (with its age) while
    the store cannot be walked."""
    cache: _Cache | None = current_app.extensions.get("discovery")
    if cache is not None:
        with cache.lock:
            cache.stale = True
