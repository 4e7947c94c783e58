"""The index-version compare inside the key+index transaction (ToskaStore main, /kv/txn).

A write of a key and its service's ``__keys`` index in one transaction compares the
index's version as read (or its absence). Without that compare, an index change made by
a mesh replica between the dashboard's read and its transaction is overwritten by the
index the dashboard computed from the older one. Each test makes that change at the
exact moment (an httpx event hook on the provider's own client writes to the real dev
store just before the transaction leaves) and checks nothing the other writer added is
lost, for a create, a replace and a delete, and for an index created meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from dashboard.devstore import start_devstore
from dashboard.mesh import writes
from dashboard.settings.load import load_settings
from dashboard.stores.mutations import NO_TTL, Compare, TxnOp
from dashboard.stores.toskastore.provider import ToskaStoreProvider


def settings(**service):
    return load_settings(environ={}, overrides={
        "Mesh": {"KeyValue": {"Provider": "ToskaStore"}},
        "Dashboard": {"Services": [{"KeyPrefix": "svc", **service}]}})


@pytest.fixture
def store() -> Iterator[tuple[object, ToskaStoreProvider]]:
    running = start_devstore(port=0, release="main")
    provider = ToskaStoreProvider(running.url, timeout=10.0)
    try:
        yield running, provider
    finally:
        provider.close()
        running.stop()


def index_of(running) -> list[str]:
    return json.loads(running.store.get("svc:__keys")["value"])


def before_first_txn(provider: ToskaStoreProvider, action: Callable[[], None]) -> list[int]:
    """Run ``action`` just before the provider's first ``POST /kv/txn`` on the index is sent.

    Only a transaction naming the index: the provider's detection sends a probe
    transaction of its own first, and a hook firing there would change the index before
    the write read it (the race this guards would then never happen).
    """
    fired: list[int] = []

    def hook(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.raw_path.startswith(b"/kv/txn") \
                and b"svc:__keys" in request.content and not fired:
            fired.append(1)
            action()

    provider._client.event_hooks["request"].append(hook)
    return fired


def test_the_store_refuses_a_transaction_whose_index_version_moved(store):
    running, provider = store
    running.store.put("svc:__keys", '["a"]')
    seen = provider.get("svc:__keys")
    running.store.put("svc:__keys", '["a","c"]')
    result = provider.transact([Compare("svc:__keys", version=seen.version)],
                               [TxnOp("put", "svc:__keys", '["a","b"]')])
    assert not result.succeeded and index_of(running) == ["a", "c"]


def test_a_create_keeps_an_index_entry_added_between_read_and_transaction(store):
    running, provider = store
    running.store.put("svc:__keys", '["a"]')
    fired = before_first_txn(provider, lambda: running.store.put("svc:__keys", '["a","c"]'))
    result = writes.create(provider, settings(), "svc:b", "1", ttl=NO_TTL)
    assert fired and result.index.atomic
    assert index_of(running) == ["a", "c", "b"]


def test_a_replace_keeps_an_index_entry_added_between_read_and_transaction(store):
    running, provider = store
    running.store.put("svc:b", "1")
    running.store.put("svc:__keys", '["a"]')  # b is missing: the edit adds it
    seen = provider.get("svc:b")
    fired = before_first_txn(provider, lambda: running.store.put("svc:__keys", '["a","c"]'))
    result = writes.replace(provider, settings(), "svc:b", "2", expected=seen.token)
    assert fired and result.index.atomic and result.index.status == "updated"
    assert index_of(running) == ["a", "c", "b"]
    assert running.store.get("svc:b")["value"] == "2"


def test_a_delete_keeps_an_index_entry_added_between_read_and_transaction(store):
    running, provider = store
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","b"]')
    seen = provider.get("svc:a")
    fired = before_first_txn(provider,
                             lambda: running.store.put("svc:__keys", '["a","b","c"]'))
    result = writes.delete(provider, settings(), "svc:a", expected=seen.token)
    assert fired and result.index.atomic
    assert index_of(running) == ["b", "c"] and running.store.get("svc:a") is None


def test_an_index_created_between_read_and_transaction_is_kept(store):
    running, provider = store
    # the runtime keeps an index, none exists yet: the transaction compares its absence
    fired = before_first_txn(provider, lambda: running.store.put("svc:__keys", '["c"]'))
    result = writes.create(provider, settings(EnableKeyIndex=True), "svc:b", "1", ttl=NO_TTL)
    assert fired and result.index.atomic
    assert index_of(running) == ["c", "b"]
