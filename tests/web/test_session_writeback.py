"""A request in flight never brings back a session deleted meanwhile (issue 15, item 2).

Log in, let the session's touch interval pass, start a request and hold it in flight (its
session is open, its store call not yet made), log out from another tab (or let the session
expire and another request notice it), then let the request finish: it saves its session
(a touch) over a record that is gone. That record must stay gone, on one werkzeug process
(``memory://``) and across gunicorn workers or replicas (two apps sharing files or a Redis).

The request is held by Flask's ``request_started`` signal (after the session was opened)
until the logout is done: the order is fixed, never left to a timing. Every wait and every
thread has a timeout, and threads are asserted finished.
"""

from __future__ import annotations

import threading
import time

import pytest
from flask import request_started

from dashboard.stores.mutations import NO_TTL
from tests.support.clock import Clock
from tests.support.webapp import login, make_app, post_form

COOKIE = "kvdash_session"
HOLD_S = 10.0


@pytest.fixture(scope="module")
def store(devstore_provider):
    return devstore_provider


def browser_with(app, cookie: str):
    other = app.test_client()
    other.set_cookie(COOKIE, cookie)
    return other


def logged_in(client) -> bool:
    return client.get("/services").status_code == 200


def two_workers(store, storage: str, tmp_path, redis_server, clock):
    """(the app serving the held request, the app the other tab reaches)."""
    if storage == "memory":
        app = make_app(store, KV_CLOCK=clock)  # one werkzeug process
        return app, app
    if storage == "file":
        shared = {"SessionStorage": (tmp_path / "sessions").as_uri()}
    else:
        shared = {"SessionStorage": f"redis://127.0.0.1:{redis_server.port}/6"}
    return (make_app(store, dashboard=shared, KV_CLOCK=clock),
            make_app(store, dashboard=shared, KV_CLOCK=clock))


class Held:
    """One request of ``client`` to ``url`` held in flight, with its session open."""

    def __init__(self, app, client, url: str) -> None:
        self.app, self.client, self.url = app, client, url
        self.started, self.go = threading.Event(), threading.Event()
        self.response = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _hold(self, sender, **_extra) -> None:
        from flask import request

        if request.headers.get("X-Held") == "1":
            self.started.set()
            assert self.go.wait(HOLD_S), "the held request was never let go"

    def _run(self) -> None:
        try:
            self.response = self.client.get(self.url, headers={"X-Held": "1"})
        except BaseException as error:  # shown by finish()
            self.error = error

    def __enter__(self) -> Held:
        request_started.connect(self._hold, self.app)
        self.thread.start()
        assert self.started.wait(HOLD_S), "the request never started"
        return self

    def finish(self):
        self.go.set()
        self.thread.join(HOLD_S)
        assert not self.thread.is_alive(), "the held request did not finish"
        assert self.error is None, self.error
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self.thread.join(HOLD_S)
        request_started.disconnect(self._hold, self.app)


@pytest.mark.parametrize("storage", ["memory", "file", "redis"])
def test_a_request_in_flight_does_not_bring_a_logged_out_session_back(
        store, storage, tmp_path, redis_server):
    clock = Clock()
    worker, other_worker = two_workers(store, storage, tmp_path, redis_server, clock)
    key = f"wb{time.monotonic_ns()}:slow"
    store.put(key, "v", ttl=NO_TTL)
    client = worker.test_client()
    login(client)
    cookie = client.get_cookie(COOKIE).value
    clock.advance(2)  # past the touch interval (60 s): the next request writes "seen"
    with Held(worker, browser_with(worker, cookie), f"/key?key={key}") as held:
        other_tab = browser_with(other_worker, cookie)
        assert post_form(other_tab, "/logout", {}).status_code == 302
        assert not logged_in(browser_with(other_worker, cookie))
        answer = held.finish()
    assert answer.status_code == 200  # it began logged in, and is answered so
    assert not logged_in(browser_with(worker, cookie)), "the old cookie works again"
    assert not logged_in(browser_with(other_worker, cookie)), "the old cookie works again"
    # no Set-Cookie: a late answer must not delete a cookie another tab got meanwhile
    assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize("storage", ["memory", "file", "redis"])
def test_a_request_in_flight_does_not_bring_an_expired_session_back(
        store, storage, tmp_path, redis_server):
    clock = Clock()
    worker, other_worker = two_workers(store, storage, tmp_path, redis_server, clock)
    client = worker.test_client()
    login(client)
    cookie = client.get_cookie(COOKIE).value
    clock.advance(59)  # idle 60 min: still valid when the held request opens it
    with Held(worker, browser_with(worker, cookie), "/services") as held:
        clock.advance(2)  # now idle: the next request ends it for every replica
        assert not logged_in(browser_with(other_worker, cookie))
        answer = held.finish()
    assert answer.status_code == 200
    assert not logged_in(browser_with(worker, cookie)), "the expired session came back"


@pytest.mark.parametrize("storage", ["memory", "file", "redis"])
def test_a_live_session_is_still_touched_and_kept(store, storage, tmp_path, redis_server):
    """Only a deleted record is left alone: a session in use is still kept alive."""
    clock = Clock()
    worker, other_worker = two_workers(store, storage, tmp_path, redis_server, clock)
    client = worker.test_client()
    login(client)
    cookie = client.get_cookie(COOKIE).value
    for _ in range(3):  # 50 minutes apart: each use (a touch) keeps it past the idle hour
        clock.advance(50)
        assert logged_in(browser_with(worker, cookie))
    assert logged_in(browser_with(other_worker, cookie))


@pytest.mark.parametrize("storage", ["memory", "file", "redis"])
def test_the_storage_refreshes_only_records_that_exist(store, storage, tmp_path, redis_server):
    """The storage's own conditional write, on each kind (what save_session relies on)."""
    app, _ = two_workers(store, storage, tmp_path, redis_server, Clock())
    cache = app.session_interface.cache
    key = f"writeback-{storage}-{time.monotonic_ns()}"
    assert cache.replace(key, {"n": 1}, 60) is False
    assert cache.get(key) is None  # not created
    assert cache.set(key, {"n": 1}, timeout=60)
    assert cache.replace(key, {"n": 2}, 60) is True
    assert cache.get(key) == {"n": 2}
    cache.delete(key)
    assert cache.replace(key, {"n": 3}, 60) is False
    assert cache.get(key) is None
