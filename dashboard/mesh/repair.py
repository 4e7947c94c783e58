"""Repairs of a drifted ``__keys`` index: plan them, apply them with compare-and-swap, audit them."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dashboard.mesh import audit
from dashboard.mesh.drift import DriftReport, check_index
from dashboard.mesh.index import (
    MalformedIndex,
    parse_index,
    read_index,
    read_index_entry,
    serialise_index,
    swap_index,
)
from dashboard.mesh.services import Service
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry
from dashboard.stores.errors import Conflict, ProviderError

ACTIONS = ("add-unindexed", "prune-stale", "dedupe", "rebuild")

audit_log = logging.getLogger("dashboard.audit")


class RepairRefused(ProviderError):
    """This repair cannot be done safely (unknown action, malformed index, no listing)."""

    kind = "repair-refused"
    http_status = 409


@dataclass(frozen=True)
class RepairPlan:
    """What a repair would change, computed from a ``DriftReport``; full keys in lists."""

    action: str
    report: DriftReport
    #: full keys the repair adds to the index
    add: list[str]
    #: full keys it removes (dedupe: the duplicated keys, once each)
    remove: list[str]
    #: the index it would write now (inner keys)
    new_entries: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """A short stable hash of (action, add, remove): tells a changed plan from the one shown."""
        payload = json.dumps([self.report.service.prefix, self.action, self.add, self.remove],
                             ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @property
    def changes(self) -> bool:
        if self.report.index_exists and self.report.malformed is not None:
            return True  # a rebuild replaces the unusable value even with no keys
        return self.new_entries != list(self.report.index_entries)

    def to_json(self) -> dict:
        return {
            "prefix": self.report.service.prefix,
            "index_key": self.report.service.index_full_key,
            "action": self.action,
            "add": list(self.add),
            "remove": list(self.remove),
            "changes": self.changes,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class RepairResult:
    """What ``apply_repair`` wrote; ``added``/``removed`` are full keys actually applied."""

    plan: RepairPlan
    #: the index value that was replaced (None when there was none), for download
    previous_value: str | None
    new_value: str
    #: writes tried (0 when there was nothing to write)
    attempts: int
    added: list[str]
    removed: list[str]
    #: full keys whose change a runtime write undid right after the repair (seen on re-read)
    undone: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "prefix": self.plan.report.service.prefix,
            "index_key": self.plan.report.service.index_full_key,
            "action": self.plan.action,
            "added": list(self.added),
            "removed": list(self.removed),
            "attempts": self.attempts,
            "undone": list(self.undone),
        }


def repair_is_atomic(provider: KeyValueProvider) -> bool:
    """Whether the store checks a repair's compare-and-swap atomically (not ToskaStore 0.8 or
    v0.9.1, which ignore conditional writes)."""
    return provider.capabilities().atomic_cas


def _inner(service: Service, keys: Iterable[str]) -> list[str]:
    cut = len(service.prefix)
    return [k[cut:] for k in keys]


def _apply_action(plan: RepairPlan, base: Sequence[str], fresh: Sequence[str]) -> list[str]:
    """The index ``plan.action`` makes of ``fresh``, given the ``base`` the plan was made on.

    Applied to the index as it is at write time, so an entry a mesh service added (or
    removed) since the check survives the repair.
    """
    own = plan.report.service.index_key
    if plan.action == "add-unindexed":
        present = set(fresh)
        result = list(fresh) + [k for k in _inner(plan.report.service, plan.add) if k not in present]
    elif plan.action == "prune-stale":
        gone = set(_inner(plan.report.service, plan.remove))
        result = [k for k in fresh if k not in gone]
    elif plan.action == "dedupe":
        result = list(dict.fromkeys(fresh))
    elif plan.action == "rebuild":
        live = set(plan.new_entries)  # the plan's rebuild: exactly the live keys
        base_set, fresh_set = set(base), set(fresh)
        result = sorted((live - (base_set - fresh_set)) | (fresh_set - base_set))
    else:  # pragma: no cover - plan_repair refuses unknown actions
        raise RepairRefused(f"unknown repair action {plan.action!r}")
    return [k for k in result if k != own]


def plan_repair(
    provider: KeyValueProvider, service: Service, action: str, *,
    report: DriftReport | None = None,
) -> RepairPlan:
    """What ``action`` would do to ``service``'s index; checks the index unless given ``report``."""
    if action not in ACTIONS:
        raise RepairRefused(f"unknown repair action {action!r} (use one of {', '.join(ACTIONS)})",
                            key=service.index_full_key)
    if report is None:
        report = check_index(provider, service)
    if report.malformed is not None and action != "rebuild":
        raise RepairRefused(
            f"the index {service.index_full_key!r} cannot be repaired with {action!r}, only "
            f"rebuilt: {report.malformed}", key=service.index_full_key,
        )
    if action in ("rebuild", "add-unindexed") and not report.unindexed_detectable:
        raise RepairRefused(
            f"{action!r} needs every live key under {service.prefix!r}, and this store "
            f"cannot list them ({report.listing_note or 'no key listing'}); "
            "use prune-stale or dedupe", key=service.index_full_key,
        )
    base = list(report.index_entries)
    own_listed = [service.index_full_key] if service.index_key in base else []
    if action == "add-unindexed":
        add, remove = list(report.unindexed), own_listed
    elif action == "prune-stale":
        add, remove = [], list(report.stale)
    elif action == "dedupe":
        add, remove = [], sorted(set(report.duplicates) | set(own_listed))
    else:
        add, remove = list(report.unindexed), list(report.stale)
    plan = RepairPlan(action, report, add, remove)
    if action == "rebuild":
        live = (set(base) - set(_inner(service, report.stale))) | set(_inner(service, add))
        new_entries = sorted(live - {service.index_key})
    else:
        new_entries = _apply_action(plan, base, base)
    return RepairPlan(action, report, add, remove, new_entries)


def _changed(
    service: Service, action: str, old: Sequence[str], new: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Full keys the write added and removed; for dedupe, removed are the de-duplicated ones."""
    before, after = set(old), set(new)
    removed = before - after
    if action == "dedupe":
        removed |= {k for k, n in Counter(old).items() if n > 1}
    return full_keys(service, after - before), full_keys(service, removed)


def full_keys(service: Service, inner: Iterable[str]) -> list[str]:
    """Inner keys as sorted full keys."""
    return sorted(service.prefix + k for k in inner)


def apply_repair(
    provider: KeyValueProvider, plan: RepairPlan, *, actor: str = "cli", attempts: int = 8,
    before_write: Callable[[str | None], None] | None = None,
) -> RepairResult:
    """Write ``plan`` with compare-and-swap; on a conflict re-read and re-apply the action.

    Each attempt reads the index, applies the plan's action to it (see ``_apply_action``)
    and writes only if the index still has the version just read (``create_only`` when
    there is none). ``before_write`` gets the value about to be replaced before every
    write (e.g. to save a backup; raising stops the repair). Logs one audit line.
    """
    audit.before_write()  # a repair whose entry could not be kept writes nothing
    with audit.in_job():  # one repair, one job on the trail
        return _apply_repair(provider, plan, actor, attempts, before_write)


def _apply_repair(provider: KeyValueProvider, plan: RepairPlan, actor: str, attempts: int,
                  before_write: Callable[[str | None], None] | None) -> RepairResult:
    service = plan.report.service
    key = service.index_full_key
    base = list(plan.report.index_entries)
    if not plan.changes:
        entry = read_index_entry(provider, service)
        value = entry.value if entry is not None else None
        _audit(actor, plan, 0, [], [], before=entry, after=entry, new_value=value)
        return RepairResult(plan, value, value if value is not None else serialise_index(base),
                            0, [], [])
    for attempt in range(1, max(attempts, 1) + 1):
        entry = read_index_entry(provider, service)
        if entry is None:
            if plan.report.index_exists:
                raise Conflict(f"the index {key!r} was deleted since it was checked; check again",
                               store=provider.name, key=key)
            if plan.action != "rebuild":
                raise RepairRefused(f"the service has no index {key!r} to repair", key=key)
            fresh: list[str] = []
            parsed = True
        else:
            try:
                fresh, parsed = parse_index(entry), True
            except MalformedIndex as error:
                if plan.action != "rebuild":
                    raise RepairRefused(f"the index {key!r} is malformed now, only a rebuild "
                                        f"can replace it: {error.message}", key=key) from None
                # nothing to learn from it about concurrent changes: rebuild from the base
                fresh, parsed = base, False
        new = _apply_action(plan, base, fresh)
        if parsed and entry is not None and new == fresh:
            # another writer already made the change: nothing left to write
            _audit(actor, plan, attempt - 1, [], [], before=entry, after=entry,
                   new_value=entry.value)
            return RepairResult(plan, entry.value, entry.value or "", attempt - 1, [], [])
        value = serialise_index(new)
        previous = entry.value if entry is not None else None
        if before_write is not None:
            before_write(previous)
        try:  # the index as written, for the audit trail's new version
            written = swap_index(provider, service, entry, value)
        except Conflict:
            continue
        added, removed = _changed(service, plan.action, fresh if parsed else [], new)
        _audit(actor, plan, attempt, added, removed, before=entry, after=written, new_value=value)
        return RepairResult(plan, previous, value, attempt, added, removed,
                            _undone(provider, service, plan.action, added, removed))
    raise Conflict(
        f"the index {key!r} kept changing while it was repaired; gave up after {attempts} "
        "attempts, nothing was written", store=provider.name, key=key,
    )


def _undone(provider: KeyValueProvider, service: Service, action: str, added: list[str],
            removed: list[str]) -> list[str]:
    """Changes of the repair that the index no longer shows when read again.

    Runtime writes are blind: one that read the index before the repair and writes after
    it puts the old entries back. The store cannot prevent that; the operator is told.
    """
    try:
        current = read_index(provider, service)
    except (MalformedIndex, ProviderError):
        return []
    counts = Counter(current[0]) if current is not None else Counter()
    cut = len(service.prefix)
    # dedupe "removes" the second copy of a key: undone is a key listed twice again
    back = (lambda k: counts[k[cut:]] > 1) if action == "dedupe" else (lambda k: counts[k[cut:]] > 0)
    return sorted([k for k in added if not counts[k[cut:]]] + [k for k in removed if back(k)])


def _audit(actor: str, plan: RepairPlan, attempts: int, added: list[str], removed: list[str],
           *, before: Entry | None, after: Entry | None, new_value: str | None) -> None:
    """One ``dashboard.audit`` line, and an entry in the app's audit trail (``/audit``)."""
    audit.repair(actor, plan, attempts, added, removed, before=before, after=after,
                 new_value=new_value)
