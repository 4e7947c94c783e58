"""Single sign-on through an authenticating proxy (oauth2-proxy style).

The proxy names the operator in ``Dashboard:TrustedAuthHeader`` (and their groups in
``Dashboard:TrustedAuthGroupsHeader``); the dashboard believes it only from the proxy's own
connection, never from what a client can write, and works the role out on every request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from flask import Flask, current_app, g, request, session
from flask_login import login_user, logout_user

from dashboard.settings.errors import ConfigError
from dashboard.settings.sso import proxies_missing
from dashboard.web.auth import _FINGERPRINT, Operator, _new_session_id

#: what an SSO operator's fingerprint is made of instead of a password hash: the proxy
#: vouches for the name, and a password-login session of the same name never matches it
_SSO_CREDENTIAL = "single sign-on: trusted proxy header"
_ROLE_RANK = {"viewer": 1, "editor": 2}
#: longest operator name taken from the header
_SSO_NAME_MAX = 256
#: peers whose ignored header was logged (once each, so a misrouted ingress is named once)
_UNTRUSTED_LOGGED_MAX = 1000


@dataclass(frozen=True)
class _SsoSettings:
    header: str
    groups_header: str | None
    roles: dict[str, str]
    default_role: str
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    untrusted_logged: set[str] = field(default_factory=set, compare=False)


@dataclass(frozen=True)
class _SsoRefusal:
    """A name the proxy vouched for, in no group mapped to a role, with default role none."""

    name: str
    groups: tuple[str, ...]


def init_app(app: Flask) -> None:
    """Sign operators in from the proxy's header, when ``Dashboard:TrustedAuthHeader`` is set
    and requests come through proxies (``Dashboard:ForwardedProxies`` > 0)."""
    db = app.config["KV_SETTINGS"].dashboard
    if not db.trusted_auth_header or db.forwarded_proxies < 1:
        return  # the header is ignored (load_settings warned when it is set)
    if not db.trusted_auth_proxies:  # load_settings refuses this; settings built in code too
        raise ConfigError("invalid setting Dashboard__TrustedAuthProxies: "
                          + proxies_missing(db.trusted_auth_header))
    app.extensions["sso"] = _SsoSettings(
        header=db.trusted_auth_header, groups_header=db.trusted_auth_groups_header,
        roles=dict(db.trusted_auth_roles), default_role=db.trusted_auth_default_role,
        proxies=tuple(ipaddress.ip_network(n) for n in db.trusted_auth_proxies))
    app.logger.info("single sign-on: %s from %s is trusted", db.trusted_auth_header,
                    ", ".join(db.trusted_auth_proxies))
    app.before_request(_single_sign_on)


def _single_sign_on():
    """Log the proxy's operator in (or keep them logged in) before the view runs.

    The role is worked out again on every request, so a group change at the identity
    provider takes effect on the next page: a different role changes the fingerprint, and
    the operator is logged in again with the new one.
    """
    if request.endpoint in ("static", "ops.healthz"):
        return None
    identity = proxy_identity()
    if identity is None:
        return None
    if isinstance(identity, _SsoRefusal):
        if request.endpoint == "ops.readyz":
            return None  # public; answered as to anyone anonymous
        if session.get("_user_id") is not None:
            logout_user()
            session.clear()
        from dashboard.web.errors import render_error

        groups = ", ".join(identity.groups) or "none"
        current_app.logger.warning("single sign-on refused for %r: no mapped group (%s)",
                                   identity.name, groups)
        return render_error(
            403, "No dashboard role",
            f"{identity.name} is signed in at the proxy, but none of their groups ({groups}) "
            "is mapped to a dashboard role, and operators without one are refused.",
            "Ask for a group that Dashboard__TrustedAuthRoles maps to viewer or editor.")
    g.sso_operator = identity
    if (session.get("_user_id") == identity.name
            and session.get(_FINGERPRINT) == identity.fingerprint):
        return None
    if session.get("_user_id") not in (None, identity.name):
        session.clear()  # another operator's session in this browser: nothing of it is kept
    _new_session_id()
    login_user(identity)
    session[_FINGERPRINT] = identity.fingerprint
    current_app.logger.info("login (single sign-on): %s (%s)", identity.name, identity.role)
    return None


def proxy_identity() -> Operator | _SsoRefusal | None:
    """The operator the authenticating proxy names on this request, or None.

    The header counts only when the request came through the proxies
    (``Dashboard:ForwardedProxies`` > 0, so ProxyFix ran) and the connection itself came
    from ``Dashboard:TrustedAuthProxies``: the ORIGINAL peer address, which ProxyFix keeps
    aside before replacing ``remote_addr`` with the client's (from ``X-Forwarded-For``,
    which anyone can write). A header from anywhere else is ignored, so a client reaching
    the dashboard directly cannot name itself.
    """
    sso: _SsoSettings | None = current_app.extensions.get("sso")
    if sso is None:
        return None
    raw_name = request.headers.get(sso.header)
    if raw_name is None or not raw_name.strip():
        return None
    peer = _original_peer()
    if peer is None or not any(peer in network for network in sso.proxies):
        _log_untrusted(sso, peer)
        return None
    name = _header_text(raw_name).strip()
    if ("," in name or len(name) > _SSO_NAME_MAX
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name)):
        # a comma: the header came twice (the server joins repeated headers with ",")
        current_app.logger.warning("single sign-on: ignored a malformed %s header %r",
                                   sso.header, name[:80])
        return None
    groups: tuple[str, ...] = ()
    if sso.groups_header:
        text = _header_text(request.headers.get(sso.groups_header, ""))
        groups = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    mapped = [sso.roles[group.lower()] for group in groups if group.lower() in sso.roles]
    role = max(mapped, key=_ROLE_RANK.__getitem__) if mapped else sso.default_role
    lowered = tuple(group.lower() for group in groups)
    if role not in _ROLE_RANK and not _named_by_a_rule(name, lowered):
        return _SsoRefusal(name, groups)
    return Operator(name, role, "", credential=_SSO_CREDENTIAL, groups=lowered)


def _named_by_a_rule(name: str, groups: tuple[str, ...]) -> bool:
    """An operator with no dashboard-wide role may still have a prefix an access rule gives."""
    from dashboard.mesh.access.policy import Identity

    policy = current_app.extensions.get("kv_access_policy")
    return policy is not None and policy.readable_anywhere(
        Identity(name=name, role="none", groups=frozenset(groups)))


def _header_text(value: str) -> str:
    """A header value as the proxy wrote it: UTF-8 where it is (WSGI hands over Latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _original_peer() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of the connection itself (the proxy), as it was before ProxyFix."""
    original = request.environ.get("werkzeug.proxy_fix.orig")
    if not isinstance(original, dict):
        return None
    text = str(original.get("REMOTE_ADDR") or "").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None  # a Unix socket or no address: not a proxy this rule can vouch for
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _log_untrusted(sso: _SsoSettings, peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                   ) -> None:
    where = str(peer) if peer is not None else "an unknown address"
    if where in sso.untrusted_logged or len(sso.untrusted_logged) >= _UNTRUSTED_LOGGED_MAX:
        return
    sso.untrusted_logged.add(where)
    current_app.logger.warning(
        "single sign-on: ignored %s from %s: not in Dashboard__TrustedAuthProxies (%s); "
        "logged once per address", sso.header, where,
        ", ".join(str(n) for n in sso.proxies))
