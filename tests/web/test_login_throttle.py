"""Failed logins are throttled per name and per client address; right logins never are."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.webapp import csrf_token, login, make_app

REFUSED = re.compile(r"Too many failed logins; try again in (\d+) s")


@pytest.fixture(scope="module")
def store(devstore_provider):
    return devstore_provider


def attempt(client, name: str, password: str, **headers: str):
    return client.post("/login", headers=headers, data={
        "username": name, "password": password, "csrf_token": csrf_token(client)})


def fail(client, name: str, times: int, **headers: str) -> None:
    for _ in range(times):
        assert attempt(client, name, "wrong", **headers).status_code == 401


def test_the_right_password_is_refused_after_five_failures_for_that_name(store):
    client = make_app(store).test_client()
    fail(client, "ed", 5)
    response = attempt(client, "ed", "ed-pass")
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    match = REFUSED.search(page)
    assert match, page
    assert 1 <= int(match.group(1)) <= 60
    assert response.headers["Retry-After"] == match.group(1)
    assert 'name="password"' in page  # the login page, with the message on it
    assert client.get("/services").status_code == 302  # not logged in


def test_one_names_failures_do_not_lock_out_another_name(store):
    client = make_app(store).test_client()
    fail(client, "vi", 5)
    assert attempt(client, "vi", "vi-pass").status_code == 429
    assert attempt(client, "ed", "ed-pass").status_code == 302


def test_right_logins_are_not_counted(store):
    client = make_app(store).test_client()
    for _ in range(25):  # more than both limits
        login(client)
    fail(client, "ed", 4)
    assert attempt(client, "ed", "ed-pass").status_code == 302


def test_an_address_guessing_many_names_is_stopped(store):
    client = make_app(store).test_client()
    for number in range(20):
        fail(client, f"nobody{number}", 1)
    response = attempt(client, "ed", "ed-pass")
    assert response.status_code == 429
    assert REFUSED.search(response.get_data(as_text=True))


def test_both_limits_broken_show_one_message(store):
    client = make_app(store).test_client()
    fail(client, "ed", 5)
    for number in range(15):
        fail(client, f"nobody{number}", 1)
    page = attempt(client, "ed", "ed-pass").get_data(as_text=True)
    assert len(REFUSED.findall(page)) == 1


@pytest.mark.parametrize(("hops", "blocked"), [(0, True), (1, False)])
def test_behind_the_ingress_the_forwarded_client_address_counts(store, hops, blocked):
    client = make_app(store, dashboard={"ForwardedProxies": hops}).test_client()
    for number in range(20):
        fail(client, f"nobody{number}", 1, **{"X-Forwarded-For": "203.0.113.7"})
    # another client behind the same ingress; only a trusted ingress tells them apart
    response = attempt(client, "ed", "ed-pass", **{"X-Forwarded-For": "198.51.100.9"})
    assert (response.status_code == 429) is blocked
    assert response.status_code in (302, 429)


def test_replicas_count_failures_together_in_redis(store, redis_server):
    shared = {"RateLimitStorage": f"redis://127.0.0.1:{redis_server.port}/5"}
    one = make_app(store, dashboard=shared).test_client()
    two = make_app(store, dashboard=shared).test_client()
    fail(one, "ed", 3)
    fail(two, "ed", 2)
    assert attempt(one, "ed", "ed-pass").status_code == 429
    assert attempt(two, "ed", "ed-pass").status_code == 429
    assert attempt(two, "vi", "vi-pass").status_code == 302


def test_a_redis_session_storage_also_holds_the_counters(store, redis_server):
    shared = {"SessionStorage": f"redis://127.0.0.1:{redis_server.port}/6"}
    one = make_app(store, dashboard=shared).test_client()
    two = make_app(store, dashboard=shared).test_client()
    fail(one, "vi", 5)
    assert attempt(two, "vi", "vi-pass").status_code == 429


def test_the_refusal_ends_when_the_window_has_passed(store):
    app = make_app(store, KV_LOGIN_LIMIT_PER_NAME="2 per 1 second")
    client = app.test_client()
    fail(client, "ed", 2)
    assert attempt(client, "ed", "ed-pass").status_code == 429
    deadline = time.monotonic() + 10
    status = 429
    while status == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = attempt(client, "ed", "ed-pass").status_code
    assert status == 302


def test_a_refused_attempt_keeps_next_and_the_name(store):
    client = make_app(store).test_client()
    fail(client, "ed", 5)
    response = client.post("/login?next=/browse?prefix=a:", data={
        "username": "ed", "password": "ed-pass", "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert 'name="next" value="/browse?prefix=a:"' in page
    assert 'name="username" value="ed"' in page
