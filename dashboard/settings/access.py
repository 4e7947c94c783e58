"""Who may do what where: ``Dashboard:Access:N``, ``Dashboard:Masking:N``,
``Dashboard:Elevation:*`` and ``Dashboard:Environment:*``.

Read by ``load.load_settings`` into ``DashboardSettings``; the decisions themselves are made
by ``dashboard.mesh.access``. A list in these settings is comma-separated text, or an array
(``Dashboard__Access__0__Groups__0``) for a name that holds a comma.

A prefix is a service prefix: it ends at the delimiter (``payments`` is read as
``payments:``), so a rule for ``test:`` never reaches ``test2:`` keys.
"""

from __future__ import annotations

import re
from typing import Any

from dashboard.settings.errors import Path
from dashboard.settings.model import AccessRule, MaskingRule
from dashboard.settings.sources import DB, _Reader

ACCESS_ROLES = ("none", "viewer", "editor")
#: ``#rgb`` or ``#rrggbb``, or a CSS colour name: the environment band's colour is written
#: into a stylesheet, so nothing else is accepted
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
NAMED_COLOURS = {
    "red": "#b42318", "orange": "#c4320a", "amber": "#b54708", "yellow": "#facc15",
    "green": "#067647", "teal": "#0e7490", "blue": "#2457c5", "purple": "#6941c6",
    "pink": "#c11574", "gray": "#475467", "grey": "#475467", "black": "#111827",
}


def text_list(reader: _Reader, path: Path) -> list[str]:
    """A list setting: an array, or one comma-separated string; blanks dropped."""
    indices = reader.raw.indices(path)
    if indices:
        texts = [reader.string((*path, index)) or "" for index in indices]
    else:
        texts = (reader.string(path) or "").split(",")
    return [text.strip() for text in texts if text.strip()]


def _prefixes(reader: _Reader, path: Path) -> tuple[str, ...]:
    prefixes = []
    for text in text_list(reader, path):
        prefix = text if text.endswith(":") else text + ":"
        if prefix == ":" or "*" in prefix:
            raise reader.fail(path, text, "must name service prefixes (e.g. payments:), "
                              "no patterns")
        prefixes.append(prefix)
    if not prefixes:
        raise reader.fail(path, reader.value(path), "is missing (comma-separated service "
                          "prefixes, e.g. payments:,billing:)")
    return tuple(dict.fromkeys(prefixes))


def _access_rules(reader: _Reader) -> tuple[AccessRule, ...]:
    rules = []
    for index in reader.raw.indices((*DB, "Access")):
        base: Path = (*DB, "Access", index)
        role_path: Path = (*base, "Role")
        role = (reader.string(role_path) or "").strip().lower()
        if role not in ACCESS_ROLES:
            raise reader.fail(role_path, reader.value(role_path), "must be none, viewer or editor")
        users = frozenset(text_list(reader, (*base, "Users")))
        groups = frozenset(group.lower() for group in text_list(reader, (*base, "Groups")))
        if not users and not groups:
            raise reader.fail((*base, "Users"), None, "is missing: a rule names the operators "
                              "it is for (Users and/or Groups)")
        rules.append(AccessRule(prefixes=_prefixes(reader, (*base, "Prefixes")), role=role,
                                users=users, groups=groups,
                                stores=tuple(text_list(reader, (*base, "Stores")))))
    return tuple(rules)


def _masking_rules(reader: _Reader) -> tuple[MaskingRule, ...]:
    rules = []
    for index in reader.raw.indices((*DB, "Masking")):
        base: Path = (*DB, "Masking", index)
        fields = frozenset(text_list(reader, (*base, "JsonFields")))
        if not fields:
            raise reader.fail((*base, "JsonFields"), None, "is missing (JSON property names, "
                              "e.g. email,token,password)")
        rules.append(MaskingRule(prefixes=_prefixes(reader, (*base, "Prefixes")),
                                 json_fields=fields))
    return tuple(rules)


def _colour(reader: _Reader, path: Path) -> str | None:
    text = (reader.string(path) or "").strip()
    if not text:
        return None
    if _HEX_COLOUR.fullmatch(text):
        return text.lower()
    if text.lower() in NAMED_COLOURS:
        return NAMED_COLOURS[text.lower()]
    raise reader.fail(path, text, "must be #rrggbb, #rgb or one of " + ", ".join(NAMED_COLOURS))


def access_settings(reader: _Reader, warnings: list[str]) -> dict[str, Any]:
    """The access, masking, elevation and environment fields of ``DashboardSettings``."""
    rules = _access_rules(reader)
    required = reader.boolean((*DB, "Elevation", "Required"), False)
    max_minutes = reader.integer((*DB, "Elevation", "MaxMinutes"), 60, minimum=1)
    if max_minutes > 24 * 60:
        raise reader.fail((*DB, "Elevation", "MaxMinutes"), max_minutes,
                          "must be at most 1440 (a day)")
    name = (reader.string((*DB, "Environment", "Name")) or "").strip() or None
    colour = _colour(reader, (*DB, "Environment", "Color"))
    if colour and not name:
        warnings.append("Dashboard__Environment__Color is ignored: "
                        "Dashboard__Environment__Name is not set")
    return {"access_rules": rules, "masking_rules": _masking_rules(reader),
            "elevation_required": required, "elevation_max_minutes": max_minutes,
            "environment_name": name, "environment_color": colour if name else None}
