"""Log lines: JSON (Dashboard:LogFormat=json) with a line per request and per write."""

from __future__ import annotations

import io
import json
import logging

import pytest

from dashboard.devstore import start_devstore
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import login, make_app, post_form


@pytest.fixture(scope="module")
def provider():
    with start_devstore(port=0) as running:
        made = ToskaStoreProvider(running.url)
        yield made
        made.close()


@pytest.fixture
def restore_logging():
    """Each app installs its log handler on the root logger: put back what was there."""
    root, audit = logging.getLogger(), logging.getLogger("dashboard.audit")
    handlers, level, audit_handlers = list(root.handlers), root.level, list(audit.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    audit.handlers[:] = audit_handlers


def json_app(provider, audit_stream=None, **dashboard):
    stream = io.StringIO()
    app = make_app(provider, dashboard={"LogFormat": "json", **dashboard}, KV_LOG_STREAM=stream,
                   KV_AUDIT_STREAM=audit_stream or io.StringIO())
    return app, stream


def test_audit_lines_also_go_to_their_own_stream_for_a_siem(provider, restore_logging):
    audit_stream = io.StringIO()
    app, stream = json_app(provider, audit_stream=audit_stream)
    client = app.test_client()
    login(client, "ed")
    assert post_form(client, "/key/new", {"key": "lg9:k", "value": "{}", "ttl_mode": "none",
                                          "compact": "on"}).status_code == 303
    audited = lines(audit_stream)
    assert [(line["logger"], line["action"], line["key"]) for line in audited] == [
        ("dashboard.audit", "create", "lg9:k")]
    assert any(line["logger"] == "dashboard.audit" for line in lines(stream))  # and the log


def lines(stream: io.StringIO) -> list[dict]:
    """Every line parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_each_request_is_one_json_line_with_its_fields(provider, restore_logging):
    provider.put("lg1:a", "1", ttl=NO_TTL)
    app, stream = json_app(provider)
    client = app.test_client()
    login(client, "ed")
    response = client.get("/key?key=lg1:a")
    assert response.status_code == 200
    requests = [line for line in lines(stream) if line["logger"] == "dashboard.request"]
    detail = [line for line in requests if line["endpoint"] == "keys.detail"]
    assert len(detail) == 1
    line = detail[0]
    assert line["method"] == "GET" and line["status"] == 200 and line["path"] == "/key"
    assert line["operator"] == "ed" and line["level"] == "INFO"
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert "time" in line and "lg1:a" not in json.dumps(line)  # keys stay out of request lines
    anonymous = [line for line in requests if line["endpoint"] == "auth.login"
                 and line["method"] == "GET"]
    assert anonymous and anonymous[0]["operator"] is None


def test_the_ingress_request_id_is_kept_and_a_bad_one_replaced(provider, restore_logging):
    app, stream = json_app(provider)
    client = app.test_client()
    kept = client.get("/healthz", headers={"X-Request-ID": "0f3a9c-ingress"})
    assert kept.headers["X-Request-ID"] == "0f3a9c-ingress"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert replaced.headers["X-Request-ID"] not in ("", "bad id <script>")
    ids = [line["request_id"] for line in lines(stream) if line["logger"] == "dashboard.request"]
    assert ids == ["0f3a9c-ingress", replaced.headers["X-Request-ID"]]


def test_each_write_is_one_json_line_with_versions_sizes_and_index(provider, restore_logging):
    provider.put("lg2:__keys", json.dumps([]), ttl=NO_TTL)
    app, stream = json_app(provider)
    client = app.test_client()
    login(client, "ed")
    created = post_form(client, "/key/new", {"key": "lg2:k", "value": '{"secret":"hunter2"}',
                                             "ttl_mode": "none", "compact": "on",
                                             "update_index": "on"})
    assert created.status_code == 303
    version = provider.get("lg2:k").version
    edited = post_form(client, "/key/edit", {
        "key": "lg2:k", "value": '{"secret":"hunter22"}', "ttl_mode": "keep", "compact": "on",
        "update_index": "on", "expected_version": f"v{version}", "confirm": "yes"})
    assert edited.status_code == 303
    writes = [line for line in lines(stream) if line["logger"] == "dashboard.audit"]
    assert [w["action"] for w in writes] == ["create", "edit"]
    create, edit = writes
    assert create["operator"] == "ed" and create["key"] == "lg2:k" and create["outcome"] == "ok"
    assert create["old_version"] is None and create["new_version"] == version
    assert create["old_size"] is None and create["new_size"] == len('{"secret":"hunter2"}')
    assert create["index"] == "updated"  # the service keeps an index: the key was added
    assert edit["old_version"] == version and edit["new_version"] == provider.get("lg2:k").version
    assert edit["old_size"] == 20 and edit["new_size"] == 21
    assert edit["index"] == "unchanged"  # already listed
    assert edit["request_id"] == edited.headers["X-Request-ID"]
    assert "hunter2" not in stream.getvalue()  # values never reach the log


def test_text_is_the_default_format(provider, restore_logging):
    stream = io.StringIO()
    app = make_app(provider, KV_LOG_STREAM=stream)
    assert app.config["KV_SETTINGS"].dashboard.log_format == "text"
    app.test_client().get("/healthz")
    [line] = stream.getvalue().splitlines()
    assert " INFO dashboard.request GET ops.healthz -> 200 in " in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_a_second_app_replaces_the_handler_instead_of_doubling_lines(provider, restore_logging):
    json_app(provider)
    app, stream = json_app(provider)
    app.test_client().get("/healthz")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_kvdash_handler", False)]
    assert len(ours) == 1 and len(lines(stream)) == 1


def test_an_unknown_log_format_stops_start_up():
    with pytest.raises(ConfigError, match="Dashboard__LogFormat.*text or json"):
        load_settings(environ={"Dashboard__LogFormat": "xml"})
    assert load_settings(environ={"Dashboard__LogFormat": " JSON "}).dashboard.log_format == "json"
