"""Authorization, generated from the URL map: every route × every kind of caller.

Callers: anonymous (plain and htmx), a viewer, an editor, and an editor on a
``Dashboard:ReadOnly=true`` app. The expected answer follows from the route's access in
``tests/support/routes.py`` (public / login / editor); a refused call must leave the dev
store exactly as it was, and an allowed write must change it (so refusals mean something).
"""

from __future__ import annotations

import pytest

from tests.support.backends import start_backend
from tests.support.routes import (
    FORBIDDEN,
    HTMX_UNAUTHORIZED,
    LOGIN_REDIRECT,
    ROUTES,
    RouteSpec,
    Scene,
    anonymous_client,
    collected_routes,
    operator_client,
    route_id,
    send,
    spec_for,
    store_snapshot,
    token_for,
    url_map_routes,
)
from tests.support.webapp import make_app

ROLES = ["anonymous", "anonymous-htmx", "viewer", "editor", "read-only-editor"]


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        yield backend


@pytest.fixture(scope="module")
def apps(store):
    return {"normal": make_app(store.provider),
            "read-only": make_app(store.provider, dashboard={"ReadOnly": True})}


def expected_outcome(spec: RouteSpec, role: str) -> str:
    """"ok", "login" (redirect to the login page), "htmx-login" (401 + HX-Redirect), "forbidden"."""
    if spec.access == "public":
        return "ok"
    if role == "anonymous":
        return "login"
    if role == "anonymous-htmx":
        return "htmx-login"
    if spec.access == "editor" and role in ("viewer", "read-only-editor"):
        return "forbidden"
    assert spec.access in ("login", "editor"), f"unknown access {spec.access!r}"
    return "ok"


def test_every_route_in_the_url_map_has_a_table_entry(apps):
    for app in apps.values():
        routes = url_map_routes(app)
        assert routes == collected_routes()
        missing = [route_id(r) for r in routes if r not in ROUTES]
        assert not missing, f"routes without an entry in tests/support/routes.py: {missing}"
        stale = [route_id(r) for r in ROUTES if r not in routes]
        assert not stale, f"entries for routes the app no longer has: {stale}"


def test_the_matrix_covers_every_access_level():
    """Each outcome occurs, so a table that made everything public would not pass silently."""
    outcomes = {expected_outcome(spec_for(route), role)
                for route in collected_routes() for role in ROLES}
    assert outcomes == {"ok", "login", "htmx-login", "forbidden"}
    writes = [route for route in collected_routes() if spec_for(route).writes]
    assert {endpoint for endpoint, _ in writes} >= {
        "edits.edit_submit", "edits.new", "edits.delete", "index.repair"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", collected_routes(), ids=route_id)
def test_route_answers_each_caller(route, role, apps, store, prefix):
    spec = spec_for(route)
    app = apps["read-only" if role == "read-only-editor" else "normal"]
    scene = Scene(app, store, prefix).seed()
    if role.startswith("anonymous"):
        client = anonymous_client(app)
    else:
        client = operator_client(app, "vi" if role == "viewer" else "ed")
    headers = {"HX-Request": "true"} if role == "anonymous-htmx" else {}
    call = spec.build(scene)
    # a POST carries this session's valid CSRF token: what is tested is who may call
    token = token_for(client) if call.method != "GET" else None

    before = store_snapshot(store)
    response = send(client, call, token=token, headers=headers)
    after = store_snapshot(store)
    body = response.get_data(as_text=True)
    outcome = expected_outcome(spec, role)
    where = f"{call.method} {call.url} as {role}"

    if outcome == "ok":
        assert response.status_code in spec.ok, f"{where}: {response.status_code} {body[:500]}"
        if spec.location is not None:
            assert response.headers["Location"].startswith(spec.location), where
        if spec.writes:
            assert after != before, f"{where}: an allowed write changed nothing"
        else:
            assert after == before, f"{where}: a request that should not write changed the store"
        return

    # every refusal: nothing written, and nothing of the seeded data shown
    assert after == before, f"{where}: refused, yet the store changed"
    assert "&#34;a&#34;" not in body and '"a"' not in body, f"{where}: refusal shows the value"
    if outcome == "login":
        assert response.status_code == LOGIN_REDIRECT, f"{where}: {response.status_code}"
        assert response.headers["Location"].startswith("/login"), where
    elif outcome == "htmx-login":
        assert response.status_code == HTMX_UNAUTHORIZED, f"{where}: {response.status_code}"
        assert response.headers["HX-Redirect"].startswith("/login"), where
        assert "Location" not in response.headers
    else:
        assert response.status_code == FORBIDDEN, f"{where}: {response.status_code} {body[:300]}"
        reason = "read-only" if role == "read-only-editor" else "Your role is viewer"
        assert reason in body, where
