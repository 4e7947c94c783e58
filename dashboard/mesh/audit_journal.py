"""Where audit entries are kept for ``/audit``, the key timelines and undo: the storage
``Dashboard:AuditStorage`` names (``mesh.audit_store``), shared by the web app and the
command line (no Flask here; the web's glue is ``web.audit_journal``).

Which storage, when ``Dashboard:AuditStorage`` is not set: the session storage's Redis when
``Dashboard:SessionStorage`` is one (every replica and the command line share the trail),
else ``audit.sqlite3`` in ``Dashboard:DataDirectory`` (one replica; it survives a restart).

Values before and after each write are kept (``Dashboard:AuditValues``, on by default), each
up to ``Dashboard:AuditValueBytes``; a longer value is kept as its size alone.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from dashboard.mesh.audit_store import (
    AuditQuery,
    JournalUnavailable,
    MemoryEntries,
    Page,
    RedisEntries,
    SqliteJournal,
)
from dashboard.settings.model import Settings

Journal = SqliteJournal | RedisEntries | MemoryEntries

__all__ = ["AuditQuery", "Journal", "JournalUnavailable", "MemoryEntries", "Page",
           "RedisEntries", "SqliteJournal", "journal_url", "make_journal", "with_values"]


def journal_url(settings: Settings) -> str:
    """The storage URL the settings imply (see the module's docstring)."""
    db = settings.dashboard
    if db.audit_storage:
        return db.audit_storage
    session = db.session_storage
    if session and urlsplit(session).scheme.lower() in ("redis", "rediss"):
        return session
    return "sqlite://" + os.path.join(db.data_directory, "audit.sqlite3")


def make_journal(settings: Settings, *, clock=None) -> Journal:
    """The journal the settings name; ``JournalUnavailable`` when a file cannot be opened."""
    import time

    db = settings.dashboard
    url = journal_url(settings)
    scheme = urlsplit(url).scheme.lower()
    clock = clock or time.time
    if scheme == "memory":
        return MemoryEntries(db.audit_max_entries, db.audit_retention_days, clock=clock)
    if scheme == "sqlite":
        return SqliteJournal(urlsplit(url).path, db.audit_max_entries, db.audit_retention_days,
                             clock=clock)
    return RedisEntries(url, db.audit_max_entries, db.audit_retention_days,
                        timeout=db.store_timeout_seconds, clock=clock)


def with_values(entry: dict[str, Any], old_value: str | None, new_value: str | None,
                settings: Settings) -> dict[str, Any]:
    """``entry`` as the journal keeps it: with the values before and after (each up to
    ``Dashboard:AuditValueBytes``; a longer one is marked ``*_value_omitted``) unless
    ``Dashboard:AuditValues`` is off."""
    db = settings.dashboard
    if not db.audit_values:
        return entry
    for name, value in (("old_value", old_value), ("new_value", new_value)):
        if value is None:
            continue
        if len(value.encode("utf-8", "surrogatepass")) > db.audit_value_bytes:
            entry[name + "_omitted"] = True  # whole or nothing: a cut value cannot be put back
        else:
            entry[name] = value
    return entry
