"""The audit trail's entries: who wrote, deleted or repaired what, when, from which
version to which.

Each write and repair makes one entry, logged as one line on ``dashboard.audit`` (with
structured fields for JSON logs, never the values) and handed to every delivery registered
with ``deliver_to``: the web app registers its journal (``/audit``) and write counter
(``web.audit_journal``); a writing command (import, repair-index) registers the shared
journal for as long as it runs (``delivering``, from ``cli.audit``) when
``Dashboard:SessionStorage`` is a Redis (``mesh.audit_journal``).

An import audits each key when it is written (``key_write``, with the version and size the
plan read as its "before": ``import_apply.audit_hooks``). A service's index is updated once
after that service's keys, so a key's entry cannot know the index's outcome: it says
``batched`` (the key was handed to its service's index update), and the update makes an
entry of its own (``import_index``: action ``import`` on the index key, with its status
and the keys it added). A key whose service keeps no index says ``not-kept``.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry
from dashboard.stores.errors import ProviderError

if TYPE_CHECKING:
    from dashboard.mesh.repair import RepairPlan
    from dashboard.mesh.writes import WriteResult

audit_log = logging.getLogger("dashboard.audit")
#: index keys listed in a repair's entry (the counts are always complete)
KEYS_CAP = 100
_HOST = socket.gethostname()


#: what an entry is handed to after its log line: (entry, old value, new value)
Delivery = Callable[[dict[str, Any], "str | None", "str | None"], None]
_deliveries: list[Delivery] = []
#: checks run before every write: each raises ``AuditUnavailable`` when the entry the write
#: will make could not be kept (the journal's storage does not answer)
_gates: list[Callable[[], None]] = []


class AuditUnavailable(ProviderError):
    """The audit trail cannot keep an entry now: the write is not made."""

    kind = "audit-unavailable"
    http_status = 503


def require(gate: Callable[[], None]) -> None:
    """Run ``gate`` before every later write (the web's journal); once."""
    if gate not in _gates:
        _gates.append(gate)


@contextmanager
def requiring(gate: Callable[[], None]) -> Iterator[None]:
    """Run ``gate`` before the writes made inside the block (a command's journal)."""
    added = gate not in _gates
    require(gate)
    try:
        yield
    finally:
        if added:
            _gates.remove(gate)


def before_write() -> None:
    """Refuse a write whose audit entry could not be kept (``AuditUnavailable``): every write
    path (key writes, imports, repairs, and what later issues add) calls this first."""
    for gate in list(_gates):
        gate()


#: the elevation reason the writes of this request (or command) are made under
_REASON: ContextVar[str | None] = ContextVar("audit_reason", default=None)


def set_reason(reason: str | None) -> Token:
    """Later entries of this context carry ``reason`` (an elevation's, a CLI ``--reason``);
    hand the token to ``reset_reason`` when the request or command ends."""
    return _REASON.set(reason)


def reset_reason(token: Token) -> None:
    _REASON.reset(token)


#: the job (an import, a repair, later a bulk job or an undo) the entries belong to
_JOB: ContextVar[str | None] = ContextVar("audit_job", default=None)


@contextmanager
def in_job(job: str | None = None) -> Iterator[str]:
    """Entries made inside the block belong to one job (its id, new unless given): an
    import or a repair is one job on the trail, undone as one (``/audit/revert?job=``)."""
    job_id = job or uuid.uuid4().hex[:16]
    token = _JOB.set(job_id)
    try:
        yield job_id
    finally:
        _JOB.reset(token)


@contextmanager
def acting_because(reason: str | None) -> Iterator[None]:
    """Entries made inside the block carry ``reason``."""
    token = set_reason(reason)
    try:
        yield
    finally:
        reset_reason(token)


def deliver_to(delivery: Delivery) -> None:
    """Hand every later entry to ``delivery`` too (the web's journal and metrics); once."""
    if delivery not in _deliveries:
        _deliveries.append(delivery)


@contextmanager
def delivering(delivery: Delivery) -> Iterator[None]:
    """Hand the entries made inside the block to ``delivery`` too (a command's journal)."""
    added = delivery not in _deliveries
    deliver_to(delivery)
    try:
        yield
    finally:
        if added:
            _deliveries.remove(delivery)


# --------------------------------------------------------------------------- entries


def _size(value: str | None) -> int | None:
    return None if value is None else len(value.encode("utf-8", "surrogatepass"))


def _version_of(token: str | None) -> int | None:
    """The version a ``v<N>`` token names (what a conditional delete compared)."""
    if token and token.startswith("v") and token[1:].isdigit():
        return int(token[1:])
    return None


def _record(entry: dict[str, Any], message: str, *args: Any,
            level: int = logging.INFO, old_value: str | None = None,
            new_value: str | None = None) -> dict[str, Any]:
    """Log ``entry`` as one ``dashboard.audit`` line and hand it to every delivery."""
    now = time.time()
    entry = {"id": uuid.uuid4().hex[:16], "ts": int(now * 1000),
             "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
             **entry, "host": _HOST}
    job = _JOB.get()
    if job and not entry.get("job"):
        entry["job"] = job
    reason = _REASON.get()
    if reason and "reason" not in entry:
        entry["reason"] = reason
        message, args = message + " (reason: %s)", (*args, reason)
    index = entry.get("index") or {}
    fields = {name: entry.get(name) for name in (
        "operator", "action", "key", "outcome", "old_version", "new_version", "old_size",
        "new_size", "reason")}
    fields["index"] = index.get("status")
    if "added_count" in index:  # a repair, an import's index update
        fields.update(service=entry.get("service"), added=index.get("added_count"),
                      removed=index.get("removed_count"), attempts=index.get("attempts"))
    audit_log.log(level, message, *args, extra=fields)
    for deliver in _deliveries:
        deliver(entry, old_value, new_value)
    return entry


def peek(provider: KeyValueProvider, key: str) -> Entry | None:
    """The key as it is before a delete, for its entry; None if absent or unreadable."""
    try:
        return provider.get(key)
    except ProviderError:
        return None


def _state(entry: Entry | None) -> dict[str, Any]:
    """What an undo needs of one side of a write: whether the key existed, its expiry, its
    type and the token of its exact content (``digest``)."""
    if entry is None:
        return {"exists": False}
    try:
        digest = entry.content_token if not entry.partial else None
    except ValueError:
        digest = None
    return {"exists": True, "type": entry.type, "expires_at_ms": entry.expires_at_ms,
            "ttl_known": entry.ttl_known, "digest": digest}


def _states(action: str, before: Entry | None, after: Entry | None, *,
            read_before: bool) -> dict[str, Any]:
    """``before``/``after`` states of a key write. An import's plan read keys in bulk and
    kept only their version and size: its "before" says whether the key existed."""
    states: dict[str, Any] = {"after": _state(after)}
    if before is not None or action == "create":
        states["before"] = _state(before)
    elif action == "import":
        # a new key: known to have been absent; an overwrite: its value was not kept
        states["before"] = {"exists": True, "partial": True} if read_before else {"exists": False}
    return states


_MESSAGES = {
    "create": "create: %s created %r",
    "edit": "edit: %s wrote %r",
    "delete": "delete: %s deleted %r",
    "import": "import: %s imported %r",
    "revert": "revert: %s put back %r",
}


def key_write(action: str, operator: str, key: str, *, result: WriteResult,
              before: Entry | None = None, value: str | None = None, ttl: str | None = None,
              expected: str | None = None, old_version: int | None = None,
              old_size: int | None = None, extra: dict[str, Any] | None = None,
              ) -> dict[str, Any]:
    """A create, edit or delete that happened (``result``), from ``before`` to ``value``.

    Without ``before`` (an import: the plan read the key in bulk), ``old_version`` and
    ``old_size`` say what was read."""
    after = result.entry
    new_value = None if action == "delete" else (
        after.value if after is not None and after.value is not None else value)
    old_value = before.value if before is not None else None
    if before is not None:
        old_version = before.version
    elif old_version is None:
        old_version = _version_of(expected)
    entry = {
        "operator": operator, "action": action, "key": key, "outcome": "ok",
        "old_version": old_version, "new_version": after.version if after is not None else None,
        "old_size": _size(old_value) if before is not None else old_size,
        "new_size": _size(new_value),
        **_states(action, before, after if action != "delete" else None,
                  read_before=old_version is not None or old_size is not None),
        "index": {"status": result.index.status, "message": result.index.message,
                  "atomic": result.index.atomic},
        "detail": "; ".join(filter(None, [f"ttl {ttl}" if ttl else "",
                                          "" if result.existed else "the key was already gone",
                                          result.note])),
        **(extra or {}),
    }
    message = _MESSAGES[action] + " (%s -> %s, %s -> %s bytes, index %s)"
    if ttl:
        message += f" (ttl {ttl})"
    if action == "delete":
        message += f" (existed: {result.existed})"
    return _record(entry, message, operator, key, _v(entry["old_version"]),
                   _v(entry["new_version"]), _n(entry["old_size"]), _n(entry["new_size"]),
                   result.index.status, old_value=old_value, new_value=new_value)


def unconfirmed(action: str, operator: str, key: str, detail: str, *,
                before: Entry | None = None, value: str | None = None,
                old_version: int | None = None, old_size: int | None = None) -> dict[str, Any]:
    """A write the store did not confirm: it may still land, so it is audited as such."""
    old_value = before.value if before is not None else None
    new_value = None if action == "delete" else value
    entry = {
        "operator": operator, "action": action, "key": key, "outcome": "unconfirmed",
        "old_version": before.version if before is not None else old_version,
        "new_version": None,
        "old_size": _size(old_value) if before is not None else old_size,
        "new_size": _size(new_value),
        "index": {"status": "unknown", "message": "", "atomic": False}, "detail": detail,
    }
    return _record(entry, "unconfirmed write by %s to %r: %s", operator, key, detail,
                   level=logging.WARNING, old_value=old_value, new_value=new_value)


def repair(operator: str, plan: RepairPlan, attempts: int, added: Sequence[str],
           removed: Sequence[str], *, before: Entry | None = None, after: Entry | None = None,
           new_value: str | None = None) -> dict[str, Any]:
    """An index repair: the index entry's versions and sizes, and the keys it added and removed."""
    service = plan.report.service
    old_value = before.value if before is not None else None
    entry = {
        "operator": operator, "action": "repair", "key": service.index_full_key,
        "service": service.prefix, "outcome": "ok" if attempts else "unchanged",
        "old_version": before.version if before is not None else None,
        "new_version": after.version if after is not None else None,
        "old_size": _size(old_value), "new_size": _size(new_value),
        **_states("repair", before, after, read_before=False),
        "index": {"status": "updated" if attempts else "unchanged", "action": plan.action,
                  "added": list(added[:KEYS_CAP]), "removed": list(removed[:KEYS_CAP]),
                  "added_count": len(added), "removed_count": len(removed),
                  "attempts": attempts},
        "detail": f"{plan.action}",
    }
    return _record(
        entry,
        "index repair by %s: service=%s index=%s action=%s added=%d removed=%d attempts=%d",
        operator, service.prefix, service.index_full_key, plan.action, len(added), len(removed),
        attempts, old_value=old_value, new_value=new_value)


#: an import's index update: its status (``import_apply``) → the entry's outcome
_INDEX_OUTCOMES = {"failed": "failed", "unknown": "unconfirmed"}


def import_index(operator: str, service_prefix: str, index_key: str, *, status: str,
                 added: Sequence[str], message: str) -> dict[str, Any]:
    """An import's update of one service's index, after that service's keys: ``status`` is
    updated, created, unchanged, skipped (no index, none created), failed or unknown
    (unanswered; it may have landed); ``added`` the keys (without the prefix) it was to add."""
    entry = {
        "operator": operator, "action": "import", "key": index_key, "service": service_prefix,
        "outcome": _INDEX_OUTCOMES.get(status, "ok"),
        "old_version": None, "new_version": None, "old_size": None, "new_size": None,
        "index": {"status": status, "message": message, "atomic": False,
                  "action": "add-imported", "added": list(added[:KEYS_CAP]), "removed": [],
                  "added_count": len(added), "removed_count": 0},
        "detail": f"the service's index, after its {len(added)} imported key(s)",
    }
    return _record(entry, "import: %s updated the index %r of service %s: %s (%d key(s) to add)",
                   operator, index_key, service_prefix, status, len(added),
                   level=logging.WARNING if status in _INDEX_OUTCOMES else logging.INFO)


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _n(size: int | None) -> str:
    return "-" if size is None else str(size)


def elevation(action: str, operator: str, reason: str, detail: str) -> dict[str, Any]:
    """An elevation started or ended (``elevation-started``/``elevation-ended``)."""
    return _record({"operator": operator, "action": action, "key": None, "outcome": detail,
                    "reason": reason},
                   "%s: %s (%s) because %r", action, operator, detail, reason)


def bulk(action: str, operator: str, *, services: Sequence[str], count: int, detail: str,
         store: str = "") -> dict[str, Any]:
    """One entry for a run that wrote many keys it does not list one by one (``seed``)."""
    return _record({"operator": operator, "action": action, "key": None, "outcome": "ok",
                    "services": list(services), "count": count, "detail": detail,
                    **({"store": store} if store else {})},
                   "%s: %s wrote %d key(s) under %s", action, operator, count,
                   ", ".join(services) or "no service")
