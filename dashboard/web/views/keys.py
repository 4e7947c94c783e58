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
    url_for,
)
from flask_login import login_required

from dashboard import mesh
from dashboard.mesh import meshjson
from dashboard.mesh.text import human_size
from dashboard.stores import budget, glob
from dashboard.stores.errors import InvalidRequest, NotFound, ProviderError
from dashboard.web import value_views
from dashboard.web.current import provider, requested_key
from dashboard.web.formatting import element_count, pretty_content
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


#: a reload re-reads at most this many keys before the page it shows (all it showed)...
RESTORE_KEYS = 500
#: ...in at most this many pages (a tiny page size would mean many round trips)
RESTORE_PAGES = 10


def _count_arg(name: str) -> int:
    """A non-negative count from the query string (0 when absent or not a number)."""
    try:
        return max(int(request.args.get(name, 0)), 0)
    except ValueError:
        return 0


def _rows_of(page) -> int:
    return len(page.entries) + len(getattr(page, "unread", ()))


def restore_pages(store, prefix: str, cursor: str, limit: int, upto: int) -> list | None:
    """The pages before ``cursor`` read again from the start, when they are what was shown.

    A reload of a page reached by "Next" shows every row the operator had on screen: the
    ``upto`` keys before the cursor, in pages of ``limit`` (each read through its own
    budget, as it was). None when that is too much to re-read, or when the listing changed
    so that reading from the start no longer arrives at ``cursor`` after ``upto`` keys
    (the page then shows its own rows and says where they start).
    """
    if not 0 < upto <= RESTORE_KEYS or -(-upto // limit) > RESTORE_PAGES:
        return None
    pages: list = []
    at: str | None = None
    read = 0
    while read < upto and len(pages) < RESTORE_PAGES:
        page = store.scan(prefix, cursor=at, limit=limit, preview_bytes=PREVIEW_BYTES,
                          work=budget.browse_budget())
        pages.append(page)
        read += _rows_of(page)
        at = page.next_cursor
        if at is None:
            break
    return pages if read == upto and at == cursor else None


#: what the browse rows can be sorted by on screen (static/browse.js), and in which order
SORTS = ("key", "size", "ttl")
ORDERS = ("asc", "desc")


def _sorting() -> dict[str, str]:
    """``sort`` and ``order`` from the query string when valid, else nothing.

    The browser sorts the rows on screen (static/browse.js); the server only carries the
    choice from page to page (next pages, a reload, the way back to the first page).
    """
    sort = request.args.get("sort")
    if sort not in SORTS:
        return {}
    order = request.args.get("order")
    return {"sort": sort, "order": order if order in ORDERS else "asc"}


def _browse_url(prefix: str, match: str, limit: int, **more: str | int | None) -> str:
    args = {"prefix": prefix or None, "match": match or None,
            "limit": limit if limit != 100 else None, **more}
    return url_for("keys.browse", **{k: v for k, v in args.items() if v})


@bp.get("/browse")
@login_required
def browse():
    """Keys under a prefix: flat pages, folders, or the keys whose rest matches a pattern.

    Every state is in the URL (prefix, pattern, view, page position ``cursor``), so a
    reload or a shared link shows the same page; htmx filter answers also refresh the
    breadcrumbs, title and links (out-of-band), and "next" answers replace the URL.

    Next to ``cursor`` the URL carries ``from``, how many keys come before its page, and
    ``shown``, how many of them were on screen above it (pages appended in place). A reload
    re-reads the pages above it when they were all on screen and are few
    (``restore_pages``); otherwise it shows its own page, says which keys those are
    ("keys 301–400") and links back to the first page.
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
    # keys before this page (its position) and how many of them are on screen above it
    start = _count_arg("from") if cursor else 0
    shown = min(_count_arg("shown"), start)
    store = provider()
    sorting = _sorting()
    context = {"prefix": prefix, "match": match, "view": view, "limit": limit,
               "crumbs": breadcrumbs(prefix), "capabilities": store.capabilities(),
               "cursor": cursor, "oob": is_htmx(), "start": start, "earlier": [],
               "sorting": sorting}
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
        if cursor and not is_htmx() and start and shown == start:
            # a reload of pages appended from the first one: show them all again
            earlier = restore_pages(store, prefix, cursor, limit, start)
            if earlier is not None:
                context["earlier"] = earlier
            else:
                shown = 0
        elif not is_htmx():
            shown = 0  # a page loaded whole shows only its own rows
        # the rows on screen once this answer is in: keys first..last of the listing
        # (unknown for a cursor without its position: a link from before positions)
        known = not cursor or start > 0
        first, last = start - shown + 1, start + _rows_of(page)
        position = {"from": last, "shown": last - first + 1} if known else {}
        context.update(
            first=first if known else None, last=last if known else None,
            restored=bool(context["earlier"]),
            next_url=_browse_url(prefix, match, limit, cursor=page.next_cursor,
                                 **{"from": position.get("from")}, **sorting),
            next_hx=_browse_url(prefix, match, limit, cursor=page.next_cursor, **position,
                                **sorting))
    if cursor and is_htmx():
        # "Next page" / "Continue" append rows to the table they came from.
        position = {"from": start or None, "shown": shown or None} if not match else {}
        return render_template(more, **context), 200, page_replace(
            "keys.browse", prefix=prefix, match=match, cursor=cursor,
            limit=limit if limit != 100 else None, **position, **sorting)
    return render("keys/browse.html", "keys/_results.html", **context)


@bp.get("/browse/count")
@login_required
def folder_count():
    """A folder's key count, capped: loaded lazily, one folder at a time.

    With ``last`` it is the browse page's total instead ("Keys 1–100 of 260 shown", where
    ``last`` is the last row on screen): never less than the rows shown, and a failed count
    is left out of the line (the title says why) rather than breaking the page.
    """
    prefix = request.args.get("prefix", "")
    total = "last" in request.args
    try:
        count, exact = provider().count_keys(prefix, cap=1000)
    except ProviderError as error:
        if not total:
            raise
        current_app.logger.warning("count of %r failed (%s): %s", prefix, error.kind, error)
        return render_template("keys/_total.html", failed=str(error))
    if not total:
        return render_template("keys/_count.html", count=count, exact=exact)
    if not exact:  # a bounded count that stopped early: at least what is on screen
        count = max(count, _count_arg("last"))
    return render_template("keys/_total.html", count=count, exact=exact)


def too_big_to_edit(size: int, limit: int) -> str:
    """Why a value is not offered for editing: the one sentence the key page and the edit
    address both give."""
    return (f"This value is {human_size(size)}, more than the {human_size(limit)} the "
            "browser edits (Dashboard__MaxRenderBytes), so it is not offered for editing: "
            "download it, and write it with the store's own tools.")


def memory_usage(store, key: str) -> int | None:
    """The bytes the store says ``key`` takes (Redis ``MEMORY USAGE``), where it tells.

    Not a contract method: only a store that has it answers, and None where it is refused
    (an ACL without ``MEMORY``) or unknown.
    """
    usage = getattr(store, "memory_usage", None)
    if not callable(usage):
        return None
    try:
        found = usage(key)
    except Exception:  # noqa: BLE001 - an extra on the page, never the reason it fails
        current_app.logger.debug("no memory usage for %r", key, exc_info=True)
        return None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


#: the views of a string value, in the order of their tabs
VALUE_VIEWS = ("tree", "json", "raw", "hex")


def value_shown(entry, limit: int, asked: str | None) -> dict:
    """What the key page shows of a string value: the ``view`` (``asked`` when offered) and
    what it needs (``tree``, ``lines`` or ``hex``), the ``views`` offered and why others are
    not (``json_note``, ``tree_note``).

    A JSON array or object opens as a tree (``json`` is the indented text), other JSON as
    text; a value that looks binary opens as hex; anything else raw. A value over ``limit``
    is only its first ``limit`` bytes, raw: no view of a part of a document is offered.
    """
    if entry.size > limit:
        cut = entry.value.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
        return {"view": "raw", "views": (), "truncated": True,
                "lines": value_views.numbered_lines(cut)}
    parsed, is_json, json_note = None, False, None
    if entry.data is None:  # JSON is text: bytes that are not UTF-8 are not JSON
        try:
            parsed, is_json = meshjson.loads(entry.value), True
        except (ValueError, RecursionError, MemoryError):
            json_note = json_view(entry.value)[1]  # why JSON-looking text is shown raw
    binary = value_views.looks_binary(entry)
    container = is_json and isinstance(parsed, list)  # an array or an object
    views = [v for v, offered in zip(VALUE_VIEWS, (container, is_json, True, True), strict=True)
             if offered]
    default = "tree" if container else "json" if is_json else "hex" if binary else "raw"
    shown = {"view": asked if asked in views else default, "views": views, "truncated": False,
             "json_note": json_note, "binary": binary, "tree_note": None}
    if shown["view"] == "tree":
        shown["tree"] = value_views.json_tree(parsed)
        if shown["tree"] is None:
            shown["view"] = "json"
            shown["tree_note"] = (f"More than the {value_views.MAX_TREE_NODES:,} values a "
                                  "tree shows: shown as JSON text")
    if shown["view"] == "hex":
        shown["hex"] = value_views.hex_dump(entry.exact_bytes,
                                            min(limit, value_views.HEX_MAX_BYTES))
    elif shown["view"] in ("json", "raw"):
        text = meshjson.pretty(entry.value) if shown["view"] == "json" else entry.value
        shown["lines"] = value_views.numbered_lines(text or "")
    return shown


@bp.get("/key")
@login_required
def detail():
    key = requested_key("Open a key from the browser or pass ?key=<full key>.")
    settings = current_app.config["KV_SETTINGS"]
    limit = settings.dashboard.max_render_bytes
    store = provider()
    try:
        # where the store can, only what the page shows travels (one byte more tells
        # "bigger than the limit")
        entry = store.get(key, max_bytes=limit + 1)
    except NotFound:
        return render_template("keys/missing.html", key=key, prefix=parent_prefix(key)), 404
    # one copy of the value in the page, never more than the limit: a 100 MB value is a
    # download, not a page
    shown = (value_shown(entry, limit, request.args.get("view")) if entry.value is not None
             else {"view": "table", "truncated": False,
                   "table": value_views.collection_table(entry)})
    # a Redis collection's size is its element count (and, where Redis tells, its memory)
    count = element_count(entry)
    return render_template(
        "keys/detail.html", entry=entry, limit=limit, **shown,
        # the edit form takes at most ``limit`` bytes: a bigger value is a download only
        edit_refused=too_big_to_edit(entry.size, limit) if shown["truncated"] else None,
        count=count, memory=memory_usage(store, key) if count is not None else None,
        prefix=parent_prefix(key), crumbs=breadcrumbs(parent_prefix(key)),
        service=mesh.service_for_key(settings, key), capabilities=store.capabilities(),
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
    from dashboard.web.static_files import send_static

    return send_static(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml",
                       max_age=86400)
