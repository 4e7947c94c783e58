"""/audit: writes, imports and repairs with versions and sizes; values for editors only;
shared through Redis, with the command line's writes."""

from __future__ import annotations

import html
import io
import json
import re

import pytest

from dashboard.devstore import start_devstore
from dashboard.main import main
from dashboard.mesh import audit_journal
from dashboard.stores.errors import NotFound
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.redis_server import RedisServer, free_port
from tests.support.webapp import csrf_token, login, make_app, post_form

_ROW = re.compile(r'<tr data-testid="audit-row"(.*?)>', re.S)
_ATTR = re.compile(r'data-([a-z-]+)="([^"]*)"')


@pytest.fixture(scope="module")
def running():
    with start_devstore(port=0) as store:
        yield store


@pytest.fixture
def provider(running):
    made = ToskaStoreProvider(running.url)
    yield made
    made.close()


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


def rows(response) -> list[dict[str, str]]:
    """The audit table's rows as their data attributes, newest first."""
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    return [{name: html.unescape(value) for name, value in _ATTR.findall(attrs)
             if name != "testid"} for attrs in _ROW.findall(page)]


def editor_of(app):
    client = app.test_client()
    login(client, "ed")
    return client


def create(client, key: str, value: str):
    response = post_form(client, "/key/new", {"key": key, "value": value, "ttl_mode": "none",
                                              "compact": "on", "update_index": "on"})
    assert response.status_code == 303, response.get_data(as_text=True)


def edit(client, provider, key: str, value: str):
    response = post_form(client, "/key/edit", {
        "key": key, "value": value, "ttl_mode": "none", "compact": "on", "update_index": "on",
        "expected_version": provider.get(key).token, "confirm": "yes"})
    assert response.status_code == 303, response.get_data(as_text=True)


def delete(client, provider, key: str):
    response = post_form(client, "/key/delete", {
        "key": key, "expected_version": provider.get(key).token, "confirm": "yes",
        "update_index": "on"})
    assert response.status_code == 303, response.get_data(as_text=True)


def repair(client, prefix: str):
    page = client.get(f"/index/repair?service={prefix}&action=prune-stale").get_data(as_text=True)
    digest = re.search(r'name="digest" value="([^"]+)"', page).group(1)
    done = post_form(client, "/index/repair", {"service": prefix, "action": "prune-stale",
                                               "digest": digest, "confirm": "yes"})
    assert 'data-testid="repair-result"' in done.get_data(as_text=True)


def test_create_edit_delete_and_repair_are_listed_newest_first_with_versions_and_sizes(provider):
    prefix = "au1:"
    provider.put(prefix + "__keys", json.dumps(["gone"]), ttl=NO_TTL)
    client = editor_of(make_app(provider))
    create(client, prefix + "k", '{"a":1}')
    v1 = provider.get(prefix + "k").version
    edit(client, provider, prefix + "k", '{"a": 22}')
    v2 = provider.get(prefix + "k").version
    delete(client, provider, prefix + "k")
    index_before = provider.get(prefix + "__keys")
    repair(client, prefix)
    index_after = provider.get(prefix + "__keys")

    repaired, deleted, edited, created = rows(client.get("/audit"))
    assert created == {"action": "create", "key": prefix + "k", "operator": "ed",
                       "old-version": "", "new-version": str(v1), "old-size": "",
                       "new-size": "7", "index": "updated", "outcome": "ok"}
    assert (edited["old-version"], edited["new-version"]) == (str(v1), str(v2))
    assert (edited["old-size"], edited["new-size"]) == ("7", "8")  # {"a":22}
    assert (deleted["action"], deleted["old-version"], deleted["new-version"]) == (
        "delete", str(v2), "")
    assert (deleted["old-size"], deleted["new-size"]) == ("8", "")
    assert repaired["action"] == "repair" and repaired["key"] == prefix + "__keys"
    assert (repaired["old-version"], repaired["new-version"]) == (
        str(index_before.version), str(index_after.version))
    assert (repaired["old-size"], repaired["new-size"]) == (
        str(len(index_before.value)), str(len(index_after.value)))
    # index changes: each key write's index outcome, the repair's removed key
    assert [r["index"] for r in (created, edited, deleted, repaired)] == [
        "updated", "unchanged", "updated", "updated"]
    page = client.get("/audit").get_data(as_text=True)
    assert page.count("(same transaction)") == 3  # the store has transactions (/kv/txn)
    assert "+0 −1" in page and f"− {prefix}gone" in html.unescape(re.sub("<[^>]+>", "", page))


def test_values_are_kept_unless_audit_values_is_off(provider):
    plain = editor_of(make_app(provider, dashboard={"AuditValues": False}))
    create(plain, "au2:k", '{"pin":"4711"}')
    page = plain.get("/audit").get_data(as_text=True)
    assert rows(plain.get("/audit"))[0]["new-size"] == "14"
    assert "4711" not in page and 'data-testid="audit-new-value"' not in page

    with_values = editor_of(make_app(provider))  # the default: values kept (for undo)
    edit(with_values, provider, "au2:k", '{"pin":"0815"}')
    page = html.unescape(with_values.get("/audit").get_data(as_text=True))
    assert '{"pin":"4711"}' in page and '{"pin":"0815"}' in page
    assert 'data-testid="audit-new-value"' in page


def test_a_value_over_audit_value_bytes_is_kept_as_its_size_alone(provider):
    client = editor_of(make_app(provider, dashboard={"AuditValueBytes": 16}))
    create(client, "au2b:k", '{"pin":"4711","pad":"xxxxxxxxxxxx"}')
    [entry] = client.application.extensions["kv_audit"].query(
        audit_journal.AuditQuery(key="au2b:k"), 0, 5).entries
    assert "new_value" not in entry and entry["new_value_omitted"] is True
    assert entry["new_size"] == 35


def test_viewers_see_every_entry_without_values_and_anonymous_callers_log_in(provider):
    app = make_app(provider)
    create(editor_of(app), "au2v:k", '{"pin":"4711"}')
    viewer = app.test_client()
    login(viewer, "vi")
    seen = viewer.get("/audit")
    page = html.unescape(seen.get_data(as_text=True))
    assert [(r["action"], r["key"], r["new-size"]) for r in rows(seen)] == [
        ("create", "au2v:k", "14")]
    assert "4711" not in page and 'data-testid="audit-values"' not in page
    assert "Values before and after are shown for the keys you may change" in page
    assert 'href="/audit"' in viewer.get("/services").get_data(as_text=True)  # in the nav
    assert '{"pin":"4711"}' in html.unescape(editor_of(app).get("/audit").get_data(as_text=True))
    anonymous = app.test_client().get("/audit")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_the_trail_is_bounded_and_paged(provider):
    app = make_app(provider, dashboard={"AuditMaxEntries": 3}, KV_AUDIT_PAGE_SIZE=2)
    client = editor_of(app)
    for n in range(5):
        create(client, f"au3:k{n}", "{}")
    first, second = rows(client.get("/audit")), rows(client.get("/audit?page=2"))
    assert [r["key"] for r in first + second] == ["au3:k4", "au3:k3", "au3:k2"]
    assert 'data-total="3"' in client.get("/audit").get_data(as_text=True)
    assert rows(client.get("/audit?page=3")) == []


def test_in_memory_the_trail_is_per_process(provider):
    one, two = editor_of(make_app(provider)), editor_of(make_app(provider))
    create(one, "au4:k", "{}")
    assert [r["key"] for r in rows(one.get("/audit"))] == ["au4:k"]
    assert rows(two.get("/audit")) == []


def test_two_replicas_sharing_a_redis_see_the_same_trail(provider, redis_server):
    redis_server.flushall()
    storage = {"SessionStorage": f"redis://{redis_server.host}:{redis_server.port}/0"}
    one = editor_of(make_app(provider, dashboard=storage))
    two = editor_of(make_app(provider, dashboard=storage))
    create(one, "au5:k", '{"x":1}')
    edit(two, provider, "au5:k", '{"x":2}')
    seen_by_one, seen_by_two = rows(one.get("/audit")), rows(two.get("/audit"))
    assert seen_by_one == seen_by_two
    assert [(r["action"], r["key"]) for r in seen_by_one] == [("edit", "au5:k"), ("create", "au5:k")]
    with redis_server.client() as raw:
        assert raw.hlen("{kvdash-audit}:e") == 2
        assert not any(key.startswith(b"au5") for key in raw.keys("*"))  # not in the mesh's keys


def test_a_write_the_trail_cannot_keep_is_not_made(provider, redis_server):
    app = make_app(provider, dashboard={
        "SessionStorage": f"redis://{redis_server.host}:{redis_server.port}/0"})
    client = editor_of(app)
    # the trail's Redis (here: a port nothing listens on) is down; the sessions' is not
    app.extensions["kv_audit"] = audit_journal.RedisEntries(
        f"redis://127.0.0.1:{free_port()}/0", 10, 90, timeout=1.0)
    refused = post_form(client, "/key/new", {"key": "au6:k", "value": "{}", "ttl_mode": "none",
                                             "compact": "on"})
    assert refused.status_code == 503
    assert "audit trail" in html.unescape(refused.get_data(as_text=True))
    with pytest.raises(NotFound):
        provider.get("au6:k")
    refused = client.get("/audit")
    assert refused.status_code == 503
    assert "Audit trail unavailable" in refused.get_data(as_text=True)


def test_an_unopenable_trail_refuses_writes_and_says_where(provider, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = make_app(provider, dashboard={"AuditStorage": f"sqlite://{blocker}/audit.sqlite3"})
    client = editor_of(app)
    refused = post_form(client, "/key/new", {"key": "au6b:k", "value": "{}", "ttl_mode": "none",
                                             "compact": "on"})
    assert refused.status_code == 503 and "audit.sqlite3" in html.unescape(
        refused.get_data(as_text=True))
    with pytest.raises(NotFound):
        provider.get("au6b:k")


def test_the_trail_survives_a_restart_of_the_dashboard(provider, tmp_path):
    storage = {"AuditStorage": f"sqlite://{tmp_path}/audit.sqlite3"}
    create(editor_of(make_app(provider, dashboard=storage)), "au6c:k", '{"v":1}')
    again = editor_of(make_app(provider, dashboard=storage))
    assert [(r["action"], r["key"]) for r in rows(again.get("/audit"))] == [("create", "au6c:k")]


def test_a_write_the_store_did_not_confirm_is_audited_as_unconfirmed():
    with start_devstore(port=0, release="0.9.1") as late:
        provider = ToskaStoreProvider(late.url)
        try:
            provider.capabilities()  # detect before the slow mode is switched on
            late.store.put("au7:k", "old")
            client = editor_of(make_app(provider))
            token = provider.get("au7:k").token
            with late.faults(write_applies_late_ms=600):  # answers 500 at once, applies later
                answer = post_form(client, "/key/edit", {
                    "key": "au7:k", "value": "newer", "raw": "on", "ttl_mode": "none",
                    "expected_version": token, "confirm": "yes"})
            assert answer.status_code == 504
            [row] = rows(client.get("/audit"))
            assert (row["action"], row["key"], row["outcome"]) == ("edit", "au7:k", "unconfirmed")
            assert (row["old-size"], row["new-size"]) == ("3", "5")
            metrics = client.get("/metrics").get_data(as_text=True)
            assert 'kvdash_writes_total{kind="edit",outcome="unconfirmed"} 1.0' in metrics
        finally:
            provider.close()


def test_keys_and_values_are_shown_escaped(provider):
    client = editor_of(make_app(provider, dashboard={"AuditValues": True}))
    hostile = 'au8:<img src=x onerror="alert(1)">'
    create(client, hostile, '{"v":"<script>alert(2)</script>"}')
    page = client.get("/audit").get_data(as_text=True)
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert rows(client.get("/audit"))[0]["key"] == hostile  # the exact key, escaped


def web_import(client, lines: list[dict], mode: str = "overwrite") -> str:
    """Plan and confirm an import through the web; the result page."""
    text = "\n".join(json.dumps({"ttl_ms": None, **line}) for line in lines)
    token = csrf_token(client, "/import")
    plan = client.post("/import", data={"csrf_token": token, "mode": mode,
                                        "file": (io.BytesIO(text.encode()), "x.jsonl")})
    body = plan.get_data(as_text=True)
    assert plan.status_code == 200, body
    upload = body.split('name="upload" value="')[1].split('"')[0]
    done = client.post("/import/confirm", data={"csrf_token": token, "upload": upload})
    assert done.status_code == 200 and 'data-complete="true"' in done.get_data(as_text=True)
    return done.get_data(as_text=True)


def test_an_import_records_what_it_overwrote_and_its_services_index(provider):
    prefix = "au9:"
    provider.put(prefix + "__keys", json.dumps(["old"]), ttl=NO_TTL)
    provider.put(prefix + "old", '{"v":1}', ttl=NO_TTL)
    provider.put(prefix + "old", '{"v":22}', ttl=NO_TTL)  # a version past the first
    before = provider.get(prefix + "old")
    client = editor_of(make_app(provider))
    web_import(client, [{"key": prefix + "old", "value": '{"v":333}'},
                        {"key": prefix + "new", "value": "{}"}])
    after = provider.get(prefix + "old")
    assert json.loads(provider.get(prefix + "__keys").value) == ["old", "new"]

    index, new, old = rows(client.get("/audit"))
    assert (old["action"], old["key"]) == ("import", prefix + "old")
    assert (old["old-version"], old["new-version"]) == (str(before.version), str(after.version))
    assert (old["old-size"], old["new-size"]) == ("8", "9")
    assert (new["old-version"], new["old-size"], new["new-size"]) == ("", "", "2")
    # each key was handed to its service's index update, which came after them: its entry
    # says what it did to the index (not "not-kept")
    assert old["index"] == new["index"] == "batched"
    assert (index["action"], index["key"], index["index"], index["outcome"]) == (
        "import", prefix + "__keys", "updated", "ok")
    assert "+2 −0" in client.get("/audit").get_data(as_text=True)


def test_an_import_into_a_service_without_an_index_says_not_kept(provider):
    client = editor_of(make_app(provider))
    web_import(client, [{"key": "au10:k", "value": "x"}])
    [entry] = rows(client.get("/audit"))
    assert (entry["key"], entry["index"]) == ("au10:k", "not-kept")


def test_the_command_lines_writes_reach_the_audit_of_a_web_app_sharing_its_redis(
        provider, running, redis_server, tmp_path, clean_environment, capsys):
    redis_server.flushall()
    storage = f"redis://{redis_server.host}:{redis_server.port}/0"
    config = tmp_path / "appsettings.json"
    config.write_text(json.dumps({
        "Mesh": {"KeyValue": {"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": running.url}}},
        "Dashboard": {"SessionStorage": storage}}))
    provider.put("au11:__keys", json.dumps(["k", "gone"]), ttl=NO_TTL)
    provider.put("au11:k", "old", ttl=NO_TTL)
    before = provider.get("au11:k")
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"key": "au11:k", "value": "newer", "ttl_ms": None}) + "\n")

    assert main(["import", "--config", str(config), str(data), "--mode", "overwrite",
                 "--yes"]) == 0
    assert main(["repair-index", "--config", str(config), "--service", "au11:", "--action",
                 "prune-stale", "--yes", "--backup", str(tmp_path / "index.json")]) == 0
    assert "audit: import:" in capsys.readouterr().err  # still on stderr too

    web = editor_of(make_app(provider, dashboard={"SessionStorage": storage}))
    repaired, index, imported = rows(web.get("/audit"))
    operator = imported["operator"]
    assert operator.startswith("cli")
    assert (imported["action"], imported["key"], imported["old-version"],
            imported["old-size"], imported["new-size"]) == (
        "import", "au11:k", str(before.version), "3", "5")
    assert (index["key"], index["index"], index["operator"]) == ("au11:__keys", "unchanged",
                                                                 operator)
    assert (repaired["action"], repaired["key"], repaired["operator"]) == (
        "repair", "au11:__keys", operator)


def test_a_command_whose_journal_does_not_answer_writes_nothing(
        provider, running, tmp_path, clean_environment, capsys):
    config = tmp_path / "appsettings.json"
    config.write_text(json.dumps({
        "Mesh": {"KeyValue": {"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": running.url}}},
        "Dashboard": {"SessionStorage": f"redis://127.0.0.1:{free_port()}/0",
                      "StoreTimeoutSeconds": 1}}))
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"key": f"au12:k{n}", "value": "v", "ttl_ms": None})
                            + "\n" for n in range(3)))
    assert main(["import", "--config", str(config), str(data), "--yes"]) == 2
    assert provider.exists_many(["au12:k0", "au12:k2"]) == {"au12:k0": False, "au12:k2": False}
    err = capsys.readouterr().err
    assert "audit trail" in err and "Not written" in err


def test_the_trail_filters_by_operator_prefix_action_and_window_and_downloads_as_jsonl(
        provider):
    clock_app = make_app(provider, dashboard={"Access": [
        {"Prefixes": "au20s:", "Role": "editor", "Users": "ed"}]})
    ed = editor_of(clock_app)
    create(ed, "au20a:k1", '{"n":1}')
    create(ed, "au20s:k1", '{"secret":1}')
    edit(ed, provider, "au20a:k1", '{"n":2}')
    rx = clock_app.test_client()
    login(rx, "rx")
    create(rx, "au20a:k2", '{"n":3}')

    def keys(url, client=ed):
        return [(r["action"], r["key"], r["operator"]) for r in rows(client.get(url))]

    assert keys("/audit?operator=rx") == [("create", "au20a:k2", "rx")]
    assert keys("/audit?prefix=au20a:&action=create") == [
        ("create", "au20a:k2", "rx"), ("create", "au20a:k1", "ed")]
    assert keys("/audit?prefix=au20&last=15m") == [
        ("create", "au20a:k2", "rx"), ("edit", "au20a:k1", "ed"), ("create", "au20s:k1", "ed"),
        ("create", "au20a:k1", "ed")]
    assert keys("/audit?prefix=au20&until=2001-01-01T00:00") == []
    assert ed.get("/audit?last=forever").status_code == 400
    # the restricted prefix is not in rx's trail, on the page or in the download
    assert ("create", "au20s:k1", "ed") not in keys("/audit?prefix=au20", rx)
    download = rx.get("/audit.jsonl?prefix=au20")
    assert download.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in download.get_data(as_text=True).splitlines()]
    assert [e["key"] for e in lines] == ["au20a:k2", "au20a:k1", "au20a:k1"]
    assert lines[1]["old_value"] == '{"n":1}' and lines[1]["new_value"] == '{"n":2}'
    mine = [json.loads(line) for line in ed.get("/audit.jsonl?prefix=au20s:").get_data(
        as_text=True).splitlines()]
    assert [e["key"] for e in mine] == ["au20s:k1"] and mine[0]["new_value"] == '{"secret":1}'


def test_entries_keep_what_an_undo_needs_and_an_import_is_one_job(provider):
    app = make_app(provider)
    client = editor_of(app)
    create(client, "au21:k", '{"v":1}')
    edit(client, provider, "au21:k", '{"v":2}')
    delete(client, provider, "au21:k")
    journal = app.extensions["kv_audit"]
    deleted, edited, created = journal.query(audit_journal.AuditQuery(key="au21:k"), 0, 5).entries
    assert created["before"] == {"exists": False} and created["after"]["exists"] is True
    assert edited["before"]["digest"] == created["after"]["digest"]
    assert edited["old_value"] == '{"v":1}' and edited["new_value"] == '{"v":2}'
    assert deleted["after"] == {"exists": False} and deleted["before"]["digest"] == \
        edited["after"]["digest"]
    assert all(e["store"] == provider.name for e in (created, edited, deleted))
    assert created.get("job") is None

    upload = io.BytesIO(b"".join(json.dumps({"key": f"au21:i{n}", "value": "1", "ttl_ms": None})
                                 .encode() + b"\n" for n in range(3)))
    planned = client.post("/import", data={"file": (upload, "in.jsonl"), "mode": "create-only",
                                           "csrf_token": csrf_token(client, "/import")},
                          content_type="multipart/form-data")
    token = re.search(r'name="upload" value="([^"]+)"', planned.get_data(as_text=True)).group(1)
    done = post_form(client, "/import/confirm", {"upload": token}, token_from="/import")
    assert done.status_code == 200
    imported = journal.query(audit_journal.AuditQuery(prefix="au21:i"), 0, 10).entries
    jobs = {e.get("job") for e in imported}
    assert len(imported) == 3 and len(jobs) == 1 and None not in jobs
    assert journal.query(audit_journal.AuditQuery(job=jobs.pop()), 0, 10).total >= 3
