"""What a request works on: the store as the operator may see it, and the key it names."""

from __future__ import annotations

from flask import abort, current_app, request

from dashboard.stores.base import KeyValueProvider


def requested_key(how: str = "Pass ?key=<full key>.") -> str:
    """The ``key`` query argument, or a 400 saying how to name one (keys travel in the query)."""
    key = request.args.get("key")
    if not key:
        abort(400, description=f"Which key? {how}")
    return key


def provider() -> KeyValueProvider:
    """The store as the current operator may see and change it: every view reads and writes
    through this, so the access rules and masking hold on every route (``web.access``)."""
    from dashboard.web.access import request_store

    return request_store()


def shared_store() -> KeyValueProvider:
    """The process-wide store, unguarded: only for what every operator shares (the service
    discovery cache), whose results are filtered per operator before they are shown."""
    return current_app.extensions["kv_provider"]
