"""``/audit``: the audit trail of writes and repairs, newest first, paged.

Every operator sees it, limited to the entries of keys they may read (access rules), and
the values the journal keeps (``Dashboard:AuditValues``) only for keys they may change.
Elevations (no key) are shown to everyone: who acted, why, and for how long."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from flask_login import login_required

from dashboard.web import audit_journal, htmx
from dashboard.web.current import provider
from dashboard.web.errors import render_error

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50


@bp.get("/audit")
@login_required
def index():
    try:
        page_number = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page_number = 1
    size = int(current_app.config.get("KV_AUDIT_PAGE_SIZE", PAGE_SIZE))
    journal = current_app.extensions["kv_audit"]
    try:
        page = journal.page((page_number - 1) * size, size)
    except audit_journal.JournalUnavailable as error:
        current_app.logger.warning("audit trail unavailable: %s", error)
        return render_error(
            503, "Audit trail unavailable",
            f"The audit trail's storage ({journal.where}) did not answer; writes are still "
            "logged on dashboard.audit.",
            "Check Dashboard__SessionStorage and that the Redis it names is reachable.")
    settings = current_app.config["KV_SETTINGS"].dashboard
    has_next = page.offset + len(page.entries) < page.total
    store = provider()
    shown = []
    for entry in page.entries:
        key = entry.get("key")
        if key and not store.may_read(key):
            continue
        if not (settings.audit_values and key and store.may_write(key)):
            entry = {name: value for name, value in entry.items()
                     if name not in ("old_value", "new_value")}
        shown.append(entry)
    page = audit_journal.Page(shown, page.offset, page.total)
    return htmx.render(
        "audit/index.html", "audit/_entries.html", page=page, page_number=page_number,
        size=size, has_next=has_next,
        show_values=settings.audit_values,
        journal=journal,
        max_entries=settings.audit_max_entries)
