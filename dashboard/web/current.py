"""What a request works on: the store chosen at start-up and the key it names."""

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
    """The process-wide provider chosen at start-up."""
    return current_app.extensions["kv_provider"]
