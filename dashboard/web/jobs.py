"""Background index checks: a record per job, in the storage the sessions use.

A job runs ``mesh.check_index`` in a daemon thread of the worker that got ``POST
/index/check/start``; its record (state, keys checked so far, summary, the first
``LIST_CAP`` keys of each drift list) lives in the session storage's cachelib cache, so
any worker or replica that shares that storage can show the progress or cancel the job:

- ``Dashboard:SessionStorage`` a ``redis://`` / ``rediss://`` URL: every replica sharing
  that Redis sees every job (keys ``kvdash:session:job:<id>``, beside the sessions);
- the default files: the workers of one host share their jobs, other replicas do not;
- ``memory://`` (tests): one process only.

A cancel writes a separate flag (never the record, which only the running thread writes),
so no update of the record can lose it; the thread reads the flag at each progress report
(each listing page) and stops. A job whose worker died (restart, ``max_requests``, OOM)
stops updating its record: after ``LOST_AFTER_S`` without an update it shows as "lost".
Records expire ``JOB_TTL_S`` after their last update.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from cachelib import BaseCache
from flask import Flask, current_app

from dashboard import mesh
from dashboard.stores.base import KeyValueProvider

log = logging.getLogger("dashboard.jobs")

KIND = "index-check"
#: keys of each drift list kept in the record (the counts are always complete)
LIST_CAP = 1000
#: a running job not updated for this long is shown as "lost" (its worker died)
LOST_AFTER_S = 60.0
#: records are kept this long after their last update
JOB_TTL_S = 24 * 3600
#: progress is written at most this often / at least every this many keys (app.config
#: ``KV_JOB_PROGRESS_SECONDS`` / ``KV_JOB_PROGRESS_KEYS`` override them)
PROGRESS_SECONDS = 0.5
PROGRESS_KEYS = 10_000
FINISHED = ("done", "cancelled", "failed")
_ID = re.compile(r"[0-9a-f]{32}")


class Cancelled(Exception):
    """Raised inside ``check_index`` (from ``on_progress``) when the job's cancel flag is set."""


class StorageUnavailable(Exception):
    """The job storage (the session storage) did not answer."""


def storage(app: Flask) -> BaseCache:
    """The session storage's cache (Redis, files or memory, as ``Dashboard:SessionStorage`` says)."""
    found = app.extensions.get("kv_jobs_cache")
    if found is None:
        found = app.session_interface.cache  # type: ignore[attr-defined]
        app.extensions["kv_jobs_cache"] = found
    return found


def _record_key(job_id: str) -> str:
    return f"job:{job_id}"


def _cancel_key(job_id: str) -> str:
    return f"job-cancel:{job_id}"


def _clock(app: Flask) -> float:
    return float(app.config.get("KV_CLOCK", time.time)())


def valid_id(job_id: str | None) -> bool:
    return bool(job_id) and _ID.fullmatch(job_id or "") is not None


def _put(cache: BaseCache, record: dict[str, Any]) -> None:
    try:
        ok = cache.set(_record_key(record["id"]), record, timeout=JOB_TTL_S)
    except Exception as error:  # redis.RedisError, OSError
        raise StorageUnavailable(str(error)) from error
    if ok is False:
        raise StorageUnavailable("the job storage refused the record")


def start(app: Flask, provider: KeyValueProvider, service: mesh.Service, *, actor: str) -> str:
    """Record a new job and start its thread; its id. ``StorageUnavailable`` if not recorded."""
    cache = storage(app)
    now = _clock(app)
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex, "kind": KIND, "service": service.prefix,
        "service_name": service.name, "index_key": service.index_full_key, "actor": actor,
        "state": "running", "checked": 0, "started": now, "updated": now, "finished": None,
        "summary": None, "lists": None, "error": None,
    }
    _put(cache, record)
    thread = threading.Thread(target=_run, args=(app, cache, provider, service, record),
                              name=f"index-check-{record['id'][:8]}", daemon=True)
    thread.start()
    return record["id"]


def _run(app: Flask, cache: BaseCache, provider: KeyValueProvider, service: mesh.Service,
         record: dict[str, Any]) -> None:
    step_s = float(app.config.get("KV_JOB_PROGRESS_SECONDS", PROGRESS_SECONDS))
    step_keys = int(app.config.get("KV_JOB_PROGRESS_KEYS", PROGRESS_KEYS))
    written = {"at": time.monotonic(), "keys": 0}

    def on_progress(checked: int) -> None:
        if cancel_requested(cache, record["id"]):
            raise Cancelled
        now = time.monotonic()
        if now - written["at"] < step_s and checked - written["keys"] < step_keys:
            return
        record.update(checked=checked, updated=_clock(app))
        try:
            _put(cache, record)
        except StorageUnavailable as error:
            log.warning("job %s: progress not recorded: %s", record["id"], error)
        written.update(at=now, keys=checked)

    with app.app_context():
        try:
            report = mesh.check_index(provider, service, on_progress=on_progress)
        except Cancelled:
            record.update(state="cancelled")
        except Exception as error:  # a store error, NoSuchService, ...: shown on the job page
            log.warning("job %s (%s) failed: %s", record["id"], service.prefix, error)
            record.update(state="failed", error=str(error) or type(error).__name__)
        else:
            record.update(state="done", checked=report.live, summary=summary(report),
                          lists={name: list(getattr(report, name)[:LIST_CAP])
                                 for name in ("stale", "unindexed", "duplicates")})
            _keep_for_paging(app, report)
        now = _clock(app)
        record.update(updated=now, finished=now)
        try:
            _put(cache, record)
        except StorageUnavailable as error:
            log.error("job %s ended (%s) but could not be recorded: %s", record["id"],
                      record["state"], error)


#: a finished check stays reusable this long for paging through its lists
REPORT_TTL_S = 300


class _RecentReports:
    """The last check per service, so paging a 100,000-key drift list does not re-check.

    Per process: with several workers a page may land on one that has not seen the
    check; it then simply checks again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[float, mesh.DriftReport]] = {}

    def get(self, prefix: str, checked_at_ms: int | None) -> mesh.DriftReport | None:
        with self._lock:
            found = self._reports.get(prefix)
        if not found or time.monotonic() - found[0] > REPORT_TTL_S:
            return None
        report = found[1]
        return report if checked_at_ms in (None, report.checked_at_ms) else None

    def put(self, report: mesh.DriftReport) -> None:
        # the pages page through the drift lists only: the index as read (a million
        # entries on a big service) is not kept past the request that checked it
        kept = replace(report, index_entries=())
        with self._lock:
            self._reports[report.service.prefix] = (time.monotonic(), kept)


def recent_reports() -> _RecentReports:
    """This process's recent checks (shared with background jobs, which finish into it)."""
    return current_app.extensions.setdefault("index_reports", _RecentReports())


def _keep_for_paging(app: Flask, report: mesh.DriftReport) -> None:
    """This worker's check page can page through the result without checking again."""
    try:
        recent_reports().put(report)
    except Exception:  # only an optimisation
        log.debug("report of %s not kept for paging", report.service.prefix, exc_info=True)


def summary(report: mesh.DriftReport) -> dict[str, Any]:
    return {
        "indexed": report.indexed, "live": report.live, "in_both": report.in_both,
        "stale": len(report.stale), "unindexed": len(report.unindexed),
        "duplicates": len(report.duplicates), "malformed": report.malformed,
        "unindexed_detectable": report.unindexed_detectable,
        "listing_note": report.listing_note, "consistent": report.consistent,
        "checked_at_ms": report.checked_at_ms, "seconds": round(report.seconds, 3),
    }


def cancel_requested(cache: BaseCache, job_id: str) -> bool:
    try:
        return bool(cache.get(_cancel_key(job_id)))
    except Exception as error:  # the storage is down: keep checking, nobody can cancel
        log.warning("job %s: cancel flag unreadable: %s", job_id, error)
        return False


def get(app: Flask, job_id: str) -> dict[str, Any] | None:
    """The job's record (None if unknown or expired), with ``cancel_requested`` and ``lost``.

    ``StorageUnavailable`` when the storage does not answer.
    """
    cache = storage(app)
    try:
        record = cache.get(_record_key(job_id))
        cancelling = bool(cache.get(_cancel_key(job_id)))
    except Exception as error:
        raise StorageUnavailable(str(error)) from error
    if not isinstance(record, dict):
        return None
    record = dict(record)
    record["cancel_requested"] = cancelling
    record["lost"] = (record.get("state") == "running"
                      and _clock(app) - float(record.get("updated") or 0) > LOST_AFTER_S)
    record["finished_state"] = record.get("state") in FINISHED or record["lost"]
    return record


def cancel(app: Flask, job_id: str) -> None:
    """Ask the job to stop (whichever worker or replica runs it); a finished job is unchanged."""
    try:
        storage(app).set(_cancel_key(job_id), True, timeout=JOB_TTL_S)
    except Exception as error:
        raise StorageUnavailable(str(error)) from error
