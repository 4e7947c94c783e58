"""Hostile requests: odd ``next`` targets, foreign origins, and what the probes tell strangers."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.redis_server import free_port
from tests.support.webapp import csrf_token, login, make_app


@pytest.fixture(scope="module")
def running():
    with start_devstore(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def store(running):
    provider = ToskaStoreProvider(running.url)
    yield provider
    provider.close()


@pytest.fixture
def client(store):
    return make_app(store).test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


# --- next: only same-site paths, never a 500 ------------------------------------------------

# as the server decodes them: ?next=/%0D%0A... arrives as "/\r\n..."
HOSTILE_NEXT = [
    "/\r\nSet-Cookie: x=y",          # header injection (was a 500)
    "/services\n",
    "/\t/evil.example",               # browsers drop tabs: //evil.example
    "/\\evil.example",               # browsers read /\ as //
    "//evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "services",
    "/services\x7f",
    "/login",                         # no loop back to the form
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_a_hostile_next_is_ignored_never_a_500(client, target):
    form = client.get(f"/login?next={quote(target, safe='')}")
    assert form.status_code == 200
    assert 'name="next"' not in text(form)
    response = client.post(f"/login?next={quote(target, safe='')}", data={
        "username": "ed", "password": "ed-pass", "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/services"


def test_a_next_from_the_form_body_with_a_newline_is_ignored(client):
    response = client.post("/login", data={
        "username": "ed", "password": "ed-pass", "next": "/services\r\nX-Evil: 1",
        "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/services"
    assert "X-Evil" not in response.headers


def test_a_next_with_non_ascii_characters_is_followed_percent_encoded(client):
    response = client.post("/login", data={
        "username": "ed", "password": "ed-pass", "next": "/key?key=ünï:ключ",
        "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/key?key=" + quote("ünï:ключ", safe=":")
    assert location.isascii()


def test_a_page_with_a_raw_byte_in_its_query_returns_there_after_login(client):
    response = client.get("/key?key=svc:%FF")
    assert response.status_code == 302
    login_page = response.headers["Location"]
    after = client.post(login_page, data={"username": "ed", "password": "ed-pass",
                                          "csrf_token": csrf_token(client)})
    assert after.headers["Location"] == "/key?key=svc:%FF"


# --- /readyz: status for everyone, the store only for operators ---------------------------

def test_anonymous_readiness_tells_only_the_status(client, running):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}
    assert running.url.split("//")[1] not in text(response)


def test_an_operator_sees_which_store_is_ready(client, store):
    login(client)
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready" and body["store"] == store.name


def test_an_unreachable_store_is_named_to_operators_and_the_log_only(caplog):
    address = f"127.0.0.1:{free_port()}"
    provider = ToskaStoreProvider(f"http://{address}", timeout=1.0)
    try:
        client = make_app(provider).test_client()
        with caplog.at_level(logging.WARNING):
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json() == {"status": "unavailable"}
        assert address in caplog.text
        login(client)
        detail = client.get("/readyz").get_json()
        assert detail["status"] == "unavailable" and address in detail["store"] + detail["error"]
    finally:
        provider.close()


# --- unsafe methods must come from this dashboard's own pages -------------------------------

def logout_from(client, **headers: str):
    token = csrf_token(client, "/services")
    return client.post("/logout", data={"csrf_token": token}, headers=headers)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://localhost:8080"},               # another port is another origin
    {"Origin": "https://localhost"},                   # another scheme
    {"Origin": "null"},                                # sandboxed or opaque sender
    {"Referer": "http://evil.example/page"},
    {"Origin": "http://evil.example", "Referer": "http://localhost/services"},
])
def test_a_valid_token_from_another_origin_is_refused_and_changes_nothing(client, headers):
    login(client)
    response = logout_from(client, **headers)
    assert response.status_code == 400
    assert "Request from another site refused" in text(response)
    assert "nothing was changed" in text(response)
    assert client.get("/services").status_code == 200  # still logged in


@pytest.mark.parametrize("headers", [
    {},                                                # no header: the CSRF token decides
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST:80"},
    {"Referer": "http://localhost/services?x=1"},
])
def test_requests_from_the_dashboard_itself_pass(client, headers):
    login(client)
    assert logout_from(client, **headers).status_code == 302
    assert client.get("/services").status_code == 302  # logged out


def test_a_login_form_posted_from_another_site_is_refused(client):
    response = client.post("/login", headers={"Origin": "http://evil.example"}, data={
        "username": "ed", "password": "ed-pass", "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert client.get("/services").status_code == 302


@pytest.mark.parametrize(("hops", "status"), [(1, 302), (0, 400)])
def test_behind_the_ingress_the_origin_is_the_forwarded_one(store, hops, status):
    client = make_app(store, dashboard={"ForwardedProxies": hops}).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.example"}
    page = client.get("/login", headers=forwarded)
    assert page.status_code == 200
    token = csrf_token(client)
    response = client.post("/login", headers={
        **forwarded, "Origin": "https://dash.example", "Referer": "https://dash.example/login"},
        data={"username": "ed", "password": "ed-pass", "csrf_token": token})
    assert response.status_code == status


def test_an_htmx_post_after_the_session_expired_is_sent_to_log_in(devstore_provider):
    from tests.support.webapp import make_app

    client = make_app(devstore_provider).test_client()
    answer = client.post("/mget", data={"keys": "a"}, headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/mget"})
    assert answer.status_code == 401 and "/login" in answer.headers["HX-Redirect"]
    assert "next=/mget" in answer.headers["HX-Redirect"]
