"""How to call every route of the dashboard, for the matrices generated from its URL map.

``ROUTES`` holds one ``RouteSpec`` per (endpoint, method) of ``app.url_map``: who may call
it, how to build a request that succeeds (query arguments, form fields), what a success
answers and whether it writes. ``test_route_matrix``, ``test_csrf_matrix`` and
``test_escaping_matrix`` read the URL map and fail for a route that has no entry here, so a
new route cannot slip past the authorization, CSRF and escaping checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode

from dashboard import mesh
from dashboard.stores.mutations import NO_TTL
from tests.support.backends import Backend
from tests.support.webapp import csrf_token, login, make_app

#: methods Flask adds to every rule; they run the GET view or answer generically
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
#: the statuses a refusal may take, by kind
LOGIN_REDIRECT = 302
HTMX_UNAUTHORIZED = 401
FORBIDDEN = 403
CSRF_REFUSED = 400


def url_map_routes(app) -> list[tuple[str, str]]:
    """(endpoint, method) for every rule of ``app``, HEAD and OPTIONS aside, sorted."""
    found = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in IMPLICIT_METHODS
    }
    return sorted(found)


@cache
def collected_routes() -> list[tuple[str, str]]:
    """The URL map at collection time (no store needed: rules do not depend on it)."""
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    # never contacted: building the app only registers its routes
    return url_map_routes(make_app(ToskaStoreProvider("http://127.0.0.1:9", timeout=0.1)))


def route_id(route: tuple[str, str]) -> str:
    return f"{route[1]} {route[0]}"


# --- what a test works on ----------------------------------------------------------------

@dataclass
class Scene:
    """One test's world: an app on a dev store, and a fresh service prefix seeded by ``seed``.

    The service ``prefix`` holds ``doc`` (JSON), ``raw`` (text), ``sub:leaf`` and a ``__keys``
    index listing ``doc`` and the stale ``gone`` (so ``prune-stale`` has work to do).
    """

    app: Any
    backend: Backend
    prefix: str

    @property
    def provider(self):
        return self.backend.provider

    def key(self, name: str) -> str:
        return self.prefix + name

    def seed(self) -> Scene:
        self.backend.seed({self.key("doc"): '{"a":1}', self.key("raw"): "plain text",
                           self.key("sub:leaf"): "1"})
        self.provider.put(self.key("__keys"), json.dumps(["doc", "gone"]), ttl=NO_TTL)
        return self

    def token_of(self, name: str) -> str:
        return self.provider.get(self.key(name)).token

    def repair_digest(self, action: str) -> str:
        """The digest the repair confirmation page hands out for ``action`` right now."""
        settings = self.app.config["KV_SETTINGS"]
        service = mesh.service_for_prefix(settings, self.prefix)
        return mesh.plan_repair(self.provider, service, action).digest

    def job_id(self) -> str:
        """A background index check of this service, started as ``POST /index/check/start`` does."""
        from dashboard.web import jobs

        settings = self.app.config["KV_SETTINGS"]
        service = mesh.service_for_prefix(settings, self.prefix)
        return jobs.start(self.app, self.provider, service, actor="ed")

    def audited_edit(self) -> str:
        """The id of an audit entry of an edit of ``doc``, kept in the app's own journal (as
        the edit page would keep it): its undo is a write."""
        from dashboard.mesh import audit, writes
        from dashboard.stores.mutations import NO_TTL as NO_EXPIRY

        with self.app.app_context():
            before = self.provider.get(self.key("doc"))
            result = writes.replace(self.provider, self.app.config["KV_SETTINGS"],
                                    self.key("doc"), '{"a": 5}', ttl=NO_EXPIRY,
                                    expected=before.token)
            return audit.key_write("edit", "ed", self.key("doc"), result=result, before=before,
                                   value='{"a": 5}')["id"]

    def import_line(self) -> str:
        """One JSON Lines record creating ``imported`` (a key no seed writes)."""
        return json.dumps({"key": self.key("imported"), "value": '{"n":1}', "ttl_ms": None})

    def import_upload(self) -> str:
        """An upload planned for ``ed`` and kept for confirmation, as ``POST /import`` keeps it."""
        from dashboard.web.views.transfer import stash_plan

        with self.app.app_context():
            upload, plan = stash_plan(self.app, self.provider, "ed",
                                      self.import_line().encode(), "create-only", "expiry")
        assert upload, plan.to_json()
        return upload


@dataclass(frozen=True)
class Call:
    """One request: method, path, query arguments, form fields (the CSRF token aside)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path


@dataclass(frozen=True)
class RouteSpec:
    """How to call one (endpoint, method) and what an allowed caller gets."""

    #: "public" (no login), "login" (any operator) or "editor" (editors, not read-only)
    access: str
    build: Callable[[Scene], Call]
    #: statuses an allowed caller gets
    ok: frozenset[int]
    #: an allowed call changes the store
    writes: bool = False
    #: the Location an allowed call redirects to (a prefix of it)
    location: str | None = None


def _get(path: str, **query: Callable[[Scene], str]):
    return lambda s: Call("GET", path, {name: make(s) for name, make in query.items()})


def _spec(access: str, build, *ok: int, writes: bool = False, location: str | None = None):
    return RouteSpec(access, build, frozenset(ok), writes, location)


def _prefix(s: Scene) -> str:
    return s.prefix


def _doc(s: Scene) -> str:
    return s.key("doc")


ROUTES: dict[tuple[str, str], RouteSpec] = {
    # export and import (views/transfer.py): exporting reads, importing is for editors
    ("transfer.export", "GET"): _spec("login", _get("/export", prefix=_prefix), 200),
    ("transfer.import_form", "GET"): _spec("editor", _get("/import"), 200),
    ("transfer.import_plan", "POST"): _spec(
        "editor", lambda s: Call("POST", "/import", data={"text": s.import_line(),
                                                         "mode": "create-only"}), 200),
    ("transfer.import_confirm", "POST"): _spec(
        "editor", lambda s: Call("POST", "/import/confirm", data={"upload": s.import_upload()}),
        200, writes=True),
    ("static", "GET"): _spec("public", lambda s: Call("GET", "/static/app.css"), 200),
    ("auth.login", "GET"): _spec("public", _get("/login"), 200),
    ("auth.login", "POST"): _spec(
        "public", lambda s: Call("POST", "/login", data={"username": "ed", "password": "ed-pass"}),
        302, location="/services"),
    ("auth.logout", "POST"): _spec("public", lambda s: Call("POST", "/logout", data={}), 302,
                                   location="/login"),
    ("ops.healthz", "GET"): _spec("public", _get("/healthz"), 200),
    ("ops.readyz", "GET"): _spec("public", _get("/readyz"), 200),
    ("store.overview", "GET"): _spec("login", _get("/store"), 200),
    ("metrics.metrics", "GET"): _spec("public", _get("/metrics"), 200),
    ("audit.index", "GET"): _spec("login", _get("/audit"), 200),
    ("audit.download", "GET"): _spec("login", _get("/audit.jsonl", prefix=_prefix), 200),
    # history and undo (views/history.py): a key's timeline, undoing one entry
    ("history.timeline", "GET"): _spec("login", _get("/key/history", key=_doc), 200),
    ("history.revert_entry", "POST"): _spec(
        "editor", lambda s: Call("POST", "/audit/revert", data={"id": s.audited_edit()}),
        303, writes=True, location="/key/history?key="),
    ("services.root", "GET"): _spec("public", _get("/"), 302, location="/services"),
    ("services.index", "GET"): _spec("login", _get("/services"), 200),
    ("services.summary", "GET"): _spec("login", _get("/services/summary", prefix=_prefix), 200),
    ("keys.browse", "GET"): _spec("login", _get("/browse", prefix=_prefix), 200),
    ("keys.folder_count", "GET"): _spec(
        "login", _get("/browse/count", prefix=lambda s: s.key("sub:")), 200),
    ("keys.detail", "GET"): _spec("login", _get("/key", key=_doc), 200),
    ("keys.download", "GET"): _spec("login", _get("/key/download", key=_doc), 200),
    ("edits.edit_form", "GET"): _spec("editor", _get("/key/edit", key=_doc), 200),
    ("edits.edit_submit", "POST"): _spec(
        "editor", lambda s: Call("POST", "/key/edit", data={
            "key": s.key("doc"), "value": '{"a": 2}', "ttl_mode": "none", "compact": "on",
            "expected_version": s.token_of("doc"), "confirm": "yes"}),
        303, writes=True, location="/key?key="),
    ("edits.new", "GET"): _spec("editor", _get("/key/new", prefix=_prefix), 200),
    ("edits.new", "POST"): _spec(
        "editor", lambda s: Call("POST", "/key/new", data={
            "key": s.key("created"), "value": '{"n": 1}', "ttl_mode": "none", "compact": "on"}),
        303, writes=True, location="/key?key="),
    ("edits.delete", "GET"): _spec("editor", _get("/key/delete", key=_doc), 200),
    ("edits.delete", "POST"): _spec(
        "editor", lambda s: Call("POST", "/key/delete", data={
            "key": s.key("doc"), "expected_version": s.token_of("doc"), "confirm": "yes"}),
        303, writes=True, location="/browse?prefix="),
    ("mget.lookup", "GET"): _spec("login", _get("/mget", keys=_doc), 200),
    ("mget.lookup", "POST"): _spec(
        "login", lambda s: Call("POST", "/mget", data={"keys": s.key("doc")}), 200),
    ("index.overview", "GET"): _spec("login", _get("/index"), 200),
    ("index.check", "GET"): _spec("login", _get("/index/check", service=_prefix), 200),
    ("index.repair", "GET"): _spec(
        "editor", _get("/index/repair", service=_prefix, action=lambda s: "prune-stale"), 200),
    ("index.repair", "POST"): _spec(
        "editor", lambda s: Call("POST", "/index/repair", data={
            "service": s.prefix, "action": "prune-stale", "confirm": "yes", "legacy_ack": "on",
            "digest": s.repair_digest("prune-stale")}),
        200, writes=True),
    # a background check only reads: any operator may start, watch and cancel one
    ("index.start_job", "POST"): _spec(
        "login", lambda s: Call("POST", "/index/check/start", data={"service": s.prefix}),
        303, location="/index/job?id="),
    ("index.job", "GET"): _spec("login", lambda s: Call("GET", "/index/job", {"id": s.job_id()}),
                                200),
    ("index.cancel_job", "POST"): _spec(
        "login", lambda s: Call("POST", "/index/job/cancel", data={"id": s.job_id()}),
        303, location="/index/job?id="),
    # search: keys by pattern (keys.browse ?match=), values by text or regex; the favicon
    ("keys.favicon", "GET"): _spec("public", _get("/favicon.ico"), 200),
    ("search.values", "GET"): _spec(
        "login", _get("/search", prefix=_prefix, q=lambda s: "plain"), 200),
    # live view: the feed page, and its SSE stream (once=1: ends after what is there)
    ("live.feed", "GET"): _spec("login", _get("/live", prefix=_prefix), 200),
    ("live.stream", "GET"): _spec(
        "login", _get("/live/stream", prefix=_prefix, once=lambda s: "1"), 200),
    # access (web/access.py): elevation for editors, the environment band's colours
    ("access.elevate", "POST"): _spec(
        "editor", lambda s: Call("POST", "/elevate", data={
            "reason": "INC-1234 payments outage", "minutes": "5"}), 302, location="/services"),
    ("access.end_elevation", "POST"): _spec(
        "login", lambda s: Call("POST", "/elevate/end", data={}), 302, location="/services"),
    ("access.environment_stylesheet", "GET"): _spec("public", _get("/environment.css"), 200),
}


def spec_for(route: tuple[str, str]) -> RouteSpec:
    """The table entry for ``route``; a route without one fails the test naming it."""
    spec = ROUTES.get(route)
    assert spec is not None, (
        f"{route_id(route)} is in the URL map but has no entry in tests/support/routes.py "
        "ROUTES: say who may call it and how (query arguments, form fields)")
    return spec


def send(client, call: Call, *, token: str | None = None, headers: dict[str, str] | None = None):
    """Make ``call`` with ``client``; ``token`` goes in the form as ``csrf_token`` (None: none).

    The body is read and the response closed (a static file would stay open otherwise).
    """
    data = None
    if call.method != "GET":
        data = dict(call.data or {})
        if token is not None:
            data["csrf_token"] = token
    response = client.open(call.url, method=call.method, data=data, headers=headers or {})
    response.get_data()
    response.close()
    return response


# --- who is calling ----------------------------------------------------------------------

def anonymous_client(app):
    return app.test_client()


def operator_client(app, name: str):
    """A client logged in through the form as ``name`` ("ed" editor, "vi" viewer)."""
    client = app.test_client()
    login(client, name)
    return client


def token_for(client) -> str:
    """The CSRF token this client's session was handed (the login form shows it to anyone)."""
    return csrf_token(client, "/login")


def is_logged_in(client) -> bool:
    return client.get("/services").status_code == 200


# --- what the store holds ----------------------------------------------------------------

def store_snapshot(backend: Backend) -> tuple[int, dict[str, tuple[str, int]]]:
    """The dev store's revision and every live key's (value, version): any write changes it."""
    store = backend.extra["running"].store
    entries = {}
    for key in store.live_keys():
        entry = store.get(key)
        if entry is not None:
            entries[key] = (entry["value"], entry["metadata"]["version"])
    return store.revision, entries
