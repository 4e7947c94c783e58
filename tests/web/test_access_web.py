"""Access per prefix on the web: break-glass elevation, masking in every answer a reader can
get, SSO groups that rules name, and the environment band."""

from __future__ import annotations

import html
import json

import httpx
import pytest

from dashboard.mesh.access.policy import MASK
from tests.support.backends import start_backend
from tests.support.clock import Clock
from tests.support.live import login_http, serve_app
from tests.support.webapp import login, make_app, post_form

SECRETS = ("ann@x.io", "tok-123")


@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def token_of(client, key: str) -> str:
    page = text(client.get(f"/key/edit?key={key}"))
    return page.split('name="expected_version" value="', 1)[1].split('"', 1)[0]


# --- elevation ------------------------------------------------------------------------------

def elevation_app(store, clock):
    return make_app(store.provider, KV_CLOCK=clock, dashboard={
        "Elevation": {"Required": True, "MaxMinutes": 30}})


def test_editors_browse_read_only_until_they_elevate(store, prefix):
    key = f"{prefix}doc"
    store.seed({key: '{"a":1}'})
    clock = Clock()
    app = elevation_app(store, clock)
    client = app.test_client()
    login(client, "ed")
    refused = client.get(f"/key/edit?key={key}")
    assert refused.status_code == 403 and "elevation" in text(refused)
    page = text(client.get(f"/key?key={key}"))
    assert 'data-testid="edit"' not in page and 'data-testid="elevate-form"' in page
    answer = post_form(client, "/key/delete", {"key": key, "confirm": "yes",
                                               "expected_version": "v1"})
    assert answer.status_code == 403 and store.provider.get(key).value == '{"a":1}'

    for reason, minutes, said in (("short", "5", "at least 10 characters"),
                                  ("INC-1 outage in payments", "31", "between 1 and 30")):
        bad = post_form(client, "/elevate", {"reason": reason, "minutes": minutes})
        assert bad.status_code == 400 and said in text(bad)
    started = post_form(client, "/elevate", {"reason": "INC-1 outage in payments",
                                             "minutes": "10"})
    assert started.status_code == 302
    page = text(client.get("/services"))
    assert 'data-testid="elevation-banner"' in page and "INC-1 outage in payments" in page
    assert "10 min" in page or "9 min" in page
    saved = post_form(client, "/key/edit", {
        "key": key, "value": '{"a":2}', "raw": "on", "ttl_mode": "none",
        "expected_version": token_of(client, key), "confirm": "yes"})
    assert saved.status_code == 303 and store.provider.get(key).value == '{"a":2}'
    audit = client.get("/audit").get_data(as_text=True)
    assert "elevation-started" in audit
    edit_row = audit.split('data-action="edit"', 1)[1].split("</tr>", 1)[0]
    assert 'data-testid="audit-reason"' in edit_row and "INC-1 outage in payments" in edit_row

    form_token = token_of(client, key)
    clock.advance(10 + 1 / 60)  # a second after it ends
    late = post_form(client, "/key/edit", {
        "key": key, "value": '{"a":3}', "raw": "on", "ttl_mode": "none",
        "expected_version": form_token, "confirm": "yes"})
    assert late.status_code == 403 and "elevation" in text(late)
    assert store.provider.get(key).value == '{"a":2}'
    audit = text(client.get("/audit"))
    assert "elevation-ended" in audit


def test_an_elevation_can_be_ended_now_and_viewers_cannot_elevate(store):
    clock = Clock()
    app = elevation_app(store, clock)
    client = app.test_client()
    login(client, "ed")
    post_form(client, "/elevate", {"reason": "INC-2 cache warmup", "minutes": "5"})
    assert 'data-testid="elevation-banner"' in text(client.get("/services"))
    ended = post_form(client, "/elevate/end", {})
    assert ended.status_code == 302
    assert 'data-testid="elevation-banner"' not in text(client.get("/services"))
    assert "ended by the operator" in text(client.get("/audit"))
    viewer = app.test_client()
    login(viewer, "vi")
    refused = post_form(viewer, "/elevate", {"reason": "I want to write", "minutes": "5"})
    assert refused.status_code == 403 and "viewer" in text(refused)


# --- masking --------------------------------------------------------------------------------

def masking_app(store, prefix):
    return make_app(store.provider, dashboard={
        "Masking": [{"Prefixes": prefix, "JsonFields": "email,token"}]})


def seed_person(store, prefix) -> str:
    key = f"{prefix}u1"
    store.seed({key: json.dumps({"name": "Ann", "email": "ann@x.io",
                                 "nested": {"token": "tok-123"}})})
    return key


def test_masked_fields_are_absent_from_every_answer_a_viewer_gets(store, prefix):
    key = seed_person(store, prefix)
    client = masking_app(store, prefix).test_client()
    login(client, "vi")
    answers = {
        "key page": client.get(f"/key?key={key}"),
        "raw view": client.get(f"/key?key={key}&view=raw"),
        "download": client.get(f"/key/download?key={key}"),
        "browse": client.get(f"/browse?prefix={prefix}"),
        "pattern search": client.get(f"/browse?prefix={prefix}&match=u*"),
        "bulk lookup": client.get(f"/mget?keys={key}"),
        "bulk CSV": client.get(f"/mget?keys={key}&format=csv"),
        "bulk JSON": client.get(f"/mget?keys={key}&format=json"),
        "export JSONL": client.get(f"/export?prefix={prefix}"),
        "value search": client.get(f"/search?prefix={prefix}&q=Ann"),
    }
    for name, answer in answers.items():
        body = answer.get_data(as_text=True)
        assert answer.status_code == 200, (name, answer.status_code)
        assert not any(secret in body for secret in SECRETS), f"{name} shows a masked field"
    assert MASK in text(answers["key page"]) and MASK in answers["export JSONL"].get_data(
        as_text=True)
    hidden = client.get(f"/search?prefix={prefix}&q=ann@x")
    assert 'data-testid="hit-row"' not in hidden.get_data(as_text=True)
    # an editor (who may write there) sees the value
    editor = masking_app(store, prefix).test_client()
    login(editor, "ed")
    assert "ann@x.io" in text(editor.get(f"/key?key={key}"))


def test_the_live_feed_masks_too(store, prefix):
    if "running" not in store.extra:
        pytest.skip("replaying past changes (since=) is the dev store's; Redis has no history")
    since = store.extra["running"].store.revision
    key = seed_person(store, prefix)
    app = masking_app(store, prefix)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        login_http(client, "vi")
        with client.stream("GET", "/live/stream", params={
                "prefix": prefix, "since": since, "once": "1"}) as sse:
            body = "".join(sse.iter_text())
    assert key in body or "u1" in body, body[:500]
    assert not any(secret in body for secret in SECRETS)


# --- single sign-on groups ------------------------------------------------------------------

SSO = {"ForwardedProxies": 1, "TrustedAuthHeader": "X-Forwarded-User",
       "TrustedAuthProxies": "127.0.0.1", "TrustedAuthGroupsHeader": "X-Forwarded-Groups",
       "TrustedAuthRoles": {"kv-readers": "viewer"}, "TrustedAuthDefaultRole": "none"}


def test_sso_groups_reach_the_prefixes_rules_give_them(store, prefix):
    key, other = f"{prefix}card", f"x{prefix}card"
    store.seed({key: '{"amount":1}', other: '{"amount":2}'})
    app = make_app(store.provider, dashboard={**SSO, "Access": [
        {"Prefixes": prefix, "Role": "editor", "Groups": "Pay-Team"}]})
    client = app.test_client()
    as_payer = {"X-Forwarded-User": "pat", "X-Forwarded-Groups": "pay-team"}
    page = client.get(f"/key/download?key={key}", headers=as_payer)
    assert page.status_code == 200 and page.get_data(as_text=True) == '{"amount":1}'
    assert client.get(f"/key?key={key}", headers=as_payer).status_code == 200
    assert client.get(f"/key?key={other}", headers=as_payer).status_code == 403
    assert client.get(f"/key/edit?key={key}", headers=as_payer).status_code == 200
    stranger = app.test_client().get("/services", headers={
        "X-Forwarded-User": "sam", "X-Forwarded-Groups": "other"})
    assert stranger.status_code == 403
    reader = app.test_client()
    as_reader = {"X-Forwarded-User": "rita", "X-Forwarded-Groups": "kv-readers"}
    assert reader.get(f"/key?key={key}", headers=as_reader).status_code == 403
    assert reader.get(f"/key?key={other}", headers=as_reader).status_code == 200


# --- environment band -----------------------------------------------------------------------

def test_the_environment_is_named_on_every_page_and_in_the_title(store):
    app = make_app(store.provider, dashboard={"Environment": {"Name": "production",
                                                              "Color": "red"}})
    client = app.test_client()
    for url in ("/login",):
        page = text(client.get(url))
        assert 'data-testid="environment-band"' in page and "production" in page
        assert "<title>[production]" in page
    login(client, "vi")
    assert 'data-testid="environment-band"' in text(client.get("/services"))
    css = client.get("/environment.css").get_data(as_text=True)
    assert "#b42318" in css and "#ffffff" in css  # white reads on the red band


# --- write controls follow the key ----------------------------------------------------------

def test_write_controls_show_only_where_the_operator_may_write(store, prefix):
    mine, theirs = f"{prefix}mine", f"r{prefix}theirs"
    store.seed({mine: '{"a":1}', theirs: '{"b":2}'})
    app = make_app(store.provider, dashboard={"Access": [
        {"Prefixes": prefix, "Role": "editor", "Users": "vi"},
        {"Prefixes": f"r{prefix}", "Role": "viewer", "Users": "vi,ed"}]})
    viewer = app.test_client()
    login(viewer, "vi")
    page = text(viewer.get(f"/key?key={mine}"))
    assert 'data-testid="edit"' in page and 'data-testid="delete"' in page
    page = text(viewer.get(f"/key?key={theirs}"))
    assert 'data-testid="edit"' not in page and 'data-testid="delete"' not in page
    assert viewer.get(f"/key/edit?key={mine}").status_code == 200
    assert viewer.get(f"/key/edit?key={theirs}").status_code == 403
    editor = app.test_client()
    login(editor, "ed")
    assert 'data-testid="edit"' not in text(editor.get(f"/key?key={theirs}"))
    assert editor.get(f"/key?key={mine}").status_code == 403


def test_the_live_feed_has_no_event_of_a_prefix_the_operator_may_not_read(store, prefix):
    if "running" not in store.extra:
        pytest.skip("replaying past changes (since=) is the dev store's; Redis has no history")
    since = store.extra["running"].store.revision
    hidden, shown = f"{prefix}secret", f"o{prefix}open"
    store.seed({hidden: '{"pin":"4242"}', shown: '{"n":1}'})
    app = make_app(store.provider, dashboard={"Access": [
        {"Prefixes": prefix, "Role": "viewer", "Users": "ed"}]})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        login_http(client, "rx")
        with client.stream("GET", "/live/stream", params={
                "prefix": "", "since": since, "once": "1"}) as sse:
            body = "".join(sse.iter_text())
    assert shown in body and hidden not in body and "4242" not in body
