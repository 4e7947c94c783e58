"""The ``__keys`` index: drift check per service and safe repair.

The semantics live in ``mesh`` (shared with ``toska-kv check-index``); this module only
renders them. Checks run per service, lazily, so one slow service never blocks the page.
"""

from __future__ import annotations

import base64

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from dashboard import mesh
from dashboard.web import forms, jobs
from dashboard.web.access import editor_required
from dashboard.web.current import provider
from dashboard.web.discovery import discovered
from dashboard.web.htmx import is_htmx

bp = Blueprint("index", __name__)
LIST_PAGE = 200
DRIFT_LISTS = ("stale", "unindexed", "duplicates")


def _service(prefix: str | None) -> mesh.Service:
    if not prefix:
        abort(400, description="Which service? Pass ?service=<prefix>, e.g. profiles:")
    return mesh.service_for_prefix(current_app.config["KV_SETTINGS"], prefix)


def _check(service: mesh.Service, *, reuse: bool) -> mesh.DriftReport:
    checked_at = request.args.get("checked_at", type=int)
    report = jobs.recent_reports().get(service.prefix, checked_at) if reuse else None
    if report is None:
        report = mesh.check_index(provider(), service)
        jobs.recent_reports().put(report)
    return report


@bp.get("/index")
@login_required
def overview():
    services = mesh.services_with_index(provider(), current_app.config["KV_SETTINGS"],
                                        discovered().services)
    # each row checks again as the page loads; meanwhile it shows this process's last
    # check of the service (a check page or a background job), saying when that was
    recent = jobs.recent_reports()
    last = {service.prefix: report for service in services
            if (report := recent.get(service.prefix, None)) is not None}
    return render_template("index/overview.html", services=services, last=last,
                           capabilities=provider().capabilities())


@bp.get("/index/check")
@login_required
def check():
    service = _service(request.args.get("service"))
    if is_htmx() and request.args.get("view") == "row":
        report = _check(service, reuse=False)
        return render_template("index/_row.html", report=report, service=service)
    report = _check(service, reuse="checked_at" in request.args)
    offsets = {name: max(request.args.get(f"{name}_from", 0, type=int), 0) for name in DRIFT_LISTS}
    return render_template(
        "index/check.html", report=report, service=service, offsets=offsets, page=LIST_PAGE,
        atomic=mesh.repair_is_atomic(provider()), actions=mesh.ACTIONS,
    ), 200, {"Vary": "HX-Request"}


@bp.route("/index/repair", methods=["GET", "POST"])
@editor_required
def repair():
    service = _service(forms.field("service"))
    action = request.values.get("action", "")
    if action not in mesh.ACTIONS:
        abort(400, description=f"Unknown repair {action!r}; choose one of {', '.join(mesh.ACTIONS)}.")
    atomic = mesh.repair_is_atomic(provider())
    plan = mesh.plan_repair(provider(), service, action)
    confirmed = request.method == "POST" and request.form.get("confirm") == "yes"
    changed = confirmed and request.form.get("digest") != plan.digest
    legacy_unacknowledged = confirmed and not atomic and request.form.get("legacy_ack") != "on"
    if not confirmed or changed or legacy_unacknowledged or not plan.changes:
        return render_template(
            "index/repair_confirm.html", plan=plan, service=service, atomic=atomic,
            changed=changed, legacy_unacknowledged=legacy_unacknowledged, page=LIST_PAGE,
        ), 409 if changed else 200
    result = mesh.apply_repair(provider(), plan, actor=current_user.name)
    flash(f"Repaired {service.index_full_key}: {len(result.added)} added, "
          f"{len(result.removed)} removed.", "success")
    backup = None
    if result.previous_value is not None:
        backup = "data:application/json;base64," + base64.b64encode(
            result.previous_value.encode("utf-8")).decode("ascii")
    return render_template("index/repair_done.html", result=result, service=service,
                           backup_href=backup, check_url=url_for("index.check",
                                                                 service=service.prefix))


# --------------------------------------------------------------------------- background checks


def _job_id() -> str:
    job_id = request.values.get("id", "")
    if not jobs.valid_id(job_id):
        abort(400, description="Which job? Pass ?id=<job id> as the job page's address gives it.")
    return job_id


def _refuse_unreadable(record: dict) -> None:
    """A job's page and cancel are for those who may read its service (the job lists keys)."""
    service = str(record.get("service") or "")
    if not provider().reads_under(service):
        provider().check_read(service)


def _job_storage_down(error: jobs.StorageUnavailable):
    abort(503, description=f"The job storage (the session storage) did not answer: {error}")


@bp.post("/index/check/start")
@login_required
def start_job():
    """Start a check in a thread of this worker; it only reads, so viewers may start one too."""
    service = _service(forms.field("service"))
    try:
        job_id = jobs.start(current_app._get_current_object(),  # type: ignore[attr-defined]
                            provider(), service, actor=current_user.name)
    except jobs.StorageUnavailable as error:
        _job_storage_down(error)
    return redirect(url_for("index.job", id=job_id), code=303)


@bp.get("/index/job")
@login_required
def job():
    job_id = _job_id()
    try:
        record = jobs.get(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    except jobs.StorageUnavailable as error:
        _job_storage_down(error)
    if record is None:
        gone = ("No such job: it never existed here, or it ended more than a day ago (or runs "
                "on a replica that shares no session storage).")
        if is_htmx():
            # a poll: replace the polling element, so the page says so and stops asking
            return render_template("index/_job_gone.html", message=gone), 200, {
                "Vary": "HX-Request", "Cache-Control": "no-store"}
        abort(404, description=gone)
    _refuse_unreadable(record)
    template = "index/_job.html" if is_htmx() else "index/job.html"
    return render_template(template, job=record, lost_after=jobs.LOST_AFTER_S), 200, {
        "Vary": "HX-Request", "Cache-Control": "no-store"}


@bp.post("/index/job/cancel")
@login_required
def cancel_job():
    job_id = _job_id()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        record = jobs.get(app, job_id)
        if record is None:
            abort(404, description="No such job.")
        _refuse_unreadable(record)
        if not record["finished_state"]:
            jobs.cancel(app, job_id)
    except jobs.StorageUnavailable as error:
        _job_storage_down(error)
    return redirect(url_for("index.job", id=job_id), code=303)
