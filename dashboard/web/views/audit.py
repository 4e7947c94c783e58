"""``/audit``: the audit trail, newest first, filtered and paged; ``/audit.jsonl`` the same
entries as JSON Lines (for a SIEM or a ticket).

Every operator sees it, limited to the entries of keys they may read (access rules), and
the values the journal keeps only for keys they may change (masked as the rules say).
Elevations (no key) are shown to everyone: who acted, why, and for how long.

Filters (query arguments, each optional): ``operator``, ``prefix`` (keys starting with it),
``action``, ``job``, ``key`` (exactly), ``since``/``until`` (UTC, ``2026-12-07T14:30``) or
``last`` (``15m``, ``1h``, ``24h``, ``7d``: a window ending now).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, request, stream_with_context
from flask_login import current_user, login_required

from dashboard.mesh.access.policy import mask_json
from dashboard.mesh.audit_journal import AuditQuery, JournalUnavailable
from dashboard.web import htmx
from dashboard.web.current import provider
from dashboard.web.errors import render_error

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50
#: ``last=`` windows
_LAST = re.compile(r"(\d{1,4})([mhd])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
#: storage entries one page may read past hidden ones (access rules) before it stops
SCAN_LIMIT = 5_000


def _time(name: str) -> int | None:
    text = (request.args.get(name) or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        abort(400, description=f"{name} must be a UTC time such as 2026-12-07T14:30")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def query_of_request() -> AuditQuery:
    """The filters the request names (see the module's docstring)."""
    def text(name: str) -> str | None:
        value = (request.args.get(name) or "").strip()
        return value or None

    since, until = _time("since"), _time("until")
    last = text("last")
    if last:
        found = _LAST.fullmatch(last)
        if not found:
            abort(400, description="last must be a number and m, h or d (15m, 1h, 7d)")
        now = int((current_app.config.get("KV_CLOCK") or time.time)() * 1000)
        since, until = now - int(found.group(1)) * _UNIT_MS[found.group(2)], None
    return AuditQuery(operator=text("operator"), prefix=text("prefix"), action=text("action"),
                      job=text("job"), key=text("key"), since_ms=since, until_ms=until)


def shown(entry: dict[str, Any]) -> dict[str, Any] | None:
    """``entry`` as the current operator may see it: None outside their access; values only
    for keys they may change, and masked as the rules say."""
    store = provider()
    key = entry.get("key")
    if key and not store.may_read(key):
        return None
    values = current_app.config["KV_SETTINGS"].dashboard.audit_values
    if not (values and key and store.may_write(key)):
        return {name: value for name, value in entry.items()
                if name not in ("old_value", "new_value")}
    fields = store.policy.masked_fields(store.identity, key)
    if fields:
        entry = dict(entry)
        for name in ("old_value", "new_value"):
            if isinstance(entry.get(name), str):
                entry[name] = mask_json(entry[name], fields)[0]
    return entry


def _visible_page(journal, query: AuditQuery, start: int, size: int):
    """Up to ``size`` entries the operator may see, from storage offset ``start``: the
    entries, the offset after the last one read, and the storage's total."""
    found: list[dict[str, Any]] = []
    offset, total = start, 0
    while len(found) < size and offset - start < SCAN_LIMIT:
        page = journal.query(query, offset, size)
        total = page.total
        for entry in page.entries:
            offset += 1
            visible = shown(entry)
            if visible is not None:
                found.append(visible)
                if len(found) == size:
                    break
        if not page.entries or offset >= total:
            break
    return found, offset, total


def _unavailable(journal, error: Exception):
    current_app.logger.warning("audit trail unavailable: %s", error)
    return render_error(
        503, "Audit trail unavailable",
        f"The audit trail's storage ({journal.where}) did not answer; writes are refused "
        "until it does (each write is logged on dashboard.audit meanwhile).",
        "Check Dashboard__AuditStorage and that the storage it names is reachable.")


@bp.get("/audit")
@login_required
def index():
    size = int(current_app.config.get("KV_AUDIT_PAGE_SIZE", PAGE_SIZE))
    try:
        start = max(0, int(request.args.get("start", "")))
    except ValueError:
        try:
            start = (max(1, int(request.args.get("page", "1"))) - 1) * size
        except ValueError:
            start = 0
    query = query_of_request()
    journal = current_app.extensions["kv_audit"]
    try:
        entries, next_start, total = _visible_page(journal, query, start, size)
    except JournalUnavailable as error:
        return _unavailable(journal, error)
    settings = current_app.config["KV_SETTINGS"].dashboard
    filters = {name: request.args[name] for name in (
        "operator", "prefix", "action", "job", "key", "since", "until", "last")
        if request.args.get(name)}
    return htmx.render(
        "audit/index.html", "audit/_entries.html", entries=entries, start=start,
        next_start=next_start if next_start < total else None, total=total, size=size,
        filters=filters, journal=journal, show_values=settings.audit_values,
        max_entries=settings.audit_max_entries, retention_days=settings.audit_retention_days)


@bp.get("/audit.jsonl")
@login_required
def download():
    """The filtered entries the operator may see, one JSON object a line, newest first."""
    query = query_of_request()
    journal = current_app.extensions["kv_audit"]
    try:
        entries = journal.iter_entries(query)
        first = next(entries, None)
    except JournalUnavailable as error:
        return _unavailable(journal, error)
    operator = getattr(current_user, "name", "?")

    def lines() -> Iterator[str]:
        count = 0
        for entry in itertools.chain([first] if first is not None else [], entries):
            visible = shown(entry)
            if visible is not None:
                count += 1
                yield json.dumps(visible, ensure_ascii=False) + "\n"
        current_app.logger.info("audit download by %s: %d entries", operator, count)

    return Response(stream_with_context(lines()), mimetype="application/x-ndjson", headers={
        "Content-Disposition": 'attachment; filename="audit.jsonl"', "Cache-Control": "no-store"})
