"""Applying an import's plan (step 3, after ``import_file.parse`` and ``import_plan``).

``apply``: new keys are created create-only and changed keys replaced only if they still
hold what the plan saw, so a key changed between plan and confirm is never clobbered: it
is reported. A store error stops the import there: the result (``ImportResult``) lists the
keys written, the key that failed and the keys not attempted; an error the dashboard did
not expect is reported the same way ("unknown" for that key), never as a crash.

The service index (``__keys``): keys of a service whose index applies
(``writes.index_applies``: configured as kept, or existing) are added to it the way the
runtime adds them (read, add, write back; here with compare-and-swap), once per service
after its keys are written instead of once per key. A service's index key found in the
file is not written as a value: the store's index receives the imported keys (and is
created when the file had one and the store has none).

``audit_hooks`` gives ``apply`` one audit entry per write (and per unconfirmed write), as
it happens: its "before" is the version and size the plan read (``PlannedKey``). A key
handed to its service's index update says index ``batched`` (the update comes after the
service's keys, so its outcome is not known yet); each service's update then makes one
entry of its own, on the index key, with its true status (updated, created, unchanged,
skipped, failed, unknown) and the keys it added (``audit.import_index``).

Apart from the plan because this is the only step that writes: every write goes through
``mesh.writes`` (or ``provider.restore``), against the tokens the plan kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dashboard import mesh
from dashboard.mesh import audit as audit_trail
from dashboard.mesh import writes
from dashboard.mesh.transfer.import_plan import Plan, PlannedKey, ttl_for
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.errors import Conflict, ProviderError, WriteUnknown
from dashboard.stores.mutations import NO_TTL, TtlChange

_log = logging.getLogger(__name__)

@dataclass
class ImportResult:
    """What an import did: exactly which keys were written and which were not."""

    written: list[str] = field(default_factory=list)
    #: (key, why): changed or created meanwhile, so not written
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    #: (key, why): skipped when writing (exists in skip-existing, expired meanwhile)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: (key, store error): the write that stopped the import
    failed: tuple[str, str] | None = None
    #: the store did not confirm this write (it may still land)
    unconfirmed: tuple[str, str] | None = None
    #: keys after the failure, never attempted (so not written)
    not_attempted: list[str] = field(default_factory=list)
    #: one sentence per service index updated (or not)
    index: list[str] = field(default_factory=list)
    index_failed: bool = False

    @property
    def complete(self) -> bool:
        """Everything planned was written (or had become unnecessary)."""
        return (self.failed is None and self.unconfirmed is None and not self.conflicts
                and not self.index_failed)

    @property
    def not_written(self) -> list[str]:
        """Every planned key that is certainly not written: conflicts, the failed key and
        the keys not attempted (skipped keys are listed apart)."""
        return [*(k for k, _ in self.conflicts), *([self.failed[0]] if self.failed else []),
                *self.not_attempted]

    @property
    def unknown(self) -> list[str]:
        """Keys whose write the store did not confirm: they may or may not be written."""
        return [self.unconfirmed[0]] if self.unconfirmed else []

    def summary(self) -> str:
        """One sentence stating exactly what was written, not written and unknown."""
        parts = [f"Wrote {len(self.written)} key(s)"]
        if self.unknown:
            parts.append(f"unknown whether {len(self.unknown)} key(s) were written (the store "
                         "did not confirm)")
        if self.not_written:
            parts.append(f"{len(self.not_written)} key(s) not written")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "; ".join(parts) + "."

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete, "written": self.written,
            "conflicts": [{"key": k, "reason": r} for k, r in self.conflicts],
            "skipped": [{"key": k, "reason": r} for k, r in self.skipped],
            "failed": None if self.failed is None else {"key": self.failed[0],
                                                         "error": self.failed[1]},
            "unconfirmed": None if self.unconfirmed is None else {
                "key": self.unconfirmed[0], "error": self.unconfirmed[1]},
            "not_attempted": self.not_attempted, "not_written": self.not_written,
            "unknown": self.unknown, "index": self.index,
        }


#: called after each write that happened: (key, its WriteResult, its plan)
Audit = Callable[[str, writes.WriteResult, PlannedKey], None]
#: called after each service's index update: (service, status, keys added, the sentence)
IndexAudit = Callable[[mesh.Service, str, list[str], str], None]


def apply(
    provider: KeyValueProvider, settings, plan: Plan, *, audit: Audit | None = None,
    unconfirmed: Callable[[str, str, PlannedKey], None] | None = None,
    index_audit: IndexAudit | None = None,
) -> ImportResult:
    """Write the plan's new and changed keys (see the module docstring); ``index_audit``
    defaults to ``audit.index_updated`` where ``audit`` has one (``audit_hooks``)."""
    if plan.refused:
        raise ValueError(plan.refused)
    audit_trail.before_write()  # an import whose entries could not be kept writes nothing
    with audit_trail.in_job():  # one import, one job on the trail (undone as one)
        return _apply(provider, settings, plan, audit, unconfirmed, index_audit)


def _apply(provider: KeyValueProvider, settings, plan: Plan, audit: Audit | None,
           unconfirmed: Callable[[str, str, PlannedKey], None] | None,
           index_audit: IndexAudit | None) -> ImportResult:
    if index_audit is None:
        index_audit = getattr(audit, "index_updated", None)
    result = ImportResult()
    pending = plan.writes
    indexes: dict[str, tuple[mesh.Service, list[str]]] = {}
    applies: dict[str, bool] = {}
    try:
        for position, planned in enumerate(pending):
            try:
                outcome = _write_one(provider, settings, plan, planned)
            except Conflict as conflict:
                reason = _conflict_reason(planned, conflict)
                if plan.mode == "skip-existing" and planned.action == "new":
                    result.skipped.append((planned.key, reason))
                else:
                    result.conflicts.append((planned.key, reason))
                continue
            except WriteUnknown as unknown:
                result.unconfirmed = (planned.key, _unconfirmed_reason(unknown))
                result.not_attempted = [k.key for k in pending[position + 1:]]
                if unconfirmed is not None:
                    unconfirmed(planned.key, unknown.message, planned)
                break
            except ProviderError as error:
                if error.maybe_written:  # a timeout mid-write: it may have landed
                    result.unconfirmed = (planned.key, error.message)
                    if unconfirmed is not None:
                        unconfirmed(planned.key, error.message, planned)
                else:
                    result.failed = (planned.key, error.message)
                result.not_attempted = [k.key for k in pending[position + 1:]]
                break
            except Exception as error:  # noqa: BLE001 - reported as what it is, never a crash
                # a defect the plan did not catch: whether the store got the write is unknown
                _log.exception("import: unexpected error writing %r", planned.key)
                message = (f"an unexpected error in the dashboard ({type(error).__name__}: "
                           f"{error}); read the key to know whether it was written")
                result.unconfirmed = (planned.key, message)
                result.not_attempted = [k.key for k in pending[position + 1:]]
                if unconfirmed is not None:
                    unconfirmed(planned.key, message, planned)
                break
            if isinstance(outcome, str):
                result.skipped.append((planned.key, outcome))
                continue
            result.written.append(planned.key)
            batched = None
            try:
                batched = _note_index(provider, settings, planned.key, indexes, applies, plan)
            finally:  # the write happened: it is audited even if its index could not be told
                if audit is not None:
                    audit(planned.key, _batched(outcome, batched), planned)
    finally:
        _update_indexes(provider, plan, indexes, result, index_audit)
    return result


def _batched(outcome: writes.WriteResult, index_key: str | None) -> writes.WriteResult:
    """``outcome`` as audited: a key handed to its service's index update says so."""
    if index_key is None:
        return outcome
    return replace(outcome, index=writes.IndexOutcome("batched", (  # type: ignore[arg-type]
        f"to be added to the index {index_key!r} with the service's other imported keys, "
        "after them: see that index's entry")))


def _unconfirmed_reason(unknown: WriteUnknown) -> str:
    """What the store answered for an unconfirmed write, without the sentence of a single
    edit's page ("Nothing else was changed."), which an import's result must not repeat."""
    cause = unknown.__cause__
    if isinstance(cause, ProviderError):
        return (f"the store did not confirm the write ({cause.message}) and reading the key "
                "back does not show it: it may still land, or may not")
    return unknown.message.replace(" Nothing else was changed.", "")


def _conflict_reason(planned: PlannedKey, conflict: Conflict) -> str:
    if planned.action == "new":
        return "created by someone else after the plan; left as it is"
    if conflict.current is None:
        return "deleted after the plan; not recreated"
    return "changed after the plan; left as it is"


def _write_one(provider: KeyValueProvider, settings, plan: Plan,
               planned: PlannedKey) -> writes.WriteResult | str:
    """Write one key; a string when it was not written after all (expired meanwhile)."""
    item = planned.item
    ttl_ms, expired = ttl_for(item, plan.ttl_policy, now_ms())
    if expired:
        return expired
    create = planned.action == "new"
    text = item.text
    as_text = item.type == "string" and text is not None and planned.current_type in (
        None, "string")
    if as_text and item.data is None:
        ttl = TtlChange.set(ttl_ms) if ttl_ms is not None else NO_TTL
        assert text is not None
        if create:
            return writes.create(provider, settings, item.key, text, ttl=ttl,
                                 update_index=False)
        return writes.replace(provider, settings, item.key, text, ttl=ttl,
                              expected=planned.token or "", update_index=False)
    entry = provider.restore(item, ttl_ms=ttl_ms, create_only=create,
                             expected=None if create else planned.token)
    return writes.WriteResult(item.key, entry, writes.IndexOutcome("not-kept"))


def _note_index(provider, settings, key: str, indexes, applies, plan: Plan) -> str | None:
    """Hand ``key`` to its service's index update if that index applies: its index key."""
    service = mesh.service_for_key(settings, key)
    if service is None or key == service.index_full_key:
        return None
    if service.prefix not in applies:
        keeps = writes.index_applies(provider, settings, key)[1]
        applies[service.prefix] = keeps or (
            service.keeps_index is not False and service.index_full_key in plan.file_indexes)
    if applies[service.prefix]:
        indexes.setdefault(service.prefix, (service, []))[1].append(key[len(service.prefix):])
        return service.index_full_key
    return None


def _update_indexes(provider, plan: Plan, indexes, result: ImportResult,
                    index_audit: IndexAudit | None = None) -> None:
    """Add the written keys to their services' indexes: one compare-and-swap per service
    (each audited with its status by ``index_audit``)."""
    for service, inner in indexes.values():
        status, sentence = _update_index(provider, plan, service, inner, result)
        if index_audit is not None:
            index_audit(service, status, inner, sentence)


def _update_index(provider, plan: Plan, service: mesh.Service, inner: list[str],
                  result: ImportResult) -> tuple[str, str]:
    """(status as in ``writes.IndexStatus``, the sentence) of one service's index update."""
    create = bool(service.keeps_index) or service.index_full_key in plan.file_indexes
    where = service.index_full_key
    try:
        status = mesh.update_index(provider, service, add=inner, create_missing=create)
    except mesh.MalformedIndex as error:
        sentence = f"The index {where!r} is malformed and was left as it is: {error.message}"
        status = "failed"
    except WriteUnknown as error:  # the update went unanswered: it may be there, or not
        sentence = (f"{error.message} It should list the {len(inner)} written key(s); if it "
                    "does not, repair it from the index page (add-unindexed).")
        status = "unknown"
    except ProviderError as error:
        sentence = (f"The index {where!r} could not be updated ({error.message}): "
                    f"{len(inner)} written key(s) are not in it; repair it from the index "
                    "page (add-unindexed)")
        status = "failed"
    else:
        sentence = {
            "created": f"Created the index {where!r} with the {len(inner)} imported key(s).",
            "updated": f"Added the imported keys to the index {where!r} ({len(inner)} written).",
            "missing": f"The service has no index {where!r}; none was created.",
        }.get(status, "")
        if status == "missing":
            status = "skipped"
    if status in ("failed", "unknown"):
        result.index_failed = True
    if sentence:
        result.index.append(sentence)
    return status, sentence


class AuditHooks:
    """``apply``'s audit callbacks for ``operator``: the instance is ``audit`` (one entry
    per write), ``unconfirmed`` one per unconfirmed write, ``index_updated`` one per
    service's index update (see the module docstring)."""

    def __init__(self, operator: str) -> None:
        self.operator = operator

    def __call__(self, key: str, result: writes.WriteResult, planned: PlannedKey) -> None:
        before = None
        if planned.action == "changed" and planned.current_value is not None:
            # what the plan read and compared: the value this write replaced
            before = Entry(key=key, value=planned.current_value,
                           version=planned.current_version,
                           expires_at_ms=planned.current_expires_at_ms)
        audit_trail.key_write("import", self.operator, key, result=result, before=before,
                              value=planned.item.text, expected=planned.token,
                              old_version=planned.current_version,
                              old_size=planned.current_size)

    def unconfirmed(self, key: str, message: str, planned: PlannedKey) -> None:
        audit_trail.unconfirmed("import", self.operator, key, message, value=planned.item.text,
                                old_version=planned.current_version,
                                old_size=planned.current_size)

    def index_updated(self, service: mesh.Service, status: str, added: list[str],
                      sentence: str) -> None:
        audit_trail.import_index(self.operator, service.prefix, service.index_full_key,
                                 status=status, added=added, message=sentence)


def audit_hooks(operator: str) -> tuple[AuditHooks, Callable[[str, str, PlannedKey], None]]:
    """``apply``'s ``audit`` and ``unconfirmed`` callbacks (``AuditHooks``): one audit
    entry per write, and one per service's index update (``audit.index_updated``)."""
    hooks = AuditHooks(operator)
    return hooks, hooks.unconfirmed
