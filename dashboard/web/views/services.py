"""The services list: one row per service prefix, counts and index presence loaded lazily.

The list comes from the discovery cache (``web/discovery``), so the page says how old it
is. Each row's count is read on its own: a count that finds a discovered service empty says
so (and the next page walks again), and a count that fails says why, with a retry.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import login_required

from dashboard import mesh
from dashboard.stores.errors import ProviderError
from dashboard.web import discovery
from dashboard.web.current import provider
from dashboard.web.discovery import discovered
from dashboard.web.htmx import is_htmx

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
                           discovered_ago=int(found.age_seconds), discovery_error=found.error,
                           capabilities=provider().capabilities())


@bp.get("/services/summary")
@login_required
def summary():
    """One row's lazy cells: key count (capped) and whether a ``__keys`` index exists.

    Always an answer htmx swaps in (a failed count included): the row never stays
    "counting…". A discovered service found empty is marked, and the cached list is
    forgotten so that the next services page no longer lists it.
    """
    settings = current_app.config["KV_SETTINGS"]
    prefix = request.args.get("prefix", "")
    service = mesh.service_for_key(settings, prefix) or mesh.Service(prefix, prefix)
    headers = {"Vary": "HX-Request"}
    try:
        count, exact = provider().count_keys(prefix, cap=COUNT_CAP)
        # the Redis runtime keeps no index: a __keys key there is plain data, counted as a key
        indexed = service.keeps_index is not False and mesh.has_index(provider(), service)
    except ProviderError as error:
        current_app.logger.warning("count of %r failed (%s): %s", prefix, error.kind, error)
        body = render_template("services/_summary_failed.html", prefix=prefix, reason=str(error))
        # htmx swaps only 2xx answers: the failure is this row's answer
        return body, 200 if is_htmx() else error.http_status, headers
    if indexed and provider().capabilities().key_listing:
        count -= 1 if count and exact else 0  # the index key itself is not a service key
    gone = exact and count == 0 and not indexed and not service.configured
    listed_ago = discovery.listed_age() if gone else None
    if gone:
        discovery.forget()  # listed from an older walk: the next page walks again
    return render_template("services/_summary.html", service=service, count=count, exact=exact,
                           indexed=indexed, gone=gone,
                           listed_ago=int(listed_ago) if listed_ago is not None else None
                           ), 200, headers
