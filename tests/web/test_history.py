"""A key's timeline and undo, on the dev store and a real redis-server: each undo is a
conditional write that puts the key (and its index) back, and refuses when the key moved."""

from __future__ import annotations

import html
import json
import re

import pytest

from dashboard.stores.errors import NotFound
from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app, post_form

HOUR_MS = 3_600_000


@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def app(store, prefix):
    return make_app(store.provider, dashboard={
        "Services": [{"Name": prefix[:-1], "EnableKeyIndex": True}],
        "Masking": [{"Prefixes": prefix, "JsonFields": "pin"}]})


@pytest.fixture
def editor(app):
    client = app.test_client()
    login(client, "ed")
    return client


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def write(client, store, key, value, *, ttl="none", ttl_value=""):
    current = store.provider.get(key)
    answer = post_form(client, "/key/edit", {
        "key": key, "value": value, "raw": "on", "ttl_mode": ttl, "ttl": ttl_value,
        "expected_version": current.token, "confirm": "yes", "update_index": "on"})
    assert answer.status_code == 303, text(answer)


def create(client, key, value):
    answer = post_form(client, "/key/new", {"key": key, "value": value, "raw": "on",
                                            "ttl_mode": "none", "update_index": "on"})
    assert answer.status_code == 303, text(answer)


def entry_ids(client, key) -> list[tuple[str, str]]:
    page = client.get(f"/key/history?key={key}").get_data(as_text=True)
    return re.findall(r'data-audit-id="([^"]+)" data-action="([^"]+)"', page)


def undo(client, entry_id, **more):
    return post_form(client, "/audit/revert", {"id": entry_id, **more})


def index_of(store, prefix) -> list[str]:
    try:
        return json.loads(store.provider.get(prefix + "__keys").value)
    except NotFound:
        return []


def test_the_timeline_lists_each_change_with_its_diff_and_an_undo(store, prefix, editor):
    key = prefix + "doc"
    create(editor, key, '{"v":1}')
    write(editor, store, key, '{"v":2}')
    page = text(editor.get(f"/key/history?key={key}"))
    assert [action for _, action in entry_ids(editor, key)] == ["edit", "create"]
    assert 'data-testid="history-diff"' in page and '"v": 2' in page
    assert page.count('data-testid="revert-form"') == 2
    assert f'href="/key/history?key={key}"' in editor.get(f"/key?key={key}").get_data(
        as_text=True)


def test_undoing_an_edit_puts_the_value_and_its_expiry_back(store, prefix, editor):
    key = prefix + "doc"
    store.seed({key: '{"v":1}'}, ttl_ms=HOUR_MS)
    write(editor, store, key, '{"v":2}', ttl="none")  # the edit also dropped the TTL
    assert store.provider.get(key).ttl_ms is None
    [(entry_id, _)] = entry_ids(editor, key)
    assert undo(editor, entry_id).status_code == 303
    back = store.provider.get(key)
    assert back.value == '{"v":1}' and back.ttl_ms is not None and back.ttl_ms <= HOUR_MS
    assert back.ttl_ms > HOUR_MS - 120_000
    assert [action for _, action in entry_ids(editor, key)][0] == "revert"


def test_undoing_a_create_deletes_the_key_and_its_index_entry(store, prefix, editor):
    key = prefix + "made"
    create(editor, key, '{"n":1}')
    if store.provider.kind == "toskastore":  # the mesh keeps __keys on ToskaStore only
        assert "made" in index_of(store, prefix)
    [(entry_id, _)] = entry_ids(editor, key)
    assert undo(editor, entry_id).status_code == 303
    with pytest.raises(NotFound):
        store.provider.get(key)
    assert "made" not in index_of(store, prefix)


def test_undoing_a_delete_recreates_the_key_with_the_ttl_it_had_left(store, prefix, editor):
    key = prefix + "gone"
    store.seed({key: '{"n":1}'}, ttl_ms=HOUR_MS)
    token = store.provider.get(key).token
    answer = post_form(editor, "/key/delete", {"key": key, "expected_version": token,
                                               "confirm": "yes", "update_index": "on"})
    assert answer.status_code == 303
    [(entry_id, action)] = entry_ids(editor, key)
    assert action == "delete"
    assert undo(editor, entry_id).status_code == 303
    back = store.provider.get(key)
    assert back.value == '{"n":1}' and back.ttl_ms is not None and back.ttl_ms <= HOUR_MS


def test_a_change_made_since_is_never_overwritten_without_a_confirmation(store, prefix, editor):
    key = prefix + "raced"
    create(editor, key, '{"v":1}')
    write(editor, store, key, '{"v":2}')
    edit_id = entry_ids(editor, key)[0][0]
    store.provider.put(key, '{"v":"runtime"}', ttl=NO_TTL)  # the service wrote it meanwhile
    page = undo(editor, edit_id)
    shown = text(page)
    assert page.status_code == 409 and 'data-testid="three-way"' in shown
    assert '{"v":1}' in shown and '{"v":2}' in shown and '{"v":"runtime"}' in shown
    assert store.provider.get(key).value == '{"v":"runtime"}'  # nothing written
    seen = re.search(r'name="seen" value="([^"]*)"', page.get_data(as_text=True)).group(1)
    store.provider.put(key, '{"v":"again"}', ttl=NO_TTL)  # and again, while deciding
    moved = undo(editor, edit_id, force="yes", seen=seen)
    assert moved.status_code == 303 and store.provider.get(key).value == '{"v":"again"}'
    page = undo(editor, edit_id)
    seen = re.search(r'name="seen" value="([^"]*)"', page.get_data(as_text=True)).group(1)
    forced = undo(editor, edit_id, force="yes", seen=seen)
    assert forced.status_code == 303 and store.provider.get(key).value == '{"v":1}'


def test_what_the_trail_did_not_keep_cannot_be_undone(store, prefix):
    key = prefix + "big"
    app = make_app(store.provider, dashboard={"AuditValueBytes": 8})
    client = app.test_client()
    login(client, "ed")
    store.seed({key: '{"long":"value"}'})
    write(client, store, key, '{"v":2}')
    [(entry_id, _)] = entry_ids(client, key)
    refused = undo(client, entry_id)
    assert refused.status_code == 409 and "AuditValueBytes" in text(refused)
    assert store.provider.get(key).value == '{"v":2}'


def test_a_reader_sees_the_timeline_masked_and_cannot_undo(store, prefix, app, editor):
    key = prefix + "pins"
    create(editor, key, '{"pin":"4711"}')
    write(editor, store, key, '{"pin":"0815"}')
    viewer = app.test_client()
    login(viewer, "vi")
    page = viewer.get(f"/key/history?key={key}").get_data(as_text=True)
    assert "4711" not in page and "0815" not in page
    assert 'data-testid="revert-form"' not in page
    entry_id = entry_ids(viewer, key)[0][0]
    assert undo(viewer, entry_id).status_code == 403
    assert store.provider.get(key).value == '{"pin":"0815"}'
    assert "4711" in text(editor.get(f"/key/history?key={key}"))  # the editor may write it


def test_the_ttl_a_revert_restores_is_what_was_left(store, prefix, editor):
    key = prefix + "ttl"
    store.seed({key: '{"n":1}'})
    write(editor, store, key, '{"n":1}', ttl="set", ttl_value="2h")
    [(entry_id, _)] = entry_ids(editor, key)
    assert undo(editor, entry_id).status_code == 303
    assert store.provider.get(key).ttl_ms is None  # it had no expiry before
