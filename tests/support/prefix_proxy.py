"""A real HTTP reverse proxy on loopback that serves an upstream app at ``/kv/``, like an ingress.

It behaves as an nginx ingress routing the path ``/kv`` does: anything outside ``/kv/`` is
answered 404 by the proxy itself (so a link, redirect or htmx request that escapes the prefix
fails in the browser), the client's ``Host`` is passed on unchanged, ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Forwarded-For`` are set (any the client sent are replaced), request
bodies and headers are forwarded, and responses are streamed back as they arrive. Redirects are
not rewritten (ingress-nginx runs with ``proxy_redirect off``).

``strip=True`` is the ``rewrite-target: /$2`` ingress: the upstream sees the path without
``/kv`` and is told the prefix in ``X-Forwarded-Prefix``. ``strip=False`` keeps the path as the
browser sent it (the app knows its prefix from ``Dashboard__PathBase``).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: hop-by-hop headers (RFC 9110 7.6.1): never forwarded in either direction
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
#: set by the proxy itself: what a client sends under these names is not trusted
FORWARDED = frozenset({
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix",
    "x-forwarded-port", "x-real-ip", "forwarded",
})
CHUNK = 64 * 1024


@dataclass
class ProxyLog:
    """What reached the proxy: (method, path as sent by the browser, status answered)."""

    entries: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.entries.append((method, path, status))


@dataclass
class RunningProxy:
    url: str
    """The proxy's origin, e.g. ``http://127.0.0.1:41234`` (the app lives at ``url + prefix``)."""
    prefix: str
    log: ProxyLog


def _handler(upstream_host: str, upstream_port: int, prefix: str, strip: bool, log: ProxyLog,
             timeout: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as between a browser and an ingress

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass  # the test reports what matters; no lines on stderr per request

        def _any(self) -> None:
            target = self.path
            path = urlsplit(target).path if "://" not in target else ""
            body = self._read_body()
            if path != prefix and not path.startswith(prefix + "/"):
                self._answer(404, b"404 Not Found: this ingress routes only " + prefix.encode()
                             + b"/\n")
                log.add(self.command, target, 404)
                return
            upstream_target = target[len(prefix):] if strip else target
            if not upstream_target.startswith("/"):
                upstream_target = "/" + upstream_target
            headers = [(name, value) for name, value in self.headers.items()
                       if name.lower() not in HOP_BY_HOP | FORWARDED
                       and name.lower() != "content-length"]
            host = self.headers.get("Host", f"{self.server.server_address[0]}:"
                                             f"{self.server.server_address[1]}")
            headers += [("X-Forwarded-For", self.client_address[0]),
                        ("X-Forwarded-Proto", "http"),
                        ("X-Forwarded-Host", host)]
            if strip:
                headers.append(("X-Forwarded-Prefix", prefix))
            if body is not None:
                headers.append(("Content-Length", str(len(body))))
            connection = http.client.HTTPConnection(upstream_host, upstream_port, timeout=timeout)
            try:
                connection.putrequest(self.command, upstream_target, skip_host=True,
                                      skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                connection.endheaders(body)
                response = connection.getresponse()
                log.add(self.command, target, response.status)
                self._relay(response)
            except OSError as error:
                self._answer(502, f"502 Bad Gateway: {error}\n".encode())
                log.add(self.command, target, 502)
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

        def _read_body(self) -> bytes | None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = self.headers.get("Content-Length")
            return self.rfile.read(int(length)) if length is not None else None

        def _relay(self, response: http.client.HTTPResponse) -> None:
            self.send_response_only(response.status, response.reason)
            length = response.getheader("Content-Length")
            bodyless = self.command == "HEAD" or response.status in (204, 304) \
                or 100 <= response.status < 200
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            chunked = not bodyless and length is None
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if bodyless:
                return
            try:
                while chunk := response.read1(CHUNK):
                    if chunked:
                        self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
                    else:
                        self.wfile.write(chunk)
                    self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
            except (OSError, http.client.HTTPException):
                # the browser left mid-answer (a live page's stream when it navigates on),
                # or the upstream ended a stream it was sending: not the proxy's error
                self.close_connection = True

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response_only(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


@contextmanager
def prefix_proxy(upstream_url: str, *, prefix: str = "/kv", strip: bool = True,
                 timeout: float = 30.0) -> Iterator[RunningProxy]:
    """Serve ``upstream_url`` at ``http://127.0.0.1:<free port><prefix>/`` until the block ends."""
    parts = urlsplit(upstream_url)
    log = ProxyLog()
    handler = _handler(parts.hostname or "127.0.0.1", parts.port or 80, prefix.rstrip("/"),
                       strip, log, timeout)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningProxy(f"http://127.0.0.1:{server.server_address[1]}", prefix.rstrip("/"), log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
