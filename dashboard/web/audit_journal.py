"""The web's audit delivery: the journal ``/audit`` reads, and the write counter.

``mesh.audit`` builds each entry and logs it; the app registers ``deliver`` with it
(``init_app``), which counts the write and appends the entry to the app's journal
(``mesh.audit_journal``: ``Dashboard:AuditStorage``), with the request's id and the values
before and after.

The journal is asked before every write (``ready``): a write whose entry could not be kept
is not made (``mesh.audit.AuditUnavailable``, 503, saying why). If the journal fails after
the write was made, the log line still says what was written, and the failure is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, has_app_context

from dashboard.mesh import audit
from dashboard.mesh.audit_journal import Journal, JournalUnavailable, make_journal, with_values
from dashboard.settings.model import Settings
from dashboard.web import metrics
from dashboard.web.logs import request_id

journal_log = logging.getLogger("dashboard.audit.journal")


class UnopenedJournal:
    """A journal whose storage could not be opened at start-up: reads and writes say why."""

    shared = False

    def __init__(self, where: str, error: str) -> None:
        self.where = where
        self.error = error

    def _fail(self, *_args: Any, **_kwargs: Any):
        raise JournalUnavailable(self.error)

    append = query = get = page = ready = _fail

    def iter_entries(self, *_args: Any, **_kwargs: Any):
        self._fail()
        yield from ()

    def close(self) -> None:
        pass


def init_app(app: Flask, settings: Settings) -> None:
    from dashboard.mesh.audit_journal import journal_url
    from dashboard.settings.errors import mask_url

    try:
        found = make_journal(settings, clock=app.config.get("KV_CLOCK"))
    except JournalUnavailable as error:
        app.logger.error("audit trail unavailable: %s; writes are refused until it opens", error)
        found = UnopenedJournal(mask_url(journal_url(settings)), str(error))
    app.extensions["kv_audit"] = found
    audit.deliver_to(deliver)
    audit.require(ready)


def journal() -> Journal | None:
    """The running app's journal; None outside an app (the CLI has its own: ``cli.audit``)."""
    return current_app.extensions.get("kv_audit") if has_app_context() else None


def ready() -> None:
    """Refuse the write about to be made when the running app's journal cannot keep its
    entry (``mesh.audit.before_write``)."""
    store = journal()
    if store is None:
        return
    try:
        store.ready()
    except JournalUnavailable as error:
        raise audit.AuditUnavailable(
            f"Not written: the audit trail ({store.where}) cannot keep an entry now, and a "
            f"write that is not on the trail is not made ({error}). Check "
            "Dashboard__AuditStorage.") from None


def deliver(entry: dict[str, Any], old_value: str | None, new_value: str | None) -> None:
    """Count the write and keep ``entry`` in the running app's journal (none outside one)."""
    metrics.count_write(entry["action"], entry["outcome"])
    store = journal()
    if store is None:
        return
    entry["request_id"] = request_id()
    entry.setdefault("store", current_app.extensions["kv_provider"].name)
    with_values(entry, old_value, new_value, current_app.config["KV_SETTINGS"])
    try:
        store.append(entry)
    except JournalUnavailable as error:
        journal_log.error("audit entry %s (%s %r by %s) not kept: %s", entry["id"],
                          entry["action"], entry.get("key"), entry.get("operator"), error)
