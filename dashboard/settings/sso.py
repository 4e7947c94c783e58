"""Single sign-on through an authenticating proxy: the ``Dashboard:TrustedAuth*`` settings.

Read by ``config.load_settings`` into ``DashboardSettings``; the requests themselves are
handled by ``sso.py``. Settings that cannot take effect (a header without
``Dashboard:ForwardedProxies``, roles without a groups header, a proxy list that trusts
every address) are start-up warnings, not silent.

``Dashboard:TrustedAuthProxies`` has no default: a header without it stops start-up. Loopback
is not a safe guess for "the proxy": ``kubectl port-forward`` arrives from loopback too, so a
default of loopback let anyone who could port-forward to the pod name any operator.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from dashboard.settings.errors import Path
from dashboard.settings.sources import DB, _Reader

#: loopback networks: a sidecar proxy connects from these, and so does ``kubectl port-forward``
LOOPBACK_PROXIES = ("127.0.0.0/8", "::1/128")

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
SSO_ROLES = ("viewer", "editor")


def _header_name(reader: _Reader, name: str) -> str | None:
    path = (*DB, name)
    value = reader.string(path)
    if value is None:
        return None
    header = value.strip()
    if not _HEADER_NAME.fullmatch(header):
        # servers drop or merge names with "_" (X_Forwarded_User would reach the app as
        # X-Forwarded-User): only letters, digits and "-" name a header unambiguously
        raise reader.fail(path, value, "must be a header name (letters, digits and -)")
    return header


def _sso_role(reader: _Reader, path: Path, allowed: tuple[str, ...]) -> str:
    value = reader.string(path)
    role = (value or "").strip().lower()
    if role not in allowed:
        raise reader.fail(path, value, "must be " + " or ".join(allowed))
    return role


def _trusted_auth_roles(reader: _Reader) -> tuple[tuple[str, str], ...]:
    """``Dashboard:TrustedAuthRoles``: ``<group> = <role>`` entries, or an array of
    ``{Group, Role}`` (for group names an environment variable cannot spell).

    A group holding ``:`` (GitHub's ``org:team``) may also be written with ``__`` or ``:``
    between its parts: the path below the section is joined with ``:`` again.
    """
    base: Path = (*DB, "TrustedAuthRoles")
    low = tuple(p.lower() for p in base)
    if reader.raw.get(base) is not None:
        raise reader.fail(base, reader.value(base), "must map groups to roles "
                          "(Dashboard__TrustedAuthRoles__<group>=editor)")
    roles: dict[str, tuple[str, Path]] = {}
    entries: dict[str, dict[str, Path]] = {}  # the array form, by index
    for key in sorted(reader.raw.values):
        if len(key) <= len(low) or key[: len(low)] != low:
            continue
        rest = key[len(low):]
        if len(rest) == 2 and rest[0].isdigit() and rest[1] in ("group", "role"):
            entries.setdefault(rest[0], {})[rest[1]] = key
            continue
        group, path = ":".join(rest), (*base, *rest)
        found = roles.setdefault(group, (_sso_role(reader, path, SSO_ROLES), path))
        if found[1] != path:
            raise reader.fail(path, reader.value(path), "maps a group that is mapped twice")
    for index in sorted(entries, key=int):
        entry: Path = (*base, index)
        group_text = (reader.string((*entry, "Group")) or "").strip()
        if not group_text:
            raise reader.fail((*entry, "Group"), None, "is missing")
        role = _sso_role(reader, (*entry, "Role"), SSO_ROLES)
        if group_text.lower() in roles:
            raise reader.fail((*entry, "Group"), group_text, "is mapped twice")
        roles[group_text.lower()] = (role, (*entry, "Role"))
    return tuple(sorted((group, role) for group, (role, _) in roles.items()))


def _trusted_auth_proxies(reader: _Reader) -> tuple[str, ...]:
    """``Dashboard:TrustedAuthProxies``: addresses or CIDRs, comma-separated or an array."""
    path = (*DB, "TrustedAuthProxies")
    texts = [reader.string((*path, index)) or "" for index in reader.raw.indices(path)]
    if not texts:
        texts = re.split(r"[,\s]+", reader.string(path) or "")
    networks = []
    for text in (t.strip() for t in texts):
        if not text:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise reader.fail(path, text, "is not an IP address or CIDR network") from None
    return tuple(networks)


def proxies_missing(header: str) -> str:
    """Why a single sign-on header without ``Dashboard:TrustedAuthProxies`` stops start-up."""
    return (f"is not set: single sign-on (Dashboard__TrustedAuthHeader={header}) needs the "
            "addresses or CIDRs the authenticating proxy connects from (127.0.0.1 for a "
            "sidecar in the pod; the ingress controller's pod network behind an ingress); "
            "there is no default, because kubectl port-forward arrives from loopback too")


def trusted_auth_settings(reader: _Reader, forwarded_proxies: int,
                          warnings: list[str]) -> dict[str, Any]:
    """The ``Dashboard:TrustedAuth*`` fields of ``DashboardSettings``, with start-up warnings
    for settings that cannot take effect."""
    header = _header_name(reader, "TrustedAuthHeader")
    groups_header = _header_name(reader, "TrustedAuthGroupsHeader")
    roles = _trusted_auth_roles(reader)
    default_role = "viewer"
    if reader.string((*DB, "TrustedAuthDefaultRole")) is not None:
        default_role = _sso_role(reader, (*DB, "TrustedAuthDefaultRole"), (*SSO_ROLES, "none"))
    proxies = _trusted_auth_proxies(reader)
    if header is not None and groups_header is not None and header.lower() == groups_header.lower():
        raise reader.fail((*DB, "TrustedAuthGroupsHeader"), groups_header,
                          "must differ from Dashboard__TrustedAuthHeader")
    if header is not None and not proxies:
        raise reader.fail((*DB, "TrustedAuthProxies"), None, proxies_missing(header))
    if header is None:
        if groups_header or roles:
            warnings.append("Dashboard__TrustedAuthGroupsHeader/TrustedAuthRoles are ignored: "
                            "Dashboard__TrustedAuthHeader (single sign-on) is not set")
    elif forwarded_proxies == 0:
        warnings.append(f"Dashboard__TrustedAuthHeader={header} is ignored: "
                        "Dashboard__ForwardedProxies is 0, so no request is taken to come "
                        "through the authenticating proxy (set it to the number of proxies "
                        "in front)")
    else:
        if roles and groups_header is None:
            warnings.append("Dashboard__TrustedAuthRoles has no effect without "
                            "Dashboard__TrustedAuthGroupsHeader: every single sign-on "
                            f"operator gets the default role ({default_role})")
        if any(ipaddress.ip_network(n).prefixlen == 0 for n in proxies):
            warnings.append(f"Dashboard__TrustedAuthProxies={','.join(proxies)} trusts every "
                            f"address: whoever reaches the dashboard directly can send "
                            f"{header} and log in as anyone")
        elif any(ipaddress.ip_network(n).overlaps(ipaddress.ip_network(loopback))
                 for n in proxies for loopback in LOOPBACK_PROXIES
                 if ipaddress.ip_network(n).version == ipaddress.ip_network(loopback).version):
            warnings.append(f"Dashboard__TrustedAuthProxies={','.join(proxies)} trusts "
                            "loopback: a kubectl port-forward to the dashboard's own port "
                            f"arrives from loopback too and may send {header} as anyone; "
                            "port-forward to the proxy's port, and grant pods/portforward "
                            "only to those who may act as any operator")
    return {"trusted_auth_header": header, "trusted_auth_groups_header": groups_header,
            "trusted_auth_roles": roles, "trusted_auth_default_role": default_role,
            "trusted_auth_proxies": proxies}
