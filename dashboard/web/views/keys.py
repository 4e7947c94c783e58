"""Reading keys: the prefix browser and one entry's page.

Keys always travel in the query string: proxies rewrite ``//``, ``..`` and ``%2F`` in
paths, and mesh keys contain all of those.
"""

from __future__ import annotations

import json
import re

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import login_required

from dashboard import mesh
from dashboard.mesh import meshjson
from dashboard.stores import budget, glob
from dashboard.stores.errors import InvalidRequest, NotFound
from dashboard.web.current import provider, requested_key
from dashboard.web.formatting import pretty_content
from dashboard.web.htmx import is_htmx, render

bp = Blueprint("keys", __name__)
#: bytes of each value a browse page reads where the store allows (the preview shows ~120)
PREVIEW_BYTES = 4096
#: what werkzeug's URL building leaves unquoted in a query value
PAGE_SIZES = (50, 100, 250, 500)
#: keys a pattern search examines per request (Redis: in SCAN calls of ``scan_count``)
MATCH_BUDGET = 20_000


def parent_prefix(key: str) -> str:
    """The prefix a key sits in: everything up to and including its last ``:``."""
    cut = key.rfind(mesh.SEPARATOR)
    return key[: cut + 1] if cut >= 0 else ""


def breadcrumbs(prefix: str) -> list[tuple[str, str]]:
    """(label, prefix) for each ``:`` segment of ``prefix``."""
    crumbs = []
    start = 0
    while (cut := prefix.find(mesh.SEPARATOR, start)) >= 0:
        crumbs.append((prefix[start: cut + 1], prefix[: cut + 1]))
        start = cut + 1
    if start < len(prefix):
        crumbs.append((prefix[start:], prefix))
    return crumbs


def json_view(value: str | None) -> tuple[str | None, str | None]:
    """(pretty JSON, None), or (None, why a JSON-looking value is not shown as JSON).

    meshjson keeps numbers as written (a 5,000-digit integer pretty-prints) and refuses
    nesting deeper than ``MAX_DEPTH`` without recursing; text that is simply not JSON gets
    no note beyond "Not JSON".
    """
    if not value:
        return None, None
    try:
        shown = meshjson.pretty(value)
    except (ValueError, RecursionError, MemoryError):
        shown = None
    if shown is not None:
        return shown, None
    try:
        meshjson.loads(value)
    except meshjson.JsonTooDeep:
        return None, f"not shown as JSON: nested deeper than {meshjson.MAX_DEPTH} levels"
    except json.JSONDecodeError:
        return None, None
    except (ValueError, RecursionError, MemoryError) as error:
        if "digit" in str(error):
            return None, "not shown as JSON: number too long"
        return None, "not shown as JSON: it could not be laid out"
    return None, "not shown as JSON: it could not be laid out"


def page_replace(endpoint: str, **args: str | int | None) -> dict[str, str]:
    """Headers of an htmx "next page" answer: the address bar follows the page shown.

    Replaced, not pushed: reload and a shared link return to this page; Back leaves it.
    """
    return {"Vary": "HX-Request",
            "HX-Replace-Url": url_for(endpoint, **{k: v for k, v in args.items() if v})}


@bp.get("/browse")
@login_required
def browse():
    """Keys under a prefix: flat pages, folders, or the keys whose rest matches a pattern.

    Every state is in the URL (prefix, pattern, view, page position ``cursor``), so a
    reload or a shared link shows the same page; htmx filter answers also refresh the
    breadcrumbs, title and links (out-of-band), and "next" answers replace the URL.
    """
    prefix = request.args.get("prefix", "")
    match = request.args.get("match", "")
    cursor = request.args.get("cursor") or None
    view = "folders" if request.args.get("view") == "folders" and not match else "flat"
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        limit = 100
    limit = min(max(limit, 1), PAGE_SIZES[-1])
    store = provider()
    context = {"prefix": prefix, "match": match, "view": view, "limit": limit,
               "crumbs": breadcrumbs(prefix), "capabilities": store.capabilities(),
               "cursor": cursor, "oob": is_htmx()}
    if view == "folders":
        context["segments"] = store.list_segments(prefix, limit=500)
        return render("keys/browse.html", "keys/_results.html", **context)
    # a preview needs the start of each value only (where the store can read a part)
    if match:
        found = store.scan_matching(prefix, match, cursor=cursor, limit=limit,
                                    budget=MATCH_BUDGET, preview_bytes=PREVIEW_BYTES)
        context.update(search=found, page=found.rows(), literal=glob.is_literal(match))
        more = "keys/_match_rows.html"
    else:
        # values are read through the page's budget: past it, keys are shown unread
        page = store.scan(prefix, cursor=cursor, limit=limit, preview_bytes=PREVIEW_BYTES,
                          work=budget.browse_budget())
        context.update(page=page)
        more = "keys/_rows.html"
    if cursor and is_htmx():
        # "Next page" / "Continue" append rows to the table they came from.
        return render_template(more, **context), 200, page_replace(
            "keys.browse", prefix=prefix, match=match, cursor=cursor,
            limit=limit if limit != 100 else None)
    return render("keys/browse.html", "keys/_results.html", **context)


@bp.get("/browse/count")
@login_required
def folder_count():
    """A folder's key count, capped: loaded lazily, one folder at a time."""
    prefix = request.args.get("prefix", "")
    count, exact = provider().count_keys(prefix, cap=1000)
    return render_template("keys/_count.html", count=count, exact=exact)


@bp.get("/key")
@login_required
def detail():
    key = requested_key("Open a key from the browser or pass ?key=<full key>.")
    settings = current_app.config["KV_SETTINGS"]
    limit = settings.dashboard.max_render_bytes
    try:
        # where the store can, only what the page shows travels (one byte more tells
        # "bigger than the limit")
        entry = provider().get(key, max_bytes=limit + 1)
    except NotFound:
        return render_template("keys/missing.html", key=key, prefix=parent_prefix(key)), 404
    # one copy of the value in the page, never more than the limit: a 100 MB value is a
    # download, not a page
    truncated = entry.value is not None and entry.size > limit
    if truncated:
        pretty, json_note = None, None
        shown = entry.value.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
    else:
        pretty, json_note = json_view(entry.value)
        raw = request.args.get("view") == "raw" or pretty is None
        shown = (entry.value if raw else pretty) if entry.value is not None else None
    return render_template(
        "keys/detail.html", entry=entry, pretty=pretty, json_note=json_note, shown=shown,
        showing_pretty=not truncated and pretty is not None and shown == pretty,
        truncated=truncated, limit=limit,
        prefix=parent_prefix(key), crumbs=breadcrumbs(parent_prefix(key)),
        service=mesh.service_for_key(settings, key), capabilities=provider().capabilities(),
    )


@bp.get("/key/download")
@login_required
def download():
    """The whole value as a file, exactly as stored (what the page shows is bounded)."""
    key = requested_key()
    store = provider()
    try:
        data = store.read_bytes(key)  # the stored bytes, never text decoded and re-encoded
    except InvalidRequest:  # a hash, list, set, zset or stream: what the page shows, as text
        data = pretty_content(store.get(key).content).encode("utf-8", "surrogatepass")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:100] or "value"
    chunk = 64 * 1024

    def chunks():
        for start in range(0, len(data), chunk):
            yield data[start:start + chunk]

    return Response(chunks(), mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}.txt"',
        "Content-Length": str(len(data)), "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for it on every page: the SVG icon, no login."""
    return send_from_directory(current_app.static_folder, "favicon.svg",
                               mimetype="image/svg+xml", max_age=86400)
