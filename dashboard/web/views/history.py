"""A key's timeline (``/key/history``) and undo (``POST /audit/revert``).

The timeline lists the key's audit entries newest first, each with a diff against the value
before it and a revert control (a form posting ``id`` to ``/audit/revert``). Undo is a
conditional write (``mesh.revert``): when the key is still as the entry left it, one post
puts it back; when it changed since, nothing is written and the page shows the entry's
before and after beside what the key holds now, with "restore anyway" behind a
confirmation.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from dashboard.mesh import revert
from dashboard.mesh.audit_journal import AuditQuery, JournalUnavailable
from dashboard.stores.errors import Conflict
from dashboard.web.access import editor_required
from dashboard.web.current import provider, requested_key
from dashboard.web.views.audit import shown
from dashboard.web.views.edits import value_diff

bp = Blueprint("history", __name__)
#: entries a timeline shows
TIMELINE_MAX = 200


def _journal():
    return current_app.extensions["kv_audit"]


def _unavailable(error: JournalUnavailable):
    abort(503, description=f"The audit trail ({_journal().where}) did not answer: {error}")


@bp.get("/key/history")
@login_required
def timeline():
    """The key's changes newest first, each with its diff and (for editors) its undo."""
    key = requested_key("Pass ?key=<full key> to see its history.")
    try:
        page = _journal().query(AuditQuery(key=key), 0, TIMELINE_MAX)
    except JournalUnavailable as error:
        _unavailable(error)
    entries = [entry for entry in (shown(e) for e in page.entries) if entry is not None]
    rows = []
    for entry in entries:
        old, new = entry.get("old_value"), entry.get("new_value")
        diff = value_diff(old, new) if new is not None else None
        rows.append({"entry": entry, "diff": diff})
    return render_template("history/timeline.html", key=key, rows=rows, total=page.total,
                           limit=TIMELINE_MAX, may_write_key=provider().may_write(key))


def _entry_or_404(entry_id: str) -> dict:
    if not entry_id or len(entry_id) > 64:
        abort(400, description="Which entry? Post id=<audit entry id> (from /audit or a timeline).")
    try:
        entry = _journal().get(entry_id)
    except JournalUnavailable as error:
        _unavailable(error)
    if entry is None:
        abort(404, description="No such audit entry (it may be past the trail's retention).")
    if shown(entry) is None:
        provider().check_read(entry["key"])  # 403: an entry of a key outside the access
    return entry


@bp.post("/audit/revert")
@editor_required
def revert_entry():
    """Undo one entry (``id``): at once when the key is as the entry left it; else the
    three-way page, and with ``force`` (after that page's confirmation) restore anyway."""
    entry = _entry_or_404(request.form.get("id", ""))
    store = provider()
    try:
        plan = revert.plan_revert(store, entry)
    except revert.CannotRevert as error:
        return render_template("history/revert.html", entry=shown(entry), plan=None,
                               refusal=error.message), 409
    force = request.form.get("force") == "yes"
    if not plan.safe and not force:
        return render_template("history/revert.html", entry=shown(entry), plan=plan,
                               refusal=None, seen=plan.current.token if plan.current else ""), 409
    try:
        revert.apply_revert(store, current_app.config["KV_SETTINGS"], plan,
                            operator=current_user.name, force=force,
                            seen=request.form.get("seen") or None)
    except Conflict:
        flash("Not undone: the key changed again while you were deciding. Look again.", "error")
        return redirect(url_for("history.timeline", key=plan.key), 303)
    except revert.CannotRevert as error:
        return render_template("history/revert.html", entry=shown(entry), plan=None,
                               refusal=error.message), 409
    flash(f"Undone: {plan.describe().removeprefix('Undo: ')}", "success")
    return redirect(url_for("history.timeline", key=plan.key), 303)
