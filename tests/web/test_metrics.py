"""/metrics: requests, store calls, writes and failed logins in the Prometheus format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.devstore import start_devstore
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from dashboard.web.metrics import MeteredProvider
from tests.support.redis_server import free_port
from tests.support.webapp import csrf_token, login, make_app, post_form

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def running():
    with start_devstore(port=0) as store:
        yield store


@pytest.fixture
def provider(running):
    made = ToskaStoreProvider(running.url)
    yield made
    made.close()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.get_data(as_text=True)


def test_requests_are_counted_by_endpoint_and_status_class_never_by_path(provider):
    provider.put("m1:secret-customer-42", '{"a":1}', ttl=NO_TTL)
    client = make_app(provider).test_client()
    login(client, "ed")
    assert client.get("/key?key=m1:secret-customer-42").status_code == 200
    assert client.get("/key?key=m1:secret-customer-42").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    text = scrape(client)
    assert value(text, "kvdash_http_requests_total", endpoint="keys.detail", method="GET",
                 status="2xx") == 2
    assert value(text, "kvdash_http_request_duration_seconds_count", endpoint="keys.detail",
                 method="GET", status="2xx") == 2
    assert value(text, "kvdash_http_requests_total", endpoint="unmatched", method="GET",
                 status="4xx") == 1
    # the login's redirect is a 3xx; a key or a path never becomes a label
    assert value(text, "kvdash_http_requests_total", endpoint="auth.login", method="POST",
                 status="3xx") == 1
    assert "secret-customer-42" not in text and "/no/such/page" not in text


def test_store_calls_and_errors_are_counted_by_operation(provider):
    provider.put("m2:a", "1", ttl=NO_TTL)
    client = make_app(provider).test_client()
    login(client, "ed")
    client.get("/key?key=m2:a")
    assert client.get("/key?key=m2:missing").status_code == 404
    text = scrape(client)
    assert value(text, "kvdash_store_calls_total", operation="get") == 2
    assert value(text, "kvdash_store_errors_total", operation="get", error="not-found") == 1
    assert value(text, "kvdash_store_call_duration_seconds_count", operation="get") == 2


def test_an_unreachable_store_counts_as_unavailable():
    dead = ToskaStoreProvider(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    try:
        client = make_app(dead).test_client()
        assert client.get("/readyz").status_code == 503
        text = scrape(client)
        assert value(text, "kvdash_store_errors_total", operation="info", error="unavailable") >= 1
    finally:
        dead.close()


def test_writes_are_counted_by_kind_and_outcome(provider):
    prefix = "m3:"
    provider.put(prefix + "x", "1", ttl=NO_TTL)
    provider.put(prefix + "__keys", json.dumps(["x", "stale"]), ttl=NO_TTL)
    app = make_app(provider)
    client = app.test_client()
    login(client, "ed")
    created = post_form(client, "/key/new", {"key": prefix + "new", "value": "{}",
                                             "ttl_mode": "none", "compact": "on"})
    assert created.status_code == 303
    again = post_form(client, "/key/new", {"key": prefix + "new", "value": "{}",
                                           "ttl_mode": "none", "compact": "on"})
    assert again.status_code == 409
    edited = post_form(client, "/key/edit", {
        "key": prefix + "new", "value": '{"b": 2}', "ttl_mode": "none", "compact": "on",
        "expected_version": provider.get(prefix + "new").token, "confirm": "yes"})
    assert edited.status_code == 303
    deleted = post_form(client, "/key/delete", {
        "key": prefix + "new", "expected_version": provider.get(prefix + "new").token,
        "confirm": "yes"})
    assert deleted.status_code == 303
    page = client.get(f"/index/repair?service={prefix}&action=prune-stale").get_data(as_text=True)
    digest = page.split('name="digest" value="', 1)[1].split('"', 1)[0]
    repaired = post_form(client, "/index/repair", {"service": prefix, "action": "prune-stale",
                                                   "digest": digest, "confirm": "yes"})
    assert repaired.status_code == 200
    text = scrape(client)
    for kind in ("create", "edit", "delete", "repair"):
        assert value(text, "kvdash_writes_total", kind=kind, outcome="ok") == 1, kind
    assert value(text, "kvdash_writes_total", kind="create", outcome="conflict") == 1


def test_failed_logins_are_counted_and_throttled_ones_apart(provider):
    app = make_app(provider, KV_LOGIN_LIMIT_PER_NAME="2 per minute")
    client = app.test_client()
    statuses = []
    for _ in range(3):
        token = csrf_token(client, "/login")
        statuses.append(client.post("/login", data={"username": "ed", "password": "wrong",
                                                    "csrf_token": token}).status_code)
    assert statuses == [401, 401, 429]
    text = scrape(client)
    assert value(text, "kvdash_login_failures_total", reason="invalid") == 2
    assert value(text, "kvdash_login_failures_total", reason="throttled") == 1


def test_metrics_need_no_login_but_the_token_when_one_is_set(provider):
    open_app = make_app(provider)
    assert open_app.test_client().get("/metrics").status_code == 200

    client = make_app(provider, dashboard={"MetricsToken": "s3cret-scrape"}).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "kvdash_" not in refused.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic s3cret-scrape"}).status_code == 401
    text = scrape(client, Authorization="Bearer s3cret-scrape")
    # the refused scrapes were requests too
    assert value(text, "kvdash_http_requests_total", endpoint="metrics.metrics", method="GET",
                 status="4xx") == 3


def test_the_metered_provider_still_offers_what_the_provider_does(provider):
    app = make_app(provider)
    metered = app.extensions["kv_provider"]
    assert isinstance(metered, MeteredProvider) and metered.wrapped is provider
    assert metered.kind == provider.kind and metered.name == provider.name
    assert metered.release() == provider.release()  # beyond the contract: passed through
    assert metered.capabilities() == provider.capabilities()


_WORKER = textwrap.dedent("""
    import sys
    from dashboard.stores.toskastore.provider import ToskaStoreProvider
    from tests.support.webapp import make_app

    client = make_app(ToskaStoreProvider(sys.argv[1])).test_client()
    for _ in range(int(sys.argv[2])):
        assert client.get("/healthz").status_code == 200
    if sys.argv[3] == "scrape":
        print(client.get("/metrics").get_data(as_text=True))
""")


def test_gunicorn_workers_are_summed_in_multiprocess_mode(running, tmp_path):
    """Two processes (as two gunicorn workers) count into PROMETHEUS_MULTIPROC_DIR; a scrape of
    either reports both."""
    directory = tmp_path / "prometheus"  # created by the app when missing
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}

    def worker(count: int, mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", _WORKER, running.url, str(count), mode],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker(3, "count")
    text = worker(2, "scrape")
    assert value(text, "kvdash_http_requests_total", endpoint="ops.healthz", method="GET",
                 status="2xx") == 5
    assert any(directory.iterdir())
