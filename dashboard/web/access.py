"""Access per prefix on the web: who the request is, their elevation, and the store as they
may see it (``current.provider()`` hands every view a ``GuardedProvider`` built here).

Elevation (``Dashboard:Elevation:Required``): an editor writes only after ``POST /elevate``
with a reason and a duration. It is held server-side in the session (the session storage
every replica shares), shown on every page with the time left, ends by itself or with
"end now", and its start and end are on the audit trail; writes made under it carry its
reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, login_required

from dashboard.mesh.access.guarded import GuardedProvider
from dashboard.mesh.access.policy import AccessPolicy, Identity
from dashboard.stores.base import KeyValueProvider

bp = Blueprint("access", __name__)

#: the session key holding an elevation: {"reason", "until" (epoch s), "started" (epoch s)}
_ELEVATION = "_kv_elevation"
MIN_REASON = 10


@dataclass(frozen=True)
class Elevation:
    """An active elevation: why, and until when (epoch seconds)."""

    reason: str
    until: float
    started: float

    @property
    def seconds_left(self) -> int:
        return max(0, int(self.until - _now()))


def _now(app: Flask | None = None) -> float:
    """The time, from ``KV_CLOCK`` when a test sets one (as the sessions do)."""
    clock = (app or current_app).config.get("KV_CLOCK") or time.time
    return clock()


def held_elevation(data, app: Flask | None = None) -> dict | None:
    """The elevation a session's data holds while it lasts (a dict, as stored), else None."""
    held = data.get(_ELEVATION) if data is not None else None
    if not isinstance(held, dict) or float(held.get("until", 0)) <= _now(app):
        return None
    return held


def policy() -> AccessPolicy:
    """The configured access rules (built once per app)."""
    return current_app.extensions["kv_access_policy"]


def elevation() -> Elevation | None:
    """The current session's elevation while it lasts; an ended one is recorded and dropped."""
    held = session.get(_ELEVATION)
    if not isinstance(held, dict):
        return None
    found = Elevation(str(held.get("reason", "")), float(held.get("until", 0)),
                      float(held.get("started", 0)))
    if found.until <= _now():
        session.pop(_ELEVATION, None)
        from dashboard.mesh.text import utc_time

        _audit_elevation("elevation-ended", found.reason,
                         f"expired at {utc_time(int(found.until * 1000))}")
        return None
    return found


def identity() -> Identity:
    """Who this request is, as the access rules see them (anonymous: no role at all)."""
    if not getattr(current_user, "is_authenticated", False):
        return Identity(name="", role="none")
    held = elevation() if policy().elevation_required else None
    return Identity(name=current_user.name, role=current_user.role,
                    groups=frozenset(getattr(current_user, "groups", ())),
                    elevation_reason=held.reason if held else None)


def guarded(store: KeyValueProvider) -> GuardedProvider:
    """``store`` as the current operator may see and change it."""
    return GuardedProvider(store, policy(), identity())


def current_reason() -> str | None:
    """The elevation reason writes of this request carry (None: not elevated)."""
    held = elevation()
    return held.reason if held else None


def _audit_elevation(action: str, reason: str, detail: str) -> None:
    from dashboard.mesh import audit

    audit.elevation(action, getattr(current_user, "name", "?"), reason, detail)


@bp.post("/elevate")
@login_required
def elevate():
    """Start (or extend) an elevation: ``reason`` (at least 10 characters), ``minutes``."""
    rules = policy()
    if current_app.config["KV_SETTINGS"].dashboard.read_only or \
            not rules.writable_anywhere(identity()):
        abort(403, description=_write_refusal())  # only editors elevate
    reason = " ".join((request.form.get("reason") or "").split())
    limit = current_app.config["KV_SETTINGS"].dashboard.elevation_max_minutes
    try:
        minutes = int(request.form.get("minutes") or limit)
    except ValueError:
        minutes = 0
    if len(reason) < MIN_REASON:
        abort(400, description=f"Say why you elevate in at least {MIN_REASON} characters "
                               "(e.g. an incident link).")
    if not 1 <= minutes <= limit:
        abort(400, description=f"minutes must be between 1 and {limit} "
                               "(Dashboard__Elevation__MaxMinutes).")
    now = _now()
    session[_ELEVATION] = {"reason": reason[:500], "until": now + minutes * 60, "started": now}
    _audit_elevation("elevation-started", reason[:500], f"{minutes} min")
    flash(f"Elevated for {minutes} min: writes are allowed and carry your reason.", "info")
    return redirect(_back())


@bp.post("/elevate/end")
@login_required
def end_elevation():
    """End the elevation now."""
    held = elevation()
    if held is not None:
        session.pop(_ELEVATION, None)
        _audit_elevation("elevation-ended", held.reason, "ended by the operator")
        flash("Elevation ended: writes need a new elevation.", "info")
    return redirect(_back())


def _back() -> str:
    """The page the operator elevated from (its Referer, when it is this dashboard's): the
    form carries no address, so a page never repeats a key name it was refused."""
    from urllib.parse import urlsplit

    from dashboard.web.auth import _safe_next

    referrer = urlsplit(request.referrer or "")
    if referrer.netloc and referrer.netloc != request.host:
        return url_for("services.index")
    path = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return (_safe_next(path) if path else None) or url_for("services.index")


def write_refusal() -> str | None:
    """Why the current operator may not write at all right now (None: they may somewhere)."""
    rules, who = policy(), identity()
    if not rules.writable_anywhere(who):
        return "Your access includes no prefix you may change."
    if rules.elevation_required and who.elevation_reason is None:
        return ("Writes need an elevation: use “Elevate” in the header, give a reason (an "
                "incident link) and a duration; your writes then carry that reason.")
    return None


def can_write() -> bool:
    """The current operator may change data now, somewhere: an editor (globally or on a
    prefix a rule gives them), elevated where elevation is required, and the dashboard is
    not read-only. Which keys exactly is the guarded store's answer (``web.access``)."""
    return getattr(current_user, "is_authenticated", False) and _write_refusal() is None


def editor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse writes for viewers, editors who must elevate first, and in read-only mode
    (403, saying which), after requiring a login."""

    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refusal = _write_refusal()
        if refusal is not None:
            abort(403, description=refusal)
        # a write page or write request for a key (or prefix, service) the operator may
        # read but not change: refused here, not after a form was filled in
        store = request_store()
        for value in _named(*_NAMED_KEY, *_NAMED_PREFIX):
            if not store.may_write(value):
                abort(403, description=store.denial(value, write=True))
        return view(*args, **kwargs)

    return wrapper


def _write_refusal() -> str | None:
    if current_app.config["KV_SETTINGS"].dashboard.read_only:
        return "The dashboard runs read-only (Dashboard__ReadOnly=true): nothing can be changed."
    refusal = write_refusal()
    if refusal is not None and getattr(current_user, "role", None) == "viewer" and \
            "elevation" not in refusal:
        return "Your role is viewer: you can read data but not change it. Ask for the editor role."
    return refusal


def _context() -> dict:
    settings = current_app.config["KV_SETTINGS"].dashboard
    rules = policy()
    held = elevation() if rules.elevation_required and getattr(
        current_user, "is_authenticated", False) else None
    return {
        "environment_name": settings.environment_name,
        "elevation_required": rules.elevation_required,
        "elevation": held,
        "elevation_max_minutes": settings.elevation_max_minutes,
        "may_elevate": rules.elevation_required and getattr(
            current_user, "is_authenticated", False) and rules.writable_anywhere(identity()),
    }


def environment_css() -> str:
    """The environment band's colours: the configured one, and a text colour that reads on it."""
    colour = current_app.config["KV_SETTINGS"].dashboard.environment_color or "#475467"
    return (f".env-band{{background:{colour};color:{_readable_on(colour)};}}\n"
            f"html{{--env-color:{colour};}}\n")


def _readable_on(colour: str) -> str:
    """Black or white, whichever contrasts more with ``colour`` (WCAG relative luminance)."""
    text = colour.lstrip("#")
    if len(text) == 3:
        text = "".join(ch * 2 for ch in text)
    channels = [int(text[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#ffffff"


@bp.get("/environment.css")
def environment_stylesheet():
    """A stylesheet, not an inline style: the page's CSP refuses inline styles."""
    return current_app.response_class(environment_css(), 200, {
        "Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=300"})


def _carry_reason() -> None:
    from dashboard.mesh import audit

    if policy().elevation_required and getattr(current_user, "is_authenticated", False):
        g.kv_reason_token = audit.set_reason(current_reason())


def _drop_reason(_error: BaseException | None) -> None:
    from dashboard.mesh import audit

    token = g.pop("kv_reason_token", None)
    if token is not None:
        audit.reset_reason(token)


#: request arguments (query or form) that name a key, or a prefix / service of keys
_NAMED_KEY = ("key",)
_NAMED_PREFIX = ("prefix", "service")


def _named(*names: str) -> list[str]:
    """The non-empty values the request gives those arguments, in its query or its form."""
    return [value for name in names
            for value in (request.args.get(name), request.form.get(name)) if value]


def _refuse_what_the_request_names():
    """A request naming a key or prefix the operator may not read is refused (403) before
    its view runs, whatever the route: the guarded store would hide it anyway, and a page
    saying "no keys here" would be less true than "you may not see this"."""
    if not getattr(current_user, "is_authenticated", False) or request.endpoint in (
            "static", "ops.healthz", "ops.readyz", "metrics.metrics", "auth.logout"):
        return None
    store = request_store()
    named = [(value, store.may_read) for value in _named(*_NAMED_KEY)] + \
            [(value, store.reads_under) for value in _named(*_NAMED_PREFIX)]
    for value, allowed in named:
        if not allowed(value):
            from dashboard.web.errors import render_error

            return render_error(403, "Not in your access", store.denial(value),
                                "Access is given per service prefix by Dashboard__Access rules.",
                                kind="access-denied")
    return None


def init_app(app: Flask) -> None:
    settings = app.config["KV_SETTINGS"].dashboard
    app.extensions["kv_access_policy"] = AccessPolicy.from_settings(settings)
    app.register_blueprint(bp)
    app.context_processor(_context)
    # per key, for write controls: the guarded store's answer for this operator, now
    app.add_template_global(lambda key: request_store().may_write(key), "may_write")
    # every audit entry a request makes carries the elevation it was made under
    app.before_request(_carry_reason)
    app.before_request(_refuse_what_the_request_names)
    app.teardown_request(_drop_reason)


def request_store() -> GuardedProvider:
    """The guarded store of this request, built once per request."""
    found = g.get("kv_guarded")
    if found is None:
        found = g.kv_guarded = guarded(current_app.extensions["kv_provider"])
    return found
