"""The live view: a feed of changes under a prefix, and the stream behind every live page.

``GET /live?prefix=`` is the feed page; ``GET /live/stream`` the Server-Sent Events it (and
the key page, the edit form and a followed browse page) listens to, rendered by
``dashboard.web.live``. Stores without a change feed show why, never a spinner.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, url_for
from flask_login import login_required

from dashboard.web import live
from dashboard.web.current import provider, requested_key

bp = Blueprint("live", __name__)
MODES = ("feed", "key", "edit", "follow")
#: events a feed page keeps (older ones are dropped in the browser)
FEED_EVENTS = 200


def _revision(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


@bp.get("/live")
@login_required
def feed():
    """The live feed of ``prefix``: newest first, pause/resume, filter by operation."""
    prefix = request.args.get("prefix", "")
    reason = live.unavailable_reason(provider())
    full = None if reason else (live.full_message() if live.slots().full() else None)
    body = render_template("live/feed.html", prefix=prefix, reason=reason, full=full,
                           max_events=FEED_EVENTS,
                           stream_url=url_for("live.stream", prefix=prefix, mode="feed"))
    return body, 503 if full else 200


@bp.get("/live/stream")
@login_required
def stream():
    """The SSE stream of one live page: ``mode`` feed, key, edit or follow."""
    mode = request.args.get("mode", "feed")
    if mode not in MODES:
        abort(400, description=f"mode must be one of {', '.join(MODES)}")
    key = requested_key() if mode in ("key", "edit") else None
    prefix = key if key is not None else request.args.get("prefix", "")
    # a reconnecting EventSource names the last event it got: resume after it
    since = _revision(request.args.get("since")) if "since" in request.args else \
        _revision(request.headers.get("Last-Event-ID"))
    store = provider()
    reason = live.unavailable_reason(store)
    if reason is not None:
        # an answer the EventSource accepts, then "end": it must not keep reconnecting
        message = live.Sse("unavailable", render_template("live/_unavailable.html",
                                                          reason=reason)).encode()
        return Response(message + live.END, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store"})
    # a slot is taken (and given back when the response closes) inside: HEAD takes none
    seen = request.args.get("seen", "") if mode in ("key", "edit") else ""
    return live.stream(store, prefix, mode=mode, key=key, since=since,
                       once=request.args.get("once") in ("1", "true"), seen=seen,
                       seen_max_bytes=current_app.config["KV_SETTINGS"].dashboard.max_render_bytes + 1)


def register(app: Flask) -> None:
    """The blueprint, and what pages ask to show their live parts."""
    app.register_blueprint(bp)

    @app.template_global()
    def live_unavailable_reason() -> str | None:
        return live.unavailable_reason(provider())

    app.add_template_global(live.seen_token, "live_seen_token")
