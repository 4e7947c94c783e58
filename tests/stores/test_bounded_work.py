"""Pages do work bounded by what they show, not by the size of the keyspace or of values.

Counted, not timed: the store requests a page makes, seen by an httpx hook on the
provider's own client against a real dev store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import login, make_app


@pytest.fixture
def recorded() -> Iterator:
    with start_devstore(port=0) as running:
        provider = ToskaStoreProvider(running.url)
        provider.capabilities()
        requests: list[tuple[str, str]] = []
        provider._client.event_hooks["request"].append(
            lambda r: requests.append((r.method, r.url.raw_path.decode())))
        try:
            yield running, provider, requests
        finally:
            provider.close()


def test_the_service_list_is_discovered_once_and_refreshed_on_request(recorded):
    running, provider, requests = recorded
    running.store.put("svc:a", "1")
    client = make_app(provider, dashboard={"DiscoveryCacheSeconds": 30}).test_client()
    login(client)
    assert 'data-prefix="svc:"' in client.get("/services").get_data(as_text=True)
    walks = len(requests)
    running.store.put("new:a", "1")
    client.get("/services")
    client.get("/mget")
    client.get("/index")
    listing = [path for _, path in requests[walks:] if path.startswith("/kv?") and "start=" in path]
    assert listing == []  # the cached list served all three pages
    page = client.get("/services?refresh=1").get_data(as_text=True)
    assert 'data-prefix="new:"' in page and 'data-testid="refresh-services"' in page


def test_index_presence_never_reads_the_index_value(recorded):
    running, provider, requests = recorded
    running.store.put("svc:a", "1")
    running.store.put("svc:__keys", '["a"' + ',"x"' * 200_000 + "]")  # a big index
    client = make_app(provider).test_client()
    login(client)
    summary = client.get("/services/summary?prefix=svc:", headers={"HX-Request": "true"})
    assert 'data-indexed="true"' in summary.get_data(as_text=True)
    client.get("/index")
    assert ("GET", "/kv/svc%3A__keys") not in requests
    assert not [path for _, path in requests if path.startswith("/kv/mget")]


def test_the_metered_provider_forwards_every_contract_method():
    # a contract method with a default implementation that the wrapper did not forward
    # would silently bypass the store's own (cheaper) override
    from dashboard.stores.base import KeyValueProvider
    from dashboard.web.metrics import MeteredProvider

    public = {name for name in vars(KeyValueProvider) if not name.startswith("_")
              and callable(getattr(KeyValueProvider, name))}
    assert public - set(vars(MeteredProvider)) == set()


def test_a_value_over_the_render_limit_is_a_bounded_page_and_a_download(recorded):
    running, provider, _ = recorded
    big = '{"blob":"' + "x" * 3_000_000 + '"}'
    running.store.put("svc:big", big)
    client = make_app(provider).test_client()
    login(client)
    page = client.get("/key?key=svc:big").get_data(as_text=True)
    assert 'data-testid="value-truncated"' in page and "2.9 MiB" in page
    assert len(page) < 1_200_000  # one bounded rendering, not two copies of 3 MB
    assert client.get("/key/download?key=svc:big").get_data(as_text=True) == big
    edit = client.get("/key/edit?key=svc:big")
    assert edit.status_code == 302
    assert "Dashboard__MaxRenderBytes" in client.get(edit.headers["Location"]).get_data(
        as_text=True)


def test_a_redis_count_of_a_small_service_in_a_big_keyspace_is_bounded_by_scan_steps():
    import redis as redis_lib

    from dashboard.stores.redis.provider import COUNT_STEPS, RedisProvider
    from tests.support.redis_server import RedisServer

    with RedisServer() as server:
        raw = redis_lib.Redis(host=server.host, port=server.port)
        pipe = raw.pipeline(transaction=False)
        for i in range(60_000):
            pipe.set(f"big:{i}", "1")
        pipe.set("small:a", "1")
        pipe.execute()
        provider = RedisProvider(host=server.host, port=server.port, scan_count=1000)
        scans = []
        original = provider._client.scan
        provider._client.scan = lambda *a, **k: scans.append(1) or original(*a, **k)
        try:
            count, exact = provider.count_keys("small:", cap=1000)
        finally:
            provider.close()
            raw.close()
    assert len(scans) <= COUNT_STEPS  # not a walk of all 60,001 keys (about 60 SCAN calls)
    assert count <= 1 and not exact  # "≥ 0" or "≥ 1": the walk stopped before the end


def test_a_redis_browse_page_reads_only_the_start_of_a_big_value():
    import redis as redis_lib

    from dashboard.stores.redis.provider import RedisProvider
    from tests.support.redis_server import RedisServer

    big = '{"blob":"' + "y" * 5_000_000 + '"}'
    with RedisServer() as server:
        raw = redis_lib.Redis(host=server.host, port=server.port)
        raw.set("svc:big", big)
        raw.set("svc:small", '{"a":1}')
        provider = RedisProvider(host=server.host, port=server.port)
        try:
            client = make_app(provider).test_client()
            login(client)
            raw.config_resetstat()
            before = raw.info("stats")["total_net_output_bytes"]
            page = client.get("/browse?prefix=svc:").get_data(as_text=True)
            sent = raw.info("stats")["total_net_output_bytes"] - before
            calls = {name.removeprefix("cmdstat_"): stat["calls"]
                     for name, stat in raw.info("commandstats").items()}
            entry = provider.scan("svc:", preview_bytes=100).entries
        finally:
            provider.close()
            raw.close()
    assert sent < 200_000  # not the 5 MB value
    # one pipeline for the page's two strings: PTTL + STRLEN + GETRANGE each, no TYPE, no GET
    assert {name: calls.get(name, 0) for name in ("scan", "pttl", "strlen", "getrange",
                                                  "type", "get")} == {
        "scan": 1, "pttl": 2, "strlen": 2, "getrange": 2, "type": 0, "get": 0}
    assert "4.8 MiB" in page and "{&#34;blob&#34;:&#34;yyy" in page  # its real size, its start
    big_entry = next(e for e in entry if e.key == "svc:big")
    assert big_entry.partial and big_entry.size == len(big) and len(big_entry.value) == 100
    with pytest.raises(ValueError):
        big_entry.token  # noqa: B018 - a preview is never the base of a write


@pytest.mark.parametrize("key", ["a:b/c d+e&f?g#h", "ünï:ключ", "x=y;z", "'!$()*,@~", "%2F..%",
                                 "rtl\u202egpj", "tab\there", "bad\udcffbyte", "😀:x"])
def test_the_cheap_key_link_is_exactly_url_for(key):
    from flask import url_for

    from dashboard.web.formatting import key_url

    app = make_app(ToskaStoreProvider("http://127.0.0.1:9", timeout=0.1))
    with app.test_request_context():
        assert key_url(key) == url_for("keys.detail", key=key)


def test_a_redis_key_page_reads_only_what_it_renders():
    import redis as redis_lib

    from dashboard.stores.redis.provider import RedisProvider
    from tests.support.redis_server import RedisServer

    big = "z" * 5_000_000
    with RedisServer() as server:
        raw = redis_lib.Redis(host=server.host, port=server.port)
        raw.set("svc:big", big)
        provider = RedisProvider(host=server.host, port=server.port)
        try:
            client = make_app(provider).test_client()
            login(client)
            before = raw.info("stats")["total_net_output_bytes"]
            page = client.get("/key?key=svc:big").get_data(as_text=True)
            sent = raw.info("stats")["total_net_output_bytes"] - before
            download = client.get("/key/download?key=svc:big").get_data(as_text=True)
        finally:
            provider.close()
            raw.close()
    assert sent < 1_200_000  # the rendered megabyte, not the 5 MB value
    assert 'data-testid="value-truncated"' in page and "4.8 MiB" in page
    assert download == big  # the download still has every byte
