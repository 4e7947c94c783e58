"""Access per prefix, generated from the URL map: every route, called by an editor whom a
rule restricts away from the prefix the route names, answers without a value or a key name
from that prefix, and writes nothing (``Dashboard__Access``; the rule names only ``ed``)."""

from __future__ import annotations

import json

import pytest

from tests.support.backends import start_backend
from tests.support.routes import (
    Scene,
    collected_routes,
    operator_client,
    route_id,
    send,
    spec_for,
    store_snapshot,
    token_for,
)
from tests.support.webapp import make_app

#: the refusal the before-request check and the guarded store give
FORBIDDEN = 403


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        yield backend


def restricted_app(store, prefix: str, **dashboard):
    return make_app(store.provider, dashboard={"Access": [
        {"Prefixes": prefix, "Role": "editor", "Users": "ed"}], **dashboard})


#: routes that show back the key names the operator typed (a bulk lookup's rows say, per
#: key, that it is not in their access): only values must not appear there
ECHO_TYPED_KEYS = {"mget.lookup"}


def leaks(body: str, scene: Scene, *, names: bool = True) -> list[str]:
    """What of the restricted prefix an answer shows: values, or key names below it."""
    secrets = ['"a":1', "&#34;a&#34;", '"a": 1', "plain text"]
    if names:
        secrets += [scene.key("doc"), scene.key("raw"), scene.key("sub:leaf"), scene.key("sub:"),
                    json.dumps(scene.key("doc"))[1:-1]]
    return [secret for secret in secrets if secret in body]


def call_as(route, store, prefix: str, name: str):
    """Call ``route`` on a fresh scene as ``name``: (spec, scene, call, before, answer, after),
    before and after being the store's snapshots around the call."""
    spec = spec_for(route)
    if spec.access == "public":
        pytest.skip("a public route names no prefix")
    app = restricted_app(store, prefix)
    scene = Scene(app, store, prefix).seed()
    call = spec.build(scene)
    client = operator_client(app, name)
    token = token_for(client) if call.method != "GET" else None
    before = store_snapshot(store)
    response = send(client, call, token=token)
    return spec, scene, call, before, response, store_snapshot(store)


@pytest.mark.parametrize("route", collected_routes(), ids=route_id)
def test_a_restricted_prefix_shows_nothing_to_an_operator_no_rule_names(route, store, prefix):
    spec, scene, call, before, response, after = call_as(route, store, prefix, "rx")
    body = response.get_data(as_text=True)
    where = f"{call.method} {call.url} as rx ({response.status_code})"
    assert after == before, f"{where}: the store changed"
    names = route[0] not in ECHO_TYPED_KEYS
    assert not leaks(body, scene, names=names), f"{where} shows {leaks(body, scene)}: {body[:400]}"
    if spec.writes:
        assert response.status_code == FORBIDDEN, where
    assert response.status_code < 500, where


@pytest.mark.parametrize("route", collected_routes(), ids=route_id)
def test_the_operator_a_rule_names_keeps_the_route(route, store, prefix):
    """The same calls, by the operator the rule names, answer as the route table says: the
    restriction is what refuses ``rx``, not the scene."""
    spec, _, call, _, response, _ = call_as(route, store, prefix, "ed")
    assert response.status_code in spec.ok, f"{call.method} {call.url}: {response.status_code}"
