"""Operators, roles and the login/logout views."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from .config import ConfigError, UserSettings

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see the mesh's key/value data."
login_manager.login_message_category = "info"

ROLES = ("viewer", "editor")
DEMO_USERS = (("demo", "demo", "editor"), ("viewer", "viewer", "viewer"))
# Compared against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


@dataclass(frozen=True)
class Operator:
    """A person allowed into the dashboard; flask-login's user object."""

    name: str
    role: str
    password_hash: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.name


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
        users.append(UserSettings(str(fields["name"]), str(fields["passwordhash"]), role))
    return users


def load_operators(settings) -> dict[str, Operator]:
    """Operators from Dashboard:Users, the users file, and the demo accounts in demo mode."""
    users = list(settings.dashboard.users)
    if settings.dashboard.users_file:
        users.extend(_load_users_file(settings.dashboard.users_file))
    operators = {u.name: Operator(u.name, u.role, u.password_hash) for u in users}
    if settings.dashboard.demo:
        for name, password, role in DEMO_USERS:
            operators.setdefault(name, Operator(name, role, generate_password_hash(password)))
    return operators


def init_app(app: Flask, operators: dict[str, Operator]) -> None:
    app.extensions["operators"] = operators
    login_manager.init_app(app)
    app.register_blueprint(bp)


@login_manager.user_loader
def _load_operator(name: str) -> Operator | None:
    return current_app.extensions["operators"].get(name)


@login_manager.unauthorized_handler
def _unauthorized():
    login_url = url_for("auth.login", next=_safe_next(request.full_path))
    if request.headers.get("HX-Request"):
        # A swapped-in login form inside a table cell helps no one: send the whole page there.
        return "", 401, {"HX-Redirect": login_url}
    flash(login_manager.login_message, "info")
    return redirect(login_url)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never redirect an operator to another host."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target.rstrip("?") or None


def can_write() -> bool:
    """The current operator may change data: an editor, and the dashboard is not read-only."""
    return (
        getattr(current_user, "role", None) == "editor"
        and not current_app.config["KV_SETTINGS"].dashboard.read_only
    )


def editor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse writes for viewers and in read-only mode (403), after requiring a login."""

    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not can_write():
            abort(403, description=_write_refusal())
        return view(*args, **kwargs)

    return wrapper


def _write_refusal() -> str:
    if current_app.config["KV_SETTINGS"].dashboard.read_only:
        return "The dashboard runs read-only (Dashboard__ReadOnly=true): nothing can be changed."
    return "Your role is viewer: you can read data but not change it. Ask for the editor role."


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        operator = current_app.extensions["operators"].get(name)
        valid = check_password_hash(operator.password_hash if operator else _DUMMY_HASH, password)
        if operator and valid:
            login_user(operator)
            current_app.logger.info("login: %s (%s)", operator.name, operator.role)
            return redirect(next_url or url_for("services.index"))
        current_app.logger.warning("failed login for %r", name)
        flash("Wrong name or password.", "error")
        return render_template("auth/login.html", next_url=next_url, username=name), 401
    return render_template("auth/login.html", next_url=next_url, username="")


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
