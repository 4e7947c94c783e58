"""Key routes: GET/PUT/DELETE /kv/:key, POST /kv/mget, GET /kv/keys and GET /kv.

Each differs by release exactly where upstream's router and kv_store differ: 0.8 and
0.9.1 answer ``{key, value}`` and ignore every condition and lease field; main adds
metadata, ETags, conditions and leases; listings differ in order, cursor and limit.
"""

from __future__ import annotations

import json
from typing import Any

from dashboard.devstore.coordination import LeaseNotFound
from dashboard.devstore.request import Reply, Request
from dashboard.devstore.store import ConditionFailed, Conditions
from dashboard.devstore.values import Invalid, normalize_bool, normalize_id, normalize_ttl, normalize_version
from dashboard.devstore.wire import (
    ApiError,
    cursor_key,
    encode_cursor,
    etag,
    if_match_version,
    legacy_order,
    parse_flag,
    parse_limit_lenient,
    parse_limit_main,
)


def get_key(req: Request, key: str) -> Reply:
    entry = req.store.get(key)
    if entry is None:
        raise ApiError(404, "Not Found", key=key)
    if req.release != "main":
        return Reply(200, {"key": key, "value": entry["value"]})
    return Reply(200, entry, {"ETag": etag(entry["metadata"]["version"])})


def write_conditions(req: Request) -> Conditions:
    """Main's ``write_conditions`` + ``normalize_conditions``; 400 "Invalid conditions".

    ``if_version``: body, query, then If-Match (W/ and quotes stripped); ``if_absent``:
    body, query, then ``If-None-Match: *`` (any other If-None-Match is ignored);
    ``if_present``: body or query.
    """
    none_match = req.headers.get("If-None-Match")
    try:
        version = normalize_version(
            req.first_present("if_version", if_match_version(req.headers.get("If-Match")))
        )
        absent = normalize_bool(req.first_present("if_absent", True if none_match == "*" else None))
        present = normalize_bool(req.first_present("if_present"))
    except Invalid:
        raise ApiError(400, "Invalid conditions") from None
    if absent and (present or version is not None):
        raise ApiError(400, "Invalid conditions")
    exists = False if absent else (True if present else None)
    return Conditions(None if version is None else frozenset({version}), frozenset(), exists)


def put_key(req: Request, key: str) -> Reply:
    value = req.body.get("value")
    if not isinstance(value, str):
        raise ApiError(400, "Value must be a string")
    ttl_ms = normalize_ttl(req.body.get("ttl_ms"))
    if req.release != "main":
        req.store.write(key, value, ttl_ms=ttl_ms)
        return Reply(200, {"ok": True, "key": key})
    conditions = write_conditions(req)
    try:
        lease_id = normalize_id(req.first_present("lease_id"), required=False)
    except Invalid:
        raise ApiError(400, "Invalid lease") from None
    try:
        entry = req.store.write(key, value, ttl_ms=ttl_ms, lease_id=lease_id, conditions=conditions)
    except ConditionFailed:
        raise ApiError(412, "Condition failed", key=key) from None
    except LeaseNotFound:
        raise ApiError(404, "Lease not found") from None
    if entry is None:
        return Reply(200, {"ok": True, "key": key})
    return Reply(200, {**entry, "ok": True}, {"ETag": etag(entry["metadata"]["version"])})


def delete_key(req: Request, key: str) -> Reply:
    conditions = write_conditions(req) if req.release == "main" else Conditions()
    try:
        req.store.delete(key, conditions)
    except ConditionFailed:
        raise ApiError(412, "Condition failed", key=key) from None
    return Reply(200, {"ok": True, "key": key})


def mget(req: Request) -> Reply:
    keys = req.body.get("keys")
    if not isinstance(keys, list):
        raise ApiError(400, "Keys must be a list")
    found = req.store.mget([k for k in keys if isinstance(k, str)])
    values: dict[str, Any] = {}
    for k in keys:
        # a non-string "key" is never found; Jason writes a scalar map key as text
        values[k if isinstance(k, str) else _json_key(k)] = found.get(k) if isinstance(k, str) else None
    return Reply(200, {"values": values})


def _json_key(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ApiError(500, "Internal Server Error")  # upstream's Jason.encode! raises
    return value if isinstance(value, str) else json.dumps(value)


def list_keys(req: Request) -> Reply:
    prefix = req.query.get("prefix", "")
    if req.release == "0.8":
        # ETS iteration order (a hash order), the first `limit` matches, no cursor
        limit = parse_limit_lenient(req.query.get("limit"))
        keys = sorted(req.store.live_keys(prefix), key=legacy_order)[:limit]
        return Reply(200, {"keys": keys})
    if req.release == "0.9.1":
        limit = parse_limit_lenient(req.query.get("limit"))
        if limit == 0:  # checked before the cursor is even decoded
            return Reply(200, {"keys": [], "next_cursor": None})
        after = cursor_key(req.query.get("cursor"), prefix)
        items, more = req.store.range(prefix, limit, after=after)
    else:
        limit = parse_limit_main(req.query.get("limit"))
        after = cursor_key(req.query.get("cursor"), prefix)
        items, more = ([], False) if limit == 0 else req.store.range(prefix, limit, after=after)
    keys = [item["key"] for item in items]
    next_cursor = encode_cursor(keys[-1], prefix) if more and len(keys) == limit else None
    return Reply(200, {"keys": keys, "next_cursor": next_cursor})


def list_range(req: Request) -> Reply:
    """Main's ``GET /kv``: ``start`` is an inclusive lower bound, a cursor resumes after
    its key (and wins over ``start``); values/metadata only when asked for."""
    prefix = req.query.get("prefix", "")
    limit = parse_limit_main(req.query.get("limit"))
    values = parse_flag(req.query.get("include_values"), False)
    metadata = parse_flag(req.query.get("include_metadata"), False)
    if values is None or metadata is None:
        raise ApiError(400, "Invalid range parameters")
    after = cursor_key(req.query.get("cursor"), prefix)
    if limit == 0:
        return Reply(200, {"items": [], "next_cursor": None})
    entries, more = req.store.range(prefix, limit, start=req.query.get("start"), after=after)
    items = []
    for entry in entries:
        item: dict[str, Any] = {"key": entry["key"]}
        if values:
            item["value"] = entry["value"]
        if metadata:
            item["metadata"] = entry["metadata"]
        items.append(item)
    more = more and len(entries) == limit
    return Reply(
        200, {"items": items, "next_cursor": encode_cursor(entries[-1]["key"], prefix) if more else None}
    )
