"""The dev store against the upstream ToskaStore contract (``openapi.yaml``, v0.9.1).

Real requests to a current-mode dev store; every JSON answer is validated (Draft 2020-12)
against the schema the spec declares for that operation and status, and every status
must be one the spec declares. The spec is read from ``../shared/toskastore/openapi.yaml``
next to the repository, or from ``$TOSKASTORE_OPENAPI``; it is never copied in.
"""

from __future__ import annotations

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
    return Path(__file__).resolve().parents[1].parent / "shared/toskastore/openapi.yaml"


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


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with start_devstore(port=0) as running:
        yield running


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    server.store.clear()
    with httpx.Client(base_url=server.url, timeout=5.0, verify=TLS) as c:
        yield c


@pytest.fixture(scope="module")
def special() -> Iterator[dict[str, tuple[Any, httpx.Client]]]:
    """Servers in the configurations that produce 401, 403, 413, 429 and 503."""
    options = {
        "auth": {"read_token": "reader", "write_token": "writer"},
        "read_only": {"read_only": True},
        "small_bodies": {"max_body_bytes": 256},
        "rate_limited": {"rate_limit_per_s": 1},
        "unavailable": {},
    }
    servers = {}
    try:
        for name, opts in options.items():
            running = start_devstore(port=0, **opts)
            client = httpx.Client(base_url=running.url, timeout=5.0, verify=TLS)
            servers[name] = (running, client)
        servers["unavailable"][0].set_unavailable(True)
        yield servers
    finally:
        for running, client in servers.values():
            client.close()
            running.stop()


def conforms(
    contract: Contract,
    operation_id: str,
    answer: httpx.Response,
    *,
    schema_pointer: str | None = None,
    expect_headers: bool = True,
) -> Any:
    """Assert ``answer`` is a declared response of the operation, body and headers."""
    declared = contract.operation(operation_id)["responses"]
    status = answer.status_code
    assert str(status) in declared, f"{operation_id} answered undeclared {status}"
    pointer, response = contract.response(operation_id, status)
    content = response.get("content", {})
    body = None
    if "application/json" in content:
        assert answer.headers["content-type"].startswith("application/json")
        body = answer.json()
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


def test_get_key(contract, client, server):
    server.store.put("config/theme", "dark", ttl_ms=60_000)
    answer = client.get(kv("config/theme"))
    body = conforms(contract, "getKey", answer)
    assert answer.headers["etag"] == f'"{body["metadata"]["version"]}"'
    conforms(contract, "getKey", client.get(kv("config/missing")))


def test_put_key(contract, client):
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


def test_put_key_with_non_positive_ttl_deletes(contract, client, server):
    server.store.put("config/theme", "dark")
    answer = client.put(
        kv("config/theme"), json=request_conforms(contract, "putKey", {"value": "x", "ttl_ms": 0})
    )
    assert answer.status_code == 200
    conforms(contract, "putKey", answer, schema_pointer=PUT_DELETED, expect_headers=False)
    assert contract.errors(PUT_ENTRY, answer.json())  # really the delete shape
    assert "etag" not in answer.headers


def test_put_key_errors(contract, client, server, special):
    server.store.put("k", "v")
    bad_value = client.put(kv("k"), json={"value": 42})
    assert bad_value.status_code == 400
    conforms(contract, "putKey", bad_value)
    failed = client.put(kv("k"), json={"value": "x", "if_absent": True})
    assert failed.status_code == 412
    conforms(contract, "putKey", failed)
    stale = client.put(kv("k"), json={"value": "x"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412
    conforms(contract, "putKey", stale)
    _, small = special["small_bodies"]
    too_large = small.put(kv("k"), json={"value": "x" * 1024})
    assert too_large.status_code == 413
    assert conforms(contract, "putKey", too_large)["max_bytes"] == 256
    _, auth = special["auth"]
    denied = auth.put(kv("k"), json={"value": "x"}, headers={"Authorization": "Bearer reader"})
    assert denied.status_code == 401
    conforms(contract, "putKey", denied)
    _, follower = special["read_only"]
    forbidden = follower.put(kv("k"), json={"value": "x"})
    assert forbidden.status_code == 403
    conforms(contract, "putKey", forbidden)


def test_delete_key(contract, client, server):
    server.store.put("config/theme", "dark")
    mismatch = client.delete(kv("config/theme"), params={"if_version": 5})
    assert mismatch.status_code == 412
    conforms(contract, "deleteKey", mismatch)
    invalid = client.delete(kv("config/theme"), params={"if_version": "x"})
    assert invalid.status_code == 400
    conforms(contract, "deleteKey", invalid)
    deleted = client.delete(kv("config/theme"), headers={"If-Match": '"1"'})
    assert conforms(contract, "deleteKey", deleted) == {"ok": True, "key": "config/theme"}
    again = client.delete(kv("config/theme"))
    assert again.status_code == 200
    conforms(contract, "deleteKey", again)


def test_list_keys(contract, client, server):
    for i in range(5):
        server.store.put(f"svc:k{i}", "v")
    first = client.get("/kv/keys", params={"prefix": "svc:", "limit": 3})
    page = conforms(contract, "listKeys", first)
    assert page["next_cursor"] is not None
    last = client.get("/kv/keys", params={"prefix": "svc:", "limit": 3, "cursor": page["next_cursor"]})
    assert conforms(contract, "listKeys", last)["next_cursor"] is None
    too_many = client.get("/kv/keys", params={"limit": 1001})
    assert too_many.status_code == 400
    conforms(contract, "listKeys", too_many)


def test_list_range(contract, client, server):
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


def test_get_multiple_keys(contract, client, server, special):
    server.store.put("a", "1")
    request = request_conforms(contract, "getMultipleKeys", {"keys": ["a", "missing"]})
    body = conforms(contract, "getMultipleKeys", client.post("/kv/mget", json=request))
    assert body == {"values": {"a": "1", "missing": None}}
    bad = client.post("/kv/mget", json={"keys": "a"})
    assert bad.status_code == 400
    conforms(contract, "getMultipleKeys", bad)
    _, auth = special["auth"]
    denied = auth.post("/kv/mget", json=request)
    assert denied.status_code == 401
    conforms(contract, "getMultipleKeys", denied)


# -- status ------------------------------------------------------------------------------


def test_health(contract, client, special):
    assert conforms(contract, "getHealth", client.get("/health"))["status"] == "healthy"
    _, down = special["unavailable"]
    unhealthy = down.get("/health")
    assert unhealthy.status_code == 503
    assert conforms(contract, "getHealth", unhealthy)["status"] == "unhealthy"


def test_status(contract, client):
    assert conforms(contract, "getStatus", client.get("/status"))["status"] == "running"


def test_stats(contract, client, server, special):
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


def test_unavailable_store_answers(contract, special):
    _, down = special["unavailable"]
    for operation_id, answer in [
        ("getKey", down.get(kv("k"))),
        ("putKey", down.put(kv("k"), json={"value": "x"})),
        ("deleteKey", down.delete(kv("k"))),
        ("listKeys", down.get("/kv/keys")),
        ("listRange", down.get("/kv")),
        ("getMultipleKeys", down.post("/kv/mget", json={"keys": []})),
    ]:
        assert answer.status_code == 503
        conforms(contract, operation_id, answer)


def test_unauthorized_answers(contract, special):
    _, auth = special["auth"]
    for operation_id, answer in [
        ("getKey", auth.get(kv("k"))),
        ("deleteKey", auth.delete(kv("k"), headers={"X-Toska-Token": "reader"})),
        ("listKeys", auth.get("/kv/keys", headers={"Authorization": "Bearer nope"})),
        ("listRange", auth.get("/kv")),
    ]:
        assert answer.status_code == 401
        assert conforms(contract, operation_id, answer) == {"error": "unauthorized"}


def test_rate_limited_answers(contract, special):
    _, limited = special["rate_limited"]
    answers = [limited.get(kv("k")) for _ in range(4)]
    throttled = [a for a in answers if a.status_code == 429]
    assert throttled
    for answer in answers:
        conforms(contract, "getKey", answer)
    assert throttled[0].headers["retry-after"].isdigit()


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
    ]:
        assert operation_id in contract.operations
