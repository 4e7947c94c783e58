"""Every store the provider contract suite runs against, started for real.

A ``Backend`` owns a running server (dev store in one of its modes, a ``redis-server``
process, a 3-primary Redis Cluster, or an external ToskaStore from ``TOSKASTORE_URL``) and
builds providers for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dashboard.settings.load import load_settings
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.mutations import NO_TTL, TtlChange

BACKEND_NAMES = [
    "devstore", "devstore-0.9.1", "devstore-legacy", "devstore-nolisting", "redis",
    "redis-cluster", "toskastore",
]


@dataclass
class Backend:
    """A running store plus what the tests need to drive it outside the provider."""

    name: str
    provider: KeyValueProvider
    #: write many entries quickly without going through the provider (None: use put)
    bulk_writer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def seed(self, items: Mapping[str, str], *, ttl_ms: int | None = None) -> None:
        """Write ``items``; keeps each service's ``__keys`` index when the store lists by index."""
        if self.bulk_writer is not None:
            self.bulk_writer(items, ttl_ms)
        else:
            ttl = TtlChange.set(ttl_ms) if ttl_ms else NO_TTL
            for key, value in items.items():
                self.provider.put(key, value, ttl=ttl)
        if self.provider.capabilities().listing == "index":
            self._write_indexes(items)

    def _write_indexes(self, items: Mapping[str, str]) -> None:
        by_service: dict[str, list[str]] = {}
        for key in items:
            service, sep, rest = key.partition(":")
            if sep and rest != "__keys":
                by_service.setdefault(service, []).append(rest)
        for service, rests in by_service.items():
            index_key = f"{service}:__keys"
            try:
                existing = json.loads(self.provider.get(index_key).value or "[]")
            except Exception:  # noqa: BLE001 - a missing index starts empty
                existing = []
            self.provider.put(index_key, json.dumps(existing + rests), ttl=NO_TTL)


def _devstore_backend(name: str, **options: Any) -> Iterator[Backend]:
    from dashboard.devstore import start_devstore
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    running = start_devstore(port=0, **options)
    provider = ToskaStoreProvider(running.url, timeout=10.0)

    def bulk(items: Mapping[str, str], ttl_ms: int | None) -> None:
        for key, value in items.items():
            running.store.put(key, value, ttl_ms=ttl_ms)

    try:
        yield Backend(name, provider, bulk, {"running": running})
    finally:
        provider.close()
        running.stop()


def _redis_backend() -> Iterator[Backend]:
    import redis as redis_lib

    from dashboard.stores.redis.provider import RedisProvider
    from tests.support.redis_server import RedisServer

    with RedisServer() as server:
        provider = RedisProvider(host=server.host, port=server.port, timeout=10.0)
        raw = redis_lib.Redis(host=server.host, port=server.port)
        try:
            yield Backend("redis", provider, _redis_bulk_writer(raw),
                          {"server": server, "raw": raw})
        finally:
            provider.close()
            raw.close()


def _redis_bulk_writer(raw: Any) -> Any:
    """Write many keys in one pipeline of a redis-py client (standalone or cluster)."""

    def bulk(items: Mapping[str, str], ttl_ms: int | None) -> None:
        pipe = raw.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key.encode("utf-8", "surrogateescape"), value.encode(), px=ttl_ms)
        pipe.execute()

    return bulk


def _redis_cluster_backend() -> Iterator[Backend]:
    from dashboard.stores.redis.provider import RedisProvider
    from tests.support.redis_cluster import RedisClusterServers

    with RedisClusterServers() as cluster, cluster.client() as raw:
        # named by every node, as a StackExchange connection string names them
        provider = RedisProvider(endpoints=cluster.endpoints, timeout=10.0)
        try:
            # the cluster pipeline sends each node the keys of its slots
            yield Backend("redis-cluster", provider, _redis_bulk_writer(raw),
                          {"cluster": cluster, "raw": raw})
        finally:
            provider.close()


def _external_toskastore_backend() -> Iterator[Backend]:
    import pytest

    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    url = os.environ.get("TOSKASTORE_URL")
    if not url:
        pytest.skip("TOSKASTORE_URL is not set: no real ToskaStore to test against")
    provider = ToskaStoreProvider(url, token=os.environ.get("TOSKASTORE_TOKEN") or None)
    try:
        yield Backend("toskastore", provider)
    finally:
        provider.close()


@contextmanager
def start_backend(name: str) -> Iterator[Backend]:
    """Start the named backend; each test then works under its own unique prefix."""
    factories = {
        "devstore": lambda: _devstore_backend("devstore"),
        "devstore-0.9.1": lambda: _devstore_backend("devstore-0.9.1", release="0.9.1"),
        "devstore-legacy": lambda: _devstore_backend("devstore-legacy", release="0.8"),
        "devstore-nolisting": lambda: _devstore_backend(
            "devstore-nolisting", no_key_listing=True
        ),
        "redis": _redis_backend,
        "redis-cluster": _redis_cluster_backend,
        "toskastore": _external_toskastore_backend,
    }
    generator = factories[name]()
    backend = next(generator)
    try:
        yield backend
    finally:
        generator.close()


def settings_for(store, **dashboard):
    provider = "ToskaStore" if store.provider.kind == "toskastore" else "Redis"
    return load_settings(environ={}, overrides={
        "Mesh": {"KeyValue": {"Provider": provider}}, "Dashboard": dashboard})
