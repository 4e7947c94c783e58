"""Bad input and failing stores: a clear answer that names the store and cause, nothing lost."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys

import httpx
import pytest
import redis as redis_lib

from dashboard.devstore import start_devstore
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.stores.redis.provider import RedisProvider
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from dashboard.web.app import create_app
from tests.support.other_servers import HTML_PAGE, NOT_FOUND_JSON, answering_everything
from tests.support.processes import ctrl_c, interruptible, kill_group
from tests.support.redis_server import RedisServer, free_port
from tests.support.webapp import csrf_token, login, make_app, post_form


@pytest.fixture
def toska():
    """Build ToskaStore providers that are closed after the test (no leaked sockets)."""
    made: list[ToskaStoreProvider] = []

    def make(url: str, **options) -> ToskaStoreProvider:
        made.append(ToskaStoreProvider(url, **options))
        return made[-1]

    yield make
    for provider in made:
        provider.close()


def text(response) -> str:
    return response.get_data(as_text=True)


def save(client, key: str, value: str):
    page = text(client.get(f"/key/edit?key={key}"))
    expected = re.search(r'name="expected_version" value="([^"]*)"', page).group(1)
    return post_form(client, "/key/edit", {
        "key": key, "value": value, "ttl_mode": "none", "expected_version": expected,
        "raw": "on", "confirm": "yes"}, token_from=f"/key/edit?key={key}")


@pytest.mark.parametrize(("options", "status", "words"), [
    ({"read_only": True}, 403, "read-only follower"),
    ({"max_body_bytes": 2048}, 400, "too large"),
])
def test_a_refused_write_is_explained_and_loses_nothing(options, status, words, toska):
    with start_devstore(port=0, **options) as running:
        running.store.put("svc:k", "original")
        client = make_app(toska(running.url)).test_client()
        login(client)
        response = save(client, "svc:k", "x" * 4096)
        assert response.status_code == status
        body = text(response)
        assert words in body and running.url in body and "Traceback" not in body
        assert running.store.get("svc:k")["value"] == "original"


def test_a_refused_token_names_the_setting_to_check(toska):
    with start_devstore(port=0, token="right") as running:
        client = make_app(toska(running.url, token="wrong")).test_client()
        login(client)
        response = client.get("/browse?prefix=svc:")
        assert response.status_code == 502
        assert "refused" in text(response) and "AuthToken" in text(response)


def test_a_read_only_token_can_read_but_not_write(toska):
    with start_devstore(port=0, read_token="reader", write_token="writer") as running:
        running.store.put("svc:k", "original")
        client = make_app(toska(running.url, token="reader")).test_client()
        login(client)
        assert client.get("/key?key=svc:k").status_code == 200
        response = save(client, "svc:k", "changed")
        assert response.status_code == 502 and "401" in text(response)
        assert running.store.get("svc:k")["value"] == "original"


def test_a_slow_store_times_out_with_a_clear_message(toska):
    with start_devstore(port=0, delay_ms=1500) as running:
        client = make_app(toska(running.url, timeout=0.3)).test_client()
        login(client)
        response = client.get("/browse?prefix=svc:")
        assert response.status_code == 503
        assert "timed out" in text(response)


def test_rate_limiting_is_reported_as_such(toska):
    with start_devstore(port=0, rate_limit_per_s=1) as running:
        client = make_app(toska(running.url)).test_client()
        login(client)
        responses = [client.get("/browse?prefix=svc:") for _ in range(5)]
        limited = [r for r in responses if r.status_code == 429]
        assert limited, [r.status_code for r in responses]
        assert "rate limiting" in text(limited[0]) and running.url in text(limited[0])


def test_a_huge_form_is_refused_before_reaching_the_store(toska):
    with start_devstore(port=0) as running:
        running.store.put("svc:k", "original")
        app = make_app(toska(running.url), MAX_CONTENT_LENGTH=1024)
        client = app.test_client()
        login(client)
        response = client.post("/key/edit", data={"key": "svc:k", "value": "x" * 5000})
        assert response.status_code == 413
        assert running.store.get("svc:k")["value"] == "original"


def test_redis_collections_are_shown_read_only():
    with RedisServer() as server:
        raw = redis_lib.Redis(host=server.host, port=server.port)
        raw.hset("svc:h", mapping={"a": "1", "b": "<b>2</b>"})
        raw.rpush("svc:l", "x", "y")
        provider = RedisProvider(host=server.host, port=server.port)
        client = make_app(provider).test_client()
        login(client)
        page = text(client.get("/key?key=svc:h"))
        assert 'data-testid="type">hash' in page and "&lt;b&gt;2&lt;/b&gt;" in page
        assert 'data-testid="edit"' not in page
        edit = client.get("/key/edit?key=svc:l")
        assert edit.status_code == 302  # back to the read-only page
        rows = text(client.get("/browse?prefix=svc:"))
        assert "[list (2 items)]" in rows
        raw.set(b"svc:bin\xffkey", b"raw\xfe")  # other software may write any bytes
        rows = text(client.get("/browse?prefix=svc:"))
        assert 'href="/key?key=svc:bin%FFkey"' in rows and "svc:bin\ufffdkey" in rows
        binary = text(client.get("/key?key=svc:bin%FFkey"))
        assert 'data-testid="binary-key"' in binary and 'data-testid="edit"' not in binary
        assert client.get("/key/edit?key=svc:bin%FFkey").status_code == 400
        assert raw.get(b"svc:bin\xffkey") == b"raw\xfe"
        raw.close()
        provider.close()


# --- start-up ---------------------------------------------------------------------------

def test_missing_or_default_secret_refuses_to_start():
    for secret in (None, "changeme", "short"):
        dashboard = {"SecretKey": secret} if secret else {}
        settings = load_settings(None, environ={}, overrides={"Dashboard": dashboard})
        with pytest.raises(ConfigError, match="Dashboard__SecretKey"):
            create_app({"KV_SETTINGS": settings, "KV_PROVIDER": object()})
    demo = load_settings(None, environ={}, overrides={"Dashboard": {"Demo": True}})
    assert create_app({"KV_SETTINGS": demo, "KV_PROVIDER": _NamedProvider()}).secret_key


class _NamedProvider:
    name = "nothing"


def test_users_file_logs_in(tmp_path, toska):
    from werkzeug.security import generate_password_hash

    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"name": "ops", "passwordHash":
                                  generate_password_hash("pw", method="pbkdf2:sha256:1000"),
                                  "role": "viewer"}]))
    with start_devstore(port=0) as running:
        app = make_app(toska(running.url), dashboard={"UsersFile": str(users)})
        client = app.test_client()
        response = client.post("/login", data={"username": "ops", "password": "pw",
                                               "csrf_token": csrf_token(client)})
        assert response.status_code == 302
        assert "ops (viewer)" in text(client.get("/services"))


def test_path_base_serves_under_the_prefix_and_at_the_root(toska):
    with start_devstore(port=0) as running:
        running.store.put("svc:k", "v")
        app = make_app(toska(running.url), dashboard={"PathBase": "/kv"})
        client = app.test_client()
        assert client.get("/kv/healthz").status_code == 200
        redirect = client.get("/kv/services")
        assert redirect.headers["Location"].startswith("/kv/login")
        page = text(client.get("/kv/login"))
        assert 'href="/kv/static/app.css"' in page and 'action="/kv/login"' in page
        assert client.get("/healthz").status_code == 200  # port-forward at the root


def test_demo_command_serves_a_seeded_store(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "stderr.log").open("w")
    # stopped with a Ctrl-C that does not depend on the terminal (pytest may run in the
    # background, where an inherited SIGINT is ignored)
    process = interruptible(
        [sys.executable, "-m", "dashboard.main", "demo", "--port", str(port),
         "--services", "3", "--keys-per-service", "40"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
        env=env)
    try:
        banner = [process.stdout.readline() for _ in range(3)]
        assert f"http://127.0.0.1:{port}/" in banner[0]
        assert "demo / demo" in banner[2]
        # a connection per request: werkzeug's server may close a kept-alive one just as
        # the client reuses it (seen once under load as "disconnected without a response")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:
            login_page = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
            client.post("/login", data={"username": "demo", "password": "demo",
                                        "csrf_token": token})
            services = client.get("/services").text
            assert services.count('data-testid="service-row"') == 3
            # a throwaway store keeps a throwaway trail, not the data directory's
            assert "this process&#39;s memory" in client.get("/audit").text
    finally:
        ctrl_c(process)
        try:
            stopped = process.wait(timeout=10)
        finally:
            kill_group(process)
            process.stdout.close()
            log.close()
    assert stopped == 0, "the demo ends on Ctrl-C"
    said = (tmp_path / "stderr.log").read_text()
    # one line per request, the app's: not werkzeug's access line beside it
    assert said.count("GET services.index -> 200") == 1, said[-2000:]
    assert '"GET /services HTTP/1.1"' not in said



def test_forwarded_headers_are_trusted_only_when_configured(toska):
    with start_devstore(port=0) as running:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/ops/kv"}
        for hops, secure in ((0, False), (1, True)):
            app = make_app(toska(running.url), dashboard={"ForwardedProxies": hops})
            client = app.test_client()
            page = client.get("/login", headers=headers)
            assert ('action="/ops/kv/login"' in text(page)) is secure
            token = re.search(r'name="csrf_token" value="([^"]+)"', text(page)).group(1)
            response = client.post("/login", headers={**headers, "Referer": "https://localhost/"},
                                   data={"username": "ed", "password": "ed-pass",
                                         "csrf_token": token})
            assert ("Secure" in response.headers.get("Set-Cookie", "")) is secure


def test_pages_carry_a_strict_content_security_policy(toska):
    with start_devstore(port=0) as running:
        client = make_app(toska(running.url)).test_client()
        policy = client.get("/login").headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert client.get("/login").headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("answer", [NOT_FOUND_JSON, HTML_PAGE], ids=["404-everywhere", "html"])
def test_a_url_that_is_not_a_toskastore_is_an_error_page_not_an_empty_store(answer, toska):
    with answering_everything(*answer) as url:
        client = make_app(toska(url)).test_client()
        login(client)
        for page in ("/services", "/index", "/index/check?service=svc:", "/key?key=svc:a"):
            response = client.get(page)
            assert response.status_code == 502, page
            assert "Not a ToskaStore server" in text(response), page


# --- stale screens (issue 17 item 8): what the services page shows is true or says its age --

def service_prefixes(client) -> list[str]:
    page = text(client.get("/services"))
    return re.findall(r'data-testid="service-row" data-prefix="([^"]*)"', page)


def test_a_service_emptied_behind_the_cache_is_marked_and_then_dropped(toska):
    with start_devstore(port=0) as running:
        running.store.put("gone:a", "1")
        running.store.put("kept:a", "2")
        client = make_app(toska(running.url),
                          dashboard={"DiscoveryCacheSeconds": 300}).test_client()
        login(client)
        page = text(client.get("/services"))
        assert 'data-prefix="gone:"' in page and re.search(r"Listed \d+ s ago", page)
        running.store.delete("gone:a")  # another writer deletes the service's last key
        assert "gone:" in service_prefixes(client)  # the cached list, said to be N s old
        cell = text(client.get("/services/summary?prefix=gone:",
                               headers={"HX-Request": "true"}))
        assert 'data-gone="true"' in cell
        assert re.search(r"no keys now \(listed \d+ s ago\)", cell)
        assert service_prefixes(client) == ["kept:"]  # the count made the page walk again
        kept = text(client.get("/services/summary?prefix=kept:", headers={"HX-Request": "true"}))
        assert 'data-count="1"' in kept and "no keys now" not in kept


def test_deleting_a_services_last_key_from_the_dashboard_drops_it_at_once(toska):
    with start_devstore(port=0) as running:
        running.store.put("last:only", "1")
        running.store.put("kept:a", "2")
        client = make_app(toska(running.url),
                          dashboard={"DiscoveryCacheSeconds": 300}).test_client()
        login(client)
        assert "last:" in service_prefixes(client)
        answer = post_form(client, "/key/delete", {"key": "last:only", "confirm": "yes"},
                           token_from="/key/delete?key=last:only")
        assert answer.status_code == 303
        assert service_prefixes(client) == ["kept:"]


def test_with_the_store_down_counts_fail_visibly_and_the_list_says_its_age(toska):
    running = start_devstore(port=0)
    try:
        running.store.put("svc:a", "1")
        client = make_app(toska(running.url, timeout=1),
                          dashboard={"DiscoveryCacheSeconds": 300}).test_client()
        login(client)
        assert service_prefixes(client) == ["svc:"]
        page = text(client.get("/services"))
        assert 'hx-trigger="load"' in page and "counting…" in page
    finally:
        running.stop()
    cell = client.get("/services/summary?prefix=svc:", headers={"HX-Request": "true"})
    body = text(cell)
    # htmx swaps only 2xx answers: a failed count is the row's answer, never "counting…"
    assert cell.status_code == 200 and "HX-Retarget" not in cell.headers
    assert 'data-testid="service-count-failed"' in body and "count failed:" in body
    assert running.url in body and "counting" not in body
    retry = re.search(r'hx-get="([^"]+)"[^>]*data-testid="retry-count"', body)
    assert retry and "/services/summary?prefix=svc" in html.unescape(retry.group(1))
    plain = client.get("/services/summary?prefix=svc:")  # the no-JavaScript "count" link
    assert plain.status_code == 503 and "count failed:" in text(plain)
    # the cached list is still shown, with its age; a refresh that fails says so
    refreshed = client.get("/services?refresh=1")
    page = text(refreshed)
    assert refreshed.status_code == 200 and 'data-prefix="svc:"' in page
    assert 'data-testid="discovery-stale"' in page and "listing the services again failed" in page
    assert re.search(r"Listed \d+ s ago", page)
