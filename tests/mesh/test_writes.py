"""A key and its ``__keys`` entry written together: one transaction where the store has one.

Real dev stores in each release mode and a real redis-server. Where a test needs another
writer at an exact moment, an httpx event hook on the provider's own client writes to the
store just before the dashboard's request leaves: the race happens on the real server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from dashboard import mesh
from dashboard.devstore import start_devstore
from dashboard.mesh import writes
from dashboard.settings.load import load_settings
from dashboard.stores.errors import Conflict
from dashboard.stores.mutations import NO_TTL, TtlChange
from dashboard.stores.toskastore.provider import ToskaStoreProvider

HOUR = TtlChange.set(3_600_000)


def settings(provider_kind: str = "ToskaStore", **service):
    dashboard = {"Services": [{"KeyPrefix": "svc", **service}]} if service else {}
    return load_settings(environ={}, overrides={
        "Mesh": {"KeyValue": {"Provider": provider_kind}}, "Dashboard": dashboard})


@pytest.fixture
def store() -> Iterator[Callable[..., tuple[object, ToskaStoreProvider]]]:
    started, made = [], []

    def start(release: str = "main"):
        running = start_devstore(port=0, release=release)
        provider = ToskaStoreProvider(running.url)
        started.append(running)
        made.append(provider)
        return running, provider

    yield start
    for provider in made:
        provider.close()
    for running in started:
        running.stop()


def index_of(running, key: str = "svc:__keys") -> list[str]:
    return json.loads(running.store.get(key)["value"])


def before_each(provider: ToskaStoreProvider, method: str, path: str, action: Callable[[], None],
                times: int = 1) -> list[int]:
    """Run ``action`` just before the next ``times`` requests ``method path...`` are sent."""
    fired: list[int] = []

    def hook(request: httpx.Request) -> None:
        if (request.method == method and request.url.raw_path.startswith(path.encode())
                and len(fired) < times):
            fired.append(1)
            action()

    provider._client.event_hooks["request"].append(hook)
    return fired


def test_create_writes_key_and_index_in_one_transaction(store):
    running, provider = store()
    running.store.put("svc:__keys", '["a"]')
    result = writes.create(provider, settings(), "svc:b", '{"b":1}', ttl=HOUR)
    assert result.index.status == "updated" and result.index.atomic
    assert "same transaction" in result.index.message
    assert index_of(running) == ["a", "b"]
    assert running.store.get("svc:b")["metadata"]["expires_at"] is not None


def test_an_index_change_between_read_and_write_is_kept_and_the_write_retried(store):
    running, provider = store()
    running.store.put("svc:__keys", '["a"]')
    # a mesh replica adds "c" to the index after the dashboard read it
    fired = before_each(provider, "POST", "/kv/txn",
                        lambda: running.store.put("svc:__keys", '["a","c"]'))
    result = writes.create(provider, settings(), "svc:b", "1", ttl=NO_TTL)
    assert fired and result.index.atomic
    assert index_of(running) == ["a", "c", "b"]  # nothing the other writer added is lost
    assert running.store.get("svc:b")["value"] == "1"


def test_a_create_racing_a_writer_of_the_same_key_writes_neither(store):
    running, provider = store()
    running.store.put("svc:__keys", '["a"]')
    before_each(provider, "POST", "/kv/txn",
                lambda: running.store.put("svc:b", "the service's own"))
    with pytest.raises(Conflict) as caught:
        writes.create(provider, settings(), "svc:b", "mine", ttl=NO_TTL)
    assert caught.value.current.value == "the service's own"
    assert running.store.get("svc:b")["value"] == "the service's own"
    assert index_of(running) == ["a"]  # the transaction left the index alone too


def test_delete_removes_key_and_entry_together(store):
    running, provider = store()
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","b"]')
    token = provider.get("svc:a").token
    result = writes.delete(provider, settings(), "svc:a", expected=token)
    assert result.index.atomic and running.store.get("svc:a") is None
    assert index_of(running) == ["b"]


def test_a_stale_delete_changes_nothing(store):
    running, provider = store()
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a"]')
    token = provider.get("svc:a").token
    running.store.put("svc:a", "2")
    with pytest.raises(Conflict):
        writes.delete(provider, settings(), "svc:a", expected=token)
    assert running.store.get("svc:a")["value"] == "2" and index_of(running) == ["a"]


def test_edit_of_an_indexed_key_is_a_plain_conditional_write(store):
    running, provider = store()
    running.store.put("svc:a", "1", ttl_ms=3_600_000)
    running.store.put("svc:__keys", '["a"]')
    seen = provider.get("svc:a")
    result = writes.replace(provider, settings(), "svc:a", "2", expected=seen.token)
    assert result.index.status == "unchanged" and index_of(running) == ["a"]
    assert running.store.get("svc:a")["metadata"]["expires_at"] is not None  # TTL kept


def test_a_missing_index_is_created_only_where_the_runtime_keeps_one(store):
    running, provider = store()
    writes.create(provider, settings(), "svc:a", "1", ttl=NO_TTL)
    assert running.store.get("svc:__keys") is None  # nothing says the runtime keeps one
    result = writes.create(provider, settings(EnableKeyIndex=True), "svc:b", "1", ttl=NO_TTL)
    assert result.index.status == "created" and index_of(running) == ["b"]  # as the runtime


@pytest.mark.parametrize("release", ["0.9.1", "0.8"])
def test_without_transactions_the_index_follows_by_compare_and_swap(store, release):
    running, provider = store(release)
    running.store.put("svc:__keys", '["a"]')
    result = writes.create(provider, settings(), "svc:b", "1", ttl=NO_TTL)
    assert result.index.status == "updated" and not result.index.atomic
    assert index_of(running) == ["a", "b"]


def test_a_leased_key_edit_keeps_its_lease_outside_a_transaction(store):
    running, provider = store()
    lease = httpx.post(f"{running.url}/leases", json={"ttl_ms": 60_000}).json()["lease"]["id"]
    httpx.put(f"{running.url}/kv/svc%3Alock", json={"value": "a", "lease_id": lease})
    running.store.put("svc:__keys", "[]")
    seen = provider.get("svc:lock")
    result = writes.replace(provider, settings(), "svc:lock", "b", expected=seen.token)
    assert running.store.get("svc:lock")["metadata"]["lease_id"] == lease
    assert result.index.status == "updated" and not result.index.atomic
    assert index_of(running) == ["lock"]


def test_redis_keys_never_touch_an_index(redis_provider):
    provider, raw = redis_provider
    raw.set("svc:__keys", '["a"]')
    result = writes.create(provider, settings("Redis"), "svc:b", "1", ttl=NO_TTL)
    assert result.index.status == "not-kept"
    assert raw.get("svc:__keys") == b'["a"]'


@pytest.fixture
def redis_provider():
    import redis as redis_lib

    from dashboard.stores.redis.provider import RedisProvider
    from tests.support.redis_server import RedisServer

    with RedisServer() as server:
        provider = RedisProvider(host=server.host, port=server.port)
        raw = redis_lib.Redis(host=server.host, port=server.port)
        try:
            yield provider, raw
        finally:
            provider.close()
            raw.close()


# --------------------------------------------------------------------------- repairs


def test_a_runtime_write_that_undoes_a_repair_is_reported(store):
    running, provider = store()
    for key in ("a", "b"):
        running.store.put(f"svc:{key}", "1")
    running.store.put("svc:__keys", '["a","gone"]')
    service = mesh.Service("svc", "svc:", keeps_index=True)
    plan = mesh.plan_repair(provider, service, "prune-stale")

    # a replica read the index before the repair and writes it back, blind, right after
    def blind_runtime_write(response: httpx.Response) -> None:
        if response.request.method == "PUT" and b"__keys" in response.request.url.raw_path:
            running.store.put("svc:__keys", '["a","gone","c"]')

    provider._client.event_hooks["response"].append(blind_runtime_write)
    result = mesh.apply_repair(provider, plan)
    assert result.removed == ["svc:gone"] and result.undone == ["svc:gone"]


@pytest.mark.parametrize("index", ["[" * 50_000 + "]" * 50_000, "[" + "9" * 5_000 + "]", "{oops"])
def test_a_create_into_a_service_with_a_malformed_index_reports_exactly_that(store, index):
    running, provider = store()
    running.store.put("svc:__keys", index)
    result = writes.create(provider, settings(), "svc:b", "1", ttl=NO_TTL)
    assert result.entry is not None and running.store.get("svc:b")["value"] == "1"
    assert result.index.status == "failed" and "malformed" in result.index.message
    assert running.store.get("svc:__keys")["value"] == index  # left as it was
