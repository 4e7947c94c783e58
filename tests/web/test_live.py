"""Live changes: the providers' change streams and the dashboard's SSE streams, on real servers.

ToskaStore through the dev store (release main has ``/kv/watch``; 0.9.1 has none), Redis
through a real ``redis-server`` whose notifications the fixture turns on with CONFIG SET.
"""

from __future__ import annotations

import time

import httpx
import pytest

from dashboard.devstore import DevStore, start_devstore
from dashboard.stores import errors
from dashboard.stores.mutations import NO_TTL, TtlChange
from dashboard.stores.redis.provider import RedisProvider
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from dashboard.stores.toskastore.watch import WatchStream
from dashboard.web import live
from tests.support.live import login_http, read_until, serve_app
from tests.support.redis_server import RedisServer
from tests.support.webapp import make_app

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def drain(stream, count: int, timeout_s: float = 5.0) -> list:
    """``count`` events (fewer only if the deadline passes first)."""
    events = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        event = stream.next_event(0.2)
        if event is not None:
            events.append(event)
    return events


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def toska():
    server = start_devstore(port=0)
    provider = ToskaStoreProvider(server.url)
    yield server, provider
    provider.close()
    server.stop()


@pytest.fixture(scope="module")
def notifying_redis():
    with RedisServer() as server:
        with server.client() as client:
            client.config_set("notify-keyspace-events", "KEA")
        provider = RedisProvider(host=server.host, port=server.port, db=3)
        yield server, provider
        provider.close()


# --- ToskaStore ---------------------------------------------------------------------------

def test_toskastore_main_streams_changes_in_order(toska, prefix):
    server, provider = toska
    assert provider.capabilities().watch and provider.watch_unavailable_reason() is None
    with provider.watch(prefix) as stream:
        provider.put(prefix + "a", "1", ttl=NO_TTL)
        server.store.put("zz" + prefix, "not under the prefix")
        provider.put(prefix + "b", "x" * 10_000, ttl=TtlChange.set(60_000))
        provider.delete(prefix + "a")
        events = drain(stream, 3)
        assert stream.next_event(0.3) is None
    assert [(e.op, e.key[len(prefix):]) for e in events] == [
        ("put", "a"), ("put", "b"), ("delete", "a")]
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    big = events[1]
    assert big.value_size == 10_000 and len(big.value) <= 4096 and big.partial
    assert big.ttl_known and 0 < big.ttl_ms <= 60_000 and big.version == 1


def test_toskastore_expiry_is_an_expire_event(toska, prefix):
    server, provider = toska
    with provider.watch(prefix) as stream:
        server.store.put(prefix + "short", "1", ttl_ms=1)
        time.sleep(0.01)
        server.store.cleanup_expired()
        events = drain(stream, 2)
    assert [(e.op, e.key) for e in events] == [("put", prefix + "short"),
                                               ("expire", prefix + "short")]


def test_nothing_lost_or_doubled_across_reconnects(toska, prefix):
    """The upstream stream ends when idle (timeout_ms) and is cut once by force; the reader
    reconnects with the last revision, and every write arrives exactly once, in order."""
    server, provider = toska
    provider.capabilities()
    stream = WatchStream(provider, prefix, None, idle_ms=150)
    try:
        for burst in range(4):
            for i in range(5):
                server.store.put(f"{prefix}k{burst}-{i}", str(i))
            time.sleep(0.3)  # longer than idle_ms: the server ends the stream meanwhile
            if burst == 1:
                stream._shutdown()  # a dropped connection: the reader must reconnect
                for i in range(3):  # written while it is away: replayed on reconnect
                    server.store.put(f"{prefix}away-{i}", "x")
        events = drain(stream, 4 * 5 + 3, timeout_s=10)
        assert stream.connections >= 3, "the stream never reconnected"
        keys = [e.key for e in events]
        assert len(keys) == 23 and len({e.revision for e in events}) == 23
        revisions = [e.revision for e in events]
        assert revisions == sorted(revisions)
        assert {k[len(prefix):] for k in keys} == (
            {f"k{b}-{i}" for b in range(4) for i in range(5)} | {f"away-{i}" for i in range(3)})
        assert stream.next_event(0.3) is None  # nothing doubled after the last one
    finally:
        stream.close()
    stream._thread.join(timeout=5)
    assert not stream._thread.is_alive(), "the reader did not stop after close()"


def test_resuming_from_a_revision_replays_what_was_missed(toska, prefix):
    server, provider = toska
    with provider.watch(prefix) as stream:
        provider.put(prefix + "one", "1", ttl=NO_TTL)
        (first,) = drain(stream, 1)
    provider.put(prefix + "two", "2", ttl=NO_TTL)  # nobody is watching
    with provider.watch(prefix, since_revision=first.revision) as resumed:
        provider.put(prefix + "three", "3", ttl=NO_TTL)
        events = drain(resumed, 2)
    assert [e.key[len(prefix):] for e in events] == ["two", "three"]


def test_history_gone_is_a_history_gone_error():
    store = DevStore(watch_history_limit=2)
    with start_devstore(port=0, store=store) as server:
        for i in range(5):
            store.put("k", str(i))
        provider = ToskaStoreProvider(server.url)
        try:
            with pytest.raises(errors.HistoryGone) as info:
                provider.watch("", since_revision=0)
            assert "409" in str(info.value) and info.value.kind == "history-gone"
        finally:
            provider.close()


@pytest.mark.parametrize("release", ["0.9.1", "0.8"])
def test_releases_without_watch_say_why(release):
    with start_devstore(port=0, release=release) as server:
        provider = ToskaStoreProvider(server.url)
        try:
            server.store.put("watch", "a key named watch must not look like a feed")
            assert not provider.capabilities().watch
            reason = provider.watch_unavailable_reason()
            assert "no change feed" in reason and "main-branch" in reason
            with pytest.raises(errors.Unsupported):
                provider.watch("")
        finally:
            provider.close()


def test_close_stops_an_idle_reader_promptly(toska, prefix):
    _server, provider = toska
    stream = provider.watch(prefix)
    time.sleep(0.1)
    started = time.monotonic()
    stream.close()
    stream._thread.join(timeout=5)
    assert not stream._thread.is_alive()
    assert time.monotonic() - started < 2  # not the idle timeout (5 s): the socket was shut


# --- Redis ---------------------------------------------------------------------------------

def test_redis_without_notifications_has_no_watch_and_says_why():
    with RedisServer() as server:
        provider = RedisProvider(host=server.host, port=server.port)
        try:
            assert not provider.capabilities().watch
            reason = provider.watch_unavailable_reason()
            assert "notify-keyspace-events" in reason and "empty (off)" in reason
            with pytest.raises(errors.Unsupported):
                provider.watch("")
        finally:
            provider.close()


def test_redis_refused_config_get_says_it_could_not_be_checked():
    with RedisServer() as server:
        with server.client() as client:
            client.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all",
                                   "-config")
        provider = RedisProvider(host=server.host, port=server.port, username="app",
                                 password="app-pw")
        try:
            reason = provider.watch_unavailable_reason()
            assert not provider.capabilities().watch
            assert "could not be checked" in reason and "CONFIG GET" in reason
        finally:
            provider.close()


def test_redis_notifications_stream_puts_deletes_and_expiries(notifying_redis, prefix):
    server, provider = notifying_redis
    glob_prefix = prefix + "a*["  # glob characters in the prefix are literal
    assert provider.capabilities().watch and provider.watch_unavailable_reason() is None
    with provider.watch(glob_prefix) as stream:
        provider.put(glob_prefix + "one", "1", ttl=NO_TTL)
        provider.put(prefix + "ab", "not under the prefix", ttl=NO_TTL)
        provider.put(glob_prefix + "big", "y" * 9000, ttl=TtlChange.set(60_000))
        provider.delete(glob_prefix + "one")
        provider.put(glob_prefix + "short", "1", ttl=TtlChange.set(50))
        events = drain(stream, 5)
    assert [(e.op, e.key[len(glob_prefix):]) for e in events] == [
        ("put", "one"), ("put", "big"), ("delete", "one"), ("put", "short"), ("expire", "short")]
    assert [e.revision for e in events] == [1, 2, 3, 4, 5]
    big = events[1]
    assert big.value_size == 9000 and big.partial and 0 < big.ttl_ms <= 60_000


def test_redis_resume_and_dropped_connection_say_events_were_missed(notifying_redis, prefix):
    server, provider = notifying_redis
    with provider.watch(prefix, since_revision=7) as stream, pytest.raises(errors.HistoryGone):
        stream.next_event(1)
    with provider.watch(prefix) as stream:
        with server.client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        with pytest.raises(errors.HistoryGone) as info:
            drain(stream, 1)
        assert "may have been missed" in str(info.value)


# --- the dashboard's streams ----------------------------------------------------------------

def test_stream_cap_is_enforced_and_a_gone_browser_frees_its_slot(toska, prefix):
    _server, provider = toska
    app = make_app(provider, dashboard={"MaxLiveStreams": 1})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as first, \
            httpx.Client(base_url=url, timeout=10) as second:
        login_http(first)
        login_http(second)
        with first.stream("GET", "/live/stream", params={"prefix": prefix}) as held:
            assert held.status_code == 200
            assert held.headers["content-type"].startswith("text/event-stream")
            assert held.headers["x-accel-buffering"] == "no"
            assert "no-store" in held.headers["cache-control"]
            lines = held.iter_lines()
            assert next(lines).startswith("retry:")
            wait_for(lambda: live.slots(app).open == 1, what="the slot to be taken")
            # the status first: past a missing cap this would stream forever, not fail
            with second.stream("GET", "/live/stream", params={"prefix": prefix}) as refused:
                assert refused.status_code == 503, "a stream was served past the cap"
                text = refused.read().decode()
            assert "Dashboard__MaxLiveStreams" in text and "limit of 1" in text
            page = second.get("/live", params={"prefix": prefix})
            assert page.status_code == 503 and 'data-testid="live-full"' in page.text
            provider.put(prefix + "seen", "1", ttl=NO_TTL)
            read_until(lines, lambda line: line.startswith("event: change"))
        # the client hung up: the next keepalive fails and the slot is freed
        wait_for(lambda: live.slots(app).open == 0, what="the slot to be freed")
        assert second.get("/live", params={"prefix": prefix}).status_code == 200


def test_stores_without_watch_show_the_unavailable_message():
    with start_devstore(port=0, release="0.9.1") as server:
        server.store.put("svc:k", "v")
        provider = ToskaStoreProvider(server.url)
        app = make_app(provider)
        client = app.test_client()
        from tests.support.webapp import login

        login(client)
        page = client.get("/live?prefix=svc:")
        body = page.get_data(as_text=True)
        assert page.status_code == 200 and "Live view unavailable because" in body
        assert "sse-connect" not in body and "v0.9.1" in body
        key_page = client.get("/key?key=svc:k").get_data(as_text=True)
        assert "Live updates unavailable because" in key_page and "sse-connect" not in key_page
        browse = client.get("/browse?prefix=svc:").get_data(as_text=True)
        assert 'data-testid="follow-unavailable"' in browse
        answer = client.get("/live/stream?prefix=svc:")
        assert answer.status_code == 200 and "event: unavailable" in answer.get_data(as_text=True)
        assert live.slots(app).open == 0
        provider.close()


def test_redis_without_notifications_shows_why_on_the_feed():
    with RedisServer() as server:
        provider = RedisProvider(host=server.host, port=server.port)
        client = make_app(provider).test_client()
        from tests.support.webapp import login

        login(client)
        body = client.get("/live?prefix=svc:").get_data(as_text=True)
        assert "Live view unavailable because keyspace notifications are off" in body
        provider.close()


@pytest.mark.parametrize("mode", ["feed", "follow", "key"])
def test_stream_fragments_escape_hostile_keys_and_values(toska, prefix, mode):
    server, provider = toska
    key = prefix + HOSTILE
    server.store.put(key, HOSTILE)
    since = server.store.revision - 1
    server.store.delete(key)
    app = make_app(provider)
    client = app.test_client()
    from tests.support.webapp import login

    login(client)
    query = {"prefix": prefix, "mode": mode, "since": since, "once": 1}
    if mode == "key":
        query["key"] = key
    answer = client.get("/live/stream", query_string=query)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and body.count("\nid: ") == 2, body
    assert "<script>" not in body and "<img" not in body
    if mode != "key":  # the key page's notice does not repeat the key
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert live.slots(app).open == 0


@pytest.mark.slow
def test_the_dashboard_reconnects_with_the_last_revision(prefix):
    """The store goes away under an open live page and comes back: the page is told, and
    the stream reopens from the last revision it sent, so a write made meanwhile arrives."""
    store = DevStore()
    server = start_devstore(port=0, store=store)
    port = int(server.url.rsplit(":", 1)[1])
    provider = ToskaStoreProvider(server.url, timeout=2)
    app = make_app(provider)
    try:
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            login_http(client)
            seen: list[str] = []
            told = False
            with client.stream("GET", "/live/stream", params={"prefix": prefix}) as held:
                lines = held.iter_lines()
                wait_for(lambda: live.slots(app).open == 1, what="the stream to open")
                store.put(prefix + "before", "1")
                deadline = time.monotonic() + 30  # keepalives never let a read time out
                down = False
                for line in lines:
                    assert time.monotonic() < deadline, f"timed out; rows seen: {seen}, told: {told}"
                    if line.startswith("data: <tr"):
                        seen.append(line.split('data-key="', 1)[1].split('"', 1)[0])
                        if len(seen) == 1:
                            server.stop()
                            down = True
                            store.put(prefix + "during", "2")  # nobody is watching
                    if 'data-testid="live-store-error"' in line:
                        told = True
                        if down:  # back only once the page was told: not a race with a
                            # fixed sleep, which a loaded machine (xdist workers) loses
                            server = start_devstore(port=port, store=store)
                            down = False
                    if len(seen) == 2:
                        break
            assert seen == [prefix + "before", prefix + "during"]
            assert told, "the page was not told that live updates were interrupted"
    finally:
        provider.close()
        server.stop()


@pytest.mark.slow
def test_redis_cluster_streams_changes_from_every_primary(prefix):
    from tests.support.redis_cluster import RedisClusterServers

    with RedisClusterServers() as cluster:
        provider = RedisProvider(endpoints=cluster.endpoints)
        try:
            assert not provider.capabilities().watch  # off until every primary has it
            for _host, port in cluster.endpoints:
                with cluster.node_client(port) as node:
                    node.config_set("notify-keyspace-events", "KEA")
            provider._watch_status_cache = None  # re-check now, not in 15 s
            assert provider.capabilities().watch
            keys = [f"{prefix}{i}" for i in range(30)]
            assert len({cluster.node_for_key(k) for k in keys}) == 3  # every primary holds some
            with provider.watch(prefix) as stream:
                for key in keys:
                    provider.put(key, "v", ttl=NO_TTL)
                events = drain(stream, len(keys), timeout_s=10)
            assert sorted(e.key for e in events) == sorted(keys)
            assert {e.op for e in events} == {"put"}
        finally:
            provider.close()


def test_the_redis_feed_carries_events_through_the_dashboard(notifying_redis, prefix):
    _server, provider = notifying_redis
    app = make_app(provider)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        login_http(client)
        with client.stream("GET", "/live/stream", params={"prefix": prefix}) as held:
            lines = held.iter_lines()
            assert next(lines).startswith("retry:")
            provider.put(prefix + "k", "hello", ttl=NO_TTL)
            provider.delete(prefix + "k")
            ops = []
            deadline = time.monotonic() + 15  # keepalives never let a read time out
            for line in lines:
                assert time.monotonic() < deadline, f"timed out; ops seen: {ops}"
                if line.startswith("data: <tr"):
                    ops.append(line.split('data-op="', 1)[1].split('"', 1)[0])
                if len(ops) == 2:
                    break
        assert ops == ["put", "delete"]
        wait_for(lambda: live.slots(app).open == 0, what="the slot to be freed")


@pytest.mark.parametrize("store", ["toska", "redis"])
def test_a_key_page_hears_of_a_change_made_before_its_stream_connected(toska, notifying_redis,
                                                                       prefix, store):
    """Between rendering a key page and its stream opening, the key may change: said at once."""
    provider = toska[1] if store == "toska" else notifying_redis[1]
    key = prefix + "seen"
    provider.put(key, '{"a":1}', ttl=NO_TTL)
    client = make_app(provider).test_client()
    from tests.support.webapp import login

    login(client)
    page = client.get("/key", query_string={"key": key}).get_data(as_text=True)
    seen = page.split("seen=", 1)[1].split('"', 1)[0]
    assert seen == live.seen_token(provider.get(key)) != ""
    query = {"mode": "key", "key": key, "seen": seen, "once": 1}
    quiet = client.get("/live/stream", query_string=query).get_data(as_text=True)
    assert "event: changed" not in quiet and "event: gone" not in quiet

    provider.put(key, '{"a":2}', ttl=NO_TTL)
    changed = client.get("/live/stream", query_string=query).get_data(as_text=True)
    assert "event: changed" in changed, changed
    provider.delete(key)
    gone = client.get("/live/stream", query_string=query).get_data(as_text=True)
    assert "event: gone" in gone and "before this page connected" in gone, gone


@pytest.fixture(params=["devstore", "toskastore"])
def watched(request):
    """The dev store (main), and a real ToskaStore server where ``TOSKASTORE_URL`` names one."""
    from tests.support.backends import start_backend

    with start_backend(request.param) as backend:
        yield backend


def test_changes_and_replay_on_the_dev_store_and_a_real_toskastore(watched, prefix):
    """What the dev store models is what a real server does: order, versions, replay."""
    provider = watched.provider
    if not provider.capabilities().watch:  # a real 0.8 or v0.9.1 server: said, not spun
        assert "no change feed" in provider.watch_unavailable_reason()
        return
    key = prefix + "watched key/é"
    stream = provider.watch(prefix)
    try:
        provider.put(key, '{"n":1}', ttl=NO_TTL)
        provider.put(key, '{"n":2}', ttl=NO_TTL)
        provider.delete(key)
        events = drain(stream, 3)
    finally:
        stream.close()
    assert [(e.op, e.key) for e in events] == [("put", key), ("put", key), ("delete", key)]
    assert [e.version for e in events[:2]] == [1, 2] and events[1].value == '{"n":2}'
    assert events[0].revision < events[1].revision < events[2].revision
    replayed = provider.watch(prefix, since_revision=events[0].revision)
    try:
        again = drain(replayed, 2)
    finally:
        replayed.close()
    assert [(e.op, e.revision) for e in again] == [(e.op, e.revision) for e in events[1:]]
