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
from dashboard.stores.errors import Conflict, HistoryGone, ProviderError, Unsupported
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
        rows.append({"entry": entry, "diff": diff, "ts": int(entry.get("ts") or 0)})
    outside, store_note = _store_revisions(key, entries)
    rows = sorted(rows + outside, key=lambda row: row["ts"], reverse=True)
    return render_template("history/timeline.html", key=key, rows=rows, total=page.total,
                           limit=TIMELINE_MAX, may_write_key=provider().may_write(key),
                           store_note=store_note)


def _store_revisions(key: str, entries: list[dict]) -> tuple[list[dict], str]:
    """The store's own retained changes of ``key`` that are not the dashboard's entries
    (ToskaStore main replays them from ``/kv/watch``), each with a diff against the store's
    change before it; and a sentence on what the store could tell."""
    try:
        events = provider().key_history(key, limit=TIMELINE_MAX)
    except Unsupported:
        return [], "This store keeps no history of its own: only the dashboard's writes are shown."
    except HistoryGone:
        return [], "The store no longer holds this key's change history."
    except ProviderError as error:
        return [], f"The store's change history could not be read: {error.message}"
    ours = {entry.get("new_version") for entry in entries if entry.get("new_version") is not None}
    ours_deleted = [int(e.get("ts") or 0) for e in entries
                    if not (e.get("after") or {}).get("exists", True)]
    rows = []
    for position, event in enumerate(events):
        older = events[position + 1] if position + 1 < len(events) else None
        if event.op == "put" and event.version in ours:
            continue
        if event.op != "put" and any(abs(event.timestamp_ms - ts) < 5_000 for ts in ours_deleted):
            continue
        diff = None
        if event.op == "put" and event.value is not None:
            diff = value_diff(older.value if older is not None and older.op == "put" else None,
                              event.value)
        rows.append({"event": event, "diff": diff, "ts": event.timestamp_ms})
    return rows, ("The store's own history of this key is merged in, as far back as it keeps "
                  "it: changes marked \u201coutside the dashboard\u201d were written by "
                  "services or other tools.")


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


def _revert_job(job: str):
    """Undo a whole import or repair (``job``) key by key; the per-key report."""
    if len(job) > 64:
        abort(400, description="Which job? Post job=<job id> (from /audit).")
    try:
        entries = list(_journal().iter_entries(AuditQuery(job=job)))
    except JournalUnavailable as error:
        _unavailable(error)
    if not entries:
        abort(404, description="No such job on the audit trail (it may be past the retention).")
    visible = [entry for entry in entries if shown(entry) is not None]
    report = revert.revert_job(provider(), current_app.config["KV_SETTINGS"], job, visible,
                               operator=current_user.name)
    hidden = len(entries) - len(visible)
    return render_template("history/job_report.html", report=report, hidden=hidden), 200


@bp.post("/audit/revert")
@editor_required
def revert_entry():
    """Undo one entry (``id``): at once when the key is as the entry left it; else the
    three-way page, and with ``force`` (after that page's confirmation) restore anyway.
    With ``job`` instead: undo that whole import or repair, key by key."""
    if request.form.get("job"):
        return _revert_job(request.form["job"])
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
