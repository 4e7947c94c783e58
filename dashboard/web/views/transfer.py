"""Export a prefix as JSON Lines (any operator) and import such a file (editors).

``GET /export?prefix=P`` streams the file as the store's pages arrive (a download's growth
is its progress); the first page is read before the answer starts, so a store that does
not answer gets the usual error page instead of a broken download. An incomplete export
ends with its end marker line (``transfer.jsonl``); when that is known before the answer
starts (a legacy server's listing cap shows on the first page), the answer also carries
``X-Export-Complete: false``. The file's last line is what tells, in every case. A prefix
with no keys answers 404 "no keys under 'profile:' (did you mean 'profiles:'?)" instead of
an empty file (``allow_empty=1`` downloads the empty file).

``/import``: upload (or paste) a file and choose a mode; ``POST /import`` shows the plan
(nothing written) and keeps the file and what the plan saw in the session storage (shared
by gunicorn's workers, and by replicas with a Redis) under a random id, for an hour;
``POST /import/confirm`` writes it with compare-and-set against what the plan saw, then
shows exactly which keys were written. The confirmation claims the upload first, with an
atomic add in that same storage: a second confirmation of the same plan (a double click,
another replica) answers 409 "already being applied" and writes nothing. See
``transfer.import_plan`` and ``transfer.import_apply``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import secrets
import struct
import tempfile
import time
from typing import Any

from cachelib import BaseCache, FileSystemCache
from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from dashboard.mesh import transfer
from dashboard.mesh.transfer.import_apply import audit_hooks
from dashboard.stores.base import KeyValueProvider
from dashboard.web import discovery, jobs
from dashboard.web.access import editor_required
from dashboard.web.current import provider

bp = Blueprint("transfer", __name__)

#: seconds a planned upload waits for its confirmation
UPLOAD_TTL_S = 3600
#: rows of each kind the plan and result pages list (counts are complete)
SHOWN = 500
ALREADY_APPLIED = ("This upload is already being applied, or was (it was confirmed already, "
                   "e.g. by a double click): this confirmation wrote nothing. The first "
                   "confirmation shows the result; every write is on the audit page.")


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
    lines = transfer.export_lines(provider(), prefix, stats=stats, settings=_settings(),
                                  allow_empty=request.args.get("allow_empty") == "1")
    try:
        first = list(itertools.islice(lines, 1))  # store errors become the usual error page
    except transfer.NothingToExport as error:
        from dashboard.web.errors import render_error

        return render_error(404, "Nothing to export", str(error),
                            "Check the prefix: it must match the keys exactly, including the "
                            "trailing ':'. Nothing was downloaded.")
    logger = current_app.logger
    operator = getattr(current_user, "name", "?")

    def stream():
        yield from first
        yield from lines
        if stats.complete:
            logger.info("export by %s: %d keys under %r", operator, stats.keys, prefix)
        else:
            logger.warning("export by %s: INCOMPLETE, %d keys under %r: %s", operator,
                           stats.keys, prefix, stats.reason())

    name = transfer.file_name(prefix)
    headers = {"Content-Disposition": f'attachment; filename="{name}"',
               "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if not stats.complete:
        headers["X-Export-Complete"] = "false"
    return Response(stream(), mimetype="application/x-ndjson", headers=headers)


# --------------------------------------------------------------------------- import


def _operator() -> str:
    return getattr(current_user, "name", "?")


def _record_key(upload_id: str) -> str:
    return f"import:{upload_id}"


def _claim_key(upload_id: str) -> str:
    return f"import-claim:{upload_id}"


def claim(cache: BaseCache, key: str, value: dict[str, Any], timeout: int) -> bool:
    """Add ``key`` only if absent, atomically where every worker and replica sees it.

    Redis (``SETNX``) and memory (one lock) add atomically; cachelib's file cache checks
    then writes, so there the entry is prepared aside and hard-linked into place, which
    fails when the name exists.
    """
    if not isinstance(cache, FileSystemCache):
        return bool(cache.add(key, value, timeout=timeout))
    target = cache._get_filename(key)  # noqa: SLF001 - the cache's own file for the key
    fd, prepared = tempfile.mkstemp(suffix=".claim", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("I", int(time.time()) + timeout))
            cache.serializer.dump(value, out)
        try:
            os.link(prepared, target)
        except FileExistsError:
            if cache.get(key) is not None:
                return False
            with contextlib.suppress(FileNotFoundError):  # an expired claim: take it over
                os.remove(target)
            try:
                os.link(prepared, target)
            except FileExistsError:
                return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(prepared)


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


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(error: RequestEntityTooLarge):
    """An upload over what one request may carry: this page's refusal, naming the setting."""
    if request.endpoint != "transfer.import_plan":
        from dashboard.web.errors import render_error

        return render_error(413, f"413 {error.name}", error.description or "")
    limit = _settings().dashboard.max_import_bytes
    size = request.content_length
    sent = f"The upload ({transfer.size_words(size)})" if size else "The upload"
    pasted = current_app.config.get("MAX_FORM_MEMORY_SIZE")
    return _form_page(
        f"Nothing was imported: {sent} is more than the dashboard takes. An import file may "
        f"be at most {transfer.size_words(limit)} (Dashboard__MaxImportBytes)"
        + (f", and pasted text at most {transfer.size_words(pasted)} (choose the file "
           "instead)" if pasted else "") + "; split the export by prefix.", 413)


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
        with contextlib.suppress(Exception):  # the storage is down: the 410 below is still true
            if cache.get(_claim_key(upload_id)) is not None:
                return _form_page(ALREADY_APPLIED, 409)
        return _form_page("This upload is no longer kept (it was confirmed already, or more "
                          f"than {UPLOAD_TTL_S // 60} minutes passed): nothing was written. "
                          "Upload the file again.", 410)
    if record.get("operator") != _operator():
        abort(403, description="This upload was planned by another operator.")
    try:  # one confirmation per plan: only the first claim goes ahead
        claimed = claim(cache, _claim_key(upload_id), {"operator": _operator(),
                                                       "started": time.time()}, UPLOAD_TTL_S)
    except Exception as error:  # redis.RedisError, OSError: the session storage is down
        return _form_page(f"The upload could not be claimed for writing ({error}); nothing "
                          "was written.", 503)
    if not claimed:
        return _form_page(ALREADY_APPLIED, 409)
    with contextlib.suppress(Exception):  # the claim already guards it; the record just expires
        cache.delete(_record_key(upload_id))
    settings = _settings()
    data = base64.b64decode(record["data"])
    parsed = transfer.parse(data, max_bytes=max(len(data), 1))
    plan = transfer.restore_plan(parsed, record["mode"], record["ttl"], record["tokens"])
    if plan.refused:
        return _form_page(plan.refused, 422)
    written, unconfirmed = audit_hooks(_operator())
    result = transfer.apply(provider(), settings, plan, audit=written, unconfirmed=unconfirmed)
    current_app.logger.info("import by %s: %s (conflicts %d, failed: %s, unknown: %s)",
                            _operator(), result.summary(), len(result.conflicts),
                            result.failed[0] if result.failed else "none",
                            result.unknown[0] if result.unknown else "none")
    discovery.forget()  # imported keys may be new services
    return render_template("transfer/result.html", plan=plan, result=result, shown=SHOWN)
