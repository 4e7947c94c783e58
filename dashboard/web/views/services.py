"""The services list: one row per service prefix, counts and index presence loaded lazily."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import login_required

from dashboard import mesh
from dashboard.web.current import provider
from dashboard.web.discovery import discovered
from dashboard.web.htmx import render

bp = Blueprint("services", __name__)
COUNT_CAP = 1000


@bp.get("/")
def root():
    return redirect(url_for("services.index"))


@bp.get("/services")
@login_required
def index():
    found = discovered(refresh=request.args.get("refresh") == "1")
    return render_template("services/index.html", services=found.services, complete=found.complete,
                           discovered_ago=int(found.age_seconds),
                           capabilities=provider().capabilities())


@bp.get("/services/summary")
@login_required
def summary():
    """One row's lazy cells: key count (capped) and whether a ``__keys`` index exists."""
    settings = current_app.config["KV_SETTINGS"]
    prefix = request.args.get("prefix", "")
    service = mesh.service_for_key(settings, prefix) or mesh.Service(prefix, prefix)
    count, exact = provider().count_keys(prefix, cap=COUNT_CAP)
    # the Redis runtime keeps no index: a __keys key there is plain data, counted as a key
    indexed = service.keeps_index is not False and mesh.has_index(provider(), service)
    if indexed and provider().capabilities().key_listing:
        count -= 1 if count and exact else 0  # the index key itself is not a service key
    return render("services/_summary.html", "services/_summary.html", service=service,
                  count=count, exact=exact, indexed=indexed)
