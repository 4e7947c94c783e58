"""Log lines: readable text (the CLI, development) or one JSON object a line (the cluster).

``Dashboard:LogFormat`` chooses: ``text`` (the default) keeps the classic
``time level logger message`` lines; ``json`` writes every record as a JSON object
(python-json-logger) with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and the
record's structured fields, so a log pipeline reads them without parsing sentences.

Two kinds of lines carry fields of their own:

- ``dashboard.request``: one per request: ``method``, ``endpoint`` (the Flask endpoint,
  never the query string with its keys), ``path``, ``status``, ``duration_ms``,
  ``operator`` (None when nobody is logged in) and ``client``;
- ``dashboard.audit``: one per write or repair (see ``audit.py``): ``operator``,
  ``action``, ``key``, ``old_version``/``new_version``, ``old_size``/``new_size``,
  ``index`` and ``outcome``; never the values.

Under gunicorn (the image), gunicorn writes no access log, so each request is one line, and
its own lines take the same format: ``dashboard/gunicorn_conf.py``, which keeps a copy of
``formatter`` (gunicorn's master never imports the app; a test compares the two).

Every line logged while a request is answered carries its ``request_id``: the ingress's
``X-Request-ID`` when it sends a plausible one, else a new random id; the response names it
in ``X-Request-ID`` too, so an operator's report leads to its lines.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import IO, Any

from flask import Flask, Response, g, has_request_context, request
from flask.signals import request_finished, request_started
from pythonjsonlogger.json import JsonFormatter

from dashboard.settings.model import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
REQUEST_ID_HEADER = "X-Request-ID"
#: what an incoming request id may look like (ingress-nginx sends 32 hex digits)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: marks the handler this module installed, so a second app replaces it instead of adding one
_MARK = "_kvdash_handler"

request_log = logging.getLogger("dashboard.request")


def request_id() -> str | None:
    """The id of the request being answered; None outside a request."""
    if not has_request_context():
        return None
    return g.get("request_id")


class RequestContext(logging.Filter):
    """Adds ``request_id`` to every record handled while a request is answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id()
        return True


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``Dashboard:LogFormat``."""
    if log_format == "json":
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            # ASCII escapes: a key that is not UTF-8 (surrogate-escaped) still makes a line
            timestamp="time",
        )
    return logging.Formatter(TEXT_FORMAT)


def configure(log_format: str, stream: IO[str] | None = None) -> logging.Handler | None:
    """Send log records to ``stream`` (standard error by default) in ``log_format``.

    Without a ``stream``, logging that someone else configured first (pytest, a program
    embedding the app) is left alone, as ``logging.basicConfig`` does; the handler this
    module installed earlier is replaced, never doubled.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    if stream is None and root.handlers:
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestContext())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def audit_to(stream) -> None:
    """Also send each ``dashboard.audit`` line, as JSON, to ``stream`` (standard output in
    the image): a SIEM collecting a container's stdout gets the audit trail alone there,
    while every log line, audit lines included, stays on standard error."""
    audit = logging.getLogger("dashboard.audit")
    for handler in list(audit.handlers):
        if getattr(handler, _AUDIT_MARK, False):
            audit.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    setattr(handler, _AUDIT_MARK, True)
    handler.setFormatter(formatter("json"))
    handler.addFilter(RequestContext())
    audit.addHandler(handler)


_AUDIT_MARK = "_kv_audit_stdout"


# --------------------------------------------------------------------------- requests


def _begin(app: Flask, **_: Any) -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.kv_log_started = time.perf_counter()


def operator_name() -> str | None:
    """Who is logged in, if this request loaded them (never loads a session just to log)."""
    user = g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "name", None)


def _name_request(response: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid
    return response


def _end(app: Flask, response: Response, **_: Any) -> None:
    started = g.get("kv_log_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    endpoint = request.endpoint or "unmatched"
    fields = {
        "method": request.method, "endpoint": endpoint, "path": request.path,
        "status": response.status_code, "duration_ms": duration_ms,
        "operator": operator_name(), "client": request.remote_addr,
    }
    level = logging.ERROR if response.status_code >= 500 else logging.INFO
    request_log.log(level, "%s %s -> %d in %s ms (%s)", request.method, endpoint,
                    response.status_code, duration_ms, fields["operator"] or "anonymous",
                    extra=fields)


def init_app(app: Flask, settings: Settings) -> None:
    """Log in ``Dashboard:LogFormat``, one line per request, every line with its request id.

    Flask config ``KV_LOG_STREAM`` (a file object) sends the lines there instead of standard
    error (tests read them back).
    """
    configure(settings.dashboard.log_format, app.config.get("KV_LOG_STREAM"))
    if settings.dashboard.log_format == "json":
        audit_to(app.config.get("KV_AUDIT_STREAM") or sys.stdout)
    request_started.connect(_begin, app)
    request_finished.connect(_end, app)
    app.after_request(_name_request)
