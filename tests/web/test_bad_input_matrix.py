"""Input that is not UTF-8 text never reaches a 500, generated from the URL map.

Every GET route (``tests/support/routes.py`` says how to call it) is called with each of
its parameters replaced by bytes that are not UTF-8: a lone ``%FF``, a UTF-8-encoded lone
surrogate (``%ED%A0%80``, which Python would happily decode with ``surrogatepass``) and a
truncated sequence after a valid prefix. On a store whose keys are UTF-8 text (the dev
store, each release) the answer is a 400 naming the parameter (``forms.refuse_undecodable``,
run by the app's request class for every route); on Redis, whose keys are bytes, the
same request addresses a key of those bytes: any answer but a 5xx. Forms (url-encoded,
and the ``_b64`` twins of key fields) follow the same rule, and the ToskaStore provider
refuses such a key itself with its own ``InvalidRequest``, never ``UnicodeEncodeError``.
"""

from __future__ import annotations

import base64
import html

import pytest

from dashboard.stores.errors import InvalidRequest
from dashboard.stores.mutations import NO_TTL
from dashboard.web import forms
from tests.support.backends import start_backend
from tests.support.routes import ROUTES, Scene, collected_routes, operator_client, route_id
from tests.support.webapp import csrf_token, make_app

BAD_VALUES = {"ff": "%FF", "lone-surrogate": "%ED%A0%80", "truncated": "svc%3A%C3"}
GET_ROUTES = [route for route in collected_routes() if route[1] == "GET"]
#: parameters tried on a route whose table entry has none: what a route is likely to read
GENERIC = ("key", "prefix")
BACKENDS = ["devstore", "devstore-0.9.1", "devstore-legacy", "redis", "redis-cluster"]


@pytest.fixture(scope="module", params=BACKENDS)
def world(request):
    with start_backend(request.param) as backend:
        app = make_app(backend.provider)
        scene = Scene(app, backend, "badinput:").seed()
        yield backend, app, scene, operator_client(app, "ed")


def _parameters(scene: Scene, route) -> tuple[str, dict[str, str]]:
    call = ROUTES[route].build(scene)
    return call.path, dict(call.query)


def _query(params: dict[str, str], name: str, bad: str) -> str:
    from urllib.parse import quote

    parts = [f"{quote(k)}={bad if k == name else quote(v, safe='')}" for k, v in params.items()]
    if name not in params:
        parts.append(f"{name}={bad}")
    return "&".join(parts)


def _call(client, url: str):
    """Status and body; a stream is closed after its headers (its status is already sent)."""
    response = client.get(url, buffered=False)
    try:
        streamed = response.mimetype == "text/event-stream"
        body = "" if streamed else html.unescape(response.get_data(as_text=True))
        return response.status_code, body
    finally:
        response.close()


def test_every_get_route_is_tried():
    assert len(GET_ROUTES) >= 18
    assert {"keys.detail", "keys.browse", "transfer.export", "live.stream", "mget.lookup",
            "index.check"} <= {endpoint for endpoint, _ in GET_ROUTES}


@pytest.mark.parametrize("route", GET_ROUTES, ids=route_id)
def test_no_get_route_answers_5xx_to_bytes_that_are_not_utf8(world, route):
    backend, app, scene, client = world
    path, params = _parameters(scene, route)
    text_keys = not backend.provider.capabilities().binary_keys
    failures = []
    for name in list(params) or GENERIC:
        for label, bad in BAD_VALUES.items():
            status, body = _call(client, f"{path}?{_query(params, name, bad)}")
            if status >= 500:
                failures.append(f"{name}={bad} ({label}): {status}")
            elif text_keys and name in params and name not in forms.RAW_PARAMETERS and (
                    status != 400 or repr(name) not in body):
                failures.append(f"{name}={bad} ({label}): {status}, not a 400 naming {name!r}")
    assert not failures, f"{route_id(route)} on {backend.name}: {failures}"


def test_a_parameter_name_that_is_not_utf8_is_refused(world):
    backend, app, scene, client = world
    status, body = _call(client, f"/browse?prefix={scene.prefix}&%FF=1")
    assert status == 400 and "name is not UTF-8" in body


def test_the_return_address_after_login_keeps_its_bytes(world):
    backend, app, scene, client = world
    status, _ = _call(app.test_client(), "/login?next=/key%3Fkey%3Dsvc%3A%FF")
    assert status == 200


# --- forms -------------------------------------------------------------------------------

def _post(app, client, url: str, body: bytes):
    token = csrf_token(client, "/services")
    from urllib.parse import quote

    data = body + b"&csrf_token=" + quote(token).encode()
    return client.post(url, data=data, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("field", ["key", "key_b64"])
def test_a_form_key_that_is_not_utf8_is_refused_on_a_text_store_or_kept_exact(world, field):
    backend, app, scene, client = world
    raw = b"badinput:new\xff"
    value = (base64.urlsafe_b64encode(raw) if field == "key_b64"
             else b"badinput:new%FF")
    answer = _post(app, client, "/key/new",
                   b"%s=%s&value=1&ttl_mode=none&raw=on" % (field.encode(), value))
    body = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code < 500, body
    if not backend.provider.capabilities().binary_keys:
        assert answer.status_code == 400 and "'key'" in body, body
        assert not [k for k in backend.provider.iter_keys("badinput:new")]
    else:  # Redis: the very bytes sent, never U+FFFD nor the text "%FF"
        assert answer.status_code == 303, body
        assert list(backend.provider.iter_keys("badinput:new")) == [
            raw.decode("utf-8", "surrogateescape")]
        backend.provider.delete(raw.decode("utf-8", "surrogateescape"))


def test_a_form_value_that_is_not_utf8_is_never_stored_as_the_text_percent_ff(world):
    backend, app, scene, client = world
    answer = _post(app, client, "/key/new", b"key=badinput:pct&value=%FF&ttl_mode=none&raw=on")
    assert answer.status_code < 500
    stored = [backend.provider.get(k).value for k in backend.provider.iter_keys("badinput:pct")]
    assert stored in ([], ["\ufffd"]) or answer.status_code == 400
    assert "%FF" not in stored


# --- the provider itself -----------------------------------------------------------------

@pytest.mark.parametrize("release", ["main", "0.9.1", "0.8"])
def test_the_toskastore_provider_refuses_a_key_it_cannot_encode(release):
    from dashboard.devstore import start_devstore
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    with start_devstore(port=0, release=release) as running:
        provider = ToskaStoreProvider(running.url, timeout=5)
        try:
            calls = {
                "get": lambda: provider.get("svc:\udcff"),
                "put": lambda: provider.put("svc:a\ud800b", "v", ttl=NO_TTL),
                "delete": lambda: provider.delete("svc:\udcff"),
                "list": lambda: provider.list_keys("svc:\udcff"),
                "mget": lambda: provider.mget(["svc:\udcff", "svc:x"]),
                "exists": lambda: provider.exists_many(["svc:\udcff"]),
            }
            for name, call in calls.items():
                with pytest.raises(InvalidRequest, match="not UTF-8 text"):
                    call()
                    pytest.fail(f"{name} sent a key that is not UTF-8 text")
        finally:
            provider.close()
        assert list(running.store.live_keys()) == []
