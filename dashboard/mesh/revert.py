"""Undo one audited write: put the key back in the entry's "before" state, as a conditional
write, only if the key is still in the entry's "after" state.

- a changed value gets its old value back, with the expiry it had (what is left of it now);
- a created key is deleted; a deleted key is recreated (with the TTL it had left, or none);
- the ``__keys`` index follows (through ``mesh.writes``, the one way to write).

If the key changed since the entry (another write, the runtime's or a person's), nothing is
written: the plan says so, with the entry's before and after and what the key holds now,
and ``apply_revert(force=True)`` restores anyway (conditional on what the operator saw
then). What cannot be put back is refused with the reason: a value the trail did not keep
(``Dashboard:AuditValues``, ``AuditValueBytes``), a Redis hash, list, set or sorted set, an
import's overwrite whose replaced value the plan did not keep (over 64 KiB, or past the
first 16 MiB of one import: ``import_plan.BEFORE_BYTES``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from dashboard.mesh import audit, writes
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.errors import Conflict, InvalidRequest, NotFound, ProviderError
from dashboard.stores.mutations import NO_TTL, TtlChange

#: actions whose entries describe one key's write, and so can be undone
REVERTIBLE = ("create", "edit", "delete", "import", "ttl", "revert", "repair")

State = Literal["as-after", "changed", "gone", "appeared"]


class CannotRevert(InvalidRequest):
    """The entry cannot be undone (its before-state was not kept, or is not a key write)."""


@dataclass(frozen=True)
class RevertPlan:
    """What undoing ``entry`` would do, against the key as it is now (``current``)."""

    entry: dict[str, Any]
    current: Entry | None
    #: "as-after": the key is still what the entry left (the undo is safe); "changed",
    #: "gone", "appeared": someone wrote it since (forcing is the operator's choice)
    state: State
    #: "put" the old value back, "delete" a created key, "recreate" a deleted key
    action: Literal["put", "delete", "recreate"]

    @property
    def key(self) -> str:
        return self.entry["key"]

    @property
    def safe(self) -> bool:
        return self.state == "as-after"

    @property
    def old_value(self) -> str | None:
        return self.entry.get("old_value")

    def ttl(self, now: int | None = None) -> TtlChange:
        """The expiry the key had before: what is left of it now, or none."""
        before = self.entry.get("before") or {}
        expires = before.get("expires_at_ms")
        if expires is None:
            return NO_TTL
        left = int(expires) - (now_ms() if now is None else now)
        return TtlChange.set(max(left, 1))

    def describe(self) -> str:
        """The plan in words, for the confirmation page and the CLI."""
        what = {"put": "put the value before back", "delete": "delete the key it created",
                "recreate": "recreate the key it deleted"}[self.action]
        if self.safe:
            return f"Undo: {what} (the key is still as the entry left it)."
        since = {"changed": "its value changed", "gone": "it was deleted",
                 "appeared": "it was created again"}[self.state]
        return (f"Not undone: {self.key!r} changed since this entry ({since}). Restoring "
                f"anyway would {what} over what it holds now.")


def _state_of(entry: dict[str, Any], current: Entry | None) -> State:
    after = entry.get("after") or {}
    if not after.get("exists", entry.get("action") != "delete"):
        return "as-after" if current is None else "appeared"
    if current is None:
        return "gone"
    digest = after.get("digest")
    if digest and current.content_token == digest:
        return "as-after"
    version = entry.get("new_version")
    if version is not None and current.version == version and current.lease_id is None:
        return "as-after"
    return "changed"


def plan_revert(provider: KeyValueProvider, entry: dict[str, Any]) -> RevertPlan:
    """What undoing ``entry`` would do now; ``CannotRevert`` with the reason when it can't."""
    action = entry.get("action")
    key = entry.get("key")
    if action not in REVERTIBLE or not key:
        raise CannotRevert(f"a {action or 'this'} entry is not a write of one key: nothing to "
                           "undo (a repair or an import is undone as a job)")
    before = entry.get("before")
    if before is None or before.get("partial"):
        raise CannotRevert("the trail did not keep this key's state before the write "
                           "(an import keeps replaced values up to 64 KiB each, 16 MiB in all; "
                           "this one only as its version and size): it cannot be put back")
    if (before.get("type") or "string") != "string":
        raise CannotRevert(f"the key held a Redis {before['type']}: the trail keeps string "
                           "values only")
    if before.get("exists") and entry.get("old_value") is None:
        why = ("it was longer than Dashboard__AuditValueBytes"
               if entry.get("old_value_omitted") else "Dashboard__AuditValues is off")
        raise CannotRevert(f"the value before this write was not kept ({why}): it cannot be "
                           "put back")
    try:
        current: Entry | None = provider.get(key)
    except NotFound:
        current = None
    if not before.get("exists"):
        kind: Literal["put", "delete", "recreate"] = "delete"
    elif current is None or not (entry.get("after") or {}).get("exists", True):
        kind = "recreate"
    else:
        kind = "put"
    return RevertPlan(entry, current, _state_of(entry, current), kind)


def apply_revert(provider: KeyValueProvider, settings, plan: RevertPlan, *, operator: str,
                 force: bool = False, seen: str | None = None) -> writes.WriteResult:
    """Undo as planned: conditional on the key being as the entry left it, or, with
    ``force``, as the operator saw it when they confirmed (``seen``: its token then, or
    "" for a key that was absent). ``Conflict`` when the key moved meanwhile."""
    if not plan.safe and not force:
        raise CannotRevert(plan.describe())
    current = plan.current
    expected = seen if force and seen else (current.token if current is not None else None)
    if plan.action == "delete":
        if current is None:
            raise CannotRevert(f"{plan.key!r} is already gone: nothing to undo")
        result = writes.delete(provider, settings, plan.key, expected=expected)
    elif current is None:
        result = writes.create(provider, settings, plan.key, plan.old_value or "",
                               ttl=plan.ttl())
    else:
        result = writes.replace(provider, settings, plan.key, plan.old_value or "",
                                ttl=plan.ttl(), expected=expected)
    audit.key_write("revert", operator, plan.key, result=result, before=current,
                    value=plan.old_value if plan.action != "delete" else None,
                    ttl="restored", extra={"reverts": plan.entry.get("id"), "forced": not plan.safe})
    return result


# --------------------------------------------------------------------------- a whole job

def is_index_update(entry: dict[str, Any]) -> bool:
    """An import's update of a service's index: it follows its keys' undo, not undone itself."""
    return entry.get("action") == "import" and "added_count" in (entry.get("index") or {})


@dataclass
class JobReport:
    """What undoing a job did, key by key: (key, outcome, detail), outcome one of
    ``reverted``, ``changed`` (the key moved since: not written), ``failed``."""

    job: str
    undo_job: str = ""
    results: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        counts = {"reverted": 0, "changed": 0, "failed": 0}
        for _, outcome, _ in self.results:
            counts[outcome] += 1
        return counts


def revert_job(provider: KeyValueProvider, settings, job: str,
               entries: Iterable[dict[str, Any]], *, operator: str,
               on_progress: Callable[[JobReport], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> JobReport:
    """Undo every key write of ``job`` (``entries``: its entries, newest first, so that two
    writes of one key unwind in order), each with ``apply_revert``'s rule: a key changed
    since is reported and left alone. The undo is a job of its own on the trail."""
    report = JobReport(job)
    audit.before_write()
    with audit.in_job() as undo_job:
        report.undo_job = undo_job
        for entry in entries:
            if cancelled is not None and cancelled():
                break
            if is_index_update(entry) or not entry.get("key"):
                continue
            key = entry["key"]
            try:
                plan = plan_revert(provider, entry)
                if not plan.safe:
                    report.results.append((key, "changed", plan.describe()))
                else:
                    apply_revert(provider, settings, plan, operator=operator)
                    report.results.append((key, "reverted", plan.action))
            except (CannotRevert, Conflict) as error:
                outcome = "changed" if isinstance(error, Conflict) else "failed"
                report.results.append((key, outcome, error.message))
            except ProviderError as error:
                report.results.append((key, "failed", error.message))
            if on_progress is not None:
                on_progress(report)
    return report
