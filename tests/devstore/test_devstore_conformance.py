"""The dev store against the upstream ToskaStore contract (``openapi.yaml``, upstream main).

Real requests to a dev store in every release mode (the module's fixtures are
parametrised over "main", "0.9.1" and "0.8"); every JSON answer is validated (Draft
2020-12) against the schema the spec declares for that operation and status, and every
status must be one the spec declares. The spec is read from
``../shared/toskastore/openapi.yaml`` next to the repository, or from
``$TOSKASTORE_OPENAPI``; it is never copied in.

The spec describes main. For 0.9.1 and 0.8 only the operations that release has are
exercised (no conditions, range listing, leases, txn or watch; /metrics not on 0.8),
and an answer the release shapes differently is validated against the spec's schema
narrowed to the fields that release sends (``OLD_SHAPES``): ``GET /kv/:key`` is
``{key, value}`` without metadata, ``PUT`` is always the ``{ok, key}`` branch, and
0.8's ``/kv/keys`` is ``{keys}`` without ``next_cursor``; ETag headers the spec
declares are not expected there. Auth on those releases uses the single ``token``.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dashboard.devstore import start_devstore

SPEC_URI = "urn:toskastore:openapi"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
#: built once and shared: httpx would build a TLS context per client (~20 ms each)
TLS = ssl.create_default_context()


def spec_path() -> Path:
    env = os.environ.get("TOSKASTORE_OPENAPI")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared/toskastore/openapi.yaml"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class Contract:
    """The spec with schema validation: ``$ref``s resolve through a registry of the whole
    document, so a schema is addressed by its JSON pointer in the file."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self.operations: dict[str, str] = {}  # operationId -> pointer
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    pointer = f"/paths/{_escape(path)}/{method}"
                    self.operations[operation["operationId"]] = pointer

    def at(self, pointer: str) -> Any:
        node: Any = self.document
        for raw in pointer.split("/")[1:]:
            segment = raw.replace("~1", "/").replace("~0", "~")
            node = node[segment]
        return node

    def operation(self, operation_id: str) -> dict[str, Any]:
        return self.at(self.operations[operation_id])

    def response(self, operation_id: str, status: int) -> tuple[str, dict[str, Any]]:
        """Pointer and object of the response declared for ``status`` (``$ref`` followed)."""
        pointer = f"{self.operations[operation_id]}/responses/{status}"
        declared = self.at(pointer)
        while "$ref" in declared:
            pointer = declared["$ref"].removeprefix("#")
            declared = self.at(pointer)
        return pointer, declared

    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"}, registry=self.registry
        )

    def errors(self, pointer: str, instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in self.validator(pointer).iter_errors(instance)
        ]


@pytest.fixture(scope="module")
def contract() -> Contract:
    path = spec_path()
    if not path.exists():
        pytest.skip(f"ToskaStore contract not found at {path}")
    return Contract(yaml.safe_load(path.read_text(encoding="utf-8")))


RELEASES = ["main", "0.9.1", "0.8"]


@pytest.fixture(scope="module", params=RELEASES)
def release(request) -> str:
    return request.param


def main_only(release: str) -> None:
    if release != "main":
        pytest.skip(f"release {release} has no such operation or field")


@pytest.fixture(scope="module")
def server(release) -> Iterator[Any]:
    with start_devstore(port=0, release=release) as running:
        yield running


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    server.store.clear()
    with httpx.Client(base_url=server.url, timeout=5.0, verify=TLS) as c:
        yield c


@pytest.fixture(scope="module")
def special(release) -> Iterator[dict[str, tuple[Any, httpx.Client]]]:
    """Servers in the configurations that produce 401, 403, 413, 429 and 503.

    "auth": main has a reader and a writer token; older releases one token, "reader"
    (so "writer" is refused there too).
    """
    auth = {"read_token": "reader", "write_token": "writer"} if release == "main" else {"token": "reader"}
    options = {
        "auth": auth,
        "read_only": {"read_only": True},
        "small_bodies": {"max_body_bytes": 256},
        "rate_limited": {"rate_limit_per_s": 1},
        "unavailable": {},
    }
    servers = {}
    try:
        for name, opts in options.items():
            running = start_devstore(port=0, release=release, **opts)
            client = httpx.Client(base_url=running.url, timeout=5.0, verify=TLS)
            servers[name] = (running, client)
        servers["unavailable"][0].set_unavailable(True)
        yield servers
    finally:
        for running, client in servers.values():
            client.close()
            running.stop()


#: narrowed schemas for answers the older releases shape differently (see the docstring)
_KEY_VALUE = {
    "type": "object",
    "required": ["key", "value"],
    "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
    "additionalProperties": False,
}
_KEYS_ONLY = {
    "type": "object",
    "required": ["keys"],
    "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False,
}
OLD_SHAPES: dict[str, dict[tuple[str, int], Any]] = {
    "0.9.1": {("getKey", 200): _KEY_VALUE, ("putKey", 200): "PUT_DELETED"},
    "0.8": {("getKey", 200): _KEY_VALUE, ("putKey", 200): "PUT_DELETED", ("listKeys", 200): _KEYS_ONLY},
}


def conforms(
    contract: Contract,
    operation_id: str,
    answer: httpx.Response,
    *,
    schema_pointer: str | None = None,
    expect_headers: bool = True,
    release: str = "main",
) -> Any:
    """Assert ``answer`` is a declared response of the operation, body and headers."""
    declared = contract.operation(operation_id)["responses"]
    status = answer.status_code
    assert str(status) in declared, f"{operation_id} answered undeclared {status}"
    pointer, response = contract.response(operation_id, status)
    content = response.get("content", {})
    body = None
    narrowed = OLD_SHAPES.get(release, {}).get((operation_id, status))
    if narrowed == "PUT_DELETED":
        schema_pointer, narrowed = PUT_DELETED, None
    if narrowed is not None or release != "main" and status == 200 and operation_id in ("getKey", "putKey"):
        expect_headers = False  # no ETag before main
    if "application/json" in content:
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
        if narrowed is not None:
            problems = [e.message for e in Draft202012Validator(narrowed).iter_errors(body)]
        else:
            schema = schema_pointer or f"{pointer}/content/application~1json/schema"
            problems = contract.errors(schema, body)
        assert not problems, f"{operation_id} {status}: {problems} in {body}"
    if expect_headers:
        for name, header in response.get("headers", {}).items():
            assert name in answer.headers, f"{operation_id} {status}: no {name} header"
            if header.get("schema", {}).get("type") == "string":
                assert answer.headers[name]
    return body


def request_conforms(contract: Contract, operation_id: str, body: Any) -> Any:
    """Our requests use the contract's shapes too, so the tests exercise real usage."""
    pointer = f"{contract.operations[operation_id]}/requestBody/content/application~1json/schema"
    assert not contract.errors(pointer, body)
    return body


def kv(key: str) -> str:
    return "/kv/" + quote(key, safe="")


# PutEntryResponse is a oneOf whose DeleteResponse branch ({ok, key}, extra properties
# allowed) also matches every full entry answer, so no answer can satisfy "exactly one".
# Each answer is checked against the branch it is meant to be instead.
PUT_ENTRY = "/components/schemas/PutEntryResponse/oneOf/0"
PUT_DELETED = "/components/schemas/PutEntryResponse/oneOf/1"


# -- KV ----------------------------------------------------------------------------------


def test_get_key(contract, client, server, release):
    server.store.put("config/theme", "dark", ttl_ms=60_000)
    answer = client.get(kv("config/theme"))
    body = conforms(contract, "getKey", answer, release=release)
    if release == "main":
        assert answer.headers["etag"] == f'"{body["metadata"]["version"]}"'
    else:
        assert body == {"key": "config/theme", "value": "dark"}
    missing = client.get(kv("config/missing"))
    assert conforms(contract, "getKey", missing, release=release) == {
        "error": "Not Found",
        "key": "config/missing",
    }


def test_put_key(contract, client, release):
    if release != "main":
        plain = client.put(
            kv("config/theme"), json=request_conforms(contract, "putKey", {"value": "dark", "ttl_ms": 5000})
        )
        assert conforms(contract, "putKey", plain, release=release) == {"ok": True, "key": "config/theme"}
        return
    request = request_conforms(contract, "putKey", {"value": "dark", "if_absent": True})
    created = client.put(kv("config/theme"), json=request)
    assert created.status_code == 200
    conforms(contract, "putKey", created, schema_pointer=PUT_ENTRY)
    updated = client.put(
        kv("config/theme"),
        headers={"If-Match": created.headers["etag"]},
        json=request_conforms(contract, "putKey", {"value": "light", "ttl_ms": 5000, "lease_id": None}),
    )
    body = conforms(contract, "putKey", updated, schema_pointer=PUT_ENTRY)
    assert body["metadata"]["version"] == 2


def test_put_key_with_non_positive_ttl_deletes(contract, client, server, release):
    server.store.put("config/theme", "dark")
    answer = client.put(
        kv("config/theme"), json=request_conforms(contract, "putKey", {"value": "x", "ttl_ms": 0})
    )
    assert answer.status_code == 200
    conforms(contract, "putKey", answer, schema_pointer=PUT_DELETED, expect_headers=False)
    assert contract.errors(PUT_ENTRY, answer.json())  # really the delete shape
    assert "etag" not in answer.headers
    assert server.store.get("config/theme") is None


def test_put_key_errors(contract, client, server, special, release):
    server.store.put("k", "v")
    bad_value = client.put(kv("k"), json={"value": 42})
    assert bad_value.status_code == 400
    conforms(contract, "putKey", bad_value, release=release)
    _, small = special["small_bodies"]
    too_large = small.put(kv("k"), json={"value": "x" * 1024})
    assert too_large.status_code == 413
    body = conforms(contract, "putKey", too_large, release=release)
    if release != "0.8":  # 0.8 has no Content-Length check, only Plug's parser limit
        assert body["max_bytes"] == 256
    _, auth = special["auth"]
    wrong = "reader" if release == "main" else "writer"  # a read token, or no token at all
    denied = auth.put(kv("k"), json={"value": "x"}, headers={"Authorization": f"Bearer {wrong}"})
    assert denied.status_code == 401
    conforms(contract, "putKey", denied, release=release)
    _, follower = special["read_only"]
    forbidden = follower.put(kv("k"), json={"value": "x"})
    assert forbidden.status_code == 403
    conforms(contract, "putKey", forbidden, release=release)
    if release == "main":
        failed = client.put(kv("k"), json={"value": "x", "if_absent": True})
        assert failed.status_code == 412
        conforms(contract, "putKey", failed)
        stale = client.put(kv("k"), json={"value": "x"}, headers={"If-Match": '"9"'})
        assert stale.status_code == 412
        conforms(contract, "putKey", stale)
        no_lease = client.put(kv("k"), json={"value": "x", "lease_id": "nope"})
        assert no_lease.status_code == 404
        conforms(contract, "putKey", no_lease)


def test_delete_key(contract, client, server, release):
    server.store.put("config/theme", "dark")
    if release == "main":
        mismatch = client.delete(kv("config/theme"), params={"if_version": 5})
        assert mismatch.status_code == 412
        conforms(contract, "deleteKey", mismatch)
        invalid = client.delete(kv("config/theme"), params={"if_version": "x"})
        assert invalid.status_code == 400
        conforms(contract, "deleteKey", invalid)
    deleted = client.delete(kv("config/theme"), headers={"If-Match": '"1"'})
    assert conforms(contract, "deleteKey", deleted, release=release) == {"ok": True, "key": "config/theme"}
    again = client.delete(kv("config/theme"))
    assert again.status_code == 200
    conforms(contract, "deleteKey", again, release=release)


def test_list_keys(contract, client, server, release):
    for i in range(5):
        server.store.put(f"svc:k{i}", "v")
    first = client.get("/kv/keys", params={"prefix": "svc:", "limit": 3})
    page = conforms(contract, "listKeys", first, release=release)
    if release == "0.8":
        assert len(page["keys"]) == 3
        return
    assert page["next_cursor"] is not None
    last = client.get("/kv/keys", params={"prefix": "svc:", "limit": 3, "cursor": page["next_cursor"]})
    assert conforms(contract, "listKeys", last, release=release)["next_cursor"] is None
    bad_cursor = client.get("/kv/keys", params={"prefix": "other", "cursor": page["next_cursor"]})
    assert bad_cursor.status_code == 400
    conforms(contract, "listKeys", bad_cursor, release=release)
    if release == "main":
        too_many = client.get("/kv/keys", params={"limit": 1001})
        assert too_many.status_code == 400
        conforms(contract, "listKeys", too_many)


def test_list_range(contract, client, server, release):
    main_only(release)
    server.store.put("config/theme", "dark")
    server.store.put("config/title", "Toska", ttl_ms=60_000)
    full = client.get(
        "/kv", params={"prefix": "config/", "include_values": "true", "include_metadata": "true", "limit": 1}
    )
    page = conforms(contract, "listRange", full)
    assert page["items"][0]["key"] == "config/theme"
    rest = client.get("/kv", params={"cursor": page["next_cursor"], "prefix": "config/", "start": "config/"})
    assert conforms(contract, "listRange", rest)["items"] == [{"key": "config/title"}]
    bad = client.get("/kv", params={"limit": -1})
    assert bad.status_code == 400
    conforms(contract, "listRange", bad)


def test_get_multiple_keys(contract, client, server, special, release):
    server.store.put("a", "1")
    request = request_conforms(contract, "getMultipleKeys", {"keys": ["a", "missing"]})
    body = conforms(contract, "getMultipleKeys", client.post("/kv/mget", json=request), release=release)
    assert body == {"values": {"a": "1", "missing": None}}
    bad = client.post("/kv/mget", json={"keys": "a"})
    assert bad.status_code == 400
    conforms(contract, "getMultipleKeys", bad, release=release)
    _, auth = special["auth"]
    denied = auth.post("/kv/mget", json=request)
    assert denied.status_code == 401
    conforms(contract, "getMultipleKeys", denied, release=release)


# -- main only: leases, locks, txn, watch ------------------------------------------------


def test_leases(contract, client, release, special):
    main_only(release)
    made = client.post(
        "/leases", json=request_conforms(contract, "createLease", {"ttl_ms": 5000, "id": "l1"})
    )
    assert made.status_code == 201
    conforms(contract, "createLease", made)
    assert client.post("/leases", json={"ttl_ms": 5000, "id": "l1"}).status_code == 409
    conforms(contract, "createLease", client.post("/leases", json={"ttl_ms": 5000, "id": "l1"}))
    conforms(contract, "createLease", client.post("/leases", json={"ttl_ms": 0}))
    conforms(contract, "keepaliveLease", client.post("/leases/l1/keepalive"))
    conforms(contract, "keepaliveLease", client.post("/leases/nope/keepalive"))
    conforms(contract, "acquireLock", client.post("/locks/j/acquire", json={"lease_id": "l1"}))
    conforms(contract, "acquireLock", client.post("/locks/j/acquire", json={"lease_id": "nope"}))
    conforms(contract, "releaseLock", client.post("/locks/j/release", json={"lease_id": "l1"}))
    conforms(contract, "releaseLock", client.post("/locks/j/release", json={"lease_id": "l1"}))
    assert conforms(contract, "revokeLease", client.delete("/leases/l1")) == {"ok": True, "id": "l1"}
    conforms(contract, "revokeLease", client.delete("/leases/l1"))
    _, follower = special["read_only"]
    forbidden = follower.post("/leases", json={"ttl_ms": 5000})
    assert forbidden.status_code == 403
    conforms(contract, "createLease", forbidden)


def test_transaction(contract, client, server, release):
    main_only(release)
    server.store.put("a", "1")
    request = request_conforms(
        contract,
        "executeTransaction",
        {
            "compare": [{"key": "a", "version": 1, "value": "1", "exists": True}],
            "success": [
                {"op": "put", "key": "b", "value": "2"},
                {"op": "get", "key": "a"},
                {"op": "get", "key": "zz"},
                {"op": "delete", "key": "a"},
            ],
        },
    )
    body = conforms(contract, "executeTransaction", client.post("/kv/txn", json=request))
    assert body["succeeded"] is True and len(body["responses"]) == 4
    bad = client.post("/kv/txn", json={"compare": [{"key": "a"}]})
    assert bad.status_code == 400
    conforms(contract, "executeTransaction", bad)


def test_watch(contract, client, server, release):
    main_only(release)
    server.store.put("a", "1")
    server.store.delete("a")
    answer = client.get("/kv/watch", params={"since_revision": 0, "once": "true"})
    conforms(contract, "watchKeys", answer)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[len("data: ") :]) for line in answer.text.splitlines() if line.startswith("data: ")
    ]
    assert [e["op"] for e in events] == ["put", "delete"]
    for event in events:
        assert not contract.errors("/components/schemas/WatchEvent", event)
    conforms(contract, "watchKeys", client.get("/kv/watch", params={"once": "maybe"}))


# -- status ------------------------------------------------------------------------------


def test_health(contract, client, special, release):
    assert conforms(contract, "getHealth", client.get("/health"))["status"] == "healthy"
    _, down = special["unavailable"]
    unhealthy = down.get("/health")
    assert unhealthy.status_code == 503
    assert conforms(contract, "getHealth", unhealthy)["status"] == "unhealthy"


def test_status(contract, client, release):
    body = conforms(contract, "getStatus", client.get("/status"))
    assert body["status"] == "running"
    assert body["config"]["release"] == release


def test_welcome_page(contract, client, release):
    answer = client.get("/")
    conforms(contract, "getWelcomePage", answer)
    assert answer.headers["content-type"].startswith("text/html")


def test_stats(contract, client, server, special, release):
    server.store.put("a", "1")
    stats = conforms(contract, "getStats", client.get("/stats"))
    assert stats["keys"] == 1
    _, auth = special["auth"]
    denied = auth.get("/stats")
    assert denied.status_code == 401
    conforms(contract, "getStats", denied)
    assert auth.get("/stats", headers={"X-Toska-Token": "reader"}).status_code == 200
    _, down = special["unavailable"]
    unavailable = down.get("/stats")
    assert unavailable.status_code == 503
    conforms(contract, "getStats", unavailable)


# -- cross-cutting errors ----------------------------------------------------------------


def test_unavailable_store_answers(contract, special, release):
    _, down = special["unavailable"]
    answers = [
        ("getKey", down.get(kv("k"))),
        ("putKey", down.put(kv("k"), json={"value": "x"})),
        ("deleteKey", down.delete(kv("k"))),
        ("listKeys", down.get("/kv/keys")),
        ("getMultipleKeys", down.post("/kv/mget", json={"keys": []})),
    ]
    if release == "main":
        answers += [("listRange", down.get("/kv")), ("executeTransaction", down.post("/kv/txn", json={}))]
    for operation_id, answer in answers:
        assert answer.status_code == 503, operation_id
        assert conforms(contract, operation_id, answer, release=release)["error"] == "KV store unavailable"


def test_unauthorized_answers(contract, special, release):
    _, auth = special["auth"]
    answers = [
        ("getKey", auth.get(kv("k"))),
        (
            "deleteKey",
            auth.delete(kv("k"), headers={"X-Toska-Token": "writer" if release != "main" else "reader"}),
        ),
        ("listKeys", auth.get("/kv/keys", headers={"Authorization": "Bearer nope"})),
    ]
    if release == "main":
        answers.append(("listRange", auth.get("/kv")))
    for operation_id, answer in answers:
        assert answer.status_code == 401, operation_id
        assert conforms(contract, operation_id, answer, release=release) == {"error": "Unauthorized"}


def test_rate_limited_answers(contract, special, release):
    _, limited = special["rate_limited"]
    answers = [limited.get(kv("k")) for _ in range(4)]
    throttled = [a for a in answers if a.status_code == 429]
    assert throttled
    for answer in answers:
        conforms(contract, "getKey", answer, release=release)
    assert throttled[0].json() == {"error": "Rate limit exceeded"}
    assert "retry-after" not in throttled[0].headers  # upstream sends none


def test_every_operation_under_test_is_in_the_contract(contract):
    for operation_id in [
        "getKey",
        "putKey",
        "deleteKey",
        "listKeys",
        "listRange",
        "getMultipleKeys",
        "getHealth",
        "getStatus",
        "getStats",
        "getWelcomePage",
        "createLease",
        "keepaliveLease",
        "revokeLease",
        "acquireLock",
        "releaseLock",
        "executeTransaction",
        "watchKeys",
    ]:
        assert operation_id in contract.operations
