"""Refusing a setup that cannot work, at start-up, with one line naming the setting.

``toska-kv serve`` and the image's gunicorn entry point (``wsgi.py``) run these checks
after the settings load (which already refuses every malformed setting); the app factory
does not, so tests and tools can build apps freely.

- Nobody could log in: no ``Dashboard__Users``, no ``Dashboard__UsersFile`` entry, no
  single sign-on that can take effect (``Dashboard__TrustedAuthHeader`` with
  ``Dashboard__ForwardedProxies`` > 0; ``load_settings`` already refused it without
  ``Dashboard__TrustedAuthProxies``) and not demo mode. The dashboard has no anonymous
  read-only mode: every page but the probes needs an operator.
- A ``PasswordHash`` that is not a hash (a plain password pasted in): no password would
  ever match it. Its value is never shown.
"""

from __future__ import annotations

import re

from dashboard.settings.errors import ConfigError
from dashboard.settings.model import Settings

#: werkzeug's ``generate_password_hash`` output: ``method$salt$hex digest``
_HASH = re.compile(r"(?:pbkdf2:[a-z0-9_]+(?::\d+)?|scrypt(?::\d+){0,3})\$[^$\s]+\$[0-9a-f]+")


def is_password_hash(text: str) -> bool:
    """Whether ``text`` is a hash ``toska-kv hash-password`` (werkzeug) could have made."""
    return bool(_HASH.fullmatch(text.strip()))


_NOT_A_HASH = ("is not a password hash (it must look like scrypt:32768:8:1$salt$hex... or "
               "pbkdf2:sha256:600000$salt$hex...; make one with `toska-kv hash-password`)")


def check_operators(settings: Settings) -> None:
    """``ConfigError`` unless someone can log in with the configured operators."""
    from dashboard.web.auth import load_operators

    db = settings.dashboard
    for index, user in enumerate(db.users):
        if not is_password_hash(user.password_hash):
            raise ConfigError(f"Dashboard__Users__{index}__PasswordHash ({user.name!r}) "
                              f"{_NOT_A_HASH}")
    operators = load_operators(settings)  # reads Dashboard__UsersFile (ConfigError if bad)
    configured = {user.name for user in db.users}
    for name, operator in operators.items():
        if name not in configured and not operator.credential and not is_password_hash(
                operator.password_hash):
            raise ConfigError(f"Dashboard__UsersFile: the passwordHash of {name!r} in "
                              f"{db.users_file!r} {_NOT_A_HASH}")
    sso = db.trusted_auth_header is not None and db.forwarded_proxies > 0
    if not operators and not sso:
        raise ConfigError(
            "Dashboard__Users: no operator is configured, so no one could log in (the "
            "dashboard has no anonymous mode): set Dashboard__Users__0__Name, "
            "Dashboard__Users__0__PasswordHash (from `toska-kv hash-password`) and "
            "Dashboard__Users__0__Role, or Dashboard__UsersFile, or single sign-on with "
            "Dashboard__TrustedAuthHeader, Dashboard__TrustedAuthProxies and "
            "Dashboard__ForwardedProxies")


def refuse_broken_setup(settings: Settings) -> None:
    """Every start-up check; ``ConfigError`` naming the first setting that fails."""
    check_operators(settings)
