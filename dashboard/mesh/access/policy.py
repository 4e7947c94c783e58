"""Access per service prefix: which role an operator has on a key, and what is masked.

The rules (``Dashboard:Access:N``) restrict the prefixes they name: only the operators
(by name or group) a rule names reach a restricted prefix, with the highest role their
rules give there. Where restricted prefixes nest (``pay:`` and ``pay:card:``), the longest
one a key falls under decides. A key under no restricted prefix follows the operator's
global role. Writing also needs an active elevation where ``Dashboard:Elevation:Required``.

Masking (``Dashboard:Masking:N``) hides JSON properties from operators who may read a key
but not write it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from dashboard.settings.model import AccessRule, DashboardSettings, MaskingRule

ROLE_RANK = {"none": 0, "viewer": 1, "editor": 2}
#: what a masked property shows instead of its value
MASK = "••••"


@dataclass(frozen=True)
class Identity:
    """Who asks: an operator's name, global role and groups, and whether they elevated."""

    name: str
    #: "viewer", "editor" (or "none" for an SSO operator in no mapped group)
    role: str
    #: lower-cased
    groups: frozenset[str] = frozenset()
    #: the reason of an active elevation; None when not elevated
    elevation_reason: str | None = None
    #: a CLI or background job acting for the store's owner: every rule is moot
    unrestricted: bool = False


@dataclass(frozen=True)
class AccessPolicy:
    """The configured rules, answering per key and per prefix for one ``Identity``."""

    rules: tuple[AccessRule, ...] = ()
    masking: tuple[MaskingRule, ...] = ()
    elevation_required: bool = False
    #: the store these decisions are for (rules naming other stores do not apply)
    store: str = ""
    #: restricted prefixes, longest first (computed)
    restricted: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        rules = tuple(rule for rule in self.rules if not rule.stores or self.store in rule.stores)
        object.__setattr__(self, "rules", rules)
        prefixes = {prefix for rule in rules for prefix in rule.prefixes}
        object.__setattr__(self, "restricted", tuple(sorted(prefixes, key=len, reverse=True)))

    @classmethod
    def from_settings(cls, dashboard: DashboardSettings, store: str = "") -> AccessPolicy:
        return cls(dashboard.access_rules, dashboard.masking_rules,
                   dashboard.elevation_required, store)

    @property
    def active(self) -> bool:
        """Whether any rule or masking applies (else every answer is the global role's)."""
        return bool(self.restricted or self.masking)

    # -- roles ---------------------------------------------------------------------------

    def restricting_prefix(self, key: str) -> str | None:
        """The longest restricted prefix ``key`` falls under, or None."""
        for prefix in self.restricted:
            if key.startswith(prefix):
                return prefix
        return None

    def _rule_role(self, who: Identity, prefix: str) -> str:
        granted = [rule.role for rule in self.rules if prefix in rule.prefixes
                   and (who.name in rule.users or who.groups & rule.groups)]
        return max(granted, key=ROLE_RANK.__getitem__, default="none")

    def role_for(self, who: Identity, key: str) -> str:
        """The operator's role on ``key`` (or on a prefix, read as the keys under it)."""
        if who.unrestricted:
            return "editor"
        restricted = self.restricting_prefix(key)
        return who.role if restricted is None else self._rule_role(who, restricted)

    def may_read(self, who: Identity, key: str) -> bool:
        return ROLE_RANK.get(self.role_for(who, key), 0) >= ROLE_RANK["viewer"]

    def may_edit(self, who: Identity, key: str) -> bool:
        """Editor on ``key``, elevated or not."""
        return self.role_for(who, key) == "editor"

    def may_write(self, who: Identity, key: str) -> bool:
        """May change ``key`` now: editor there, and elevated where elevation is required."""
        if who.unrestricted:
            return True
        return self.may_edit(who, key) and (
            not self.elevation_required or who.elevation_reason is not None)

    def hidden_under(self, who: Identity, prefix: str) -> tuple[str, ...]:
        """Restricted prefixes inside ``prefix`` (or equal to it) ``who`` may not read."""
        return tuple(p for p in self.restricted
                     if p.startswith(prefix) and not self.may_read(who, p))

    def readable_anywhere(self, who: Identity) -> bool:
        """Whether ``who`` reads any key at all (a global viewer, or named by a rule)."""
        return ROLE_RANK.get(who.role, 0) >= 1 or any(
            self.may_read(who, prefix) for prefix in self.restricted)

    def writable_anywhere(self, who: Identity) -> bool:
        """Whether ``who`` is an editor somewhere (elevated or not)."""
        return who.role == "editor" or any(
            self.may_edit(who, prefix) for prefix in self.restricted)

    # -- masking -------------------------------------------------------------------------

    def masked_fields(self, who: Identity, key: str) -> frozenset[str]:
        """JSON property names hidden from ``who`` in ``key``'s value (empty: none)."""
        if not self.masking or self.may_write(who, key):
            return frozenset()
        fields: set[str] = set()
        for rule in self.masking:
            if any(key.startswith(prefix) for prefix in rule.prefixes):
                fields |= rule.json_fields
        return frozenset(fields)


def mask_json(text: str, fields: Iterable[str]) -> tuple[str, bool]:
    """``text`` with the values of properties named in ``fields`` replaced by ``MASK``, at any
    depth; (text, changed). Text that is not JSON is returned as it is: it has no properties.
    """
    names = frozenset(fields)
    if not names:
        return text, False
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text, False
    masked, changed = mask_structure(parsed, names)
    if not changed:
        return text, False
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":")), True


def mask_structure(value, names: frozenset[str]):
    """A copy of a parsed JSON value (or a Redis hash as a dict) with the properties named in
    ``names`` masked at any depth; (copy, changed). Iterative: a deeply nested value cannot
    exhaust the recursion limit."""

    def copy(node):
        return dict(node) if isinstance(node, dict) else list(node) if isinstance(node, list) \
            else node

    changed = False
    root = copy(value)
    stack = [root]
    while stack:
        node = stack.pop()
        slots = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for slot, item in slots:
            if isinstance(node, dict) and slot in names:
                node[slot] = MASK
                changed = True
            elif isinstance(item, dict | list):
                node[slot] = copy(item)
                stack.append(node[slot])
    return root, changed
