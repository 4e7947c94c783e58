"""Long-lived responses re-check who is asking and hold nothing past their close.

Issue 15, items 1 and 3, on the real dev store and a real redis-server: an open live stream
ends with its ``end`` event once its session is gone (logout in another tab or on another
replica, idle timeout, an operator removed or changed), delivering no value after it; HEAD
takes no slot; the live-stream cap refuses at once. Generated from the URL map: every route
with HEAD holds no slot afterwards, and every streaming route ends after logout.

Every stream is read with a deadline (``read_until``) and an httpx read timeout, so a
regression fails within seconds instead of hanging.
"""

from __future__ import annotations

import time

import httpx
import pytest

from dashboard.stores.mutations import NO_TTL
from dashboard.web import live
from dashboard.web.auth import Operator
from tests.support.backends import start_backend
from tests.support.clock import Clock
from tests.support.live import (
    login_http,
    logout_http,
    read_until,
    same_browser,
    serve_app,
)
from tests.support.redis_server import RedisServer
from tests.support.routes import (
    ROUTES,
    Scene,
    collected_routes,
    operator_client,
    route_id,
    send,
    spec_for,
)
from tests.support.webapp import make_app

#: a single read on a stream never waits longer (keepalives come every 2 s)
READ_TIMEOUT = 8


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        yield backend


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def is_end(line: str) -> bool:
    return line == "event: end"


def _open_and_see_a_value(app, client, prefix: str):
    """Open a feed stream of ``prefix`` and see a value written under it (it works)."""
    held = client.stream("GET", "/live/stream", params={"prefix": prefix})
    response = held.__enter__()
    assert response.status_code == 200, response.read()
    lines = response.iter_lines()
    read_until(lines, lambda line: line.startswith("retry:"))
    wait_for(lambda: live.slots(app).open == 1, what="the stream's slot")
    app.extensions["kv_provider"].put(prefix + "before", "VALUE-BEFORE", ttl=NO_TTL)
    read_until(lines, lambda line: "VALUE-BEFORE" in line)
    return held, lines


def _ends_without_values(app, held, lines, prefix: str, why: str) -> None:
    """A value written now never reaches the stream, which ends with its ``end`` event."""
    app.extensions["kv_provider"].put(prefix + "after", "VALUE-AFTER", ttl=NO_TTL)
    try:
        seen = read_until(lines, is_end, never=lambda line: "VALUE-AFTER" in line)
    finally:
        held.__exit__(None, None, None)
    told = "\n".join(seen)
    assert "event: unavailable" in told and why in told, told
    wait_for(lambda: live.slots(app).open == 0, what="the slot to be given back")


# --- item 1: a stream outlives its session ----------------------------------------------------

def test_a_stream_ends_when_its_session_logs_out_in_another_tab(store, prefix):
    app = make_app(store.provider)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
        login_http(client)
        held, lines = _open_and_see_a_value(app, client, prefix)
        with same_browser(url, client) as other_tab:
            logout_http(other_tab)
        _ends_without_values(app, held, lines, prefix, "your session ended")


def test_a_stream_ends_when_its_session_times_out(store, prefix):
    clock = Clock()
    app = make_app(store.provider, dashboard={"SessionIdleMinutes": 30}, KV_CLOCK=clock)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
        login_http(client)
        held, lines = _open_and_see_a_value(app, client, prefix)
        clock.advance(31)  # nothing used the session meanwhile: a stream is not a use
        _ends_without_values(app, held, lines, prefix, "your session ended")


@pytest.mark.parametrize("change", ["removed", "role", "password"])
def test_a_stream_ends_when_its_operator_is_removed_or_changed(store, prefix, change):
    app = make_app(store.provider)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
        login_http(client)
        held, lines = _open_and_see_a_value(app, client, prefix)
        operators = dict(app.extensions["operators"])
        ed = operators.pop("ed")
        if change == "role":
            operators["ed"] = Operator("ed", "viewer", ed.password_hash)
        elif change == "password":
            operators["ed"] = Operator("ed", ed.role, ed.password_hash + "0")
        app.extensions["operators"] = operators  # as a reloaded users configuration
        _ends_without_values(app, held, lines, prefix, "your account changed")


def test_a_stream_ends_when_another_replica_logs_its_session_out(store, prefix, redis_server):
    """The check reads the shared session storage, not the copy the stream began with."""
    shared = {"SessionStorage": f"redis://127.0.0.1:{redis_server.port}/5"}
    one, two = make_app(store.provider, dashboard=shared), make_app(store.provider,
                                                                    dashboard=shared)
    with serve_app(one) as url_one, serve_app(two) as url_two, \
            httpx.Client(base_url=url_one, timeout=READ_TIMEOUT) as client:
        login_http(client)
        held, lines = _open_and_see_a_value(one, client, prefix)
        with same_browser(url_two, client) as on_two:
            logout_http(on_two)
        _ends_without_values(one, held, lines, prefix, "your session ended")


def test_a_stream_ends_when_the_session_storage_stops_answering(store, prefix):
    """Who is asking cannot be checked: the stream ends (as every page answers 503)."""
    with RedisServer() as sessions:
        app = make_app(store.provider, dashboard={
            "SessionStorage": f"redis://127.0.0.1:{sessions.port}/0", "StoreTimeoutSeconds": 1})
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
            login_http(client)
            held, lines = _open_and_see_a_value(app, client, prefix)
            sessions.stop()
            _ends_without_values(app, held, lines, prefix, "did not answer")


def test_a_stream_that_keeps_its_session_keeps_streaming(store, prefix):
    """The re-check ends only streams whose session is gone: another operator's logout, or
    this operator's other session, changes nothing."""
    app = make_app(store.provider)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client, \
            httpx.Client(base_url=url, timeout=READ_TIMEOUT) as elsewhere:
        login_http(client)
        login_http(elsewhere)  # ed again, in another browser: another session
        held, lines = _open_and_see_a_value(app, client, prefix)
        try:
            logout_http(elsewhere)
            read_until(lines, lambda line: line == ": keepalive", never=is_end)
            store.provider.put(prefix + "still", "VALUE-STILL", ttl=NO_TTL)
            read_until(lines, lambda line: "VALUE-STILL" in line, never=is_end)
        finally:
            held.__exit__(None, None, None)


# --- item 3: HEAD and the slots --------------------------------------------------------------

def test_head_takes_no_slot_and_the_live_view_stays_on(store, prefix):
    app = make_app(store.provider, dashboard={"MaxLiveStreams": 2})
    client = operator_client(app, "vi")  # any viewer
    for _ in range(5):
        answer = client.head("/live/stream", query_string={"prefix": prefix})
        answer.close()
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert live.slots(app).open == 0
    streamed = client.get("/live/stream", query_string={"prefix": prefix, "once": 1})
    assert streamed.status_code == 200 and "event: end" in streamed.get_data(as_text=True)
    assert live.slots(app).open == 0


def test_head_over_http_leaves_no_slot_held(store, prefix):
    app = make_app(store.provider, dashboard={"MaxLiveStreams": 1})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
        login_http(client)
        for _ in range(3):
            assert client.head("/live/stream", params={"prefix": prefix}).status_code == 200
        assert live.slots(app).open == 0
        with client.stream("GET", "/live/stream", params={"prefix": prefix}) as held:
            assert held.status_code == 200  # not 503: the one slot is free
            read_until(held.iter_lines(), lambda line: line.startswith("retry:"))
        wait_for(lambda: live.slots(app).open == 0, what="the slot to be given back")


def test_a_slot_comes_back_when_the_response_closes_unread(store, prefix):
    """Closed before its body was read (a client gone at once): the slot comes back."""
    app = make_app(store.provider, dashboard={"MaxLiveStreams": 1})
    client = operator_client(app, "ed")
    for _ in range(3):
        response = client.get("/live/stream", query_string={"prefix": prefix}, buffered=False)
        assert response.status_code == 200
        response.close()
        assert live.slots(app).open == 0


def test_the_live_stream_cap_refuses_at_once(store, prefix):
    """Past ``MaxLiveStreams`` a stream is refused (503) at once; checked on the status, so
    a missing cap fails here in a moment instead of streaming forever."""
    app = make_app(store.provider, dashboard={"MaxLiveStreams": 1})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=READ_TIMEOUT) as first, \
            httpx.Client(base_url=url, timeout=READ_TIMEOUT) as second:
        login_http(first)
        login_http(second)
        with first.stream("GET", "/live/stream", params={"prefix": prefix}) as held:
            read_until(held.iter_lines(), lambda line: line.startswith("retry:"))
            wait_for(lambda: live.slots(app).open == 1, what="the first stream's slot")
            with second.stream("GET", "/live/stream", params={"prefix": prefix}) as extra:
                assert extra.status_code == 503, "a second stream was served past the cap of 1"
                assert "Dashboard__MaxLiveStreams" in extra.read().decode()
            assert live.slots(app).open == 1
        wait_for(lambda: live.slots(app).open == 0, what="the slot to be given back")


# --- generated from the URL map ----------------------------------------------------------------

def _head_routes() -> list[tuple[str, str]]:
    """(endpoint, "GET") of every rule that answers HEAD (every GET rule, in Flask)."""
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    app = make_app(ToskaStoreProvider("http://127.0.0.1:9", timeout=0.1))
    found = {(rule.endpoint, "GET") for rule in app.url_map.iter_rules()
             if "HEAD" in (rule.methods or ())}
    return sorted(found)


HEAD_ROUTES = _head_routes()


def test_the_head_matrix_covers_the_live_stream():
    assert ("live.stream", "GET") in HEAD_ROUTES
    assert set(HEAD_ROUTES) <= set(collected_routes())


@pytest.mark.parametrize("route", HEAD_ROUTES, ids=route_id)
def test_every_route_with_head_holds_no_slot_after(store, prefix, route):
    app = make_app(store.provider, dashboard={"MaxLiveStreams": 1})  # its own slots
    scene = Scene(app, store, prefix).seed()
    call = spec_for(route).build(scene)
    call = type(call)("HEAD", call.path, {k: v for k, v in call.query.items() if k != "once"})
    client = operator_client(app, "ed")
    answer = send(client, call)
    assert answer.status_code < 500, f"HEAD {call.url}: {answer.status_code}"
    assert live.slots(app).open == 0, f"HEAD {call.url} left a live slot held"


def _streaming_routes(store) -> list[tuple[str, str]]:
    """GET routes whose answer is a long-lived event stream, found by calling each one."""
    app = make_app(store.provider)
    client = operator_client(app, "ed")
    found = []
    scene = Scene(app, store, "strm:").seed()
    for route in collected_routes():
        if route[1] != "GET":
            continue
        call = spec_for(route).build(scene)
        response = client.get(call.url, buffered=False)
        if response.is_streamed and response.mimetype == "text/event-stream":
            found.append(route)
        response.close()
    assert live.slots(app).open == 0
    return found


def test_every_streaming_route_ends_with_end_after_logout(store, prefix):
    streaming = _streaming_routes(store)
    assert ("live.stream", "GET") in streaming, streaming
    app = make_app(store.provider)
    scene = Scene(app, store, prefix).seed()
    for route in streaming:
        call = spec_for(route).build(scene)
        query = {k: v for k, v in call.query.items() if k != "once"}  # stays open
        with serve_app(app) as url, \
                httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client:
            login_http(client)
            with client.stream("GET", call.path, params=query) as held:
                assert held.status_code == 200, f"{route_id(route)}: {held.status_code}"
                lines = held.iter_lines()
                read_until(lines, lambda line: line.startswith(("retry:", ": connected")))
                with same_browser(url, client) as other_tab:
                    logout_http(other_tab)
                seen = read_until(lines, is_end)
            assert "your session ended" in "\n".join(seen), f"{route_id(route)}: {seen}"
        wait_for(lambda: live.slots(app).open == 0, what=f"{route_id(route)} to give its slot back")
    assert set(streaming) <= set(ROUTES)
