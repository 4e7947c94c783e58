"""Where a writing command's audit entries go besides its stderr lines: the journal the
settings name (``mesh.audit_journal``: ``Dashboard:AuditStorage``, else the session storage's
Redis, else the SQLite file in ``Dashboard:DataDirectory``), the one the web's ``/audit``
reads when both run with the same settings. Each entry names the command's actor
(``cli:<OS user>``, ``as <--actor>``; ``common.actor``) and its ``--reason``.

A command whose journal cannot keep an entry writes nothing (``mesh.audit.AuditUnavailable``,
exit 2). If the journal fails after a write was made, the first failure is logged (on
``dashboard.audit.journal``, so on stderr with the audit lines), and the command's later
entries are only counted in one closing line.

``cli.common.audit_to_stderr`` enters ``journaled`` with the settings the command loaded
(``use``, called by ``settings_from``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dashboard.mesh import audit
from dashboard.mesh.audit_journal import JournalUnavailable, make_journal, with_values
from dashboard.settings.model import Settings

journal_log = logging.getLogger("dashboard.audit.journal")

_settings: Settings | None = None


def use(settings: Settings) -> None:
    """The settings of the command running now (its journal's, ``journaled``)."""
    global _settings
    _settings = settings


@contextmanager
def journaled(settings: Settings | None = None) -> Iterator[None]:
    """Append the entries made inside the block to the configured journal; a write whose
    entry could not be kept there is refused before it is made."""
    settings = settings if settings is not None else _settings
    if settings is None:
        yield
        return
    try:
        journal = make_journal(settings)
    except JournalUnavailable as error:
        raise audit.AuditUnavailable(
            f"the audit trail cannot be opened ({error}): nothing is written. Check "
            "Dashboard__AuditStorage (or Dashboard__DataDirectory).") from None
    lost = 0

    def ready() -> None:
        try:
            journal.ready()
        except JournalUnavailable as error:
            raise audit.AuditUnavailable(
                f"Not written: the audit trail ({journal.where}) cannot keep an entry now "
                f"({error}).") from None

    store_name: list[str] = []

    def deliver(entry: dict[str, Any], old_value: str | None, new_value: str | None) -> None:
        nonlocal lost
        if lost:
            lost += 1
            return
        if not store_name:
            store_name.append(_store_name(settings))
        entry.setdefault("store", store_name[0])
        try:
            journal.append(with_values(dict(entry), old_value, new_value, settings))
        except JournalUnavailable as error:
            lost = 1
            journal_log.error("audit entry %s (%s %r by %s) not kept on /audit: %s",
                              entry["id"], entry["action"], entry.get("key"),
                              entry.get("operator"), error)

    try:
        with audit.delivering(deliver), audit.requiring(ready):
            yield
    finally:
        journal.close()
        if lost > 1:
            journal_log.error("%d audit entries not kept on /audit (%s did not answer): "
                              "they are in the audit lines above", lost, journal.where)


def _store_name(settings: Settings) -> str:
    """The store's display name, as the web labels its entries (the provider's own)."""
    from dashboard.mesh import open_store

    provider = open_store(settings)
    try:
        return provider.name
    finally:
        provider.close()
