"""``/audit``: the audit trail of writes and repairs, newest first, paged.

Every operator sees it: viewers may read every key (there is no per-prefix access), so
they see every entry, but never its values; editors see the values the journal keeps
(``Dashboard:AuditValues``)."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from flask_login import current_user, login_required

from dashboard.web import audit_journal, htmx
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
    return htmx.render(
        "audit/index.html", "audit/_entries.html", page=page, page_number=page_number,
        size=size, has_next=page.offset + len(page.entries) < page.total,
        show_values=settings.audit_values and getattr(current_user, "role", None) == "editor",
        journal=journal,
        max_entries=settings.audit_max_entries)
