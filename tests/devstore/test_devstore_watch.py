"""``GET /kv/watch`` (release main): SSE framing, replay, 409, and stream lifetimes."""

from __future__ import annotations

import json
import ssl
import time

import httpx
import pytest

from dashboard.devstore import DevStore, start_devstore

TLS = ssl.create_default_context()


@pytest.fixture
def running():
    server = start_devstore(port=0, ttl_check_interval_ms=0)
    yield server
    server.stop()


def client_for(server, **options) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=5.0, verify=TLS, **options)


def frames(lines):
    """SSE frames from ``iter_lines``: comments as ("comment", text), events as dicts."""
    frame: dict[str, str] = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
                frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(": ")
            frame[name] = value


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_replay_then_close_with_once(running):
    running.store.put("svc:a", "1")
    running.store.put("other", "x")
    running.store.put("svc:a", "2")
    running.store.delete("svc:a")
    with client_for(running) as c:
        answer = c.get("/kv/watch", params={"prefix": "svc:", "since_revision": 0, "once": "true"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["x-toska-revision"] == "4"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.text.startswith(": connected\n\n")
    got = list(frames(answer.text.split("\n")))
    assert got[0] == {"comment": "connected"}
    events = got[1:]
    assert [(e["id"], e["event"]) for e in events] == [("1", "put"), ("3", "put"), ("4", "delete")]
    first = json.loads(events[0]["data"])
    assert first["op"] == "put" and first["revision"] == 1 and first["value"] == "1"
    assert first["metadata"]["version"] == 1 and isinstance(first["timestamp"], int)
    deleted = json.loads(events[2]["data"])
    assert deleted["value"] is None and deleted["metadata"]["version"] == 2
    assert set(deleted) == {"op", "key", "value", "metadata", "revision", "timestamp"}


def test_since_revision_skips_older_events(running):
    for i in range(5):
        running.store.put("k", str(i))
    with client_for(running) as c:
        answer = c.get("/kv/watch", params={"since_revision": 3, "once": "1"})
    ids = [f["id"] for f in frames(answer.text.split("\n")) if "id" in f]
    assert ids == ["4", "5"]


def test_live_events_arrive(running):
    with client_for(running) as c, c.stream("GET", "/kv/watch", params={"prefix": "live:"}) as stream:
        lines = stream.iter_lines()
        assert next(frames(lines)) == {"comment": "connected"}
        wait_until(lambda: running.store.watch_stats()["watchers"] == 1)
        running.store.put("elsewhere", "ignored")
        running.store.put("live:a", "1", ttl_ms=60_000)
        event = next(frames(lines))
        assert event["event"] == "put"
        data = json.loads(event["data"])
        assert data["key"] == "live:a" and data["metadata"]["expires_at"] is not None
        running.store.delete("live:a")
        assert next(frames(lines))["event"] == "delete"


def test_expire_events_come_from_the_sweep(running):
    with client_for(running) as c, c.stream("GET", "/kv/watch") as stream:
        lines = stream.iter_lines()
        next(frames(lines))
        wait_until(lambda: running.store.watch_stats()["watchers"] == 1)
        running.store.put("short", "x", ttl_ms=1)
        assert next(frames(lines))["event"] == "put"
        wait_until(lambda: running.store.get("short") is None)
        running.store.cleanup_expired()
        expired = next(frames(lines))
        assert expired["event"] == "expire"
        assert json.loads(expired["data"])["value"] is None


def test_history_gone_is_409(running):
    store = DevStore(watch_history_limit=2)
    server = start_devstore(port=0, store=store, ttl_check_interval_ms=0)
    try:
        for i in range(5):
            store.put("k", str(i))  # revisions 1..5, history keeps 4 and 5
        with client_for(server) as c:
            gone = c.get("/kv/watch", params={"since_revision": 2})
            assert gone.status_code == 409
            assert gone.json() == {"error": "Watch history unavailable"}
            # since_revision 3 is just old enough: the history starts at 4
            ok = c.get("/kv/watch", params={"since_revision": 3, "once": "true"})
            assert [f["id"] for f in frames(ok.text.split("\n")) if "id" in f] == ["4", "5"]
            # a future revision replays nothing
            assert c.get("/kv/watch", params={"since_revision": 99, "once": "true"}).status_code == 200
            assert c.get("/stats").json()["watch_history_size"] == 2
    finally:
        server.stop()


def test_lease_operations_leave_gaps_that_replay_cannot_fill(running):
    # a lease bumps the revision without an event, so "since 0" is no longer replayable
    with client_for(running) as c:
        assert c.post("/leases", json={"ttl_ms": 1000}).status_code == 201
        assert c.get("/kv/watch", params={"since_revision": 0}).status_code == 409


@pytest.mark.parametrize(
    "params",
    [{"since_revision": "-1"}, {"since_revision": "x"}, {"once": "yes"}, {"timeout_ms": "-5"}],
)
def test_invalid_watch_parameters(running, params):
    with client_for(running) as c:
        answer = c.get("/kv/watch", params=params)
    assert answer.status_code == 400
    assert answer.json() == {"error": "Invalid watch parameters"}


def test_timeout_ms_ends_an_idle_stream(running):
    with client_for(running) as c:
        answer = c.get("/kv/watch", params={"timeout_ms": 50})
    assert answer.status_code == 200
    assert answer.text == ": connected\n\n"


def test_disconnect_frees_the_watcher(running):
    c = client_for(running)
    with c.stream("GET", "/kv/watch") as stream:
        next(stream.iter_lines())
        wait_until(lambda: running.store.watch_stats()["watchers"] == 1)
    c.close()  # hangs up mid-stream
    wait_until(lambda: running.store.watch_stats()["watchers"] == 0)


def test_stop_ends_open_streams(running):
    c = client_for(running)
    with c.stream("GET", "/kv/watch") as stream:
        next(stream.iter_lines())
        wait_until(lambda: running.store.watch_stats()["watchers"] == 1)
        running.stop()  # must return although a stream is open
        assert running.store.watch_stats()["watchers"] == 0
    c.close()
