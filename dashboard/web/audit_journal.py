"""The web's audit delivery: the journal ``/audit`` reads, and the write counter.

``mesh.audit`` builds each entry and logs it; the app registers ``deliver`` with it
(``init_app``), which counts the write and appends the entry to the app's journal
(``mesh.audit_journal``: a Redis list shared with every replica and with the command line
when ``Dashboard:SessionStorage`` is a Redis, else this process's memory), with the
request's id and, under ``Dashboard:AuditValues``, the values.

A journal that does not answer never undoes or hides a write: the log line is written
anyway and the failure logged beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, has_app_context

from dashboard.mesh import audit
from dashboard.mesh.audit_journal import (
    REDIS_KEY,
    VALUE_CAP,
    Journal,
    JournalUnavailable,
    MemoryJournal,
    Page,
    RedisJournal,
    make_journal,
    with_values,
)
from dashboard.settings.model import Settings
from dashboard.web import metrics
from dashboard.web.logs import request_id

__all__ = ["REDIS_KEY", "VALUE_CAP", "Journal", "JournalUnavailable", "MemoryJournal", "Page",
           "RedisJournal", "deliver", "init_app", "journal", "make_journal"]

journal_log = logging.getLogger("dashboard.audit.journal")


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["kv_audit"] = make_journal(settings)
    audit.deliver_to(deliver)


def journal() -> Journal | None:
    """The running app's journal; None outside an app (the CLI has its own: ``cli.audit``)."""
    return current_app.extensions.get("kv_audit") if has_app_context() else None


def deliver(entry: dict[str, Any], old_value: str | None, new_value: str | None) -> None:
    """Count the write and keep ``entry`` in the running app's journal (none outside one)."""
    metrics.count_write(entry["action"], entry["outcome"])
    store = journal()
    if store is None:
        return
    entry["request_id"] = request_id()
    with_values(entry, old_value, new_value, current_app.config["KV_SETTINGS"])
    try:
        store.append(entry)
    except JournalUnavailable as error:
        journal_log.error("audit entry %s (%s %r by %s) not kept: %s", entry["id"],
                          entry["action"], entry.get("key"), entry.get("operator"), error)
