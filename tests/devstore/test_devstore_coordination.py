"""Leases, locks and transactions on a release-main dev store (upstream main's semantics)."""

from __future__ import annotations

import ssl
import threading
import time

import httpx
import pytest

from dashboard.devstore import start_devstore

TLS = ssl.create_default_context()


@pytest.fixture
def served():
    # the periodic sweep is off: tests run it themselves, so nothing happens behind them
    running = start_devstore(port=0, ttl_check_interval_ms=0)
    client = httpx.Client(base_url=running.url, timeout=5.0, verify=TLS)
    yield running, client
    client.close()
    running.stop()


def lease(client, ttl_ms=60_000, **extra) -> dict:
    answer = client.post("/leases", json={"ttl_ms": ttl_ms, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()["lease"]


# -- leases ------------------------------------------------------------------------------


def test_create_lease(served):
    running, client = served
    made = client.post("/leases", json={"ttl_ms": 5000, "id": "mine"})
    assert made.status_code == 201
    body = made.json()
    assert body["ok"] is True
    got = body["lease"]
    assert set(got) == {"id", "ttl_ms", "created_at", "updated_at", "expires_at"}
    assert got["id"] == "mine" and got["expires_at"] == got["created_at"] + 5000
    again = client.post("/leases", json={"ttl_ms": 5000, "id": "mine"})
    assert again.status_code == 409
    assert again.json() == {"error": "Lease already exists"}
    generated = lease(client)
    assert generated["id"].startswith("lease-")
    for bad in (
        {"ttl_ms": 0},
        {"ttl_ms": -1},
        {"ttl_ms": 1.5},
        {},
        {"ttl_ms": 10, "id": ""},
        {"ttl_ms": 10, "id": 7},
    ):
        answer = client.post("/leases", json=bad)
        assert answer.status_code == 400, bad
        assert answer.json() == {"error": "Invalid lease"}
    assert client.post("/leases", json={"ttl_ms": "250"}).status_code == 201


def test_put_with_lease_attaches_and_follows_its_expiry(served):
    running, client = served
    held = lease(client)
    put = client.put("/kv/k", json={"value": "v", "lease_id": held["id"], "ttl_ms": 5})
    assert put.status_code == 200
    meta = put.json()["metadata"]
    assert meta["lease_id"] == held["id"]
    assert meta["expires_at"] == held["expires_at"]  # ttl_ms is ignored with a lease
    by_query = client.put("/kv/q", json={"value": "v"}, params={"lease_id": held["id"]})
    assert by_query.json()["metadata"]["lease_id"] == held["id"]


def test_put_without_lease_id_detaches(served):
    running, client = served
    held = lease(client)
    client.put("/kv/k", json={"value": "v", "lease_id": held["id"]})
    detached = client.put("/kv/k", json={"value": "w"}).json()["metadata"]
    assert detached["lease_id"] is None and detached["expires_at"] is None
    assert client.delete(f"/leases/{held['id']}").status_code == 200
    assert running.store.get("k")["value"] == "w"  # no longer revoked with the lease


def test_unknown_lease_is_404(served):
    running, client = served
    answer = client.put("/kv/k", json={"value": "v", "lease_id": "nope"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "Lease not found"}
    assert running.store.get("k") is None
    # conditions are checked before the lease
    client.put("/kv/k", json={"value": "v"})
    failed = client.put("/kv/k", json={"value": "v", "lease_id": "nope", "if_absent": True})
    assert failed.status_code == 412
    assert client.post("/leases/nope/keepalive").json() == {"error": "Lease not found", "id": "nope"}
    assert client.delete("/leases/nope").json() == {"error": "Lease not found", "id": "nope"}


def test_keepalive_renews_and_rewrites_attached_keys(served):
    running, client = served
    held = lease(client, ttl_ms=60_000)
    client.put("/kv/a", json={"value": "1", "lease_id": held["id"]})
    client.put("/kv/b", json={"value": "2", "lease_id": held["id"]})
    client.put("/kv/c", json={"value": "3"})
    before = running.store.get("a")["metadata"]
    time.sleep(0.005)  # so "now" moves on (the assertions compare, they do not time)
    renewed = client.post(f"/leases/{held['id']}/keepalive")
    assert renewed.status_code == 200
    new = renewed.json()["lease"]
    assert new["expires_at"] > held["expires_at"]
    assert new["updated_at"] > held["updated_at"] and new["created_at"] == held["created_at"]
    after = running.store.get("a")["metadata"]
    assert after["version"] == before["version"] + 1
    assert after["expires_at"] == new["expires_at"]
    assert after["updated_at"] == new["updated_at"]
    assert running.store.get("b")["metadata"]["version"] == 2
    assert running.store.get("c")["metadata"]["version"] == 1  # not attached


def test_revoke_deletes_attached_keys(served):
    running, client = served
    held = lease(client)
    client.put("/kv/a", json={"value": "1", "lease_id": held["id"]})
    client.put("/kv/other", json={"value": "2"})
    revoked = client.delete(f"/leases/{held['id']}")
    assert revoked.json() == {"ok": True, "id": held["id"]}
    assert running.store.get("a") is None
    assert running.store.get("other")["value"] == "2"
    assert client.post(f"/leases/{held['id']}/keepalive").status_code == 404


def test_expired_lease_is_revoked_by_the_sweep(served):
    running, client = served
    held = lease(client, ttl_ms=50)
    client.put("/kv/a", json={"value": "1", "lease_id": held["id"]})
    deadline = time.monotonic() + 5
    while client.get("/kv/a").status_code != 404:  # lapses on its own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.post(f"/leases/{held['id']}/keepalive").status_code == 404
    assert running.store.stored_count() == 1  # still held until the sweep
    assert running.store.cleanup_expired() == 1
    assert running.store.stored_count() == 0
    # the id can be taken again
    assert client.post("/leases", json={"ttl_ms": 1000, "id": held["id"]}).status_code == 201


def test_lease_operations_bump_the_revision(served):
    running, client = served
    start = running.store.revision
    held = lease(client)
    client.post(f"/leases/{held['id']}/keepalive")
    client.delete(f"/leases/{held['id']}")
    assert running.store.revision == start + 3
    assert client.get("/stats").json()["leases"] == 0


# -- locks -------------------------------------------------------------------------------


def test_locks(served):
    running, client = served
    mine, theirs = lease(client), lease(client)
    got = client.post("/locks/job/acquire", json={"lease_id": mine["id"], "holder": "worker-1"})
    assert got.status_code == 200
    lock = got.json()["lock"]
    assert lock["name"] == "job" and lock["holder"] == "worker-1"
    assert lock["expires_at"] == mine["expires_at"]
    assert client.post("/locks/job/acquire", json={"lease_id": mine["id"]}).status_code == 200
    held = client.post("/locks/job/acquire", json={"lease_id": theirs["id"]})
    assert held.status_code == 409 and held.json() == {"error": "Lock held", "name": "job"}
    assert client.get("/stats").json()["locks"] == 1
    mismatch = client.post("/locks/job/release", json={"lease_id": theirs["id"]})
    assert mismatch.json() == {"error": "Lock owner mismatch", "name": "job"}
    assert client.post("/locks/job/release", json={"lease_id": mine["id"]}).json() == {
        "ok": True,
        "name": "job",
    }
    assert client.post("/locks/job/release", json={"lease_id": mine["id"]}).status_code == 404
    assert client.post("/locks/job/acquire", json={}).json() == {"error": "Invalid lock request"}
    missing = client.post("/locks/job/acquire", json={"lease_id": "nope"})
    assert missing.json() == {"error": "Lease not found", "lease_id": "nope"}
    # revoking a lease releases its locks
    client.post("/locks/job/acquire", json={"lease_id": theirs["id"]})
    client.delete(f"/leases/{theirs['id']}")
    assert client.post("/locks/job/acquire", json={"lease_id": mine["id"]}).status_code == 200


# -- transactions ------------------------------------------------------------------------


def test_txn_success_branch(served):
    running, client = served
    running.store.put("index", "[]")
    body = {
        "compare": [{"key": "index", "version": 1}, {"key": "item", "exists": False}],
        "success": [
            {"op": "put", "key": "item", "value": "x"},
            {"op": "set", "key": "index", "value": '["item"]'},
            {"op": "get", "key": "item"},
            {"op": "get", "key": "nothing"},
            {"op": "del", "key": "nothing"},
        ],
        "failure": [{"op": "put", "key": "never", "value": "x"}],
    }
    answer = client.post("/kv/txn", json=body)
    assert answer.status_code == 200
    result = answer.json()
    assert result["succeeded"] is True
    put, index, got, missing, deleted = result["responses"]
    assert put["op"] == "put" and put["key"] == "item" and put["metadata"]["version"] == 1
    assert index["metadata"]["version"] == 2
    assert got == {**running.store.get("item"), "op": "get", "found": True}
    assert missing == {"op": "get", "key": "nothing", "found": False, "value": None}
    assert deleted == {"op": "delete", "key": "nothing", "deleted": False}
    assert running.store.get("never") is None


def test_txn_failure_branch_and_value_compare(served):
    running, client = served
    running.store.put("k", "old")
    body = {
        "compare": [{"key": "k", "value": "new"}],
        "success": [{"op": "delete", "key": "k"}],
        "failure": [
            {"op": "put", "key": "k", "value": "new", "ttl_ms": 60_000},
            {"op": "put", "key": "gone", "value": "x", "ttl_ms": 0},
        ],
    }
    result = client.post("/kv/txn", json=body).json()
    assert result["succeeded"] is False
    assert result["responses"][0]["value"] == "new"
    assert result["responses"][0]["metadata"]["expires_at"] is not None
    assert result["responses"][1] == {"op": "put", "key": "gone", "deleted": False}
    again = client.post("/kv/txn", json={**body, "failure": []}).json()
    assert again == {"succeeded": True, "responses": [{"op": "delete", "key": "k", "deleted": True}]}


def test_txn_put_detaches_from_lease(served):
    running, client = served
    held = lease(client)
    client.put("/kv/k", json={"value": "1", "lease_id": held["id"]})
    client.post("/kv/txn", json={"success": [{"op": "put", "key": "k", "value": "2"}]})
    assert running.store.get("k")["metadata"]["lease_id"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"compare": [{"key": "k"}]},
        {"compare": [{"key": 1, "version": 1}]},
        {"compare": [{"key": "k", "version": 0}]},
        {"compare": [{"key": "k", "exists": "maybe"}]},
        {"compare": [{"key": "k", "value": 5}]},
        {"compare": {}},
        {"success": [{"op": "rename", "key": "k"}]},
        {"success": [{"op": "put", "key": "k"}]},
        {"failure": [{"op": "get"}]},
        {"success": "put"},
    ],
)
def test_invalid_transactions_apply_nothing(served, body):
    running, client = served
    body = {**body, "success": body.get("success", [{"op": "put", "key": "side", "value": "x"}])}
    answer = client.post("/kv/txn", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": "Invalid transaction"}
    assert running.store.get("side") is None


def test_empty_txn_succeeds(served):
    running, client = served
    assert client.post("/kv/txn", json={}).json() == {"succeeded": True, "responses": []}


def test_txn_is_atomic_under_concurrency(served):
    running, client = served
    running.store.put("counter", "0")
    wins = []

    def worker():
        with httpx.Client(base_url=running.url, timeout=5.0, verify=TLS) as c:
            for _ in range(20):
                current = c.get("/kv/counter").json()
                body = {
                    "compare": [{"key": "counter", "version": current["metadata"]["version"]}],
                    "success": [{"op": "put", "key": "counter", "value": str(int(current["value"]) + 1)}],
                }
                if c.post("/kv/txn", json=body).json()["succeeded"]:
                    wins.append(1)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(running.store.get("counter")["value"]) == len(wins)
