"""CSRF, generated from the URL map: every state-changing route refuses a bad token.

For each POST route (from ``app.url_map``): no token, a garbage token, a tampered token and
another session's valid token (in the form or in htmx's ``X-CSRFToken`` header) are refused
with 400 and write nothing; then the very same request with the session's own token
succeeds, so the refusal was the token's doing and not a broken request.
"""

from __future__ import annotations

import pytest

from tests.support.backends import start_backend
from tests.support.routes import (
    CSRF_REFUSED,
    IMPLICIT_METHODS,
    Scene,
    anonymous_client,
    collected_routes,
    is_logged_in,
    operator_client,
    route_id,
    send,
    spec_for,
    store_snapshot,
    token_for,
    url_map_routes,
)
from tests.support.webapp import make_app

STATE_CHANGING = [route for route in collected_routes() if route[1] != "GET"]
BAD_TOKENS = ["missing", "garbage", "tampered", "other-session", "other-session-header"]


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        yield backend


@pytest.fixture(scope="module")
def app(store):
    return make_app(store.provider)


def caller(app, route):
    """Logging in is done by an anonymous visitor; every other POST by an editor."""
    return anonymous_client(app) if route == ("auth.login", "POST") else operator_client(app, "ed")


def tampered(token: str) -> str:
    # the first character carries six whole bits of the payload: the signature no longer fits
    return ("B" if token[0] == "A" else "A") + token[1:]


def test_state_changing_routes_come_from_the_url_map(app):
    routes = [r for r in url_map_routes(app) if r[1] not in IMPLICIT_METHODS | {"GET"}]
    assert routes == STATE_CHANGING
    assert {endpoint for endpoint, _ in STATE_CHANGING} >= {
        "auth.login", "auth.logout", "edits.edit_submit", "edits.new", "edits.delete",
        "mget.lookup", "index.repair"}


def assert_succeeded(route, spec, response, client, before, store):
    body = response.get_data(as_text=True)
    assert response.status_code in spec.ok, f"{route_id(route)}: {response.status_code} {body[:500]}"
    if spec.writes:
        assert store_snapshot(store) != before, f"{route_id(route)} wrote nothing"
    if route == ("auth.login", "POST"):
        assert is_logged_in(client)
    elif route == ("auth.logout", "POST"):
        assert not is_logged_in(client)
    elif route == ("mget.lookup", "POST"):
        assert 'data-testid="mget-row"' in body and 'data-found="true"' in body


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("route", STATE_CHANGING, ids=route_id)
def test_a_bad_token_is_refused_and_writes_nothing(route, bad, app, store, prefix):
    spec = spec_for(route)
    scene = Scene(app, store, prefix).seed()
    client = caller(app, route)
    own = token_for(client)
    other = token_for(caller(app, route))
    assert other != own
    token, headers = {
        "missing": (None, {}),
        "garbage": ("not-a-token", {}),
        "tampered": (tampered(own), {}),
        "other-session": (other, {}),
        "other-session-header": (None, {"X-CSRFToken": other, "HX-Request": "true"}),
    }[bad]
    logged_in = is_logged_in(client)
    call = spec.build(scene)  # building may prepare what the call acts on (an entry to undo)
    before = store_snapshot(store)

    refused = send(client, call, token=token, headers=headers)
    body = refused.get_data(as_text=True)
    if headers.get("HX-Request"):
        # htmx swaps no 4xx: the refusal is a 200 banner retargeted into the flash area
        assert refused.status_code == 200 and refused.headers.get("HX-Retarget") == "#flash", (
            f"{route_id(route)} with a {bad} token: {refused.status_code} {refused.headers}")
        assert body.startswith('<div class="banner') and 'data-testid="error-banner"' in body
    else:
        assert refused.status_code == CSRF_REFUSED, (
            f"{route_id(route)} with a {bad} token: {refused.status_code}")
    assert "security token" in body, body[:500]
    assert store_snapshot(store) == before, f"{route_id(route)} with a {bad} token wrote"
    assert is_logged_in(client) == logged_in, "the session changed on a refused request"

    # the same request with this session's own token goes through
    accepted = send(client, call, token=own)
    assert_succeeded(route, spec, accepted, client, before, store)


@pytest.mark.parametrize("route", STATE_CHANGING, ids=route_id)
def test_the_token_in_htmx_header_is_accepted(route, app, store, prefix):
    """htmx sends the token as ``X-CSRFToken`` (``hx-headers`` on ``<body>``), not in the form."""
    spec = spec_for(route)
    scene = Scene(app, store, prefix).seed()
    client = caller(app, route)
    call = spec.build(scene)
    before = store_snapshot(store)
    response = send(client, call, token=None,
                    headers={"X-CSRFToken": token_for(client), "HX-Request": "true"})
    assert_succeeded(route, spec, response, client, before, store)
