"""The index drift pages and repair, through the test client on every store mode."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app, post_form

LIVE = {"a": "1", "b": "2", "c": "3"}
INDEX = ["a", "a", "x", "b"]  # duplicate a, stale x, c unindexed


@pytest.fixture(scope="module", params=["devstore", "devstore-legacy", "devstore-nolisting",
                                        "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def drifted(store, request):
    """A service with exactly one stale, one unindexed and one duplicated entry."""
    service = f"drift{abs(hash(request.node.name)) % 10**8}:"
    for inner, value in LIVE.items():
        store.provider.put(service + inner, value, ttl=NO_TTL)
    store.provider.put(service + "__keys", json.dumps(INDEX), ttl=NO_TTL)
    return service


@pytest.fixture
def editor(store):
    client = make_app(store.provider).test_client()
    login(client, "ed")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def listed(page: str, name: str) -> list[str]:
    block = re.search(rf'data-testid="drift-{name}">(.*?)</ul>', page, re.S)
    return re.findall(r'data-key="([^"]+)"', block.group(1)) if block else []


def unindexed_detectable(store) -> bool:
    return store.provider.capabilities().key_listing


def test_check_reports_each_kind_of_drift_exactly(editor, store, drifted):
    page = text(editor.get(f"/index/check?service={drifted}"))
    summary = re.search(r'data-testid="drift-summary"([^>]*)>', page).group(1)
    assert 'data-stale="1"' in summary and 'data-duplicates="1"' in summary
    assert listed(page, "stale") == [drifted + "x"]
    assert listed(page, "duplicates") == [drifted + "a"]
    if unindexed_detectable(store):
        assert listed(page, "unindexed") == [drifted + "c"]
        assert 'data-unindexed="1"' in summary
    assert f'href="/key?key={drifted}x"' in page


def test_overview_lists_indexed_services_and_checks_each_lazily(editor, store, drifted):
    page = text(editor.get("/index"))
    if store.provider.kind == "redis":
        assert f'data-prefix="{drifted}"' not in page
        assert "The Redis runtime keeps no" in page
    elif unindexed_detectable(store):
        assert f'data-prefix="{drifted}"' in page
    row = text(editor.get(f"/index/check?service={drifted}&view=row",
                          headers={"HX-Request": "true"}))
    # an existing index can still be checked on request, whatever keeps it
    assert row.startswith("<tr") and 'data-consistent="false"' in row
    assert 'data-testid="row-stale" data-count="1"' in row


def test_malformed_index_is_reported_with_its_start(editor, store, drifted):
    store.provider.put(drifted + "__keys", '{"not": "an array"}', ttl=NO_TTL)
    page = text(editor.get(f"/index/check?service={drifted}"))
    assert 'data-testid="drift-malformed"' in page
    assert '"not": "an array"' in html.unescape(page)  # the value's first characters


def test_repair_shows_the_plan_then_writes_it(editor, store, drifted):
    confirm = editor.get(f"/index/repair?service={drifted}&action=prune-stale")
    page = text(confirm)
    assert re.findall(r'data-key="([^"]+)"', page) == [drifted + "x"]
    assert json.loads(store.provider.get(drifted + "__keys").value) == INDEX  # nothing yet
    digest = re.search(r'name="digest" value="([^"]+)"', page).group(1)
    form = {"service": drifted, "action": "prune-stale", "digest": digest, "confirm": "yes"}
    atomic = store.provider.capabilities().atomic_cas
    if not atomic:
        refused = post_form(editor, "/index/repair", form)
        assert 'data-testid="legacy-ack-missing"' in text(refused)
        assert json.loads(store.provider.get(drifted + "__keys").value) == INDEX
        form["legacy_ack"] = "on"
    done = post_form(editor, "/index/repair", form)
    assert 'data-testid="repair-result"' in text(done), text(done)
    assert json.loads(store.provider.get(drifted + "__keys").value) == ["a", "a", "b"]
    backup = re.search(r'href="data:application/json;base64,([^"]+)"', text(done)).group(1)
    assert json.loads(base64.b64decode(backup)) == INDEX


def test_repair_refuses_a_plan_that_changed_meanwhile(editor, store, drifted):
    page = text(editor.get(f"/index/repair?service={drifted}&action=dedupe"))
    digest = re.search(r'name="digest" value="([^"]+)"', page).group(1)
    store.provider.put(drifted + "__keys", json.dumps(INDEX + ["b"]), ttl=NO_TTL)
    response = post_form(editor, "/index/repair", {
        "service": drifted, "action": "dedupe", "digest": digest, "confirm": "yes",
        "legacy_ack": "on"})
    assert response.status_code == 409 and 'data-testid="plan-changed"' in text(response)
    assert json.loads(store.provider.get(drifted + "__keys").value) == INDEX + ["b"]


def test_viewers_can_check_but_not_repair(store, drifted):
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = text(client.get(f"/index/check?service={drifted}"))
    assert 'data-testid="drift-summary"' in page and 'data-testid="repairs"' not in page
    assert client.get(f"/index/repair?service={drifted}&action=dedupe").status_code == 403
    response = post_form(client, "/index/repair", {"service": drifted, "action": "dedupe",
                                                   "confirm": "yes", "legacy_ack": "on"})
    assert response.status_code == 403
    assert json.loads(store.provider.get(drifted + "__keys").value) == INDEX


def test_an_unknown_service_is_no_such_service_not_consistent(editor, store):
    response = editor.get("/index/check?service=nosuch-at-all:")
    assert response.status_code == 404
    page = text(response)
    assert "No such service" in page and "consistent" not in page.lower()
