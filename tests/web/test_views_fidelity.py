"""Screens that follow the real stores and the runtime: leases, releases, the mesh's JSON bytes."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import login, make_app, post_form


@pytest.fixture
def running() -> Iterator:
    with start_devstore(port=0) as server:
        yield server


@pytest.fixture
def client_for() -> Iterator:
    """Logged-in test clients on dev stores; their providers are closed afterwards."""
    made: list[ToskaStoreProvider] = []

    def make(url: str):
        made.append(ToskaStoreProvider(url))
        client = make_app(made[-1]).test_client()
        login(client)
        return client, made[-1]

    yield make
    for provider in made:
        provider.close()


def text(response) -> str:
    return response.get_data(as_text=True)


def form_value(page: str, name: str) -> str:
    return html.unescape(re.search(rf'name="{name}" value="([^"]*)"', page).group(1))


def textarea(page: str) -> str:
    return html.unescape(re.search(r'data-testid="value-input">\n(.*?)</textarea>', page, re.S)
                         .group(1))


def leased(server, key: str, value: str) -> str:
    lease = httpx.post(f"{server.url}/leases", json={"ttl_ms": 60_000}).json()["lease"]["id"]
    httpx.put(f"{server.url}/kv/{key.replace(':', '%3A')}", json={"value": value, "lease_id": lease})
    return lease


def test_a_leased_key_page_names_the_lease_and_says_the_ttl_follows_it(running, client_for):
    lease = leased(running, "locks:job", '{"owner":"a"}')
    client, _ = client_for(running.url)
    page = text(client.get("/key?key=locks:job"))
    assert lease in page and "the TTL follows the lease" in page


def test_editing_a_leased_key_keeps_it_on_its_lease_by_default(running, client_for):
    lease = leased(running, "locks:job", '{"owner":"a"}')
    client, _ = client_for(running.url)
    page = text(client.get("/key/edit?key=locks:job"))
    assert f"keep it on lease <code data-testid=\"lease-id\">{lease}</code>" in page
    assert 'data-testid="lease-detach-warning"' in page
    data = {"key": "locks:job", "value": '{"owner":"b"}', "ttl_mode": "keep",
            "expected_version": form_value(page, "expected_version"), "compact": "on"}
    review = text(post_form(client, "/key/edit", data, token_from="/key/edit?key=locks:job"))
    assert "kept on lease" in review and 'data-testid="detaches"' not in review
    saved = post_form(client, "/key/edit", {**data, "confirm": "yes"},
                      token_from="/key/edit?key=locks:job")
    assert saved.status_code == 303
    stored = running.store.get("locks:job")
    assert stored["value"] == '{"owner":"b"}' and stored["metadata"]["lease_id"] == lease


def test_choosing_no_expiry_for_a_leased_key_says_it_detaches(running, client_for):
    leased(running, "locks:job", "{}")
    client, _ = client_for(running.url)
    page = text(client.get("/key/edit?key=locks:job"))
    review = text(post_form(client, "/key/edit", {
        "key": "locks:job", "value": "{}", "ttl_mode": "none",
        "expected_version": form_value(page, "expected_version")},
        token_from="/key/edit?key=locks:job"))
    assert 'data-testid="detaches"' in review


def test_new_key_on_0_9_1_says_create_only_is_read_then_write(client_for):
    with start_devstore(port=0, release="0.9.1") as server:
        client, _ = client_for(server.url)
        assert 'data-testid="create-not-atomic"' in text(client.get("/key/new?prefix=svc:"))
    with start_devstore(port=0) as server:
        client, _ = client_for(server.url)
        assert 'data-testid="create-not-atomic"' not in text(client.get("/key/new?prefix=svc:"))


def test_a_raw_value_under_a_service_prefix_warns_before_saving(running, client_for):
    running.store.put("profiles:alice", '{"id":"alice"}')
    client, _ = client_for(running.url)
    page = text(client.get("/key/edit?key=profiles:alice"))
    review = text(post_form(client, "/key/edit", {
        "key": "profiles:alice", "value": "not json", "raw": "on", "ttl_mode": "keep",
        "expected_version": form_value(page, "expected_version")},
        token_from="/key/edit?key=profiles:alice"))
    assert 'data-testid="raw-warning"' in review and "fail to deserialise" in review


MESH_VALUE = '{"id":"alice","displayName":"Zo\\u00EB \\u003Cb\\u003E","tags":["a\\u0022b"],"n":1.50}'


def test_an_edit_of_one_field_changes_only_that_field_s_bytes(running, client_for):
    running.store.put("profiles:alice", MESH_VALUE)
    client, _ = client_for(running.url)
    page = text(client.get("/key/edit?key=profiles:alice"))
    assert re.search(r'name="compact" checked', page)  # stored bytes are the mesh's own
    shown = textarea(page)
    assert "Zoë <b>" in shown and "1.50" in shown  # readable, number as written
    edited = shown.replace('"alice"', '"alicia"', 1)
    data = {"key": "profiles:alice", "value": edited, "ttl_mode": "keep", "compact": "on",
            "expected_version": form_value(page, "expected_version"), "confirm": "yes"}
    assert post_form(client, "/key/edit", data, token_from="/key/edit?key=profiles:alice"
                     ).status_code == 303
    assert running.store.get("profiles:alice")["value"] == MESH_VALUE.replace("alice", "alicia", 1)


def test_a_value_not_in_the_mesh_s_form_is_not_compacted_by_default(running, client_for):
    running.store.put("profiles:bob", '{"name": "Bob"}')
    client, _ = client_for(running.url)
    page = text(client.get("/key/edit?key=profiles:bob"))
    assert not re.search(r'name="compact" checked', page)


def test_an_unknown_provider_name_is_shown_to_operators(running):
    provider = ToskaStoreProvider(running.url)
    try:
        client = make_app(provider, mesh={"Provider": "Toska"}).test_client()
        login(client)
        page = text(client.get("/services"))
    finally:
        provider.close()
    assert 'data-testid="config-warning"' in page and "Toska" in page


def test_creating_a_raw_value_under_a_service_prefix_warns(running, client_for):
    client, _ = client_for(running.url)
    created = post_form(client, "/key/new", {"key": "profiles:x", "value": "plain text",
                                             "raw": "on", "ttl_mode": "none"},
                        token_from="/key/new?prefix=profiles:")
    assert created.status_code == 303
    page = text(client.get(created.headers["Location"]))
    assert "fail to deserialise" in page
    assert running.store.get("profiles:x")["value"] == "plain text"


CONTROL_KEYS = ["svc:line\nfeed", "svc:carriage\rreturn", "svc:tab\there", "svc:bell\x07x",
                "svc:crlf\r\nkey"]


def browser_fields(page: str, form_action: str) -> dict[str, str]:
    """The hidden fields of a form as a browser submits them: line breaks become CRLF."""
    form = re.search(rf'<form method="post" action="{re.escape(form_action)}".*?</form>', page, re.S)
    fields = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                  form.group(0)):
        fields[name] = re.sub(r"\r\n|\r|\n", "\r\n", html.unescape(value))
    return fields


@pytest.mark.parametrize("key", CONTROL_KEYS)
def test_keys_with_control_characters_survive_the_edit_and_delete_forms(running, client_for, key):
    running.store.put(key, '{"a":1}')
    client, _ = client_for(running.url)
    edit_url = "/key/edit?" + urlencode({"key": key})
    page = text(client.get(edit_url))
    data = {**browser_fields(page, "/key/edit"), "value": '{"a": 2}', "ttl_mode": "keep",
            "compact": "on", "confirm": "yes"}
    saved = post_form(client, "/key/edit", data, token_from=edit_url)
    assert saved.status_code == 303, text(saved)
    assert running.store.get(key)["value"] == '{"a":2}'
    delete_url = "/key/delete?" + urlencode({"key": key})
    page = text(client.get(delete_url))
    deleted = post_form(client, "/key/delete", browser_fields(page, "/key/delete"),
                        token_from=delete_url)
    assert deleted.status_code == 303, text(deleted)
    assert running.store.get(key) is None


def submit_edit(client, key: str, value: str | None = None, **fields):
    """Open the edit form and send it back as a browser would (CRLF line breaks)."""
    url = "/key/edit?" + urlencode({"key": key})
    page = text(client.get(url))
    shown = textarea(page) if value is None else value
    data = {**browser_fields(page, "/key/edit"), "value": re.sub(r"\r\n|\r|\n", "\r\n", shown),
            "ttl_mode": "keep", "confirm": "yes", **fields}
    if re.search(r'name="raw" checked', page):
        data.setdefault("raw", "on")
    if re.search(r'name="compact" checked', page):
        data.setdefault("compact", "on")
    return post_form(client, "/key/edit", data, token_from=url)


@pytest.mark.parametrize("stored", ["line one\r\nline two\r\n", "old\rmac\r", '{"name": "Bob"}',
                                    '{\r\n  "a": 1\r\n}'])
def test_an_unchanged_value_is_never_written(running, client_for, stored):
    running.store.put("svc:k", stored)
    version = running.store.get("svc:k")["metadata"]["version"]
    client, _ = client_for(running.url)
    answer = submit_edit(client, "svc:k")
    assert answer.status_code == 303
    assert "Nothing changed" in text(client.get(answer.headers["Location"]))
    assert running.store.get("svc:k")["metadata"]["version"] == version
    assert running.store.get("svc:k")["value"] == stored


def test_a_ttl_change_alone_keeps_the_stored_bytes(running, client_for):
    running.store.put("svc:k", "line one\r\nline two")
    client, _ = client_for(running.url)
    assert submit_edit(client, "svc:k", ttl_mode="set", ttl="1h").status_code == 303
    stored = running.store.get("svc:k")
    assert stored["value"] == "line one\r\nline two" and stored["metadata"]["expires_at"]


def test_an_edit_keeps_the_line_endings_it_did_not_touch(running, client_for):
    running.store.put("svc:k", "one\r\ntwo\r\nthree")
    client, _ = client_for(running.url)
    assert submit_edit(client, "svc:k", "one\ntwo\nTHREE").status_code == 303
    assert running.store.get("svc:k")["value"] == "one\r\ntwo\r\nTHREE"


def test_a_create_into_a_service_with_a_50000_deep_index_says_what_was_written(
        running, client_for):
    running.store.put("svc:__keys", "[" * 50_000 + "]" * 50_000)
    client, _ = client_for(running.url)
    created = post_form(client, "/key/new", {"key": "svc:new", "value": "{}", "ttl_mode": "none",
                                             "update_index": "on"},
                        token_from="/key/new?prefix=svc:")
    assert created.status_code == 303  # not a 500 claiming nothing was written
    page = text(client.get(created.headers["Location"]))
    assert "Created." in page and "malformed and was left as it is" in page
    assert running.store.get("svc:new")["value"] == "{}"


def test_editing_an_indexed_key_does_not_claim_to_add_it_to_the_index(running, client_for):
    running.store.put("svc:k", '{"a":1}')
    running.store.put("svc:__keys", '["k"]')
    client, _ = client_for(running.url)
    saved = submit_edit(client, "svc:k", '{"a": 2}')
    assert saved.status_code == 303
    page = text(client.get(saved.headers["Location"]))
    assert "Saved." in page and "added to" not in page


# --- downloads and edits are byte-exact on every store (issue 15, items 5 and 7) --------------

@pytest.fixture(scope="module", params=["devstore", "devstore-0.9.1", "devstore-legacy",
                                        "redis", "redis-cluster"])
def any_store(request):
    from tests.support.backends import start_backend

    with start_backend(request.param) as backend:
        yield backend


def test_a_download_is_the_stored_bytes(any_store):
    client = make_app(any_store.provider).test_client()
    login(client)
    value = '{"name":"Zoë ☃","blob":"' + "x" * 70_000 + '"}'
    any_store.seed({"dl:doc": value})
    response = client.get("/key/download?key=dl:doc")
    assert response.status_code == 200 and response.data == value.encode("utf-8")
    assert response.headers["Content-Length"] == str(len(value.encode("utf-8")))
    raw = any_store.extra.get("raw")
    if raw is None:
        return  # a text store: its values are text, downloaded as their UTF-8 bytes
    binary = bytes(range(256)) * 4
    raw.set(b"dl:bin", binary)
    response = client.get("/key/download?key=dl:bin")
    assert response.data == binary and response.headers["Content-Length"] == "1024"
    raw.set(b"dl:one", b"\xff")
    assert "1 B" in text(client.get("/key?key=dl:one"))


def test_a_delete_form_of_a_binary_value_refuses_a_byte_changed_meanwhile(any_store):
    raw = any_store.extra.get("raw")
    if raw is None:
        assert not any_store.provider.capabilities().non_string_types
        return
    client = make_app(any_store.provider).test_client()
    login(client)
    raw.set(b"dl:blob", b"\xff\xfe")
    page = text(client.get("/key/delete?key=dl:blob"))
    raw.set(b"dl:blob", b"\xfe\xff")  # another writer: the page would show the same
    answer = post_form(client, "/key/delete", {
        "key": "dl:blob", "expected_version": form_value(page, "expected_version"),
        "confirm": "yes"})
    assert answer.status_code == 409 and raw.get(b"dl:blob") == b"\xfe\xff"
