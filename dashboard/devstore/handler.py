"""HTTP plumbing for the dev store: upstream's Plug pipeline on top of http.server.

The pipeline runs in upstream's order: the Content-Length cap (0.9.1 and later), the
JSON body parser (415/400/413), the access plug (401, 429, 403), then the router
(``routes.py``). Every answer carries a Content-Length (or is chunked, for watch
streams), so clients can keep connections alive.
"""

from __future__ import annotations

import json
import re
import select
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from dashboard.devstore import routes
from dashboard.devstore.access import ensure_access, is_write
from dashboard.devstore.config import DEFAULT_MAX_BODY_BYTES, DevStoreConfig
from dashboard.devstore.request import JSON, Reply, Request, store_unavailable
from dashboard.devstore.store import DevStore
from dashboard.devstore.wire import ApiError, dumps

#: an unread request body up to this size is read and dropped after an early answer
#: (401, 413, ...): closing a socket with unread data resets it, and the client would
#: lose the answer
_DRAIN_LIMIT = 64 * 1024 * 1024
#: Plug.Parsers only reads bodies of these methods
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*(;.*)?", re.DOTALL)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _refusal(status: int) -> Reply:
    """A write refused before it is applied, in upstream's words where it has them."""
    if status == 429:
        return Reply(429, {"error": "Rate limit exceeded"})
    if status == 503:
        error = store_unavailable()
        return Reply(error.status, error.body, error.headers)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Reply(status, {"error": phrase})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Jason rejects NaN/Infinity; Python would not


class DevStoreHandler(BaseHTTPRequestHandler):
    """One connection; every method (also PATCH, HEAD, ...) goes through ``_dispatch``."""

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

    def __getattr__(self, name: str) -> Any:
        # Plug.Router accepts any method and answers the catch-all 404; http.server
        # looks up do_<METHOD>, so provide one for every method
        if name.startswith("do_") and name[3:].isupper():
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    @property
    def store(self) -> DevStore:
        return self.server.store  # type: ignore[attr-defined]

    @property
    def config(self) -> DevStoreConfig:
        return self.server.config  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if self.config.verbose:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        self._streaming = False
        raw_path, _, raw_query = self.path.partition("?")
        try:
            try:
                reply = self._serve(method, raw_path, raw_query)
            except ApiError as exc:
                reply = Reply(exc.status, exc.body, exc.headers)
            if reply is not None:
                self._send_reply(reply)
        except (ConnectionError, TimeoutError):
            raise
        except Exception:  # a bug must still answer, and show up in the log
            traceback.print_exc(file=sys.stderr)
            if self._streaming:
                self.close_connection = True
            else:
                self._send_reply(Reply(500, {"error": "Internal Server Error"}))
        self._drop_unread_body()

    def _serve(self, method: str, path: str, raw_query: str) -> Reply | None:
        cfg = self.config
        if path.startswith("/kv") and cfg.delay_ms > 0:
            time.sleep(cfg.delay_ms / 1000)
        if cfg.release != "0.8":
            declared = self._content_length()
            if declared is not None and declared > cfg.max_body_bytes:  # decided unread
                raise ApiError(413, "Request body too large", max_bytes=cfg.max_body_bytes)
        body = self._parse_body(method)
        req = Request(self, method, path, self._query(raw_query), body, self.headers, self.store, cfg)
        ensure_access(req)
        segments = self._segments(path)
        if path.startswith("/kv") and is_write(cfg.release, method, path):
            return self._slow_write(req, segments)
        return routes.run(req, segments)

    def _slow_write(self, req: Request, segments: list[str]) -> Reply | None:
        """A write under the slow-write modes (see ``DevStoreConfig``); else a plain one."""
        cfg = self.config
        if cfg.write_fault_match and cfg.write_fault_match not in "/".join(segments):
            return routes.run(req, segments)
        failed = Reply(500, {"error": "Internal Server Error"})
        if cfg.write_refused_status:
            return _refusal(cfg.write_refused_status)
        if cfg.write_applies_late_ms > 0:
            timer = threading.Timer(cfg.write_applies_late_ms / 1000, _apply_late,
                                    (cfg.late_write_gate, routes.run, req, segments))
            timer.daemon = True
            timer.start()
            return failed
        reply = routes.run(req, segments)
        if cfg.write_answer_delay_ms > 0:
            time.sleep(cfg.write_answer_delay_ms / 1000)
        return failed if cfg.write_fails_after_apply else reply

    # -- request parsing -----------------------------------------------------------------

    def _query(self, raw: str) -> dict[str, str]:
        """Query parameters as Plug decodes them; the last one wins when a name repeats."""
        try:
            return dict(parse_qsl(raw, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request") from None

    @staticmethod
    def _segments(path: str) -> list[str]:
        """Plug's ``path_info``, decoded: empty segments dropped, each percent-decoded."""
        segments = []
        for raw in path.split("/"):
            if not raw:
                continue
            if _BAD_PERCENT.search(raw):
                raise ApiError(400, "Bad Request")  # Plug.Router.MalformedURIError
            try:
                segments.append(unquote_to_bytes(raw).decode("utf-8"))
            except UnicodeDecodeError:
                # upstream would store such a key and then fail to JSON-encode it
                raise ApiError(400, "Bad Request") from None
        return segments

    def _parse_body(self, method: str) -> dict[str, Any]:
        """Plug.Parsers with ``parsers: [:json], pass: ["application/json"]``.

        No Content-Type: the body is not read (params stay empty). A JSON type
        (``application/json``, ``application/*+json``) is parsed, a non-object
        becoming ``{"_json": value}``; any other type is 415.
        """
        if method not in _BODY_METHODS:
            return {}
        content_type = self.headers.get("Content-Type")
        if content_type is None:
            return {}
        media = _MEDIA_TYPE.fullmatch(content_type)
        subtype = media.group(2).lower() if media else ""
        if (
            not media
            or media.group(1).lower() != "application"
            or not (subtype == "json" or subtype.endswith("+json"))
        ):
            raise ApiError(415, "Unsupported Media Type")
        data = self._read_body()
        if not data:
            return {}
        try:
            decoded = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise ApiError(400, "Bad Request") from None  # Plug.Parsers.ParseError
        return decoded if isinstance(decoded, dict) else {"_json": decoded}

    def _read_body(self) -> bytes:
        # the parser's own cap: fixed 10 MiB from 0.9.1 on (the configurable cap was
        # checked on Content-Length already), Plug's default on 0.8 (the hook's value)
        limit = DEFAULT_MAX_BODY_BYTES if self.config.release != "0.8" else self.config.max_body_bytes
        too_large = ApiError(413, "Request Entity Too Large")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit, too_large)
        length = max(self._content_length() or 0, 0)
        if length > limit:
            raise too_large
        self._body_read = True
        return self.rfile.read(length)

    def _read_chunked(self, limit: int, too_large: ApiError) -> bytes:
        self._body_read = True
        parts, total = [], 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "Bad Request") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise too_large
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)  # the CRLF after each chunk

    def _content_length(self) -> int | None:
        """The declared body size; None when none is declared or it is malformed."""
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            return int(raw.strip())
        except ValueError:
            return None

    def _drop_unread_body(self) -> None:
        if self._body_read:
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return
        length = self._content_length() or 0
        if length < 0 or length > _DRAIN_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    # -- answers -------------------------------------------------------------------------

    def _send_reply(self, reply: Reply) -> None:
        data = reply.body if isinstance(reply.body, bytes) else dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if not self._body_read:
            length = self._content_length() or 0
            if length > _DRAIN_LIMIT or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def start_chunked(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        """Begin a chunked (streamed) answer; ``write_chunk`` then ``end_chunked``."""
        self._streaming = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def client_gone(self) -> bool:
        """Whether the client closed its side (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, oversized headers) as JSON too."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        data = dumps({"error": phrase})
        self.send_response(code)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _apply_late(gate: threading.Event | None, run, req, segments) -> None:
    if gate is not None:
        gate.wait(30)  # bounded: a test that never releases it does not keep a thread for ever
    run(req, segments)
