"""The app's static files, served from memory.

Flask's static view opens each file and hands werkzeug a file wrapper. Werkzeug's own
server (``toska-kv serve``/``demo``, the tests' live server) skips closing it when the
browser drops the connection while the server drains the request (a favicon asked for
after the page loaded, then the tab closes): the file stays open until it is garbage
collected. The files are small and few, so each is read once into memory (and read again
when it changes on disk) and sent from there, with the same caching headers.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import threading

from flask import Flask, abort, current_app, send_file
from werkzeug.security import safe_join

_lock = threading.Lock()
#: path -> (mtime_ns, bytes, etag)
_cache: dict[str, tuple[int, bytes, str]] = {}


def _read(path: str) -> tuple[bytes, str, float]:
    stat = os.stat(path)
    with _lock:
        found = _cache.get(path)
        if found is None or found[0] != stat.st_mtime_ns:
            with open(path, "rb") as file:
                data = file.read()
            found = (stat.st_mtime_ns, data, hashlib.sha1(data).hexdigest())
            _cache[path] = found
    return found[1], found[2], stat.st_mtime


def send_static(folder: str, filename: str, *, mimetype: str | None = None,
                max_age: int | None = None):
    """``filename`` under ``folder`` (404 outside it or when missing), from memory."""
    path = safe_join(folder, filename)
    if path is None or not os.path.isfile(path):
        abort(404)
    data, etag, mtime = _read(path)
    guessed = mimetype or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return send_file(io.BytesIO(data), mimetype=guessed, etag=etag, last_modified=mtime,
                     max_age=max_age if max_age is not None else
                     current_app.get_send_file_max_age(filename), conditional=True)


def init_app(app: Flask) -> None:
    """Serve ``/static/...`` from memory instead of open files."""
    folder = app.static_folder

    def static(filename: str):
        return send_static(folder, filename)

    app.view_functions["static"] = static
