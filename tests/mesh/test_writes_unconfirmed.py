"""Writes whose answer is lost (timeout, 5xx) may still land: read back and say what happened.

The dev store's slow-write modes model a real server writing a snapshot: it applies a
write and answers late (the client times out), answers 500 after applying, or answers
500 at once and applies the write later. Redis's ``CLIENT PAUSE ... WRITE`` holds writes
for real.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis as redis_lib

from dashboard import mesh
from dashboard.devstore import start_devstore
from dashboard.mesh import writes
from dashboard.settings.load import load_settings
from dashboard.stores.errors import WriteUnknown
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.redis.provider import RedisProvider
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.redis_server import RedisServer
from tests.support.webapp import login, make_app, post_form

SETTINGS = load_settings(environ={}, overrides={"Mesh": {"KeyValue": {"Provider": "ToskaStore"}}})


@pytest.fixture
def store() -> Iterator:
    servers, providers = [], []

    def start(release: str = "main", timeout: float = 5.0):
        running = start_devstore(port=0, release=release)
        provider = ToskaStoreProvider(running.url, timeout=timeout)
        provider.capabilities()  # detect before any slow mode is switched on
        servers.append(running)
        providers.append(provider)
        return running, provider

    yield start
    for provider in providers:
        provider.close()
    for running in servers:
        running.stop()


def index_of(running) -> list[str]:
    return json.loads(running.store.get("svc:__keys")["value"])


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("release", ["main", "0.9.1"])
def test_a_create_answered_500_after_it_landed_is_reported_written_with_its_index(store, release):
    running, provider = store(release)
    running.store.put("svc:__keys", '["a"]')
    running.config.write_fails_after_apply = True
    result = writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    running.config.write_fails_after_apply = False
    assert "reading it back shows it happened" in result.note
    assert running.store.get("svc:b")["value"] == "1"
    assert index_of(running) == ["a", "b"]  # finished, not skipped


def test_a_timed_out_create_that_landed_is_reported_written(store):
    running, provider = store("0.9.1", timeout=0.3)
    running.store.put("svc:__keys", '["a"]')
    running.config.write_answer_delay_ms = 1_000
    result = writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    running.config.write_answer_delay_ms = 0
    assert "timed out" in result.note and running.store.get("svc:b")["value"] == "1"
    assert wait_for(lambda: "b" in index_of(running))


def test_a_write_applied_later_is_unknown_never_not_written(store):
    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    with running.faults(write_applies_late_ms=600), pytest.raises(WriteUnknown) as caught:
        writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    assert "may still apply it" in caught.value.message
    assert "svc:__keys" in caught.value.index_note
    assert wait_for(lambda: running.store.get("svc:b") is not None)  # and it did land


def test_a_delete_answered_500_after_it_landed_drops_the_index_entry(store):
    running, provider = store("0.9.1")
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","b"]')
    token = provider.get("svc:a").token
    running.config.write_fails_after_apply = True
    result = writes.delete(provider, SETTINGS, "svc:a", expected=token)
    running.config.write_fails_after_apply = False
    assert result.note and running.store.get("svc:a") is None
    assert index_of(running) == ["b"]


def test_a_repair_answered_500_after_it_landed_succeeds(store):
    running, provider = store("main")
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","gone"]')
    service = mesh.Service("svc", "svc:", keeps_index=True)
    plan = mesh.plan_repair(provider, service, "prune-stale")
    running.config.write_fails_after_apply = True
    result = mesh.apply_repair(provider, plan)
    running.config.write_fails_after_apply = False
    assert result.removed == ["svc:gone"] and index_of(running) == ["a"]


def test_the_edit_page_says_when_a_write_is_unconfirmed(store):
    running, provider = store("0.9.1")
    running.store.put("svc:k", "old")
    client = make_app(provider).test_client()
    login(client)
    page = client.get("/key/edit?key=svc:k").get_data(as_text=True)
    token = page.split('name="expected_version" value="', 1)[1].split('"', 1)[0]
    with running.faults(write_applies_late_ms=600):
        answer = post_form(client, "/key/edit", {
            "key": "svc:k", "value": "new", "raw": "on", "ttl_mode": "none",
            "expected_version": token, "confirm": "yes"}, token_from="/key/edit?key=svc:k")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 504 and 'data-testid="write-unknown"' in body
    assert 'data-testid="check-key"' in body and "store did not confirm" in body
    assert wait_for(lambda: running.store.get("svc:k")["value"] == "new")


def test_a_redis_write_held_past_the_timeout_is_unknown_not_failed():
    with RedisServer() as server:
        provider = RedisProvider(host=server.host, port=server.port, timeout=0.3)
        raw = redis_lib.Redis(host=server.host, port=server.port)
        try:
            raw.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
            settings = load_settings(environ={})
            with pytest.raises(WriteUnknown) as caught:
                writes.create(provider, settings, "svc:k", "v", ttl=NO_TTL)
            # a timed-out command may have run: never reported as "not written"
            assert "did not answer" in caught.value.message
            assert "may still apply it" in caught.value.message
        finally:
            raw.execute_command("CLIENT", "UNPAUSE")
            provider.close()
            raw.close()


# --- the index's own write: read back before claiming anything (issue 15, item 10) -------
#
# The key's write is answered; only the index write (``write_fault_match="__keys"``) meets
# the fault. On 0.9.1 (no transactions) the index follows with its own compare-and-swap,
# ``mesh.swap_index``, which edit, create, delete, import and repair all go through.


def test_an_index_update_answered_500_after_it_landed_is_reported_updated(store):
    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    with running.faults(write_fails_after_apply=True, write_fault_match="__keys"):
        result = writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    assert index_of(running) == ["a", "b"]
    assert result.index.status == "updated" and "added to the index" in result.index.message


def test_an_index_update_that_timed_out_but_landed_is_reported_updated(store):
    running, provider = store("0.9.1", timeout=0.3)
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","b"]')
    token = provider.get("svc:a").token
    with running.faults(write_answer_delay_ms=800, write_fault_match="__keys"):
        result = writes.delete(provider, SETTINGS, "svc:a", expected=token)
    assert index_of(running) == ["b"] and result.index.status == "updated"


def test_an_index_update_applied_later_is_unknown_never_failed(store):
    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    with running.faults(write_applies_late_ms=600, write_fault_match="__keys"):
        result = writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    assert result.index.status == "unknown", result.index
    assert "not confirmed" in result.index.message and "could not be updated" not in \
        result.index.message
    assert wait_for(lambda: index_of(running) == ["a", "b"])  # and it did land


@pytest.mark.parametrize("status", [429, 503])
def test_an_index_update_refused_is_reported_failed_and_not_written(store, status):
    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    with running.faults(write_refused_status=status, write_fault_match="__keys"):
        result = writes.create(provider, SETTINGS, "svc:b", "1", ttl=NO_TTL)
    assert result.index.status in ("failed", "unknown")
    assert index_of(running) == ["a"] and running.store.get("svc:b")["value"] == "1"


def test_an_import_whose_index_update_landed_says_the_keys_were_added(store):
    from dashboard.mesh import transfer

    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    parsed = transfer.parse(b'{"key": "svc:b", "value": "1", "ttl_ms": null}\n',
                            max_bytes=1 << 20)
    plan = transfer.make_plan(provider, SETTINGS, parsed, mode="create-only")
    with running.faults(write_fails_after_apply=True, write_fault_match="__keys"):
        result = transfer.apply(provider, SETTINGS, plan)
    assert index_of(running) == ["a", "b"]
    assert not result.index_failed, result.index
    assert any("Added the imported keys" in line for line in result.index)


def test_an_import_whose_index_update_is_unconfirmed_does_not_say_it_failed(store):
    from dashboard.mesh import transfer

    running, provider = store("0.9.1")
    running.store.put("svc:__keys", '["a"]')
    parsed = transfer.parse(b'{"key": "svc:b", "value": "1", "ttl_ms": null}\n',
                            max_bytes=1 << 20)
    plan = transfer.make_plan(provider, SETTINGS, parsed, mode="create-only")
    with running.faults(write_applies_late_ms=600, write_fault_match="__keys"):
        result = transfer.apply(provider, SETTINGS, plan)
    said = " ".join(result.index)
    assert "did not confirm the update of the index" in said
    assert "could not be updated" not in said
    assert wait_for(lambda: index_of(running) == ["a", "b"])


def test_a_repair_applied_later_is_unknown(store):
    running, provider = store("0.9.1")
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a","gone"]')
    service = mesh.Service("svc", "svc:", keeps_index=True)
    plan = mesh.plan_repair(provider, service, "prune-stale")
    with running.faults(write_applies_late_ms=600), pytest.raises(WriteUnknown) as caught:
        mesh.apply_repair(provider, plan)
    assert "svc:__keys" in caught.value.message and "may still apply it" in caught.value.message
    assert wait_for(lambda: index_of(running) == ["a"])


def test_an_edit_page_says_when_only_the_index_is_unconfirmed(store):
    running, provider = store("0.9.1")
    running.store.put("svc:k", "old")
    running.store.put("svc:__keys", '["a"]')
    client = make_app(provider).test_client()
    login(client)
    page = client.get("/key/edit?key=svc:k").get_data(as_text=True)
    token = page.split('name="expected_version" value="', 1)[1].split('"', 1)[0]
    with running.faults(write_applies_late_ms=600, write_fault_match="__keys"):
        answer = post_form(client, "/key/edit", {
            "key": "svc:k", "value": "new", "raw": "on", "ttl_mode": "none",
            "expected_version": token, "confirm": "yes", "update_index": "on"},
            token_from="/key/edit?key=svc:k")
    assert answer.status_code == 303
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Saved." in shown and "index was not confirmed" in shown
    assert "could not be updated" not in shown
    assert wait_for(lambda: index_of(running) == ["a", "k"])
