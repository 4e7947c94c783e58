"""Real HTTP servers that are NOT ToskaStore: a mistyped URL must never read as an empty store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Background:
    """A stdlib HTTP server on a free loopback port, served from a thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@contextmanager
def answering_everything(status: int, body: bytes, content_type: str) -> Iterator[str]:
    """A server answering every request the same way (e.g. 404 JSON, or a 200 HTML page)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    background = Background(Handler)
    try:
        yield background.url
    finally:
        background.stop()


NOT_FOUND_JSON = (404, b'{"error":"not found"}', "application/json")
HTML_PAGE = (200, b"<html><body>It works!</body></html>", "text/html")
