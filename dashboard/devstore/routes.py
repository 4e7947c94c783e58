"""The route table of each release, matched like upstream's Plug.Router.

Routes match on the DECODED path segments (Plug decodes ``path_info`` before
matching, and empty segments are dropped), in upstream's definition order, so
``GET /kv/keys`` lists keys while ``PUT /kv/keys`` writes a key named "keys", and on
0.8/0.9.1 ``GET /kv/watch`` is simply a lookup of the key "watch". There is no 405:
anything unmatched is the catch-all ``404 {"error": "Not Found", "path": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboard.devstore import routes_coord, routes_kv, routes_status, routes_watch
from dashboard.devstore.request import Reply, Request, store_unavailable
from dashboard.devstore.wire import ApiError

Route = Callable[..., "Reply | None"]
#: (method, pattern, handler, needs the store); ":name" segments are parameters
_Table = list[tuple[str, tuple[str, ...], Route, bool]]

_HEAD: _Table = [
    ("GET", (), routes_status.welcome, False),
    ("GET", ("status",), routes_status.status, False),
    ("GET", ("health",), routes_status.health, False),
    ("GET", ("stats",), routes_status.stats, False),
]
_SINCE_091: _Table = [
    ("GET", ("metrics",), routes_status.metrics, False),
    ("POST", ("admin", "reload"), routes_status.admin_reload, False),
]
_KEYS: _Table = [("GET", ("kv", "keys"), routes_kv.list_keys, True)]
_MAIN_ONLY: _Table = [
    ("GET", ("kv", "watch"), routes_watch.watch, False),
    ("POST", ("kv", "txn"), routes_coord.txn, True),
    ("GET", ("kv",), routes_kv.list_range, True),
    ("POST", ("leases",), routes_coord.create_lease, True),
    ("POST", ("leases", ":lease_id", "keepalive"), routes_coord.keepalive_lease, True),
    ("DELETE", ("leases", ":lease_id"), routes_coord.revoke_lease, True),
    ("POST", ("locks", ":name", "acquire"), routes_coord.acquire_lock, True),
    ("POST", ("locks", ":name", "release"), routes_coord.release_lock, True),
]
_KEY_ROUTES: _Table = [
    ("GET", ("kv", ":key"), routes_kv.get_key, True),
    ("PUT", ("kv", ":key"), routes_kv.put_key, True),
    ("DELETE", ("kv", ":key"), routes_kv.delete_key, True),
    ("POST", ("kv", "mget"), routes_kv.mget, True),
]


def table(release: str) -> _Table:
    """The routes of ``release``, in upstream's order."""
    routes = list(_HEAD)
    if release != "0.8":
        routes += _SINCE_091
    routes += _KEYS
    if release == "main":
        routes += _MAIN_ONLY
    return routes + _KEY_ROUTES


def match(routes: _Table, method: str, segments: list[str]) -> tuple[Route, dict[str, Any], bool] | None:
    """The first route for ``method`` and ``segments``: (handler, path params, needs store)."""
    for route_method, pattern, handler, needs_store in routes:
        if route_method != method or len(pattern) != len(segments):
            continue
        params: dict[str, Any] = {}
        for part, segment in zip(pattern, segments, strict=True):
            if part.startswith(":"):
                params[part[1:]] = segment
            elif part != segment:
                break
        else:
            return handler, params, needs_store
    return None


def run(req: Request, segments: list[str]) -> Reply | None:
    """Route and run ``req``; the catch-all 404 when nothing matches."""
    if req.config.no_key_listing and req.method == "GET" and segments in (["kv", "keys"], ["kv"]):
        # the hook imitates a server without the listing routes: a 404 even if a key
        # named "keys" exists
        raise ApiError(404, "Not Found", path=req.path)
    found = match(table(req.release), req.method, segments)
    if found is None:
        raise ApiError(404, "Not Found", path=req.path)
    handler, params, needs_store = found
    if needs_store and req.config.unavailable:
        raise store_unavailable()
    return handler(req, **params)
