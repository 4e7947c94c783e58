"""Where a writing command's audit entries go besides its stderr lines: the shared journal.

When ``Dashboard:SessionStorage`` is a ``redis://``/``rediss://`` URL, the web's ``/audit``
reads its entries from a Redis list there (``mesh.audit_journal``); ``journaled`` appends
the entries a command makes (``import``, ``repair-index``) to the same list, so they show
on ``/audit`` beside the web's, each naming the command's actor (``cli:<OS user>``,
``common.actor``). Without such a URL the command keeps no journal (an in-memory one would end
with the command): its entries are its ``dashboard.audit`` lines.

A journal that does not answer never stops or undoes a write: the first failure is logged
(on ``dashboard.audit.journal``, so on stderr with the audit lines), and the command's
later entries are not sent there, only counted in one closing line.

``cli.common.audit_to_stderr`` enters ``journaled`` with the settings the command loaded
(``use``, called by ``settings_from``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dashboard.mesh import audit
from dashboard.mesh.audit_journal import JournalUnavailable, shared_journal, with_values
from dashboard.settings.model import Settings

journal_log = logging.getLogger("dashboard.audit.journal")

_settings: Settings | None = None


def use(settings: Settings) -> None:
    """The settings of the command running now (its journal's, ``journaled``)."""
    global _settings
    _settings = settings


@contextmanager
def journaled(settings: Settings | None = None) -> Iterator[None]:
    """Append the entries made inside the block to the shared journal, if there is one."""
    settings = settings if settings is not None else _settings
    journal = shared_journal(settings) if settings is not None else None
    if journal is None:
        yield
        return
    assert settings is not None
    lost = 0

    def deliver(entry: dict[str, Any], old_value: str | None, new_value: str | None) -> None:
        nonlocal lost
        if lost:
            lost += 1
            return
        try:
            journal.append(with_values(dict(entry), old_value, new_value, settings))
        except JournalUnavailable as error:
            lost = 1
            journal_log.error("audit entry %s (%s %r by %s) not kept on /audit: %s",
                              entry["id"], entry["action"], entry.get("key"),
                              entry.get("operator"), error)

    try:
        with audit.delivering(deliver):
            yield
    finally:
        journal.close()
        if lost > 1:
            journal_log.error("%d audit entries not kept on /audit (%s did not answer): "
                              "they are in the audit lines above", lost, journal.where)
