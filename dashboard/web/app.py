"""ToskaMesh KV Dashboard: the Flask application factory."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, request, session
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard.mesh.text import has_surrogates
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.settings.model import Settings
from dashboard.web import forms
from dashboard.web.sessions import session_interface


def _assets_root() -> Path:
    """templates/ and static/: beside the package in a checkout, under share/ in a wheel."""
    source = Path(__file__).resolve().parents[2]
    if (source / "templates").is_dir():
        return source
    return Path(sys.prefix) / "share" / "toska-kv"


ROOT = _assets_root()
# No inline scripts or styles anywhere: the pages run under this policy from day one.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_SECURITY_HEADERS_LOWER = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS.items())
WEAK_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "default"}

csrf = CSRFProtect()


class _Request(Request):
    """Parameters decode ``%FF`` back to the surrogate-escaped key it came from, and one
    the store cannot take answers 400 naming it, whichever route reads it (``forms``)."""

    form_data_parser_class = forms.FormParser

    @cached_property
    def args(self):  # type: ignore[override]
        pairs = forms.decode_pairs(self.query_string)
        forms.refuse_undecodable(pairs, "query")
        return self.parameter_storage_class(pairs)

    @property
    def form(self):  # type: ignore[override]
        parsed = Request.form.__get__(self, type(self))  # werkzeug's, parsed once
        if not self.__dict__.get("_kv_form_checked"):
            forms.refuse_undecodable(parsed.items(multi=True), "form")
            self.__dict__["_kv_form_checked"] = True
        return parsed


class _Flask(Flask):
    """Links to non-UTF-8 keys carry their raw bytes; pages show them with U+FFFD."""

    request_class = _Request

    def url_for(self, endpoint: str, /, **values: Any) -> str:
        for name, value in values.items():
            if isinstance(value, str) and has_surrogates(value):
                values[name] = value.encode("utf-8", "surrogateescape")
        return super().url_for(endpoint, **values)


def _display(value: Any) -> Any:
    if isinstance(value, str) and has_surrogates(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


class PathBase:
    """Serve under ``Dashboard:PathBase`` (an ingress path) and at ``/`` (port-forward) alike."""

    def __init__(self, wsgi_app: Any, base: str) -> None:
        self.wsgi_app = wsgi_app
        self.base = base

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.base or path.startswith(self.base + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.base
            environ["PATH_INFO"] = path[len(self.base):] or "/"
        return self.wsgi_app(environ, start_response)


def _demo_secret() -> str:
    """Demo mode's key when none is configured: the same in every worker process of one host.

    A random key per process made gunicorn's workers refuse each other's logins. This one is
    derived from what the workers share and a remote visitor cannot see (the kernel's boot id,
    the host name, the user). It is no real secret, which demo mode can afford: its passwords
    are public, and with server-side sessions the key signs only CSRF tokens whose other half
    stays in the server's session storage.
    """
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    material = f"toska-kv demo\0{boot_id}\0{socket.gethostname()}\0{os.getuid()}"
    return hashlib.sha256(material.encode()).hexdigest()


def _secret_key(settings: Settings) -> str:
    secret = settings.dashboard.secret_key or ""
    if secret.strip().lower() in WEAK_SECRETS or len(secret) < 16:
        if settings.dashboard.demo:
            return _demo_secret()
        raise ConfigError(
            "Dashboard__SecretKey: missing, default or shorter than 16 characters; set a long "
            "random value (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return secret


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL; None for anything else ("null")."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _refuse_other_origins():
    """Refuse a state-changing request that a page of another site sent (over HTTP too).

    The browser names the sending page's origin in ``Origin`` (else the page in ``Referer``);
    when it does, it must be this dashboard as the browser sees it (after ProxyFix). A request
    naming neither (curl, privacy settings) is left to the CSRF token alone.
    """
    if request.method in _SAFE_METHODS:
        return None
    header = "Origin"
    sender = request.headers.get("Origin")
    if sender is None:
        header, sender = "Referer", request.headers.get("Referer")
        if not sender:
            return None
    here = f"{request.scheme}://{request.host}"
    if _origin(sender) is not None and _origin(sender) == _origin(here):
        return None
    from dashboard.web.errors import render_error

    current_app.logger.warning("refused %s %s: %s %r is not %s", request.method, request.path,
                               header, sender, here)
    return render_error(
        400, "Request from another site refused",
        f"This {request.method} came from {sender!r} ({header}), not from this dashboard "
        f"({here}); nothing was changed. Submit the form from the dashboard's own pages.",
        "Behind an ingress, set Dashboard__ForwardedProxies so the dashboard knows the "
        "address the browser uses.")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the dashboard.

    ``test_config`` may hold Flask settings plus ``KV_SETTINGS`` (a ready ``Settings``),
    ``KV_OVERRIDES`` (a nested appsettings-shaped dict applied over file and env) and
    ``KV_PROVIDER`` (a provider instance to use instead of building one).
    """
    from dashboard.mesh import open_store
    from dashboard.web import access, audit_journal, auth, errors, logs, metrics, sso, static_files
    from dashboard.web.views import audit as audit_views
    from dashboard.web.views import register_blueprints

    config = dict(test_config or {})
    settings = config.pop("KV_SETTINGS", None) or load_settings(
        config.pop("KV_APPSETTINGS", None), overrides=config.pop("KV_OVERRIDES", None)
    )
    provider = config.pop("KV_PROVIDER", None)
    if getattr(provider, "kind", None) in ("redis", "toskastore"):
        # the mesh runtime's rules (which keeps an index) follow the store in use
        settings = replace(settings, provider=provider.kind)

    app = _Flask(__name__, template_folder=str(ROOT / "templates"),
                 static_folder=str(ROOT / "static"))
    app.jinja_env.finalize = _display
    app.jinja_env.tests["utf8"] = lambda text: not has_surrogates(text)
    secret_key = _secret_key(settings)
    app.session_interface = session_interface(settings, secret_key)
    app.config.update(
        SECRET_KEY=secret_key,
        # distinct from other apps on the host; its Path is the app's prefix (ServerSessionInterface)
        SESSION_COOKIE_NAME="kvdash_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        # An operator may keep an edit form open for a long incident; the session still ends it.
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        KV_SETTINGS=settings,
    )
    app.config.update(config)
    # Dashboard:LogFormat (text or json), a request id on every line, one line per request
    logs.init_app(app, settings)
    # One line per store request drowns the operators' audit lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for warning in settings.warnings:
        app.logger.warning("configuration: %s", warning)

    @app.after_request
    def _security_headers(response):
        # what setdefault does for each, with one pass over the response's headers
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        for lowered, name, value in _SECURITY_HEADERS_LOWER:
            if lowered not in present:
                headers.add(name, value)
        return response

    @app.before_request
    def _session_storage_answers():
        if getattr(session, "storage_error", None) is not None and request.endpoint not in (
                "ops.healthz", "ops.readyz", "static", "metrics.metrics"):
            where = app.session_interface.where  # type: ignore[attr-defined]
            return errors.render_error(
                503, "Session storage unavailable",
                f"The session storage ({where}) did not answer, so no one can be logged in.",
                "Check Dashboard__SessionStorage and that the Redis it names is reachable.")
        return None

    # before the CSRF check: a request from another site is named as such
    app.before_request(_refuse_other_origins)
    app.extensions["kv_provider"] = provider or open_store(settings)
    csrf.init_app(app)
    auth.init_app(app, auth.load_operators(settings))
    sso.init_app(app)  # builds on auth: its operators and session fingerprint
    # after sso: its checks ask who the operator is, which single sign-on settles first
    access.init_app(app)
    errors.init_app(app)
    register_blueprints(app)
    static_files.init_app(app)
    # observability: /metrics (and the metered provider), the audit trail and /audit
    metrics.init_app(app)
    audit_journal.init_app(app, settings)
    app.register_blueprint(audit_views.bp)

    if settings.dashboard.path_base:
        app.wsgi_app = PathBase(app.wsgi_app, settings.dashboard.path_base)  # type: ignore[method-assign]
    if settings.dashboard.forwarded_proxies:
        # Behind an ingress: HTTPS (secure cookies), host and X-Forwarded-Prefix come from it.
        hops = settings.dashboard.forwarded_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
    return app
