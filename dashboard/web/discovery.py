"""The service list every page asks for, discovered at most once per
``Dashboard:DiscoveryCacheSeconds`` per process.

Discovery walks the store's prefixes; the services page, the bulk lookup's selector and
the index overview all need the list, so walking it on each of their requests multiplied
the cost. A page may ask for a fresh walk (the services page's "refresh").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flask import current_app

from dashboard import mesh
from dashboard.web.current import provider


@dataclass(frozen=True)
class Discovered:
    """Known services, whether discovery saw every prefix, and when it ran."""

    services: list[mesh.Service]
    complete: bool
    #: time.monotonic() of the walk
    at: float

    @property
    def age_seconds(self) -> float:
        return time.monotonic() - self.at


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Discovered | None = None


def discovered(*, refresh: bool = False) -> Discovered:
    """The known services (configured first, then discovered), from the cache when fresh."""
    cache: _Cache = current_app.extensions.setdefault("discovery", _Cache())
    ttl = current_app.config["KV_SETTINGS"].dashboard.discovery_cache_seconds
    with cache.lock:  # one walk at a time; the others wait and reuse it
        value = cache.value
        if refresh or value is None or value.age_seconds >= ttl:
            services, complete = mesh.known_services(provider(), current_app.config["KV_SETTINGS"])
            value = cache.value = Discovered(services, complete, time.monotonic())
        return value


def forget() -> None:
    """Drop the cached list: the dashboard itself just created or deleted a key."""
    cache: _Cache | None = current_app.extensions.get("discovery")
    if cache is not None:
        with cache.lock:
            cache.value = None
