"""The store page (/store): kind, masked address, release, capabilities, statistics, ping."""

from __future__ import annotations

import html
import re

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.redis.provider import RedisProvider
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.backends import start_backend
from tests.support.redis_server import free_port
from tests.support.webapp import login, make_app


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field(page: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</(?:dd|td|code)>', page, re.S)
    assert match, f"no {testid} on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def capabilities(page: str) -> dict[str, tuple[str, str]]:
    """name -> (yes/no, the sentence shown)."""
    rows = re.findall(r'data-testid="capability" data-name="(\w+)" data-available="(yes|no)">'
                      r".*?<td>([^<]*)</td>\s*</tr>", page, re.S)
    return {name: (available, sentence.strip()) for name, available, sentence in rows}


def stats(page: str) -> dict[str, str]:
    rows = re.findall(r'data-testid="stat" data-name="([^"]+)"><th><code>[^<]*</code></th>'
                      r"<td>([^<]*)</td>", page)
    return dict(rows)


def open_page(provider, **options) -> tuple[int, str]:
    client = make_app(provider, **options).test_client()
    login(client, "vi")  # any logged-in operator, viewers too
    response = client.get("/store")
    return response.status_code, text(response)


@pytest.fixture
def devstore(request):
    with start_devstore(port=0, release=request.param) as running:
        provider = ToskaStoreProvider(running.url, timeout=5.0)
        try:
            yield running, provider
        finally:
            provider.close()


@pytest.mark.parametrize("devstore", ["main"], indirect=True)
def test_main_shows_every_capability_and_the_servers_statistics(devstore):
    running, provider = devstore
    for n in range(3):
        running.store.put(f"storepage:k{n}", "v")
    status, page = open_page(provider)
    assert status == 200
    assert field(page, "store-kind") == "ToskaStore"
    assert field(page, "store-url") == running.url
    assert field(page, "store-release") == "main"
    assert field(page, "store-health") == "healthy"
    found = capabilities(page)
    assert {name for name, (available, _) in found.items() if available == "yes"} >= {
        "listing", "versions", "ttl_visible", "atomic_cas", "transactions", "leases", "watch"}
    assert found["atomic_cas"][1].startswith("conditional writes: checked by the store")
    assert found["listing"][1] == "key listing: ordered range API: pages come in key order"
    numbers = stats(page)
    assert numbers["keys"] == "3"  # the server's own /stats, not a count by the dashboard
    assert "revision" in numbers  # main's extra statistics
    # measured and shown; its value is the network's business, never asserted
    assert re.fullmatch(r"\d+\.\d ms \(one read of an absent key, measured now\)",
                        field(page, "store-ping"))
    assert "error-banner" not in page


@pytest.mark.parametrize(("devstore", "listing"), [
    ("0.9.1", "key listing: cursor pages (no ordered range API)"),
    ("0.8", "key listing: one unpaged request per listing, at most 10000 keys "
            "(Dashboard__LegacyListCap)"),
], indirect=["devstore"])
def test_older_releases_say_what_they_ignore(devstore, listing):
    running, provider = devstore
    running.store.put("storepage:one", "v")
    status, page = open_page(provider)
    assert status == 200
    assert field(page, "store-release") == running.release
    found = capabilities(page)
    assert found["atomic_cas"] == (
        "no", "conditional writes: ignored by this server: edits and create-only writes are "
              "checked by reading first, so a write landing in between is overwritten")
    assert found["ttl_visible"][0] == found["versions"][0] == "no"
    assert found["transactions"][0] == found["leases"][0] == found["watch"][0] == "no"
    assert found["listing"] == ("yes", listing)
    assert stats(page)["keys"] == "1"
    assert "revision" not in stats(page)


def test_the_token_is_masked():  # a BaseUrl with a password is refused at start-up
    with start_devstore(port=0, token="tok-s3cret-value") as running:
        port = running.port
        provider = ToskaStoreProvider(running.url, token="tok-s3cret-value", timeout=5.0)
        try:
            status, page = open_page(provider, mesh={
                "Provider": "ToskaStore",
                "ToskaStore": {"BaseUrl": f"http://127.0.0.1:{port}",
                               "AuthToken": "tok-s3cret-value"}})
        finally:
            provider.close()
    assert status == 200  # the token works: the page read the store
    assert field(page, "store-release") == "main"
    assert "s3cret" not in page
    settings = dict(re.findall(r'data-testid="store-setting" data-name="([^"]+)"><code>[^<]*'
                               r"</code> = <code>([^<]*)</code>", page))
    assert settings == {
        "Mesh__KeyValue__ToskaStore__BaseUrl": f"http://127.0.0.1:{port}",
        "Mesh__KeyValue__ToskaStore__AuthToken": "***"}


def test_a_store_that_never_answered_gets_a_banner_not_a_500():
    provider = ToskaStoreProvider(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    try:
        status, page = open_page(provider)
    finally:
        provider.close()
    assert status == 503
    assert re.search(r'data-testid="error-banner" data-kind="unavailable"', page)
    assert "Store error while detecting the store's release:" in page
    assert "connection refused" in page
    assert field(page, "store-kind") == "ToskaStore"  # what is known without the store
    assert "unknown (the store did not answer)" in field(page, "store-release")
    assert 'data-testid="no-capabilities"' in page and 'data-testid="stat"' not in page


def test_a_store_that_went_down_keeps_what_was_learnt():
    running = start_devstore(port=0, release="0.9.1")
    provider = ToskaStoreProvider(running.url, timeout=2.0)
    try:
        client = make_app(provider).test_client()
        login(client)
        assert client.get("/store").status_code == 200
        running.stop()
        response = client.get("/store")
    finally:
        provider.close()
    page = text(response)
    assert response.status_code == 503
    assert page.count('data-testid="error-banner"') == 1  # not one per call, not twice waited
    assert "Store error while timing a read:" in page
    assert field(page, "store-release") == "0.9.1"
    assert capabilities(page)["atomic_cas"][0] == "no"


def test_the_page_needs_a_login():
    provider = ToskaStoreProvider(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        response = make_app(provider).test_client().get("/store")
    finally:
        provider.close()
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.fixture(scope="module")
def redis_store():
    with start_backend("redis") as backend:
        yield backend


def test_redis_shows_its_info_fields(redis_store):
    redis_store.extra["raw"].flushdb()
    redis_store.seed({"storepage:a": "1", "storepage:b": "2"})
    status, page = open_page(redis_store.provider, mesh={
        "Provider": "Redis", "Redis": {"ConnectionString": "kv.mesh:6379,password=hunter2-s3cret"}})
    assert status == 200
    assert field(page, "store-kind") == "Redis"
    version = redis_store.extra["raw"].info("server")["redis_version"]
    assert field(page, "store-release") == f"redis {version}"
    numbers = stats(page)
    assert numbers["dbsize"] == "2"
    assert numbers["version"] == version
    assert numbers["role"] == "master"
    found = capabilities(page)
    assert found["atomic_cas"][0] == "yes" and found["ttl_visible"][0] == "yes"
    assert found["listing"] == ("yes", "key listing: SCAN: unordered, each page sorted on its own")
    assert found["non_string_types"][0] == "yes"
    assert "hunter2" not in page
    assert "kv.mesh:6379,password=***" in page
    assert "Server (INFO)" in page


def test_redis_down_is_a_banner():
    provider = RedisProvider(host="127.0.0.1", port=free_port(), timeout=1.0)
    try:
        status, page = open_page(provider)
    finally:
        provider.close()
    assert status == 503
    assert re.search(r'data-testid="error-banner" data-kind="unavailable"', page)
    assert field(page, "store-kind") == "Redis"
    assert 'data-testid="stat"' not in page
