"""What differs between the upstream releases the dev store models (main, 0.9.1, 0.8).

Each expectation comes from upstream's router.ex/kv_store.ex at that tag.
"""

from __future__ import annotations

import base64
import json
import ssl
from urllib.parse import quote

import httpx
import pytest

from dashboard.devstore import DevStore, start_devstore

TLS = ssl.create_default_context()
OLD = ["0.9.1", "0.8"]
ALL = ["main", "0.9.1", "0.8"]


def kv(key: str) -> str:
    return "/kv/" + quote(key, safe="")


@pytest.fixture
def start():
    started = []

    def _start(**options):
        running = start_devstore(port=0, **options)
        client = httpx.Client(base_url=running.url, timeout=5.0, verify=TLS)
        started.append((running, client))
        return running, client

    yield _start
    for running, client in started:
        client.close()
        running.stop()


def upstream_cursor(key: str, prefix: str) -> str:
    raw = json.dumps({"k": key, "p": prefix}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- choosing a release ------------------------------------------------------------------


def test_release_option_and_legacy_alias(start):
    for options, release in [
        ({}, "main"),
        ({"release": "0.9.1"}, "0.9.1"),
        ({"legacy": True}, "0.8"),
        ({"release": "0.8"}, "0.8"),
        ({"store": DevStore(legacy=True)}, "0.8"),
        ({"store": DevStore(release="0.9.1")}, "0.9.1"),
    ]:
        running, client = start(**options)
        assert running.release == release, options
        assert client.get("/status").json()["config"]["release"] == release
    with pytest.raises(ValueError):
        start_devstore(port=0, release="1.0")
    with pytest.raises(ValueError):
        start_devstore(port=0, release="main", legacy=True)
    with pytest.raises(ValueError):  # scoped tokens came with main
        start_devstore(port=0, release="0.9.1", read_token="r")


# -- GET / PUT / DELETE ------------------------------------------------------------------


@pytest.mark.parametrize("release", OLD)
def test_old_releases_answer_key_and_value_only(start, release):
    running, client = start(release=release)
    put = client.put(kv("a"), json={"value": "1", "ttl_ms": 60_000})
    assert put.json() == {"ok": True, "key": "a"}
    assert "etag" not in put.headers
    got = client.get(kv("a"))
    assert got.json() == {"key": "a", "value": "1"}
    assert "etag" not in got.headers


def test_main_answers_metadata_and_etag(start):
    running, client = start()
    put = client.put(kv("a"), json={"value": "1"})
    assert put.json()["ok"] is True and put.headers["etag"] == '"1"'
    got = client.get(kv("a"))
    assert set(got.json()) == {"key", "value", "metadata"}
    assert got.headers["etag"] == '"1"'


@pytest.mark.parametrize("release", OLD)
def test_old_releases_ignore_every_condition(start, release):
    running, client = start(release=release)
    client.put(kv("a"), json={"value": "1"})
    overwrite = client.put(kv("a"), json={"value": "2"}, headers={"If-None-Match": "*"})
    assert overwrite.status_code == 200
    assert client.get(kv("a")).json()["value"] == "2"
    for extra in (
        {"if_version": 99},
        {"if_absent": True},
        {"if_version": "junk"},
        {"lease_id": 5},
        {"lease_id": "no-such-lease"},
        {"if_absent": True, "if_present": True},
    ):
        assert client.put(kv("a"), json={"value": "3", **extra}).status_code == 200, extra
    assert client.put(kv("a"), json={"value": "4"}, headers={"If-Match": "*"}).status_code == 200
    assert client.get(kv("a")).json()["value"] == "4"
    assert client.delete(kv("a"), params={"if_version": 42}).status_code == 200
    assert running.store.get("a") is None


def test_main_if_none_match_star_over_an_existing_key_is_412(start):
    running, client = start()
    client.put(kv("a"), json={"value": "1"})
    answer = client.put(kv("a"), json={"value": "2"}, headers={"If-None-Match": "*"})
    assert answer.status_code == 412
    assert answer.json() == {"error": "Condition failed", "key": "a"}
    assert running.store.get("a")["value"] == "1"


@pytest.mark.parametrize("release", ALL)
def test_delete_of_a_missing_key_is_200(start, release):
    running, client = start(release=release)
    assert client.delete(kv("never")).json() == {"ok": True, "key": "never"}


@pytest.mark.parametrize("release", ALL)
def test_non_positive_ttl_deletes_and_string_ttl_is_parsed(start, release):
    running, client = start(release=release)
    client.put(kv("a"), json={"value": "1"})
    assert client.put(kv("a"), json={"value": "2", "ttl_ms": "0"}).json() == {"ok": True, "key": "a"}
    assert running.store.get("a") is None
    client.put(kv("b"), json={"value": "1", "ttl_ms": "60000"})
    assert running.store.get("b")["metadata"]["expires_at"] is not None


# -- body parsing ------------------------------------------------------------------------


@pytest.mark.parametrize("release", ALL)
def test_non_json_content_type_is_415_and_precedes_auth(start, release):
    running, client = start(release=release, token="t")
    answer = client.put(kv("a"), content=b'{"value": "x"}', headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert running.store.get("a") is None
    malformed = client.put(kv("a"), content=b"{", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400


# -- listing -----------------------------------------------------------------------------


def _seed(store: DevStore, keys: list[str]) -> None:
    for key in reversed(keys):
        store.put(key, "v")


def test_091_listing_is_sorted_with_upstream_cursors(start):
    running, client = start(release="0.9.1")
    keys = [f"svc:{i:03d}" for i in range(5)]
    _seed(running.store, keys + ["other"])
    first = client.get("/kv/keys", params={"prefix": "svc:", "limit": 2}).json()
    assert first == {"keys": keys[:2], "next_cursor": upstream_cursor("svc:001", "svc:")}
    second = client.get("/kv/keys", params={"prefix": "svc:", "limit": 10, "cursor": first["next_cursor"]})
    assert second.json() == {"keys": keys[2:], "next_cursor": None}
    # a hand-made upstream cursor works the same
    resumed = client.get("/kv/keys", params={"prefix": "svc:", "cursor": upstream_cursor("svc:003", "svc:")})
    assert resumed.json()["keys"] == ["svc:004"]


@pytest.mark.parametrize("release", ["main", "0.9.1"])
def test_cursor_for_another_prefix_or_garbage_is_400(start, release):
    running, client = start(release=release)
    _seed(running.store, ["a1", "a2"])
    for cursor in (upstream_cursor("a1", "b"), "!!!", "e30", base64.urlsafe_b64encode(b"[1]").decode()):
        answer = client.get("/kv/keys", params={"prefix": "a", "cursor": cursor})
        assert answer.status_code == 400, cursor
        assert answer.json() == {"error": "Invalid cursor"}


def test_091_limit_is_lenient_and_uncapped(start):
    running, client = start(release="0.9.1")
    keys = [f"k{i:04d}" for i in range(1200)]
    _seed(running.store, keys)
    assert len(client.get("/kv/keys", params={"limit": 1100}).json()["keys"]) == 1100
    for raw in ("-1", "abc", "1.5"):
        assert len(client.get("/kv/keys", params={"limit": raw}).json()["keys"]) == 100, raw
    # limit 0 answers before the cursor is even decoded
    zero = client.get("/kv/keys", params={"limit": 0, "cursor": "garbage"})
    assert zero.json() == {"keys": [], "next_cursor": None}


def test_main_limit_is_validated(start):
    running, client = start()
    assert client.get("/kv/keys", params={"limit": "x"}).json() == {"error": "Invalid limit"}
    assert client.get("/kv", params={"limit": 1001}).json() == {"error": "Limit too large", "max": 1000}


def test_08_listing_is_hash_ordered_and_ignores_cursor(start):
    running, client = start(release="0.8")
    keys = [f"svc:{i:03d}" for i in range(50)]
    _seed(running.store, keys)
    listed = client.get("/kv/keys", params={"prefix": "svc:", "cursor": "anything"}).json()
    assert set(listed) == {"keys"}
    assert sorted(listed["keys"]) == keys and listed["keys"] != keys


def test_main_range_start_and_cursor(start):
    running, client = start()
    _seed(running.store, ["a", "b1", "b2", "b3", "c"])
    first = client.get("/kv", params={"prefix": "b", "start": "b2", "limit": 1}).json()
    assert first == {"items": [{"key": "b2"}], "next_cursor": upstream_cursor("b2", "b")}
    rest = client.get("/kv", params={"prefix": "b", "cursor": first["next_cursor"], "start": "b1"}).json()
    assert rest == {"items": [{"key": "b3"}], "next_cursor": None}
    # a start beyond the prefix range finds nothing
    assert client.get("/kv", params={"prefix": "b", "start": "c"}).json()["items"] == []
    # exactly `limit` left: no next_cursor
    assert client.get("/kv", params={"prefix": "b", "limit": 3}).json()["next_cursor"] is None


# -- routes per release ------------------------------------------------------------------


@pytest.mark.parametrize("release", OLD)
def test_main_only_routes_are_absent(start, release):
    running, client = start(release=release)
    for method, path in [
        ("GET", "/kv"),
        ("POST", "/kv/txn"),
        ("POST", "/leases"),
        ("POST", "/leases/x/keepalive"),
        ("DELETE", "/leases/x"),
        ("POST", "/locks/x/acquire"),
    ]:
        answer = client.request(method, path, json={})
        assert answer.status_code == 404, path
        assert answer.json() == {"error": "Not Found", "path": path}
    # /kv/watch is no route there: it is a lookup of the key "watch"
    assert client.get("/kv/watch").json() == {"error": "Not Found", "key": "watch"}


def test_metrics_exist_from_091(start):
    assert start(release="0.8")[1].get("/metrics").status_code == 404
    for release in ("0.9.1", "main"):
        answer = start(release=release)[1].get("/metrics")
        assert answer.status_code == 200
        assert "toska_keys_total" in answer.text


@pytest.mark.parametrize("release", ALL)
def test_welcome_page_is_html(start, release):
    answer = start(release=release)[1].get("/")
    assert answer.headers["content-type"].startswith("text/html")
    assert "Toska Server" in answer.text
    assert ("/kv/watch" in answer.text) == (release == "main")


@pytest.mark.parametrize("release", ALL)
def test_health_and_stats_shapes(start, release):
    running, client = start(release=release)
    health = client.get("/health").json()
    assert set(health) == {"status", "timestamp", "uptime"}
    stats = client.get("/stats").json()
    assert ("revision" in stats) == (release == "main")
    assert ("watch_history_size" in stats) == (release == "main")


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("release", OLD)
def test_single_token_on_old_releases(start, release):
    running, client = start(release=release, token="tok")
    assert client.get(kv("a")).status_code == 401
    for headers in ({"Authorization": "tok"}, {"Authorization": "Bearer tok"}, {"X-Toska-Token": "tok"}):
        assert client.get(kv("a"), headers=headers).status_code == 404, headers
    assert client.get("/stats").json() == {"error": "Unauthorized"}
    assert client.get("/health").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == (200 if release == "0.9.1" else 404)  # unguarded on 0.9.1


def test_main_guards_leases_and_metrics_with_scopes(start):
    running, client = start(read_token="r", write_token="w")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer r"}).status_code == 200
    assert client.post("/leases", json={"ttl_ms": 1000}, headers={"X-Toska-Token": "r"}).status_code == 401
    assert client.post("/leases", json={"ttl_ms": 1000}, headers={"X-Toska-Token": "w"}).status_code == 201
    # a bare token in Authorization is accepted too
    assert client.post("/kv/mget", json={"keys": []}, headers={"Authorization": "r"}).status_code == 200


@pytest.mark.parametrize("release", ALL)
def test_read_only_follower_per_release(start, release):
    running, client = start(release=release, read_only=True)
    assert client.put(kv("a"), json={"value": "1"}).json() == {"error": "Read-only follower"}
    assert client.post("/kv/mget", json={"keys": ["a"]}).status_code == 200
    txn = client.post("/kv/txn", json={})
    assert txn.status_code == (403 if release == "main" else 404)
