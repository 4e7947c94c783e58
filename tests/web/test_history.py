"""A key's timeline and undo, on the dev store and a real redis-server: each undo is a
conditional write that puts the key (and its index) back, and refuses when the key moved."""

from __future__ import annotations

import html
import json
import re

import pytest

from dashboard.mesh.audit_journal import AuditQuery
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


def import_file(client, lines: list[dict], mode: str = "create-only") -> None:
    import io

    from tests.support.webapp import csrf_token

    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    planned = client.post("/import", data={"file": (io.BytesIO(body), "in.jsonl"), "mode": mode,
                                           "csrf_token": csrf_token(client, "/import")},
                          content_type="multipart/form-data")
    token = re.search(r'name="upload" value="([^"]+)"', planned.get_data(as_text=True)).group(1)
    assert post_form(client, "/import/confirm", {"upload": token}, token_from="/import"
                     ).status_code == 200


def test_undoing_an_import_job_deletes_its_new_keys_and_leaves_changed_ones(
        store, prefix, editor, app):
    import_file(editor, [{"key": f"{prefix}i{n}", "value": f'{{"n":{n}}}', "ttl_ms": None}
                         for n in range(3)])
    [entry] = app.extensions["kv_audit"].query(AuditQuery(key=f"{prefix}i0"), 0, 1).entries
    job = entry["job"]
    store.provider.put(f"{prefix}i1", '{"n":"runtime"}', ttl=NO_TTL)  # written since
    audit_page = editor.get(f"/audit?job={job}").get_data(as_text=True)
    assert 'data-testid="revert-job-form"' in audit_page
    report = post_form(editor, "/audit/revert", {"job": job})
    page = report.get_data(as_text=True)
    assert report.status_code == 200
    outcomes = dict(re.findall(r'data-key="([^"]+)" data-outcome="([^"]+)"', page))
    assert outcomes == {f"{prefix}i0": "reverted", f"{prefix}i1": "changed",
                        f"{prefix}i2": "reverted"}
    for gone in ("i0", "i2"):
        with pytest.raises(NotFound):
            store.provider.get(prefix + gone)
    assert store.provider.get(f"{prefix}i1").value == '{"n":"runtime"}'
    undo_job = re.search(r'data-testid="undo-job">([^<]+)<', page).group(1)
    assert undo_job != job and f"job={undo_job}" in page


def test_undoing_a_repair_puts_the_index_back(store, prefix, editor):
    if store.provider.kind != "toskastore":
        pytest.skip("the mesh keeps __keys indexes on ToskaStore only")
    store.seed({prefix + "a": "1"})
    store.provider.put(prefix + "__keys", '["a","stale"]', ttl=NO_TTL)
    service = prefix
    page = editor.get(f"/index/repair?service={service}&action=prune-stale").get_data(
        as_text=True)
    digest = re.search(r'name="digest" value="([^"]+)"', page).group(1)
    done = post_form(editor, "/index/repair", {"service": service, "action": "prune-stale",
                                               "confirm": "yes", "legacy_ack": "on",
                                               "digest": digest})
    assert done.status_code == 200 and index_of(store, prefix) == ["a"]
    [(entry_id, action)] = entry_ids(editor, prefix + "__keys")
    assert action == "repair"
    assert undo(editor, entry_id).status_code == 303
    assert index_of(store, prefix) == ["a", "stale"]


def test_the_timeline_merges_the_stores_own_history_on_toskastore_main(store, prefix, editor):
    key = prefix + "mixed"
    create(editor, key, '{"v":1}')
    store.provider.put(key, '{"v":"service"}', ttl=NO_TTL)  # a service writes it, no audit
    write(editor, store, key, '{"v":3}')
    page = editor.get(f"/key/history?key={key}").get_data(as_text=True)
    outside = re.findall(r'data-testid="history-store-change" data-revision="(\d+)" '
                         r'data-op="(\w+)"', page)
    if store.provider.kind != "toskastore":
        assert outside == [] and "keeps no history of its own" in page
        return
    assert [op for _, op in outside] == ["put"]  # the service's write, not the dashboard's two
    shown = html.unescape(page)
    assert "outside the dashboard" in shown and '"service"' in shown
    order = [m.group(0) for m in re.finditer(
        r'data-action="(create|edit)"|data-testid="history-store-change"', page)]
    assert order == ['data-action="edit"', 'data-testid="history-store-change"',
                     'data-action="create"']
