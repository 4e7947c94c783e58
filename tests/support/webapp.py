"""Building test apps and driving them like an operator (login, CSRF tokens)."""

from __future__ import annotations

import html
import re
from typing import Any

from werkzeug.security import generate_password_hash

from dashboard.web.app import create_app

SECRET = "test-secret-key-not-for-production-0123456789"
# Cheap hashes: tests log in hundreds of times; the algorithm is not what is under test.
_FAST = "pbkdf2:sha256:1000"
#: ``rx``: an editor whom access-rule tests restrict away from a prefix
OPERATORS = {"ed": ("ed-pass", "editor"), "vi": ("vi-pass", "viewer"), "rx": ("rx-pass", "editor")}
_USERS = [
    {"Name": name, "PasswordHash": generate_password_hash(password, method=_FAST), "Role": role}
    for name, (password, role) in OPERATORS.items()
]
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(provider: Any = None, *, dashboard: dict[str, Any] | None = None,
             mesh: dict[str, Any] | None = None, **flask_config: Any):
    """An app on ``provider`` with an editor ``ed`` and a viewer ``vi``."""
    overrides: dict[str, Any] = {
        # sessions and the audit trail in this process's memory: each test app its own,
        # nothing left on disk
        # and discovery walks on every page: tests seed services and look at once
        # (a test that names a session storage gets the trail the dashboard derives from it)
        "Dashboard": {"SecretKey": SECRET, "Users": _USERS, "SessionStorage": "memory://",
                      **({} if "SessionStorage" in (dashboard or {}) else
                         {"AuditStorage": "memory://"}),
                      "DiscoveryCacheSeconds": 0, **(dashboard or {})},
    }
    if mesh:
        overrides["Mesh"] = {"KeyValue": mesh}
    config: dict[str, Any] = {"TESTING": True, "KV_OVERRIDES": overrides, **flask_config}
    if provider is not None:
        config["KV_PROVIDER"] = provider
    return create_app(config)


def csrf_token(client, url: str = "/login") -> str:
    """The CSRF token a page carries, as a browser would read it from the form."""
    page = client.get(url)
    match = _CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return html.unescape(match.group(1))


def login(client, name: str = "ed", *, base: str = "", **headers: str):
    """Log in through the form (under ``base``, an ingress prefix); the redirect response."""
    password, _ = OPERATORS[name]
    token = csrf_token(client, f"{base}/login")
    response = client.post(f"{base}/login", data={"username": name, "password": password,
                                                  "csrf_token": token}, headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def post_form(client, url: str, data: dict[str, Any], *, token_from: str = "/services"):
    """POST like the browser: with the CSRF token the dashboard handed out."""
    return client.post(url, data={**data, "csrf_token": csrf_token(client, token_from)})
