"""Where the web keeps audit entries (``/audit``), and the write counter they feed.

``mesh.audit`` builds each entry and logs it; the app registers ``deliver`` with it
(``init_app``), which counts the write and appends the entry to the journal:

- a Redis list (``kvdash:audit``) when ``Dashboard:SessionStorage`` is a ``redis://`` or
  ``rediss://`` URL: every replica that shares the sessions shares the trail. It lives
  beside the sessions, never among the mesh's keys;
- else a bounded list in this process's memory: each gunicorn worker keeps its own, and a
  restart empties it (the log lines stay).

The journal keeps the newest ``Dashboard:AuditMaxEntries`` (10,000) entries. Values are
kept only with ``Dashboard:AuditValues=true``, each cut at ``VALUE_CAP`` characters;
otherwise only their sizes. A journal that does not answer never undoes or hides a write:
the log line is written anyway and the failure logged beside it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Flask, current_app, has_app_context

from dashboard.mesh import audit
from dashboard.settings.errors import mask_url
from dashboard.settings.model import Settings
from dashboard.web import metrics
from dashboard.web.logs import request_id

journal_log = logging.getLogger("dashboard.audit.journal")

REDIS_KEY = "kvdash:audit"
#: characters of a value kept in an entry (``Dashboard:AuditValues``)
VALUE_CAP = 8192


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
    audit.deliver_to(deliver)


def journal() -> Journal | None:
    """The running app's journal; None outside an app (the CLI)."""
    return current_app.extensions.get("kv_audit") if has_app_context() else None


def _value_fields(entry: dict[str, Any], name: str, value: str | None) -> None:
    if value is None:
        return
    entry[name] = value[:VALUE_CAP]
    if len(value) > VALUE_CAP:
        entry[name + "_truncated"] = True


def deliver(entry: dict[str, Any], old_value: str | None, new_value: str | None) -> None:
    """Count the write and keep ``entry`` in the running app's journal (none in the CLI)."""
    metrics.count_write(entry["action"], entry["outcome"])
    store = journal()
    if store is None:
        return
    entry["request_id"] = request_id()
    if current_app.config["KV_SETTINGS"].dashboard.audit_values:
        _value_fields(entry, "old_value", old_value)
        _value_fields(entry, "new_value", new_value)
    try:
        store.append(entry)
    except JournalUnavailable as error:
        journal_log.error("audit entry %s (%s %r by %s) not kept: %s", entry["id"],
                          entry["action"], entry.get("key"), entry.get("operator"), error)
