"""The audit trail: who wrote, deleted or repaired what, when, from which version to which.

Each write and repair makes one entry. It is logged as one line on ``dashboard.audit``
(with structured fields for JSON logs, never the values) and kept in a bounded journal
that ``/audit`` shows, newest first:

- a Redis list (``kvdash:audit``) when ``Dashboard:SessionStorage`` is a ``redis://`` or
  ``rediss://`` URL: every replica that shares the sessions shares the trail. It lives
  beside the sessions, never among the mesh's keys;
- else a bounded list in this process's memory: each gunicorn worker keeps its own, and a
  restart empties it (the log lines stay).

The journal keeps the newest ``Dashboard:AuditMaxEntries`` (10,000) entries. Values are
kept only with ``Dashboard:AuditValues=true``, each cut at ``VALUE_CAP`` characters;
otherwise only their sizes. A journal that does not answer never undoes or hides a write:
the log line is written anyway and the failure logged beside it.

Repairs run from the command line (``toska-kv repair-index``) are logged but not journaled:
the CLI has no app, so no journal.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from flask import Flask, current_app, has_app_context

from . import metrics
from .config import Settings, mask_url
from .logs import request_id
from .providers.base import Entry, KeyValueProvider
from .providers.errors import ProviderError

if TYPE_CHECKING:
    from .mesh.repair import RepairPlan
    from .writes import WriteResult

audit_log = logging.getLogger("dashboard.audit")
journal_log = logging.getLogger("dashboard.audit.journal")

REDIS_KEY = "kvdash:audit"
#: characters of a value kept in an entry (``Dashboard:AuditValues``)
VALUE_CAP = 8192
#: index keys listed in a repair's entry (the counts are always complete)
KEYS_CAP = 100
_HOST = socket.gethostname()


class JournalUnavailable(Exception):
    """The journal's storage did not answer."""


@dataclass(frozen=True)
class Page:
    """Entries newest first, from ``offset``; ``total`` entries are kept in all."""

    entries: list[dict[str, Any]]
    offset: int
    total: int


class MemoryJournal:
    """This process's newest entries (each worker its own)."""

    where = "this process's memory"
    shared = False

    def __init__(self, max_entries: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.appendleft(entry)

    def page(self, offset: int, limit: int) -> Page:
        with self._lock:
            total = len(self._entries)
            entries = [self._entries[i] for i in range(offset, min(offset + limit, total))]
        return Page(entries, offset, total)


class RedisJournal:
    """A Redis list shared by every replica: newest first, trimmed to ``max_entries``."""

    shared = True

    def __init__(self, url: str, max_entries: int, *, timeout: float, key: str = REDIS_KEY) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self.max_entries = max_entries
        self.key = key
        self.where = f"Redis {mask_url(url)}"

    def append(self, entry: dict[str, Any]) -> None:
        record = json.dumps(entry, separators=(",", ":"))
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(self.key, record)
            pipe.ltrim(self.key, 0, self.max_entries - 1)
            pipe.execute()
        except (redis.RedisError, OSError) as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def page(self, offset: int, limit: int) -> Page:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(self.key)
            pipe.lrange(self.key, offset, offset + limit - 1)
            total, raw = pipe.execute()
        except (redis.RedisError, OSError) as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error
        entries = []
        for item in raw:
            try:
                entries.append(json.loads(item))
            except ValueError:
                entries.append({"action": "?", "detail": "unreadable audit entry"})
        return Page(entries, offset, int(total))


Journal = MemoryJournal | RedisJournal


def make_journal(settings: Settings) -> Journal:
    """The journal ``Dashboard:SessionStorage`` implies (see the module's docstring)."""
    db = settings.dashboard
    url = db.session_storage
    if url and urlsplit(url).scheme.lower() in ("redis", "rediss"):
        return RedisJournal(url, db.audit_max_entries, timeout=db.store_timeout_seconds)
    return MemoryJournal(db.audit_max_entries)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["kv_audit"] = make_journal(settings)


def journal() -> Journal | None:
    """The running app's journal; None outside an app (the CLI)."""
    return current_app.extensions.get("kv_audit") if has_app_context() else None


# --------------------------------------------------------------------------- entries


def _keep_values() -> bool:
    return has_app_context() and current_app.config["KV_SETTINGS"].dashboard.audit_values


def _size(value: str | None) -> int | None:
    return None if value is None else len(value.encode("utf-8", "surrogatepass"))


def _value_fields(entry: dict[str, Any], name: str, value: str | None) -> None:
    if value is None:
        return
    entry[name] = value[:VALUE_CAP]
    if len(value) > VALUE_CAP:
        entry[name + "_truncated"] = True


def _version_of(token: str | None) -> int | None:
    """The version a ``v<N>`` token names (what a conditional delete compared)."""
    if token and token.startswith("v") and token[1:].isdigit():
        return int(token[1:])
    return None


def _record(entry: dict[str, Any], message: str, *args: Any,
            level: int = logging.INFO, old_value: str | None = None,
            new_value: str | None = None) -> dict[str, Any]:
    """Log ``entry`` as one ``dashboard.audit`` line, count it, and keep it in the journal."""
    now = time.time()
    entry = {"id": uuid.uuid4().hex[:16], "ts": int(now * 1000),
             "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
             **entry, "request_id": request_id(), "host": _HOST}
    index = entry.get("index") or {}
    fields = {name: entry.get(name) for name in (
        "operator", "action", "key", "outcome", "old_version", "new_version", "old_size",
        "new_size")}
    fields["index"] = index.get("status")
    if entry["action"] == "repair":
        fields.update(service=entry.get("service"), added=index.get("added_count"),
                      removed=index.get("removed_count"), attempts=index.get("attempts"))
    audit_log.log(level, message, *args, extra=fields)
    metrics.count_write(entry["action"], entry["outcome"])
    store = journal()
    if store is None:
        return entry
    if _keep_values():
        _value_fields(entry, "old_value", old_value)
        _value_fields(entry, "new_value", new_value)
    try:
        store.append(entry)
    except JournalUnavailable as error:
        journal_log.error("audit entry %s (%s %r by %s) not kept: %s", entry["id"],
                          entry["action"], entry.get("key"), entry.get("operator"), error)
    return entry


def peek(provider: KeyValueProvider, key: str) -> Entry | None:
    """The key as it is before a delete, for its entry; None if absent or unreadable."""
    try:
        return provider.get(key)
    except ProviderError:
        return None


_MESSAGES = {
    "create": "create: %s created %r",
    "edit": "edit: %s wrote %r",
    "delete": "delete: %s deleted %r",
    "import": "import: %s imported %r",
}


def key_write(action: str, operator: str, key: str, *, result: WriteResult,
              before: Entry | None = None, value: str | None = None, ttl: str | None = None,
              expected: str | None = None) -> dict[str, Any]:
    """A create, edit or delete that happened (``result``), from ``before`` to ``value``."""
    after = result.entry
    new_value = None if action == "delete" else (
        after.value if after is not None and after.value is not None else value)
    old_value = before.value if before is not None else None
    old_version = before.version if before is not None else _version_of(expected)
    entry = {
        "operator": operator, "action": action, "key": key, "outcome": "ok",
        "old_version": old_version, "new_version": after.version if after is not None else None,
        "old_size": _size(old_value), "new_size": _size(new_value),
        "index": {"status": result.index.status, "message": result.index.message,
                  "atomic": result.index.atomic},
        "detail": "; ".join(filter(None, [f"ttl {ttl}" if ttl else "",
                                          "" if result.existed else "the key was already gone",
                                          result.note])),
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
                before: Entry | None = None, value: str | None = None) -> dict[str, Any]:
    """A write the store did not confirm: it may still land, so it is audited as such."""
    old_value = before.value if before is not None else None
    new_value = None if action == "delete" else value
    entry = {
        "operator": operator, "action": action, "key": key, "outcome": "unconfirmed",
        "old_version": before.version if before is not None else None, "new_version": None,
        "old_size": _size(old_value), "new_size": _size(new_value),
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


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _n(size: int | None) -> str:
    return "-" if size is None else str(size)
