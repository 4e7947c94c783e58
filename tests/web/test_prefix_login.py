"""Behind an ingress at /kv/: the login round trip stays under the prefix, and lands on a page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import csrf_token, make_app


class StrippingIngress:
    """An ingress serving the app at /kv/ that strips the prefix and says so."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path != "/kv" and not path.startswith("/kv/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not routed by the ingress"]
        environ["PATH_INFO"] = path[len("/kv"):] or "/"
        environ["HTTP_X_FORWARDED_PREFIX"] = "/kv"
        environ["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
        return self.wsgi_app(environ, start_response)


@pytest.fixture(scope="module")
def store():
    with start_devstore(port=0) as running:
        provider = ToskaStoreProvider(running.url)
        yield provider
        provider.close()


@pytest.fixture(params=["path-base", "forwarded-prefix"])
def ingress(request, store):
    """A client as the browser at https://host/kv/ sees the app, for both ingress styles.

    ``path-base``: the ingress keeps /kv (``Dashboard__PathBase=/kv``); ``forwarded-prefix``:
    it strips /kv and sends ``X-Forwarded-Prefix`` (``Dashboard__ForwardedProxies=1``).
    The test client is the browser: it asks for /kv/... and keeps cookies by their Path.
    """
    if request.param == "path-base":
        app = make_app(store, dashboard={"PathBase": "/kv"})
    else:
        app = make_app(store, dashboard={"ForwardedProxies": 1})
        app.wsgi_app = StrippingIngress(app.wsgi_app)
    return app.test_client()


def next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/kv/login", location
    return parse_qs(parts.query)["next"][0]


def log_in(client, next_url: str | None, name: str = "ed"):
    data = {"username": name, "password": f"{name}-pass",
            "csrf_token": csrf_token(client, "/kv/login")}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/kv/login", data=data)


def test_the_login_redirect_carries_the_full_path_and_returns_under_the_prefix(ingress):
    client = ingress
    response = client.get("/kv/browse?prefix=svc:")
    assert response.status_code == 302
    target = next_of(response.headers["Location"])
    assert target == "/kv/browse?prefix=svc:"
    after = log_in(client, target)
    assert after.status_code == 302
    assert after.headers["Location"] == "/kv/browse?prefix=svc:"


def test_without_next_the_login_lands_on_the_services_page_under_the_prefix(ingress):
    client = ingress
    assert log_in(client, None).headers["Location"] == "/kv/services"


@pytest.mark.parametrize("outside", ["/services", "/kvother/services", "/kv/../services",
                                     "/kv/%2e%2e/services", "/kv/./../x"])
def test_a_next_outside_the_prefix_is_not_followed(ingress, outside):
    client = ingress
    assert log_in(client, outside).headers["Location"] == "/kv/services"


@pytest.mark.parametrize("fragment", ["/services/summary?prefix=svc:", "/index/check?view=row"])
def test_an_expired_htmx_request_returns_to_the_page_the_browser_shows(ingress, fragment):
    client = ingress
    shown = "https://dash.example/kv/browse?prefix=svc:&view=folders"
    response = client.get("/kv" + fragment,
                          headers={"HX-Request": "true", "HX-Current-URL": shown})
    assert response.status_code == 401
    target = next_of(response.headers["HX-Redirect"])
    assert target == "/kv/browse?prefix=svc:&view=folders"
    assert log_in(client, target).headers["Location"] == target


def test_an_htmx_request_without_its_page_returns_to_the_services_page(ingress):
    client = ingress
    response = client.get("/kv/services/summary?prefix=svc:", headers={"HX-Request": "true"})
    assert next_of(response.headers["HX-Redirect"]) == "/kv/services"


def test_the_session_cookie_is_named_for_the_app_and_scoped_to_the_prefix(ingress):
    client = ingress
    set_cookie = log_in(client, None).headers["Set-Cookie"]
    assert set_cookie.startswith("kvdash_session=")
    assert "Path=/kv;" in set_cookie or set_cookie.endswith("Path=/kv")


def test_at_the_root_the_cookie_path_is_the_root(store):
    client = make_app(store).test_client()
    set_cookie = client.get("/login").headers["Set-Cookie"]
    assert set_cookie.startswith("kvdash_session=") and "Path=/;" in set_cookie


def test_a_form_posted_after_the_session_ended_returns_to_its_page(store):
    client = make_app(store, dashboard={"PathBase": "/kv"}).test_client()
    token = csrf_token(client, "/kv/login")
    response = client.post("/kv/key/delete", data={"key": "svc:a", "csrf_token": token},
                           headers={"Referer": "http://localhost/kv/key/delete?key=svc:a"})
    assert response.status_code == 302
    assert next_of(response.headers["Location"]) == "/kv/key/delete?key=svc:a"
