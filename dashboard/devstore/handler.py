"""HTTP handling for the dev store: ToskaStore's routes on top of ``DevStore``.

The handler reads ``self.server.store`` and ``self.server.config`` (see ``server.py``).
Every answer is JSON (``/metrics`` aside), errors included, and carries a
Content-Length, so clients can keep connections alive.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote

from .config import DevStoreConfig, retry_after_header
from .store import ConditionFailed, Conditions, DevStore, Position, now_ms
from .wire import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ApiError,
    bad_request,
    decode_cursor,
    encode_cursor,
    etag,
    legacy_order,
    parse_bool,
    parse_etags,
    parse_limit,
    parse_version,
)

#: an unread request body up to this size is read and dropped after an early answer
#: (401, 413, ...): closing a socket with unread data resets it, and the client would
#: lose the answer
_DRAIN_LIMIT = 64 * 1024 * 1024

Handler = Callable[[], None]


class DevStoreHandler(BaseHTTPRequestHandler):
    """One connection; the ``do_*`` methods route each request."""

    protocol_version = "HTTP/1.1"
    server_version = "ToskaDevStore/0.9.1"
    #: idle keep-alive connections are closed after this many seconds
    timeout = 60

    # -- plumbing ------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # small answers on a kept-alive connection would otherwise wait ~40 ms for a
        # delayed ACK (Nagle), which makes test suites crawl
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def store(self) -> DevStore:
        return self.server.store  # type: ignore[attr-defined]

    @property
    def config(self) -> DevStoreConfig:
        return self.server.config  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if self.config.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        raw_path, _, self._raw_query = self.path.partition("?")
        try:
            try:
                self._serve(method, raw_path)
            except ApiError as exc:
                self._send_json(exc.status, exc.body, exc.headers)
        except (ConnectionError, TimeoutError):
            raise
        except Exception:  # a bug must still answer JSON, and show up in the log
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, {"error": "internal_error"})
        self._drop_unread_body()

    def _serve(self, method: str, path: str) -> None:
        handler, scope = self._route(method, path)
        cfg = self.config
        if scope is None:  # /health and /status: no auth, no rate limit
            handler()
            return
        if path.startswith("/kv") and cfg.delay_ms > 0:
            time.sleep(cfg.delay_ms / 1000)
        if cfg.unavailable:
            raise ApiError(503, "store_unavailable", reason="the store is unavailable")
        if cfg.bucket is not None:
            wait = cfg.bucket.take()
            if wait:
                raise ApiError(
                    429,
                    "rate_limited",
                    reason="too many requests",
                    headers={"Retry-After": retry_after_header(wait)},
                )
        if not cfg.authorized(scope, self._presented_tokens()):
            raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if scope == "write" and cfg.read_only:
            raise ApiError(403, "read_only_follower", reason="this server is a read-only follower")
        handler()

    def _route(self, method: str, path: str) -> tuple[Handler, str | None]:
        """The handler and auth scope ("read"/"write"; None: open) for a request."""
        cfg = self.config
        listing = not cfg.no_key_listing
        routes: dict[str, dict[str, tuple[Handler, str | None]]] = {
            "/health": {"GET": (self._health, None)},
            "/status": {"GET": (self._status, None)},
            "/stats": {"GET": (self._stats, "read")},
        }
        if not cfg.legacy:
            routes["/metrics"] = {"GET": (self._metrics, "read")}
            if listing:
                routes["/kv"] = {"GET": (self._list_range, "read")}
        if path in routes:
            return self._pick(routes[path], method)
        if not path.startswith("/kv/"):
            raise ApiError(404, "not_found", path=path)
        # reserved names are matched on the raw segment, as upstream's router does
        segment = path[len("/kv/") :]
        if segment == "keys" and method == "GET":
            if not listing:  # a 404 even if a key named "keys" exists: listing is absent
                raise ApiError(404, "not_found", path=path)
            return self._list_keys, "read"
        if segment == "mget" and method == "POST":
            return self._mget, "read"
        if not segment or "/" in segment:
            # a key is exactly one segment: an unencoded "/" is a client bug, not a key
            raise ApiError(
                404, "not_found", path=path, reason="keys must be one percent-encoded path segment"
            )
        try:
            key = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise bad_request("key is not valid percent-encoded UTF-8", error="invalid_key") from None
        return self._pick(
            {
                "GET": (lambda: self._get_key(key), "read"),
                "PUT": (lambda: self._put_key(key), "write"),
                "DELETE": (lambda: self._delete_key(key), "write"),
            },
            method,
        )

    def _pick(
        self, by_method: dict[str, tuple[Handler, str | None]], method: str
    ) -> tuple[Handler, str | None]:
        if method not in by_method:
            raise ApiError(405, "method_not_allowed", headers={"Allow": ", ".join(by_method)})
        return by_method[method]

    def _presented_tokens(self) -> list[str]:
        tokens = []
        scheme, _, value = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            tokens.append(value.strip())
        if self.headers.get("X-Toska-Token"):
            tokens.append(self.headers["X-Toska-Token"].strip())
        return tokens

    def _query(self) -> dict[str, str]:
        """Query parameters; the last one wins when a name repeats."""
        try:
            parsed = parse_qs(self._raw_query, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise bad_request("query string is not valid UTF-8") from None
        return {name: values[-1] for name, values in parsed.items()}

    def _content_length(self) -> int | None:
        """The declared body size (0 when none is declared); None if chunked or malformed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _read_json(self) -> Any:
        length = self._content_length()
        if length is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise ApiError(
                    411, "length_required", reason="send a Content-Length; chunked bodies are not supported"
                )
            raise bad_request("malformed Content-Length")
        limit = self.config.max_body_bytes
        if length > limit:  # decided before reading a byte of it
            raise ApiError(413, "request_too_large", max_bytes=limit)
        data = self.rfile.read(length)
        self._body_read = True
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise bad_request("request body is not valid JSON", error="invalid_json") from None

    def _drop_unread_body(self) -> None:
        if self._body_read:
            return
        length = self._content_length()
        if length is None or length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, data, "application/json; charset=utf-8", headers)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if not self._body_read:
            length = self._content_length()
            if length is None or length > _DRAIN_LIMIT:
                self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unknown method) as JSON too."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        body: dict[str, Any] = {"error": phrase.lower().replace(" ", "_").replace("-", "_")}
        if message:
            body["reason"] = message
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- status routes -------------------------------------------------------------------

    def _health(self) -> None:
        cfg = self.config
        status = "unhealthy" if cfg.unavailable else "healthy"
        body = {"status": status, "timestamp": now_ms(), "uptime": cfg.uptime_ms()}
        self._send_json(503 if cfg.unavailable else 200, body)

    def _status(self) -> None:
        cfg = self.config
        self._send_json(
            200,
            {
                "status": "running",
                "uptime": cfg.uptime_ms(),
                "config": {
                    "server": "toska-kv devstore",
                    "mode": "legacy" if cfg.legacy else "current",
                    "key_listing": not cfg.no_key_listing,
                    "read_only": cfg.read_only,
                    "read_auth": bool(cfg.tokens_for("read")),
                    "write_auth": bool(cfg.tokens_for("write")),
                    "max_body_bytes": cfg.max_body_bytes,
                    "rate_limit_per_s": cfg.rate_limit_per_s,
                    "delay_ms": cfg.delay_ms,
                    "persistence": "memory",
                },
            },
        )

    def _stats(self) -> None:
        if self.config.legacy:
            self._send_json(200, {"keys": len(self.store)})
            return
        self._send_json(
            200,
            {
                "keys": len(self.store),
                "revision": self.store.revision,
                "sync_mode": "memory",
                "leases": 0,
                "locks": 0,
                "watchers": 0,
                "watch_history_size": 0,
                "watch_history_limit": 0,
                "last_snapshot_at": None,
                "last_sync_at": None,
            },
        )

    def _metrics(self) -> None:
        text = (
            "# HELP toska_keys Live keys in the store.\n"
            "# TYPE toska_keys gauge\n"
            f"toska_keys {len(self.store)}\n"
            "# HELP toska_revision Store revision.\n"
            "# TYPE toska_revision counter\n"
            f"toska_revision {self.store.revision}\n"
        )
        self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")

    # -- key routes ----------------------------------------------------------------------

    def _get_key(self, key: str) -> None:
        entry = self.store.get(key)
        if entry is None:
            raise ApiError(404, "not_found", key=key)
        if self.config.legacy:
            self._send_json(200, {"key": key, "value": entry["value"]})
        else:
            self._send_json(200, entry, {"ETag": etag(entry["metadata"]["version"])})

    def _put_key(self, key: str) -> None:
        body = self._read_json()
        if not isinstance(body, dict):
            raise bad_request("body must be a JSON object", key=key)
        value = body.get("value")
        if not isinstance(value, str):
            raise bad_request("value must be a JSON string", error="invalid_value", key=key)
        ttl_ms = body.get("ttl_ms")
        if ttl_ms is not None and (isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int)):
            raise bad_request("ttl_ms must be an integer or null", key=key)
        if self.config.legacy:
            entry = self.store.write(key, value, ttl_ms=ttl_ms)
            answer = {"ok": True, "key": key}
            self._send_json(200, answer if entry is None else {**answer, "value": value})
            return
        lease_id = body.get("lease_id")
        if lease_id is not None and not isinstance(lease_id, str):
            raise bad_request("lease_id must be a string or null", key=key)
        conditions = self._conditions(key, body)
        try:
            entry = self.store.write(key, value, ttl_ms=ttl_ms, lease_id=lease_id, conditions=conditions)
        except ConditionFailed as exc:
            raise _condition_failed(key, exc) from None
        if entry is None:
            self._send_json(200, {"ok": True, "key": key})
        else:
            self._send_json(200, {"ok": True, **entry}, {"ETag": etag(entry["metadata"]["version"])})

    def _conditions(self, key: str, body: dict[str, Any]) -> Conditions:
        """Preconditions from the body (if_version/if_absent/if_present) and headers."""
        versions: frozenset[int] | None = None
        exists: set[bool] = set()
        if_version = parse_version("if_version", body.get("if_version"))
        if if_version is not None:
            versions = frozenset({if_version})
        for name, wanted in (("if_absent", False), ("if_present", True)):
            flag = body.get(name)
            if flag is not None and not isinstance(flag, bool):
                raise bad_request(f"{name} must be a boolean", key=key)
            if flag:
                exists.add(wanted)
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            star, tags = parse_etags(if_match)
            if star:
                exists.add(True)
            else:
                versions = tags if versions is None else versions & tags
        not_versions: frozenset[int] = frozenset()
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            star, not_versions = parse_etags(if_none_match)
            if star:
                exists.add(False)
        if len(exists) > 1:
            raise bad_request("the conditions require the key both present and absent", key=key)
        return Conditions(versions, not_versions, exists.pop() if exists else None)

    def _delete_key(self, key: str) -> None:
        conditions = Conditions()
        if not self.config.legacy:
            if_version = parse_version("if_version", self._query().get("if_version"), from_query=True)
            versions = None if if_version is None else frozenset({if_version})
            exists = None
            if_match = self.headers.get("If-Match")
            if if_match is not None:
                star, tags = parse_etags(if_match)
                if star:
                    exists = True
                else:
                    versions = tags if versions is None else versions & tags
            conditions = Conditions(versions, frozenset(), exists)
        try:
            self.store.delete(key, conditions)
        except ConditionFailed as exc:
            raise _condition_failed(key, exc) from None
        self._send_json(200, {"ok": True, "key": key})

    def _mget(self) -> None:
        body = self._read_json()
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise bad_request('body must be {"keys": [strings]}')
        self._send_json(200, {"values": self.store.mget(keys)})

    # -- listing routes ------------------------------------------------------------------

    def _list_keys(self) -> None:
        query = self._query()
        prefix = query.get("prefix", "")
        if self.config.legacy:
            # legacy servers answer in hash order with no cap and no cursor
            limit = parse_limit(query.get("limit"), default=None, cap=None)
            keys = sorted(self.store.live_keys(prefix), key=legacy_order)
            self._send_json(200, {"keys": keys if limit is None else keys[:limit]})
            return
        limit = parse_limit(query.get("limit"), default=DEFAULT_PAGE, cap=MAX_PAGE)
        page = self.store.page(prefix, _cursor(query), limit)
        self._send_json(
            200,
            {
                "keys": [item["key"] for item in page.items],
                "next_cursor": encode_cursor(page.next),
            },
        )

    def _list_range(self) -> None:
        query = self._query()
        limit = parse_limit(query.get("limit"), default=DEFAULT_PAGE, cap=MAX_PAGE)
        values = parse_bool("include_values", query.get("include_values"))
        metadata = parse_bool("include_metadata", query.get("include_metadata"))
        start = _cursor(query)
        if start is None and query.get("start"):
            start = Position(query["start"])
        page = self.store.page(query.get("prefix", ""), start, limit)
        items = []
        for entry in page.items:
            item: dict[str, Any] = {"key": entry["key"]}
            if values:
                item["value"] = entry["value"]
            if metadata:
                item["metadata"] = entry["metadata"]
            items.append(item)
        self._send_json(200, {"items": items, "next_cursor": encode_cursor(page.next)})


def _cursor(query: dict[str, str]) -> Position | None:
    cursor = query.get("cursor")
    return decode_cursor(cursor) if cursor else None


def _condition_failed(key: str, exc: ConditionFailed) -> ApiError:
    return ApiError(412, "condition_failed", key=key, reason=exc.reason, current_version=exc.current_version)
