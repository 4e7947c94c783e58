"""Export a prefix as JSON Lines (any operator) and import such a file (editors).

``GET /export?prefix=P`` streams the file as the store's pages arrive (a download's growth
is its progress); the first page is read before the answer starts, so a store that does
not answer gets the usual error page instead of a broken download.

``/import``: upload (or paste) a file and choose a mode; ``POST /import`` shows the plan
(nothing written) and keeps the file and what the plan saw in the session storage (shared
by gunicorn's workers, and by replicas with a Redis) under a random id, for an hour;
``POST /import/confirm`` writes it with compare-and-set against what the plan saw, then
shows exactly which keys were written. See ``transfer.importing``.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user, login_required

from .. import discovery, jobs, transfer
from ..auth import editor_required
from ..providers.base import KeyValueProvider
from ..transfer.importing import audit_hooks
from . import provider

bp = Blueprint("transfer", __name__)

#: seconds a planned upload waits for its confirmation
UPLOAD_TTL_S = 3600
#: rows of each kind the plan and result pages list (counts are complete)
SHOWN = 500


def _settings():
    return current_app.config["KV_SETTINGS"]


@bp.get("/export")
@login_required
def export():
    """The keys under ``prefix`` as a JSON Lines attachment, streamed page by page."""
    prefix = request.args.get("prefix", "")
    if not prefix:
        abort(400, description="Name the prefix to export: /export?prefix=profiles:")
    stats = transfer.ExportStats()
    lines = transfer.export_lines(provider(), prefix, stats=stats)
    first = list(itertools.islice(lines, 1))  # store errors become the usual error page
    logger = current_app.logger
    operator = getattr(current_user, "name", "?")

    def stream():
        yield from first
        yield from lines
        logger.info("export by %s: %d keys under %r%s", operator, stats.keys, prefix,
                     " (truncated by the store's listing cap)" if stats.truncated else "")

    name = transfer.file_name(prefix)
    return Response(stream(), mimetype="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------- import


def _operator() -> str:
    return getattr(current_user, "name", "?")


def _record_key(upload_id: str) -> str:
    return f"import:{upload_id}"


def stash_plan(app, store: KeyValueProvider, operator: str, data: bytes, mode: str,
               ttl_policy: str) -> tuple[str | None, transfer.Plan]:
    """Plan ``data`` and keep it for its confirmation; (upload id or None if refused, plan)."""
    settings = app.config["KV_SETTINGS"]
    parsed = transfer.parse(data, max_bytes=settings.dashboard.max_import_bytes)
    plan = transfer.make_plan(store, settings, parsed, mode=mode, ttl_policy=ttl_policy)
    if plan.refused or not plan.writes:
        return None, plan
    upload_id = secrets.token_hex(16)
    record = {"operator": operator, "created": time.time(), "mode": mode, "ttl": ttl_policy,
              "data": base64.b64encode(data).decode("ascii"), "tokens": plan.tokens()}
    try:
        kept = jobs.storage(app).set(_record_key(upload_id), record, timeout=UPLOAD_TTL_S)
    except Exception as error:  # redis.RedisError, OSError: the session storage is down
        raise jobs.StorageUnavailable(str(error)) from error
    if not kept:
        raise jobs.StorageUnavailable("the session storage did not keep the upload")
    return upload_id, plan


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.form.get(name, default) or default
    if value not in allowed:
        abort(400, description=f"Unknown {name} {value!r}: use {', '.join(allowed)}.")
    return value


def _form_page(error: str = "", status: int = 200, **values: Any):
    return render_template("transfer/import.html", error=error, modes=transfer.MODES,
                           ttl_policies=transfer.TTL_POLICIES,
                           mode=values.get("mode", "create-only"),
                           ttl_policy=values.get("ttl_policy", "expiry"),
                           max_bytes=_settings().dashboard.max_import_bytes), status


def _uploaded(limit: int) -> bytes:
    """The uploaded file, else the pasted text; at most ``limit + 1`` bytes are read."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return upload.stream.read(limit + 1)
    return request.form.get("text", "").replace("\r\n", "\n").encode("utf-8", "surrogatepass")


@bp.get("/import")
@editor_required
def import_form():
    return _form_page()


@bp.post("/import")
@editor_required
def import_plan():
    """Show what importing the file would do; nothing is written."""
    mode = _choice("mode", transfer.MODES, "create-only")
    ttl_policy = _choice("ttl", transfer.TTL_POLICIES, "expiry")
    limit = _settings().dashboard.max_import_bytes
    data = _uploaded(limit)
    if not data.strip():
        return _form_page("Choose a JSON Lines file (or paste its lines).", 400, mode=mode,
                          ttl_policy=ttl_policy)
    try:
        upload_id, plan = stash_plan(current_app, provider(), _operator(), data, mode,
                                     ttl_policy)
    except transfer.TooBig as error:
        return _form_page(f"Nothing was imported: {error}.", 413, mode=mode,
                          ttl_policy=ttl_policy)
    except jobs.StorageUnavailable as error:
        return _form_page(f"The upload could not be kept for its confirmation ({error}); "
                          "check Dashboard__SessionStorage.", 503, mode=mode,
                          ttl_policy=ttl_policy)
    status = 422 if plan.invalid else 200
    return render_template("transfer/plan.html", plan=plan, upload_id=upload_id,
                           shown=SHOWN), status


@bp.post("/import/confirm")
@editor_required
def import_confirm():
    """Write the planned file: compare-and-set against what the plan saw."""
    upload_id = request.form.get("upload", "")
    cache = jobs.storage(current_app)
    try:
        record = cache.get(_record_key(upload_id)) if upload_id.isalnum() else None
    except Exception as error:  # redis.RedisError, OSError: the session storage is down
        return _form_page(f"The upload could not be read back ({error}); nothing was "
                          "written.", 503)
    if not isinstance(record, dict):
        return _form_page("This upload is no longer kept (it was confirmed already, or more "
                          f"than {UPLOAD_TTL_S // 60} minutes passed): nothing was written. "
                          "Upload the file again.", 410)
    if record.get("operator") != _operator():
        abort(403, description="This upload was planned by another operator.")
    cache.delete(_record_key(upload_id))  # one confirmation per plan
    settings = _settings()
    data = base64.b64decode(record["data"])
    parsed = transfer.parse(data, max_bytes=max(len(data), 1))
    plan = transfer.restore_plan(parsed, record["mode"], record["ttl"], record["tokens"])
    if plan.refused:
        return _form_page(plan.refused, 422)
    written, unconfirmed = audit_hooks(_operator())
    result = transfer.apply(provider(), settings, plan, audit=written, unconfirmed=unconfirmed)
    current_app.logger.info("import by %s: %d written, %d conflicts, failed: %s",
                            _operator(), len(result.written), len(result.conflicts),
                            result.failed[0] if result.failed else "none")
    discovery.forget()  # imported keys may be new services
    return render_template("transfer/result.html", plan=plan, result=result, shown=SHOWN)
