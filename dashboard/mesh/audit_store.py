"""Durable storage of the audit trail (``Dashboard:AuditStorage``), queried by filters.

- ``SqliteJournal`` (``sqlite:///path``, the default: a file under the dashboard's data
  directory): survives a restart; one replica (a PersistentVolumeClaim in the manifests);
- ``RedisEntries`` (``redis://``/``rediss://``): shared by every replica and by the command
  line; each entry a field of one hash, ordered by a sorted set, with one index per key and
  per job so a key's history and a job's entries are read without walking the trail;
- ``MemoryEntries`` (``memory://``): this process only, for tests and throwaway demos.

Each keeps at most ``max_entries`` and nothing older than ``retention_days`` (trimmed as
entries are appended). Entries are dicts as ``mesh.audit`` builds them; the columns a
filter needs (time, operator, action, key, job) are kept beside the JSON body.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: appended entries between two trims (retention and the entry cap)
TRIM_EVERY = 64
DAY_MS = 86_400_000


class JournalUnavailable(Exception):
    """The journal's storage did not answer (or refused the entry)."""


@dataclass(frozen=True)
class AuditQuery:
    """What ``/audit`` filters by; every field that is set must hold."""

    operator: str | None = None
    #: keys starting with this (a service prefix)
    prefix: str | None = None
    action: str | None = None
    job: str | None = None
    #: exactly this key (a key's history)
    key: str | None = None
    #: epoch milliseconds, inclusive
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        key = entry.get("key") or ""
        ts = int(entry.get("ts") or 0)
        return ((self.operator is None or entry.get("operator") == self.operator)
                and (self.prefix is None or key.startswith(self.prefix))
                and (self.action is None or entry.get("action") == self.action)
                and (self.job is None or entry.get("job") == self.job)
                and (self.key is None or key == self.key)
                and (self.since_ms is None or ts >= self.since_ms)
                and (self.until_ms is None or ts <= self.until_ms))

    @property
    def empty(self) -> bool:
        return all(value is None for value in vars(self).values())


@dataclass(frozen=True)
class Page:
    """Entries newest first, from ``offset``; ``total`` entries match in all."""

    entries: list[dict[str, Any]]
    offset: int
    total: int


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class SqliteJournal:
    """The trail in one SQLite file (WAL), for one replica's processes."""

    shared = False

    def __init__(self, path: str, max_entries: int, retention_days: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.where = f"SQLite {path}"
        self.max_entries = max_entries
        self.retention_ms = int(retention_days * DAY_MS)
        self._clock = clock
        self._lock = threading.Lock()
        self._appended = 0
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS entries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
                    ts INTEGER NOT NULL, operator TEXT, action TEXT, key TEXT, job TEXT,
                    body TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS entries_ts ON entries (ts);
                CREATE INDEX IF NOT EXISTS entries_key ON entries (key);
                CREATE INDEX IF NOT EXISTS entries_job ON entries (job);
            """)
        except (sqlite3.Error, OSError) as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def append(self, entry: dict[str, Any]) -> None:
        body = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO entries (id, ts, operator, action, key, job, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (entry["id"], int(entry.get("ts") or 0), entry.get("operator"),
                     entry.get("action"), entry.get("key"), entry.get("job"), body))
                self._appended += 1
                if self._appended % TRIM_EVERY == 1:
                    self._trim()
        except sqlite3.Error as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def ready(self) -> None:
        """Raise ``JournalUnavailable`` unless an entry could be written now (the write lock
        is taken and given back: a read-only or locked file fails here, before a write)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def _trim(self) -> None:
        cutoff = _now_ms(self._clock) - self.retention_ms
        self._db.execute("DELETE FROM entries WHERE ts < ?", (cutoff,))
        self._db.execute("DELETE FROM entries WHERE seq <= (SELECT seq FROM entries "
                         "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (self.max_entries,))

    def _where(self, query: AuditQuery) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("operator", query.operator), ("action", query.action),
                              ("job", query.job), ("key", query.key)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if query.prefix is not None:
            clauses.append("substr(key, 1, ?) = ?")
            args += [len(query.prefix), query.prefix]
        if query.since_ms is not None:
            clauses.append("ts >= ?")
            args.append(query.since_ms)
        if query.until_ms is not None:
            clauses.append("ts <= ?")
            args.append(query.until_ms)
        cutoff = _now_ms(self._clock) - self.retention_ms
        clauses.append("ts >= ?")
        args.append(cutoff)
        return " AND ".join(clauses), args

    def query(self, query: AuditQuery, offset: int, limit: int) -> Page:
        where, args = self._where(query)
        try:
            with self._lock:
                total = self._db.execute(f"SELECT count(*) FROM entries WHERE {where}",
                                         args).fetchone()[0]
                rows = self._db.execute(
                    f"SELECT body FROM entries WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                    [*args, limit, offset]).fetchall()
        except sqlite3.Error as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error
        return Page([json.loads(body) for (body,) in rows], offset, int(total))

    def iter_entries(self, query: AuditQuery, chunk: int = 500) -> Iterator[dict[str, Any]]:
        """Every matching entry, newest first, read ``chunk`` at a time."""
        offset = 0
        while True:
            page = self.query(query, offset, chunk)
            yield from page.entries
            if len(page.entries) < chunk:
                return
            offset += chunk

    def get(self, entry_id: str) -> dict[str, Any] | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT body FROM entries WHERE id = ?",
                                       (entry_id,)).fetchone()
        except sqlite3.Error as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error
        return json.loads(row[0]) if row else None

    def page(self, offset: int, limit: int) -> Page:
        return self.query(AuditQuery(), offset, limit)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemoryEntries:
    """This process's newest entries, filtered in memory (tests, demos)."""

    where = "this process's memory"
    shared = False

    def __init__(self, max_entries: int, retention_days: float = 90, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.retention_ms = int(retention_days * DAY_MS)
        self._clock = clock
        self._entries: list[dict[str, Any]] = []  # newest last
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e.get("id") != entry["id"]]
            self._entries.append(entry)
            cutoff = _now_ms(self._clock) - self.retention_ms
            self._entries = [e for e in self._entries[-self.max_entries:]
                             if int(e.get("ts") or 0) >= cutoff]

    def query(self, query: AuditQuery, offset: int, limit: int) -> Page:
        cutoff = _now_ms(self._clock) - self.retention_ms
        with self._lock:
            found = [e for e in reversed(self._entries)
                     if query.matches(e) and int(e.get("ts") or 0) >= cutoff]
        return Page(found[offset:offset + limit], offset, len(found))

    def iter_entries(self, query: AuditQuery, chunk: int = 500) -> Iterator[dict[str, Any]]:
        yield from self.query(query, 0, self.max_entries).entries

    def ready(self) -> None:
        """Memory always takes an entry."""

    def get(self, entry_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((e for e in self._entries if e.get("id") == entry_id), None)

    def page(self, offset: int, limit: int) -> Page:
        return self.query(AuditQuery(), offset, limit)

    def close(self) -> None:
        pass


class RedisEntries:
    """The trail in a Redis shared by every replica (and the command line).

    All its keys share one hash tag (one slot): ``:e`` id → entry, ``:h`` id → the small
    head a filter reads (time, operator, action, key, job), ``:t`` the order (score: time
    in ms × 1000 + a sequence), ``:k:<key>`` and ``:j:<job>`` the same order per key and
    per job. A filter reads heads, never values; a page reads its own entries only.
    """

    shared = True
    _HEAD = ("ts", "operator", "action", "key", "job")

    def __init__(self, url: str, max_entries: int, retention_days: float, *, timeout: float,
                 base: str = "{kvdash-audit}", clock: Callable[[], float] = time.time) -> None:
        import redis

        from dashboard.settings.errors import mask_url

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self.where = f"Redis {mask_url(url)}"
        self.max_entries = max_entries
        self.retention_ms = int(retention_days * DAY_MS)
        self.base = base
        self._clock = clock
        self._appended = 0

    def _index(self, kind: str, value: str) -> str:
        return f"{self.base}:{kind}:{value}"

    def _score(self, entry: dict[str, Any], seq: int) -> int:
        return int(entry.get("ts") or 0) * 1000 + seq % 1000

    def append(self, entry: dict[str, Any]) -> None:
        body = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        head = json.dumps({name: entry.get(name) for name in self._HEAD}, ensure_ascii=False)
        try:
            seq = int(self.client.incr(f"{self.base}:seq"))
            score = self._score(entry, seq)
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(f"{self.base}:e", entry["id"], body)
            pipe.hset(f"{self.base}:h", entry["id"], head)
            pipe.zadd(f"{self.base}:t", {entry["id"]: score})
            if entry.get("key"):
                pipe.zadd(self._index("k", entry["key"]), {entry["id"]: score})
            if entry.get("job"):
                pipe.zadd(self._index("j", entry["job"]), {entry["id"]: score})
            pipe.execute()
            self._appended += 1
            if self._appended % TRIM_EVERY == 1:
                self._trim()
        except self._errors as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def ready(self) -> None:
        """Raise ``JournalUnavailable`` unless the Redis answers (and takes writes)."""
        try:
            self.client.ping()
        except self._errors as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error

    def _trim(self) -> None:
        order = f"{self.base}:t"
        cutoff = (_now_ms(self._clock) - self.retention_ms) * 1000
        old = [i.decode() for i in self.client.zrangebyscore(order, "-inf", f"({cutoff}")]
        extra = int(self.client.zcard(order)) - len(old) - self.max_entries
        if extra > 0:
            old += [i.decode() for i in self.client.zrange(order, len(old),
                                                          len(old) + extra - 1)]
        for start in range(0, len(old), 500):
            ids = old[start:start + 500]
            heads = self.client.hmget(f"{self.base}:h", ids)
            pipe = self.client.pipeline(transaction=False)
            for entry_id, raw in zip(ids, heads, strict=True):
                head = json.loads(raw) if raw else {}
                if head.get("key"):
                    pipe.zrem(self._index("k", head["key"]), entry_id)
                if head.get("job"):
                    pipe.zrem(self._index("j", head["job"]), entry_id)
            pipe.hdel(f"{self.base}:e", *ids)
            pipe.hdel(f"{self.base}:h", *ids)
            pipe.zrem(order, *ids)
            pipe.execute()

    def _candidates(self, query: AuditQuery) -> list[str]:
        """Ids that may match, newest first: from the narrowest index the query names."""
        order = (self._index("k", query.key) if query.key is not None else
                 self._index("j", query.job) if query.job is not None else f"{self.base}:t")
        cutoff = (_now_ms(self._clock) - self.retention_ms) * 1000
        low = max(cutoff, (query.since_ms or 0) * 1000)
        high = "+inf" if query.until_ms is None else (query.until_ms + 1) * 1000 - 1
        return [i.decode() for i in self.client.zrevrangebyscore(order, high, low)]

    def query(self, query: AuditQuery, offset: int, limit: int) -> Page:
        try:
            ids = self._candidates(query)
            if not (query.empty or (query.key is not None and query == AuditQuery(key=query.key))
                    or (query.job is not None and query == AuditQuery(job=query.job))):
                matched = []
                for start in range(0, len(ids), 1000):
                    chunk = ids[start:start + 1000]
                    for entry_id, raw in zip(chunk, self.client.hmget(f"{self.base}:h", chunk),
                                             strict=True):
                        if raw and query.matches(json.loads(raw)):
                            matched.append(entry_id)
                ids = matched
            wanted = ids[offset:offset + limit]
            bodies = self.client.hmget(f"{self.base}:e", wanted) if wanted else []
        except self._errors as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error
        entries = [json.loads(body) for body in bodies if body]
        return Page(entries, offset, len(ids))

    def iter_entries(self, query: AuditQuery, chunk: int = 500) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.query(query, offset, chunk)
            yield from page.entries
            if offset + chunk >= page.total:
                return
            offset += chunk

    def get(self, entry_id: str) -> dict[str, Any] | None:
        try:
            body = self.client.hget(f"{self.base}:e", entry_id)
        except self._errors as error:
            raise JournalUnavailable(f"{self.where}: {error}") from error
        return json.loads(body) if body else None

    def page(self, offset: int, limit: int) -> Page:
        return self.query(AuditQuery(), offset, limit)

    def close(self) -> None:
        self.client.close()
