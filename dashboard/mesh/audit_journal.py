"""Where audit entries are kept for ``/audit``: the journal's storage, shared by the web
app and the command line (no Flask here; the web's glue is ``web.audit_journal``).

- a Redis list (``kvdash:audit``) when ``Dashboard:SessionStorage`` is a ``redis://`` or
  ``rediss://`` URL: every replica that shares the sessions shares the trail, and the
  command line's writes (``toska-kv import``, ``repair-index``) are appended to the same
  list (``cli.audit``). It lives beside the sessions, never among the mesh's keys;
- else a bounded list in this process's memory (the web only): each gunicorn worker keeps
  its own, and a restart empties it (the log lines stay). The command line keeps no
  journal then: its entries are its ``dashboard.audit`` lines (on stderr).

The journal keeps the newest ``Dashboard:AuditMaxEntries`` (10,000) entries. Values are
kept only with ``Dashboard:AuditValues=true``, each cut at ``VALUE_CAP`` characters
(``with_values``); otherwise only their sizes.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

from dashboard.settings.errors import mask_url
from dashboard.settings.model import Settings

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

    def close(self) -> None:
        pass


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

    def close(self) -> None:
        self.client.close()


Journal = MemoryJournal | RedisJournal


def shared_journal(settings: Settings) -> RedisJournal | None:
    """The Redis journal ``Dashboard:SessionStorage`` names; None when it names no Redis."""
    db = settings.dashboard
    url = db.session_storage
    if url and urlsplit(url).scheme.lower() in ("redis", "rediss"):
        return RedisJournal(url, db.audit_max_entries, timeout=db.store_timeout_seconds)
    return None


def make_journal(settings: Settings) -> Journal:
    """The journal ``Dashboard:SessionStorage`` implies (see the module's docstring)."""
    return shared_journal(settings) or MemoryJournal(settings.dashboard.audit_max_entries)


def with_values(entry: dict[str, Any], old_value: str | None, new_value: str | None,
                settings: Settings) -> dict[str, Any]:
    """``entry`` as the journal keeps it: with its values (cut at ``VALUE_CAP``) only under
    ``Dashboard:AuditValues``."""
    if settings.dashboard.audit_values:
        for name, value in (("old_value", old_value), ("new_value", new_value)):
            if value is None:
                continue
            entry[name] = value[:VALUE_CAP]
            if len(value) > VALUE_CAP:
                entry[name + "_truncated"] = True
    return entry
