"""Operators, roles and the login/logout views."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.settings.errors import ConfigError
from dashboard.settings.model import UserSettings

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see the mesh's key/value data."
login_manager.login_message_category = "info"

ROLES = ("viewer", "editor")
DEMO_USERS = (("demo", "demo", "editor"), ("viewer", "viewer", "viewer"))
# Compared against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")
#: the session key holding the fingerprint of the operator as configured at login
_FINGERPRINT = "_kv_operator"
#: failed logins allowed before the next attempt is refused (flask-limiter notation); Flask
#: config ``KV_LOGIN_LIMIT_PER_NAME`` / ``KV_LOGIN_LIMIT_PER_ADDRESS`` override them
LOGIN_LIMIT_PER_NAME = "5 per minute"
LOGIN_LIMIT_PER_ADDRESS = "20 per minute"


@dataclass(frozen=True)
class Operator:
    """A person allowed into the dashboard; flask-login's user object."""

    name: str
    role: str
    password_hash: str
    #: what identifies the credential in ``fingerprint``: the hash, except for the demo
    #: accounts, whose hash is salted anew in every process but whose password is fixed
    credential: str = field(default="", repr=False)
    #: lower-cased groups the access rules may name (``Dashboard:Users:N:Groups``, SSO)
    groups: tuple[str, ...] = ()

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.name

    @property
    def fingerprint(self) -> str:
        """Changes when the operator's password hash or role changes in the configuration."""
        material = "\0".join((self.name, self.role, self.credential or self.password_hash,
                              ",".join(sorted(self.groups))))
        return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def _load_users_file(path: str) -> list[UserSettings]:
    """A JSON array of {name, passwordHash, role} (keys case-insensitive)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"Dashboard__UsersFile: cannot read {path!r}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"Dashboard__UsersFile: {path!r} is not valid JSON ({error})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"Dashboard__UsersFile: {path!r} must hold a JSON array of users")
    users = []
    for item in raw:
        fields = {str(k).lower(): v for k, v in (item.items() if isinstance(item, dict) else [])}
        role = str(fields.get("role", "viewer")).lower()
        if not fields.get("name") or not fields.get("passwordhash") or role not in ROLES:
            raise ConfigError(
                f"Dashboard__UsersFile: {path!r} has an entry without name/passwordHash "
                "or with a role other than viewer/editor"
            )
        groups = fields.get("groups") or ()
        if isinstance(groups, str):
            groups = groups.split(",")
        users.append(UserSettings(str(fields["name"]), str(fields["passwordhash"]), role,
                                  tuple(str(g).strip().lower() for g in groups if str(g).strip())))
    return users


def load_operators(settings) -> dict[str, Operator]:
    """Operators from Dashboard:Users, the users file, and the demo accounts in demo mode."""
    users = list(settings.dashboard.users)
    if settings.dashboard.users_file:
        users.extend(_load_users_file(settings.dashboard.users_file))
    operators = {u.name: Operator(u.name, u.role, u.password_hash, groups=u.groups)
                 for u in users}
    if settings.dashboard.demo:
        for name, password, role in DEMO_USERS:
            operators.setdefault(name, Operator(name, role, generate_password_hash(password),
                                                credential=f"demo password {password}"))
    return operators


def init_app(app: Flask, operators: dict[str, Operator]) -> None:
    app.extensions["operators"] = operators
    login_manager.init_app(app)
    app.register_blueprint(bp)
    _throttle_logins(app)


def _throttle_logins(app: Flask) -> None:
    """Count failed logins per name and per client address; refuse more with 429.

    Only failures (401) count, so operators who log in right are never slowed down, and one
    name's failures do not lock out another name (beyond the per-address limit). The counters
    live in ``Dashboard:RateLimitStorage``, else in the session storage's Redis when that is
    one (shared by replicas), else in this process's memory.
    """
    settings = app.config["KV_SETTINGS"].dashboard
    storage = settings.rate_limit_storage
    if storage is None and (settings.session_storage or "").lower().startswith(("redis:", "rediss:")):
        storage = settings.session_storage
    options: dict[str, Any] = {}
    if storage and storage.lower().startswith(("redis:", "rediss:")):
        options = {"socket_timeout": settings.store_timeout_seconds,
                   "socket_connect_timeout": settings.store_timeout_seconds}
    limiter = Limiter(
        key_func=get_remote_address, app=app, storage_uri=storage or "memory://",
        storage_options=options, strategy="moving-window", key_prefix="kvdash-login",
        # a storage outage must not lock every operator out: log it and let the login proceed
        swallow_errors=True,
    )
    view = app.view_functions["auth.login"]
    view = limiter.limit(app.config.get("KV_LOGIN_LIMIT_PER_NAME", LOGIN_LIMIT_PER_NAME),
                         key_func=_login_name_key, scope="login-name", methods=["POST"],
                         deduct_when=_failed_login, on_breach=_too_many_failures)(view)
    view = limiter.limit(app.config.get("KV_LOGIN_LIMIT_PER_ADDRESS", LOGIN_LIMIT_PER_ADDRESS),
                         key_func=get_remote_address, scope="login-address", methods=["POST"],
                         deduct_when=_failed_login, on_breach=_too_many_failures)(view)
    app.view_functions["auth.login"] = view
    app.extensions["login_limiter"] = limiter
    _limit_only_on(app, limiter, frozenset({"auth.login"}))


def _limit_only_on(app: Flask, limiter: Limiter, endpoints: frozenset[str]) -> None:
    """Run the limiter's request hooks on ``endpoints`` only (the ones it has limits for).

    flask-limiter checks every request of the app before and after it is answered, although
    only the login has limits: ~0.1 ms of every page. Left as they are when default or
    application-wide limits are configured (they apply to every endpoint).
    """
    manager = limiter.limit_manager
    if manager.default_limits or manager.application_limits:
        return

    def gated(hook: Callable[..., Any], skipped: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(hook)
        def run(*args: Any) -> Any:
            return hook(*args) if request.endpoint in endpoints else skipped(*args)

        return run

    def ours(hook: Any) -> bool:
        return (getattr(hook, "__self__", None) is limiter
                or getattr(hook, "args", None) == (limiter,))  # after_request: a partial

    for hooks, skipped in ((app.before_request_funcs, lambda *_: None),
                           (app.after_request_funcs, lambda response: response),
                           (app.teardown_request_funcs, lambda *_: None)):
        funcs = hooks.get(None, [])
        funcs[:] = [gated(f, skipped) if ours(f) else f for f in funcs]


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


def _login_name_key() -> str:
    name = request.form.get("username", "").strip().casefold()
    # hashed: any length or character is one short storage key
    return "name-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _too_many_failures(limit: RequestLimit) -> Response:
    # called once per limit broken (name and address): the page names the longer wait
    wait = max(1, math.ceil(limit.window.reset_time - time.time()), g.get("login_wait", 0))
    if "login_wait" not in g:
        current_app.logger.warning("login refused for %r from %s: too many failed logins",
                                   request.form.get("username", ""), request.remote_addr)
    g.login_wait = wait
    page = render_template("auth/login.html", next_url=_safe_next(request.values.get("next")),
                           username=request.form.get("username", "").strip(),
                           refusal=f"Too many failed logins; try again in {wait} s.")
    response = make_response(page, 429)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(error: RateLimitExceeded):
    # the login page that _too_many_failures rendered, not the generic error page
    if error.response is not None:
        return error.response
    return render_template("auth/login.html", next_url=None, username=""), 429


@login_manager.user_loader
def _load_operator(name: str) -> Operator | None:
    return operator_of(current_app, name, session.get(_FINGERPRINT), g.get("sso_operator"))


def operator_of(app: Flask, name: str, fingerprint: object,
                sso: Operator | None = None) -> Operator | None:
    """The operator a session of ``name`` (logged in as ``fingerprint``) still is; None if none.

    The one rule for every request and every long-lived response (``dashboard.web.lifecycle``
    asks again while a stream is open): removed, or a new password or role since the
    session logged in, means logged out. ``sso``: the operator the authenticating proxy
    vouched for on the request, with that request's role.
    """
    if sso is not None and sso.name == name:
        operator: Operator | None = sso
    else:
        # a single sign-on session without the proxy's header matches no configured operator
        # (its fingerprint has no password hash): logged out
        operator = app.extensions["operators"].get(name)
    if operator is None or fingerprint != operator.fingerprint:
        return None
    return operator


@login_manager.unauthorized_handler
def _unauthorized():
    login_url = url_for("auth.login", next=_return_to())
    if request.headers.get("HX-Request"):
        # A swapped-in login form inside a table cell helps no one: send the whole page there.
        return "", 401, {"HX-Redirect": login_url}
    flash(login_manager.login_message, "info")
    return redirect(login_url)


def _return_to() -> str:
    """Where to go after logging in: the page the operator was on, as the browser names it.

    An htmx request asks for a fragment (a table row, a count): return to the page showing it
    (``HX-Current-URL``). A form post returns to the form's page (``Referer``). Otherwise the
    URL asked for, with the script root (the ingress prefix) in front.
    """
    if request.headers.get("HX-Request"):
        shown = _path_of(request.headers.get("HX-Current-URL", ""))
    elif request.method not in ("GET", "HEAD"):
        shown = _path_of(request.headers.get("Referer", ""))
    else:
        path = quote((request.script_root + request.path).encode("utf-8", "surrogateescape"),
                     safe=_PATH_SAFE)
        query = quote(request.query_string, safe=_QUERY_SAFE)
        shown = _safe_next(f"{path}?{query}" if query else path)
    return shown or url_for("services.index")


_PATH_SAFE = "/!$&'()*+,;=:@"
_QUERY_SAFE = _PATH_SAFE + "?%"


def _path_of(url: str) -> str | None:
    """The path and query of a URL the browser sent (its origin is the browser's business)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return _safe_next(f"{parts.path}?{parts.query}" if parts.query else parts.path)


def _safe_next(target: str | None) -> str | None:
    """A same-site absolute path inside this app (under the script root), or None.

    Never another host (``//evil``, ``/\\evil``, ``https://``), never a control character
    (a header injection, and a 500 in the redirect), never out of the ingress prefix
    (``/kv/../x``); anything not ASCII is percent-encoded.
    """
    if not target or not isinstance(target, str):
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return None
    target = quote(target, safe=_QUERY_SAFE + "#", errors="surrogateescape")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    segments = unquote(parts.path).split("/")
    if any(segment in (".", "..") for segment in segments):
        return None
    root = request.script_root
    if root and parts.path != root and not parts.path.startswith(root + "/"):
        return None
    if parts.path in (url_for("auth.login"), url_for("auth.logout")):
        return None
    return target.rstrip("?") or None


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if g.get("sso_operator") is not None:
        # signed in by the proxy already (``sso._single_sign_on``): no password to ask for
        return redirect(next_url or url_for("services.index"))
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        operator = current_app.extensions["operators"].get(name)
        valid = check_password_hash(operator.password_hash if operator else _DUMMY_HASH, password)
        if operator and valid:
            _new_session_id()
            login_user(operator)
            session[_FINGERPRINT] = operator.fingerprint
            current_app.logger.info("login: %s (%s)", operator.name, operator.role)
            return redirect(next_url or url_for("services.index"))
        current_app.logger.warning("failed login for %r", name)
        flash("Wrong name or password.", "error")
        return render_template("auth/login.html", next_url=next_url, username=name), 401
    return render_template("auth/login.html", next_url=next_url, username="")


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        current_app.logger.info("logout: %s", current_user.name)
    sso = g.get("sso_operator")
    logout_user()
    # the stored session is deleted, so a copy of the cookie is worthless on every replica
    session.clear()
    _new_session_id()
    if sso is not None:
        # the proxy signs the operator in again on the next request: only it can log out
        header = current_app.config["KV_SETTINGS"].dashboard.trusted_auth_header
        flash(f"You are signed in through single sign-on ({header} from the authenticating "
              "proxy): log out at the proxy (its sign-out page) to end it. This dashboard's "
              "session was ended, but your next page through the proxy signs you in again.",
              "info")
        return redirect(url_for("services.index"))
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def _new_session_id() -> None:
    regenerate = getattr(session, "regenerate", None)
    if regenerate is not None:
        regenerate()
