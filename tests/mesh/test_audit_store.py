"""The audit trail's storage: SQLite (the default), Redis (shared by replicas), memory.

Real SQLite files and a real redis-server: filters, order, retention, the entry cap, and
what survives a restart (a new instance on the same file or Redis)."""

from __future__ import annotations

import uuid

import pytest

from dashboard.mesh.audit_store import (
    TRIM_EVERY,
    AuditQuery,
    JournalUnavailable,
    MemoryEntries,
    RedisEntries,
    SqliteJournal,
)
from tests.support.clock import Clock

T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "redis", "memory"])
def kind(request):
    return request.param


@pytest.fixture
def opener(kind, tmp_path, redis_server):
    """``open(max_entries, days, clock)``: a journal on the same storage each time."""
    base = "{t" + uuid.uuid4().hex[:8] + "}"
    made = []

    def open_journal(max_entries=1000, days=90.0, clock=None):
        clock = clock or Clock()
        if kind == "sqlite":
            journal = SqliteJournal(str(tmp_path / "audit.sqlite3"), max_entries, days,
                                    clock=clock)
        elif kind == "redis":
            journal = RedisEntries(f"redis://{redis_server.host}:{redis_server.port}/0",
                                   max_entries, days, timeout=5, base=base, clock=clock)
        else:
            journal = made[0] if made else MemoryEntries(max_entries, days, clock=clock)
        made.append(journal)
        return journal

    yield open_journal
    for journal in made:
        journal.close()


def entry(n: int, *, ts: int | None = None, **fields) -> dict:
    return {"id": f"e{n:05d}", "ts": ts if ts is not None else T0 + n, "operator": "ed",
            "action": "edit", "key": f"svc:k{n % 3}", "job": None, **fields}


def ids(page) -> list[str]:
    return [e["id"] for e in page.entries]


def test_entries_come_back_newest_first_filtered_by_each_field(opener):
    clock = Clock()
    clock.now = T0 / 1000 + 60
    journal = opener(clock=clock)
    for n in range(9):
        journal.append(entry(n, operator="ed" if n % 2 else "vi",
                             action="import" if n >= 6 else "edit",
                             job="job-1" if n >= 6 else None,
                             key=f"pay:{n}" if n < 3 else f"svc:k{n}"))
    assert ids(journal.query(AuditQuery(), 0, 3)) == ["e00008", "e00007", "e00006"]
    assert journal.query(AuditQuery(), 0, 3).total == 9
    assert ids(journal.query(AuditQuery(operator="vi"), 0, 10)) == [
        "e00008", "e00006", "e00004", "e00002", "e00000"]
    assert ids(journal.query(AuditQuery(prefix="pay:"), 0, 10)) == ["e00002", "e00001", "e00000"]
    assert ids(journal.query(AuditQuery(job="job-1"), 0, 10)) == ["e00008", "e00007", "e00006"]
    assert ids(journal.query(AuditQuery(key="svc:k4"), 0, 10)) == ["e00004"]
    assert ids(journal.query(AuditQuery(action="import", operator="ed"), 0, 10)) == ["e00007"]
    window = AuditQuery(since_ms=T0 + 2, until_ms=T0 + 4)
    assert ids(journal.query(window, 0, 10)) == ["e00004", "e00003", "e00002"]
    page = journal.query(AuditQuery(prefix="svc:"), 2, 2)
    assert ids(page) == ["e00006", "e00005"] and page.total == 6
    assert [e["id"] for e in journal.iter_entries(AuditQuery(prefix="svc:"), chunk=4)] == [
        f"e{n:05d}" for n in range(8, 2, -1)]
    assert journal.get("e00005")["key"] == "svc:k5" and journal.get("nope") is None


def test_the_trail_survives_a_restart(opener, kind):
    if kind == "memory":
        pytest.skip("memory is this process's only: it is the one that does not survive")
    clock = Clock()
    clock.now = T0 / 1000
    first = opener(clock=clock)
    first.append(entry(1, new_value='{"a":1}'))
    first.close()
    again = opener(clock=clock)
    assert again.get("e00001")["new_value"] == '{"a":1}'
    assert ids(again.query(AuditQuery(key="svc:k1"), 0, 5)) == ["e00001"]


def test_old_entries_and_entries_past_the_cap_are_dropped(opener):
    clock = Clock()
    clock.now = T0 / 1000
    journal = opener(max_entries=5, days=1, clock=clock)
    for n in range(TRIM_EVERY + 2):
        journal.append(entry(n, ts=T0 + n))
    shown = journal.query(AuditQuery(), 0, 100)
    assert shown.total <= 5 + TRIM_EVERY and ids(shown)[0] == f"e{TRIM_EVERY + 1:05d}"
    clock.advance(2 * 24 * 60)  # two days on: everything is past the retention
    assert journal.query(AuditQuery(), 0, 100).total == 0
    assert journal.query(AuditQuery(key="svc:k1"), 0, 100).entries == []


def test_an_unwritable_file_is_unavailable_not_a_crash(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalUnavailable) as caught:
        SqliteJournal(str(blocker / "audit.sqlite3"), 10, 1)
    assert "SQLite" in str(caught.value)


def test_a_redis_that_does_not_answer_is_unavailable():
    from tests.support.redis_server import free_port

    journal = RedisEntries(f"redis://127.0.0.1:{free_port()}/0", 10, 1, timeout=0.5)
    with pytest.raises(JournalUnavailable):
        journal.append(entry(1))
    with pytest.raises(JournalUnavailable):
        journal.query(AuditQuery(), 0, 10)
