"""The dev store over real sockets: the ToskaStore behaviours the dashboard relies on."""

from __future__ import annotations

import os
import random
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dashboard.devstore import DevStore, start_devstore
from tests.support.processes import ctrl_c, interruptible, kill_group

#: built once and shared: httpx would build a TLS context per client (~20 ms each)
TLS = ssl.create_default_context()

ODD_KEYS = ["a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünï:cødé", "tab\there", "Ω/%20"]


def kv(key: str) -> str:
    return "/kv/" + quote(key, safe="")


def http_client(base_url: str = "", **options) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=5.0, verify=TLS, **options)


@pytest.fixture
def start():
    """Start dev stores with options; each is stopped (and its client closed) afterwards."""
    started = []

    def _start(**options):
        running = start_devstore(port=0, **options)
        client = http_client(running.url)
        started.append((running, client))
        return running, client

    yield _start
    for running, client in started:
        client.close()
        running.stop()


@pytest.fixture
def served(start):
    return start()


@pytest.fixture
def running(served):
    return served[0]


@pytest.fixture
def client(served):
    return served[1]


# -- basics ------------------------------------------------------------------------------


def test_smoke_put_then_get(client):
    put = client.put("/kv/hello", json={"value": "world"})
    assert put.status_code == 200
    assert put.json()["ok"] is True
    got = client.get("/kv/hello")
    assert got.status_code == 200
    body = got.json()
    assert (body["key"], body["value"]) == ("hello", "world")
    assert set(body["metadata"]) == {"version", "created_at", "updated_at", "expires_at", "lease_id"}
    assert got.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("key", ODD_KEYS)
def test_special_character_keys_round_trip(client, running, key):
    assert client.put(kv(key), json={"value": f"v:{key}"}).status_code == 200
    got = client.get(kv(key))
    assert got.status_code == 200
    assert got.json()["key"] == key
    assert got.json()["value"] == f"v:{key}"
    assert running.store.keys() == [key]
    assert client.get("/kv/keys").json()["keys"] == [key]
    assert client.post("/kv/mget", json={"keys": [key]}).json() == {"values": {key: f"v:{key}"}}
    assert client.delete(kv(key)).json() == {"ok": True, "key": key}
    assert client.get(kv(key)).status_code == 404


def test_dot_keys_need_encoded_dots(client, running):
    # clients normalise a bare ".." segment away, so such keys travel as %2E%2E
    assert client.put("/kv/%2E%2E", json={"value": "up"}).status_code == 200
    assert running.store.get("..")["value"] == "up"
    assert client.get("/kv/%2E%2E").json()["key"] == ".."


def test_unencoded_slash_is_not_a_key(client, running):
    answer = client.put("/kv/a/b", json={"value": "x"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found", "path": "/kv/a/b"}
    assert running.store.keys() == []


def test_invalid_percent_encoding_is_rejected(client):
    answer = client.get("/kv/%FF%FE")
    assert answer.status_code == 400
    assert answer.json()["error"] == "Bad Request"
    assert client.get("/kv/%ZZ").status_code == 400  # Plug.Router.MalformedURIError


def test_missing_key_is_a_json_404(client):
    answer = client.get(kv("svc:nope"))
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found", "key": "svc:nope"}


def test_unknown_routes_and_methods_hit_the_catch_all(client):
    # Plug.Router has no 405: every unmatched method or path is the JSON catch-all 404
    assert client.get("/nope").json() == {"error": "Not Found", "path": "/nope"}
    wrong_method = client.post(kv("k"), json={})
    assert wrong_method.status_code == 404
    assert wrong_method.json() == {"error": "Not Found", "path": "/kv/k"}
    unknown = client.request("PATCH", kv("k"))
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "Not Found"
    # empty segments are dropped before matching, so /kv/ is the range route on main
    assert "items" in client.get("/kv/").json()


# -- versions and conditions -------------------------------------------------------------


def test_versions_start_at_one_and_created_at_is_kept(client):
    first = client.put(kv("k"), json={"value": "1"})
    time.sleep(0.005)
    second = client.put(kv("k"), json={"value": "2"})
    m1, m2 = first.json()["metadata"], second.json()["metadata"]
    assert (m1["version"], m2["version"]) == (1, 2)
    assert first.headers["etag"] == '"1"'
    assert second.headers["etag"] == '"2"'
    assert m2["created_at"] == m1["created_at"]
    assert m2["updated_at"] > m1["updated_at"]
    got = client.get(kv("k"))
    assert got.headers["etag"] == '"2"'
    assert got.json()["metadata"] == m2


def test_deleted_key_starts_again_at_version_one(client):
    client.put(kv("k"), json={"value": "1"})
    client.put(kv("k"), json={"value": "2"})
    client.delete(kv("k"))
    assert client.put(kv("k"), json={"value": "3"}).json()["metadata"]["version"] == 1


def test_if_match_header(client):
    client.put(kv("k"), json={"value": "1"})
    stale = client.put(kv("k"), json={"value": "x"}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json() == {"error": "Condition failed", "key": "k"}
    assert client.get(kv("k")).json()["value"] == "1"
    ok = client.put(kv("k"), json={"value": "2"}, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert ok.json()["metadata"]["version"] == 2
    missing = client.put(kv("other"), json={"value": "x"}, headers={"If-Match": '"1"'})
    assert missing.status_code == 412
    # upstream reads If-Match as one version: "*" or a list of tags is malformed
    for header in ("*", '"1", "2"', "abc"):
        bad = client.put(kv("k"), json={"value": "x"}, headers={"If-Match": header})
        assert bad.status_code == 400, header
        assert bad.json() == {"error": "Invalid conditions"}


def test_if_none_match_star_creates_only(client):
    assert client.put(kv("k"), json={"value": "1"}, headers={"If-None-Match": "*"}).status_code == 200
    again = client.put(kv("k"), json={"value": "2"}, headers={"If-None-Match": "*"})
    assert again.status_code == 412
    assert client.get(kv("k")).json()["value"] == "1"


def test_if_version_in_body(client):
    missing = client.put(kv("k"), json={"value": "0", "if_version": 1})
    assert missing.status_code == 412
    assert "current_version" not in missing.json()
    client.put(kv("k"), json={"value": "1"})
    assert client.put(kv("k"), json={"value": "2", "if_version": 2}).status_code == 412
    assert client.put(kv("k"), json={"value": "2", "if_version": 1}).status_code == 200
    assert client.get(kv("k")).json()["value"] == "2"


def test_if_absent_and_if_present(client):
    assert client.put(kv("k"), json={"value": "x", "if_present": True}).status_code == 412
    assert client.put(kv("k"), json={"value": "1", "if_absent": True}).status_code == 200
    assert client.put(kv("k"), json={"value": "2", "if_absent": True}).status_code == 412
    assert client.put(kv("k"), json={"value": "3", "if_present": True}).status_code == 200
    assert client.get(kv("k")).json()["value"] == "3"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"value": "x", "if_version": 0}, "Invalid conditions"),
        ({"value": "x", "if_version": "one"}, "Invalid conditions"),
        ({"value": "x", "if_version": True}, "Invalid conditions"),
        ({"value": "x", "if_version": 1.0}, "Invalid conditions"),
        ({"value": "x", "if_absent": "yes"}, "Invalid conditions"),
        ({"value": "x", "if_absent": True, "if_present": True}, "Invalid conditions"),
        ({"value": "x", "if_absent": True, "if_version": 1}, "Invalid conditions"),
        ({"value": "x", "lease_id": 5}, "Invalid lease"),
        ({"value": "x", "lease_id": ""}, "Invalid lease"),
    ],
)
def test_malformed_conditions_are_400(client, body, error):
    answer = client.put(kv("k"), json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": error}


def test_conditions_as_text_are_parsed_like_upstream(client):
    client.put(kv("k"), json={"value": "1"})
    # digit strings are versions; "TRUE" is a boolean; query parameters count too
    assert client.put(kv("k"), json={"value": "2", "if_version": "1"}).status_code == 200
    assert client.put(kv("k"), json={"value": "3"}, params={"if_version": "9"}).status_code == 412
    assert client.put(kv("k"), json={"value": "3", "if_present": "TRUE"}).status_code == 200
    assert client.put(kv("k"), json={"value": "4"}, params={"if_absent": "true"}).status_code == 412
    # only "If-None-Match: *" means if_absent; any other If-None-Match is ignored
    assert client.put(kv("k"), json={"value": "5"}, headers={"If-None-Match": '"3"'}).status_code == 200


@pytest.mark.parametrize("body", [{"value": 1}, {"value": None}, {"value": {"a": 1}}, {}])
def test_value_must_be_a_json_string(client, body):
    answer = client.put(kv("k"), json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": "Value must be a string"}


JSON_TYPE = {"Content-Type": "application/json"}


def test_bodies_are_parsed_only_as_json(client, running):
    assert client.put(kv("k"), content=b"{nope", headers=JSON_TYPE).status_code == 400
    assert client.put(kv("k"), content=b"NaN", headers=JSON_TYPE).status_code == 400
    # no Content-Type: the body is never parsed, so there is no value
    untyped = client.put(kv("k"), content=b'{"value": "x"}')
    assert untyped.json() == {"error": "Value must be a string"}
    # any other media type is refused before anything else
    for media in ("text/plain", "application/x-www-form-urlencoded", "nonsense"):
        refused = client.put(kv("k"), content=b'{"value": "x"}', headers={"Content-Type": media})
        assert refused.status_code == 415, media
    assert client.post("/kv/mget", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    # a JSON body that is not an object has no "value"
    assert client.put(kv("k"), json=["value"]).json() == {"error": "Value must be a string"}
    vendor = client.put(
        kv("k"), content=b'{"value": "v"}', headers={"Content-Type": "application/vnd.x+json"}
    )
    assert vendor.status_code == 200
    assert running.store.get("k")["value"] == "v"


@pytest.mark.parametrize("ttl", [1.5, True, "soon", "5 ms", {"ms": 5}])
def test_unusable_ttl_means_no_expiry(client, ttl):
    answer = client.put(kv("k"), json={"value": "x", "ttl_ms": ttl})
    assert answer.status_code == 200
    assert answer.json()["metadata"]["expires_at"] is None


def test_ttl_as_digits_is_parsed(client):
    timed = client.put(kv("k"), json={"value": "x", "ttl_ms": "60000"}).json()["metadata"]
    assert timed["expires_at"] == timed["updated_at"] + 60_000
    gone = client.put(kv("k"), json={"value": "x", "ttl_ms": "-1"})
    assert gone.json() == {"ok": True, "key": "k"}


def test_concurrent_compare_and_set_never_loses_a_write(running):
    running.store.put("counter", "0")
    successes = []

    def worker():
        with http_client(running.url) as c:
            for _ in range(15):
                current = c.get("/kv/counter")
                version = int(current.headers["etag"].strip('"'))
                nxt = str(int(current.json()["value"]) + 1)
                answer = c.put("/kv/counter", json={"value": nxt}, headers={"If-Match": f'"{version}"'})
                assert answer.status_code in (200, 412)
                if answer.status_code == 200:
                    successes.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = running.store.get("counter")
    assert int(entry["value"]) == len(successes)
    assert entry["metadata"]["version"] == len(successes) + 1


# -- TTL ---------------------------------------------------------------------------------


def test_ttl_null_absent_and_positive(client):
    none = client.put(kv("a"), json={"value": "x", "ttl_ms": None}).json()
    assert none["metadata"]["expires_at"] is None
    timed = client.put(kv("b"), json={"value": "x", "ttl_ms": 60_000}).json()["metadata"]
    assert timed["expires_at"] == timed["updated_at"] + 60_000
    # a write without ttl_ms drops the TTL the key had
    cleared = client.put(kv("b"), json={"value": "y"}).json()["metadata"]
    assert cleared["expires_at"] is None
    assert client.get(kv("b")).json()["metadata"]["expires_at"] is None


@pytest.mark.parametrize("ttl", [0, -5])
def test_non_positive_ttl_deletes(client, running, ttl):
    client.put(kv("k"), json={"value": "x"})
    answer = client.put(kv("k"), json={"value": "y", "ttl_ms": ttl})
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "key": "k"}
    assert "etag" not in answer.headers
    assert client.get(kv("k")).status_code == 404
    assert running.store.get("k") is None


def test_lazy_expiry(client, running):
    client.put(kv("svc:short"), json={"value": "x", "ttl_ms": 250})
    client.put(kv("svc:long"), json={"value": "y"})
    assert client.get(kv("svc:short")).status_code == 200
    time.sleep(0.3)
    assert client.get(kv("svc:short")).status_code == 404
    assert client.get("/kv/keys", params={"prefix": "svc:"}).json()["keys"] == ["svc:long"]
    assert [i["key"] for i in client.get("/kv").json()["items"]] == ["svc:long"]
    mget = client.post("/kv/mget", json={"keys": ["svc:short", "svc:long"]}).json()
    assert mget["values"] == {"svc:short": None, "svc:long": "y"}
    # upstream counts a stored key until the TTL sweep removes it
    running.store.cleanup_expired()
    assert client.get("/stats").json()["keys"] == 1
    # an expired key counts as absent for conditions, and comes back fresh
    again = client.put(kv("svc:short"), json={"value": "z", "if_absent": True})
    assert again.status_code == 200
    assert again.json()["metadata"]["version"] == 1


# -- delete ------------------------------------------------------------------------------


def test_delete_conditions(client):
    client.put(kv("k"), json={"value": "x"})
    mismatch = client.delete(kv("k"), params={"if_version": 3})
    assert mismatch.status_code == 412
    assert mismatch.json() == {"error": "Condition failed", "key": "k"}
    assert client.delete(kv("k"), headers={"If-Match": '"2"'}).status_code == 412
    assert client.get(kv("k")).status_code == 200
    assert client.delete(kv("k"), headers={"If-Match": '"1"'}).json() == {"ok": True, "key": "k"}
    assert client.get(kv("k")).status_code == 404
    assert client.delete(kv("k")).json() == {"ok": True, "key": "k"}
    assert client.delete(kv("k"), params={"if_version": 1}).status_code == 412
    assert client.delete(kv("k"), params={"if_version": "one"}).status_code == 400


# -- listing -----------------------------------------------------------------------------


def _seed(store: DevStore, keys: list[str]) -> None:
    shuffled = list(keys)
    random.Random(7).shuffle(shuffled)  # out of order, like real writes
    for key in shuffled:
        store.put(key, f"v-{key}")


def test_key_listing_pages_through_2500_keys(client, running):
    wanted = [f"svc:k{i:05d}" for i in range(2500)]
    _seed(running.store, wanted + ["other:a", "svc", "svd:z"])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": "svc:", "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/kv/keys", params=params).json()
        pages += 1
        seen += page["keys"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == 3
    assert seen == sorted(wanted)


def test_key_listing_limits(client, running):
    _seed(running.store, [f"k{i:03d}" for i in range(150)])
    default = client.get("/kv/keys").json()
    assert len(default["keys"]) == 100
    assert default["next_cursor"] is not None
    for bad in ["-1", "abc", "1.5", ""]:
        answer = client.get("/kv/keys", params={"limit": bad})
        assert answer.status_code == 400, bad
        assert answer.json() == {"error": "Invalid limit"}
    too_large = client.get("/kv/keys", params={"limit": "1001"})
    assert too_large.status_code == 400
    assert too_large.json() == {"error": "Limit too large", "max": 1000}
    assert len(client.get("/kv/keys", params={"limit": 1000}).json()["keys"]) == 150
    assert client.get("/kv/keys", params={"limit": 0}).json() == {"keys": [], "next_cursor": None}
    bad_cursor = client.get("/kv/keys", params={"cursor": "!!not-ours!!"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.json() == {"error": "Invalid cursor"}


def test_cursor_does_not_skip_keys_written_between_pages(client, running):
    _seed(running.store, ["a", "c", "e"])
    first = client.get("/kv/keys", params={"limit": 1}).json()
    assert first["keys"] == ["a"]
    running.store.put("b", "new")
    second = client.get("/kv/keys", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert second == {"keys": ["b", "c", "e"], "next_cursor": None}


def test_range_listing(client, running):
    _seed(running.store, [f"cfg/{c}" for c in "abcdefg"] + ["cfe", "zzz"])
    running.store.put("cfg/d", "ttl", ttl_ms=60_000)
    first = client.get("/kv", params={"prefix": "cfg/", "start": "cfg/c", "limit": 3}).json()
    assert first["items"] == [{"key": "cfg/c"}, {"key": "cfg/d"}, {"key": "cfg/e"}]
    rest = client.get(
        "/kv",
        params={
            "prefix": "cfg/",
            "limit": 3,
            "cursor": first["next_cursor"],
            "include_values": "true",
            "include_metadata": "true",
        },
    ).json()
    assert [i["key"] for i in rest["items"]] == ["cfg/f", "cfg/g"]
    assert rest["next_cursor"] is None
    assert rest["items"][0]["value"] == "v-cfg/f"
    assert rest["items"][0]["metadata"]["version"] == 1
    values_only = client.get("/kv", params={"prefix": "cfg/d", "include_values": "1"}).json()
    assert values_only["items"] == [{"key": "cfg/d", "value": "ttl"}]
    meta = client.get("/kv", params={"prefix": "cfg/d", "include_metadata": "true"}).json()
    assert meta["items"][0]["metadata"]["expires_at"] is not None
    assert "value" not in meta["items"][0]
    assert client.get("/kv", params={"include_values": "maybe"}).status_code == 400
    assert client.get("/kv", params={"limit": 5000}).status_code == 400


def test_range_paging_over_many_keys_is_complete(client, running):
    wanted = [f"r:{i:04d}" for i in range(2600)]
    _seed(running.store, wanted)
    seen, cursor = [], None
    while True:
        params = {"prefix": "r:", "limit": 1000, "include_values": "true"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/kv", params=params).json()
        seen += [(i["key"], i["value"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(k, f"v-{k}") for k in wanted]


def test_mget_reports_missing_keys_as_null(client, running):
    running.store.put("a", "1")
    running.store.put("c/d", "2")
    answer = client.post("/kv/mget", json={"keys": ["a", "b", "c/d"]})
    assert answer.json() == {"values": {"a": "1", "b": None, "c/d": "2"}}
    assert client.post("/kv/mget", json={"keys": "a"}).json() == {"error": "Keys must be a list"}
    # upstream looks up only strings; Jason writes a number key as text
    assert client.post("/kv/mget", json={"keys": [1]}).json() == {"values": {"1": None}}


def test_listing_survives_many_deletes(running):
    store = running.store
    _seed(store, [f"d{i:04d}" for i in range(3000)])
    for i in range(0, 3000, 3):
        store.delete(f"d{i:04d}")
    for i in range(1, 3000, 3):
        store.delete(f"d{i:04d}")
    remaining = [f"d{i:04d}" for i in range(2, 3000, 3)]
    assert store.keys() == remaining
    assert len(store) == 1000
    store.put("d0000", "back")
    assert store.keys()[0] == "d0000"
    page = store.page("d", limit=2)
    assert [i["key"] for i in page.items] == ["d0000", "d0002"]


# -- status routes -----------------------------------------------------------------------


def test_health_status_stats(client, running):
    running.store.put("a", "1")
    running.store.put("a", "2")
    health = client.get("/health").json()
    assert health["status"] == "healthy"
    assert health["uptime"] >= 0
    status = client.get("/status").json()
    assert status["status"] == "running"
    assert status["config"]["mode"] == "current"
    stats = client.get("/stats").json()
    assert stats["keys"] == 1
    assert stats["revision"] == 2
    assert status["config"]["release"] == "main"
    metrics = client.get("/metrics")
    assert "toska_keys_total 1" in metrics.text


# -- auth --------------------------------------------------------------------------------


def test_auth_with_one_token(start):
    running, client = start(token="s3cret")
    assert client.put("/kv/k", json={"value": "x"}).status_code == 401
    unauthorized = client.get("/kv/k")
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {"error": "Unauthorized"}
    assert client.get("/kv/k", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bearer = {"Authorization": "Bearer s3cret"}
    assert client.put("/kv/k", json={"value": "x"}, headers=bearer).status_code == 200
    assert client.get("/kv/k", headers={"X-Toska-Token": "s3cret"}).json()["value"] == "x"
    assert client.get("/stats").status_code == 401
    assert client.get("/stats", headers=bearer).status_code == 200
    assert client.get("/kv/keys").status_code == 401
    assert client.post("/kv/mget", json={"keys": ["k"]}).status_code == 401
    assert client.get("/health").status_code == 200
    status = client.get("/status")
    assert status.status_code == 200
    assert "s3cret" not in status.text


def test_read_only_token_cannot_write(start):
    running, client = start(read_token="reader", write_token="writer")
    reader = {"Authorization": "Bearer reader"}
    writer = {"X-Toska-Token": "writer"}
    assert client.put("/kv/k", json={"value": "x"}, headers=writer).status_code == 200
    assert client.get("/kv/k", headers=reader).json()["value"] == "x"
    denied = client.put("/kv/k", json={"value": "y"}, headers=reader)
    assert denied.status_code == 401
    assert denied.json() == {"error": "Unauthorized"}
    assert client.delete("/kv/k", headers=reader).status_code == 401
    assert running.store.get("k")["value"] == "x"


def test_scoped_token_replaces_the_plain_token_for_its_scope(start):
    # upstream main: a scope's token falls back to auth_token only while it is unset
    running, client = start(token="admin", read_token="reader")
    admin = {"Authorization": "Bearer admin"}
    reader = {"Authorization": "Bearer reader"}
    assert client.put("/kv/k", json={"value": "x"}, headers=admin).status_code == 200
    assert client.get("/kv/k", headers=admin).status_code == 401
    assert client.get("/kv/k", headers=reader).status_code == 200
    assert client.put("/kv/k", json={"value": "y"}, headers=reader).status_code == 401


# -- limits ------------------------------------------------------------------------------


def test_body_over_the_limit_is_413(start):
    running, client = start(max_body_bytes=1024)
    answer = client.put("/kv/k", json={"value": "x" * 2048})
    assert answer.status_code == 413
    assert answer.json() == {"error": "Request body too large", "max_bytes": 1024}
    assert running.store.get("k") is None
    # the connection is still usable afterwards
    assert client.put("/kv/k", json={"value": "small"}).status_code == 200


def test_default_body_limit_is_10_mib(client):
    answer = client.put("/kv/big", content=b" " * (10 * 1024 * 1024 + 1))
    assert answer.status_code == 413
    assert answer.json()["max_bytes"] == 10 * 1024 * 1024


def test_rate_limit(start):
    running, client = start(rate_limit_per_s=1)
    answers = [client.get("/kv/keys") for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert limited[0].json() == {"error": "Rate limit exceeded"}
    assert "retry-after" not in limited[0].headers  # upstream sends none
    assert client.get("/health").status_code == 200


def test_delay_ms_makes_clients_time_out(start):
    running, client = start(delay_ms=400)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/kv/k", timeout=0.05)
    assert client.get("/health", timeout=0.3).status_code == 200  # only /kv is slowed
    running.delay_ms = 0
    assert running.delay_ms == 0
    assert client.get("/kv/k", timeout=2.0).status_code == 404


# -- modes -------------------------------------------------------------------------------


def test_legacy_shapes(start):
    running, client = start(legacy=True)
    put = client.put("/kv/a", json={"value": "1", "ttl_ms": 60_000})
    assert put.status_code == 200
    assert "metadata" not in put.json()
    got = client.get("/kv/a")
    assert got.json() == {"key": "a", "value": "1"}
    assert "etag" not in got.headers
    assert client.get("/kv").status_code == 404
    assert client.get("/metrics").status_code == 404
    assert client.get("/health").status_code == 200
    assert client.get("/stats").json()["keys"] == 1
    assert client.post("/kv/mget", json={"keys": ["a", "b"]}).json() == {"values": {"a": "1", "b": None}}


def test_legacy_ignores_conditions(start):
    running, client = start(legacy=True)
    client.put("/kv/a", json={"value": "1"})
    assert client.put("/kv/a", json={"value": "2", "if_version": 9}).status_code == 200
    assert client.put("/kv/a", json={"value": "3", "if_absent": True}).status_code == 200
    assert client.put("/kv/a", json={"value": "4"}, headers={"If-Match": '"9"'}).status_code == 200
    assert client.get("/kv/a").json()["value"] == "4"
    assert client.delete("/kv/a", params={"if_version": 9}).status_code == 200
    assert running.store.get("a") is None


def test_legacy_key_listing_is_unpaged_and_unsorted(start):
    running, client = start(legacy=True)
    keys = [f"svc:{i:04d}" for i in range(1500)]
    _seed(running.store, keys + ["other:x"])
    everything = client.get("/kv/keys", params={"prefix": "svc:", "limit": 5000}).json()
    assert set(everything) == {"keys"}  # no next_cursor
    assert sorted(everything["keys"]) == keys
    assert everything["keys"] != keys
    capped = client.get("/kv/keys", params={"prefix": "svc:", "limit": 1200}).json()
    assert capped["keys"] == everything["keys"][:1200]
    # limit defaults to 100, and a bad one falls back to it; a cursor is ignored
    assert client.get("/kv/keys", params={"prefix": "svc:"}).json()["keys"] == everything["keys"][:100]
    for lenient in ({"limit": -1}, {"limit": "abc"}, {"cursor": "!!"}):
        answer = client.get("/kv/keys", params={"prefix": "svc:", **lenient})
        assert answer.json() == {"keys": everything["keys"][:100]}, lenient


def test_store_flags_turn_modes_on(start):
    running, client = start(store=DevStore(legacy=True))
    running.store.put("a", "1")
    assert client.get("/kv/a").json() == {"key": "a", "value": "1"}


def test_no_key_listing(start):
    running, client = start(no_key_listing=True)
    running.store.put("a", "1")
    running.store.put("keys", "a key named like the route")
    assert client.get("/kv/keys").status_code == 404
    assert client.get("/kv").status_code == 404
    assert client.get("/kv/a").json()["value"] == "1"
    assert client.post("/kv/mget", json={"keys": ["a"]}).status_code == 200


def test_read_only_follower(start):
    running, client = start(read_only=True)
    running.store.put("a", "1")
    for answer in (client.put("/kv/a", json={"value": "2"}), client.delete("/kv/a")):
        assert answer.status_code == 403
        assert answer.json() == {"error": "Read-only follower"}
    assert client.get("/kv/a").json()["value"] == "1"


def test_unavailable_store(client, running):
    running.store.put("a", "1")
    running.set_unavailable(True)
    for answer in (
        client.get("/kv/a"),
        client.get("/kv/keys"),
        client.get("/stats"),
        client.put("/kv/a", json={"value": "2"}),
    ):
        assert answer.status_code == 503
        assert answer.json()["error"] == "KV store unavailable"
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    running.set_unavailable(False)
    assert client.get("/kv/a").json()["value"] == "1"
    assert client.get("/health").json()["status"] == "healthy"


# -- lifecycle and direct API ------------------------------------------------------------


def test_stop_closes_the_socket():
    with start_devstore(port=0) as running:
        url = running.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with http_client() as c:  # keeps a connection open across stop()
            assert c.get(url + "/health").status_code == 200
    running.stop()  # a second stop is harmless
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=1.0)


def test_direct_store_api():
    store = DevStore()
    assert store and len(store) == 0
    assert store.put("b", "1") == 1
    assert store.put("b", "2", ttl_ms=60_000) == 2
    assert store.put("a", "x") == 1
    entry = store.get("b")
    assert entry["value"] == "2"
    assert entry["metadata"]["expires_at"] is not None
    assert store.keys() == ["a", "b"]
    assert store.put("a", "gone", ttl_ms=0) == 0
    assert store.get("a") is None
    assert store.delete("b") is True
    assert store.delete("b") is False
    store.put("c", "1")
    store.clear()
    assert store.keys() == []
    with pytest.raises(TypeError):
        store.put("a", 1)  # type: ignore[arg-type]


def test_serve_prints_its_address_and_exits_on_ctrl_c():
    repo = Path(__file__).resolve().parents[2]
    # a Ctrl-C that does not depend on the terminal: pytest may run in the background
    proc = interruptible(
        [sys.executable, "-c", "from dashboard.devstore import serve; serve(port=0)"],
        cwd=repo, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"ToskaStore-compatible dev store on (http://127\.0\.0\.1:\d+) \(mode release main\)\n",
            line,
        )
        assert match, line
        assert httpx.get(match.group(1) + "/health", timeout=5).json()["status"] == "healthy"
        ctrl_c(proc)
        out, err = proc.communicate(timeout=10)
    finally:
        kill_group(proc)
        proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_the_sweep_removes_what_is_due_and_not_keys_rewritten_since():
    """The sweep walks the expiries due, not every key: a rewrite moves or drops the expiry."""
    store = DevStore()
    store.put("a:due", "1", ttl_ms=20)
    store.put("a:kept", "1", ttl_ms=20)
    store.put("a:kept", "2", ttl_ms=None)        # no expiry any more
    store.put("a:later", "1", ttl_ms=20)
    store.put("a:later", "2", ttl_ms=60_000)     # expires later now
    store.put("a:gone", "1", ttl_ms=20)
    store.delete("a:gone")
    for n in range(3):
        store.put(f"a:z{n}", "1", ttl_ms=20)
    time.sleep(0.05)
    assert store.cleanup_expired() == 4          # a:due, a:z0..2; never a:gone twice
    assert sorted(store.live_keys()) == ["a:kept", "a:later"]
    assert store.stored_count() == 2  # removed, not only hidden
    assert store.cleanup_expired() == 0


# -- write faults: what a real server does under load, switched at run time --------------


@pytest.mark.parametrize("status, error", [(429, "Rate limit exceeded"),
                                           (503, "KV store unavailable"),
                                           (500, "Internal Server Error")])
def test_a_refused_write_is_not_applied(start, status, error):
    running, client = start(release="0.9.1")
    running.store.put("k", "old")
    with running.faults(write_refused_status=status):
        answer = client.put(kv("k"), json={"value": "new"})
        assert client.get(kv("k")).status_code == 200  # reads are answered
    assert answer.status_code == status and answer.json()["error"] == error
    assert running.store.get("k")["value"] == "old"
    assert client.put(kv("k"), json={"value": "new"}).status_code == 200  # mode put back
    assert running.config.write_refused_status == 0


def test_write_faults_can_hit_only_the_index(start):
    running, client = start()
    with running.faults(write_fails_after_apply=True, write_fault_match="__keys"):
        assert "__keys" in running.config.mode()
        assert client.put(kv("svc:a"), json={"value": "1"}).status_code == 200
        answer = client.put(kv("svc:__keys"), json={"value": '["a"]'})
    assert answer.status_code == 500  # answered as failed ...
    assert running.store.get("svc:__keys")["value"] == '["a"]'  # ... and applied


def test_faults_refuses_a_mode_it_does_not_have(running):
    with pytest.raises(ValueError, match="no mode"), \
            running.faults(write_fails_after_everything=True):
        pass
