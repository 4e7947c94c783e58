"""Error handlers: every failure becomes a clear page (or an htmx fragment), never a trace."""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from dashboard.stores.errors import ProviderError
from dashboard.web.htmx import is_htmx

# What the operator can do about each store failure, shown under the message.
PROVIDER_HINTS = {
    "unavailable": "The store did not answer. Check that it is running and reachable from "
    "the dashboard (address, port, network policy), then retry.",
    "unauthorized": "The store refused the dashboard's credentials. Check "
    "Mesh__KeyValue__ToskaStore__AuthToken or the Redis password; a read-only token "
    "cannot write.",
    "forbidden": "The store refused this operation: it may be a read-only follower or replica.",
    "rate-limited": "The store is rate limiting requests. Wait a moment and retry.",
    "bad-response": "The store answered something the dashboard could not read.",
    "conflict": "The data changed since you opened it. Reload to see the current value.",
    "not-found": "The key does not exist (it may have expired or been deleted).",
    "invalid": "The store rejected the request.",
    "unsupported": "This cannot be done safely on this store.",
    "no-such-service": "Nothing is stored under this prefix and it has no index. Check the "
    "prefix: it must match the keys exactly, including the trailing ':'.",
    "no-index": "Only services whose runtime keeps a __keys index have one to check: set "
    "EnableKeyIndex for the service (Dashboard__Services__N__EnableKeyIndex) if it does.",
    "write-unknown": "The store did not confirm the write and reading back does not show it yet: "
    "look again in a moment before writing again.",
    "not-a-store": "Check Mesh__KeyValue__ToskaStore__BaseUrl: the address answers, but it is "
    "not a ToskaStore server (a ToskaStore answers GET /health with JSON).",
}


def render_error(status: int, title: str, message: str, hint: str = "", kind: str = "error"):
    template = "errors/_banner.html" if is_htmx() else "errors/page.html"
    body = render_template(template, status=status, title=title, message=message, hint=hint,
                           kind=kind)
    headers = {"Vary": "HX-Request"}
    if is_htmx():
        # htmx does not swap 4xx/5xx by default; the banner is the answer, so swap it in.
        headers.update({"HX-Reswap": "innerHTML", "HX-Retarget": "#flash"})
        status_out = 200
    else:
        status_out = status
    return body, status_out, headers


def init_app(app: Flask) -> None:
    @app.errorhandler(ProviderError)
    def provider_error(error: ProviderError):
        current_app.logger.warning("store error (%s): %s", error.kind, error)
        title = {
            "unavailable": "Store unavailable",
            "unauthorized": "Store refused the credentials",
            "forbidden": "Store refused the operation",
            "rate-limited": "Store is rate limiting",
            "not-found": "Not found",
            "not-a-store": "Not a ToskaStore server",
            "no-such-service": "No such service",
            "no-index": "No index to check",
            "write-unknown": "Write not confirmed",
        }.get(error.kind, "Store error")
        return render_error(error.http_status, title, str(error), PROVIDER_HINTS.get(error.kind, ""),
                            error.kind)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        from flask_login import current_user

        from dashboard.web.auth import login_manager

        if not current_user.is_authenticated and request.endpoint != "auth.login":
            # the session (and its token) expired: log in again, as for any other page
            return login_manager.unauthorized()
        return render_error(400, "Form expired", "The form's security token is missing or "
                            "expired. Reload the page and submit again; nothing was changed.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return render_error(error.code or 500, f"{error.code} {error.name}",
                            error.description or "")

    if app.testing:
        return  # let tests see the real exception

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        current_app.logger.exception("unexpected error")
        return render_error(500, "Unexpected error", "Something went wrong inside the dashboard; "
                            "it has been logged. Nothing was written.")
