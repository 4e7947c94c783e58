"""Background index checks: progress, cancel, shared state between app instances.

Real servers only: a dev store (``delay_ms`` makes each listing page slow, so a job is
still running when it is cancelled) and a real redis-server as the shared session storage.
No timing assertions: states are polled for with generous deadlines.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from dashboard import mesh
from dashboard.devstore import start_devstore
from dashboard.mesh import drift
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import csrf_token, login, make_app

KEYS = 20_000
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def devstore():
    running = start_devstore(port=0)
    provider = ToskaStoreProvider(running.url, timeout=30.0)
    try:
        yield running, provider
    finally:
        provider.close()
        running.stop()


@pytest.fixture(scope="module")
def big_service(devstore):
    """~20,000 live keys, an index with 3 stale entries, 5 keys missing from it, 1 duplicate."""
    running, provider = devstore
    service = "bigjob:"
    inner = [f"k{i:06d}" for i in range(KEYS)]
    for name in inner:
        running.store.put(service + name, "1", ttl_ms=None)
    index = inner[5:] + ["gone1", "gone2", "gone3", inner[10]]
    provider.put(service + "__keys", json.dumps(index), ttl=NO_TTL)
    return service


def client_for(app, name: str):
    client = app.test_client()
    login(client, name)
    return client


def start(client, service: str) -> str:
    response = client.post("/index/check/start", data={
        "service": service, "csrf_token": csrf_token(client, "/index")})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert response.headers["Location"].startswith("/index/job?id=")
    return response.headers["Location"]


def status(client, url: str, *, htmx: bool = True) -> dict[str, str]:
    response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_data(as_text=True)
    root = re.search(r'<div id="index-job"([^>]*)>', body)
    assert root, body[:500]
    found = dict(re.findall(r'([\w-]+)="([^"]*)"', root.group(1)))
    found["body"] = body
    summary = re.search(r'data-testid="job-summary"([^>]*)>', body)
    if summary:
        found.update({f"summary-{k}": v for k, v in re.findall(r'data-(\w+)="([^"]*)"',
                                                               summary.group(1))})
    return found


def wait_for(client, url: str, accept: Callable[[dict[str, str]], bool],
             what: str) -> dict[str, str]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seen = status(client, url)
        if accept(seen):
            return seen
        assert time.monotonic() < deadline, f"never {what}; last state {seen['data-state']}"
        time.sleep(0.05)


def cancel(client, url: str):
    job_id = url.split("id=", 1)[1]
    response = client.post("/index/job/cancel", data={
        "id": job_id, "csrf_token": csrf_token(client, url)})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response


def test_job_runs_to_done_with_the_counts_of_check_index(devstore, big_service):
    running, provider = devstore
    app = make_app(provider, KV_JOB_PROGRESS_KEYS=1000, KV_JOB_PROGRESS_SECONDS=0)
    editor = client_for(app, "ed")
    url = start(editor, big_service)
    # while running, the fragment polls itself every second; the full page too
    first = status(editor, url, htmx=False)
    if first["data-state"] == "running":
        assert first["hx-trigger"] == "every 1s"
        assert 'data-testid="cancel-job"' in first["body"]
    done = wait_for(editor, url, lambda s: s["data-state"] == "done", "done")
    assert "hx-trigger" not in done and 'data-testid="cancel-job"' not in done["body"]

    service = mesh.service_for_prefix(app.config["KV_SETTINGS"], big_service)
    report = mesh.check_index(provider, service)
    assert (int(done["summary-stale"]), int(done["summary-unindexed"]),
            int(done["summary-duplicates"])) == (3, 5, 1)
    assert int(done["summary-stale"]) == len(report.stale)
    assert int(done["summary-unindexed"]) == len(report.unindexed)
    assert int(done["summary-duplicates"]) == len(report.duplicates)
    assert int(done["summary-live"]) == report.live == KEYS
    assert int(done["summary-indexed"]) == report.indexed
    assert int(done["data-checked"]) == KEYS
    assert all(f'data-key="{key}"' in done["body"] for key in report.stale + report.unindexed)
    assert 'data-testid="job-full-check"' in done["body"]


def test_progress_is_recorded_while_running_and_cancel_stops_the_job(devstore, big_service,
                                                                      monkeypatch):
    running, provider = devstore
    # small pages on a slow store: 200 pages of 100 ms each, far longer than the test needs
    monkeypatch.setattr(drift, "CHECK_PAGE", 100)
    running.delay_ms = 100
    try:
        app = make_app(provider, KV_JOB_PROGRESS_KEYS=100, KV_JOB_PROGRESS_SECONDS=0)
        editor = client_for(app, "ed")
        url = start(editor, big_service)
        seen = wait_for(editor, url, lambda s: int(s["data-checked"]) >= 300, "progress")
        assert seen["data-state"] == "running" and int(seen["data-checked"]) < KEYS
        cancel(editor, url)
        after = status(editor, url)
        assert after["data-state"] in ("running", "cancelled")
        if after["data-state"] == "running":
            assert after["data-cancel-requested"] == "true" and "Cancelling" in after["body"]
        final = wait_for(editor, url, lambda s: s["data-state"] != "running", "stopped")
        assert final["data-state"] == "cancelled", final["body"][:500]
        assert int(final["data-checked"]) < KEYS
        assert "hx-trigger" not in final
    finally:
        running.delay_ms = 0


def test_a_viewer_may_start_and_watch_a_job(devstore, big_service):
    _, provider = devstore
    viewer = client_for(make_app(provider), "vi")
    url = start(viewer, big_service)
    done = wait_for(viewer, url, lambda s: s["data-state"] == "done", "done")
    assert done["summary-stale"] == "3"


def test_the_check_pages_offer_a_background_check(devstore, big_service):
    _, provider = devstore
    editor = client_for(make_app(provider), "ed")
    page = editor.get(f"/index/check?service={big_service}").get_data(as_text=True)
    assert 'data-testid="start-job"' in page and 'data-testid="drift-summary"' in page
    overview = editor.get("/index").get_data(as_text=True)
    assert 'data-testid="start-job"' in overview


def test_unknown_and_failed_jobs(devstore):
    _, provider = devstore
    editor = client_for(make_app(provider), "ed")
    assert editor.get("/index/job?id=" + "0" * 32).status_code == 404
    assert editor.get("/index/job?id=../etc").status_code == 400
    url = start(editor, "no-such-service-here:")
    failed = wait_for(editor, url, lambda s: s["data-state"] != "running", "finished")
    assert failed["data-state"] == "failed" and "no such service" in failed["body"]


def test_a_job_not_updated_for_a_minute_shows_as_lost(devstore, big_service):
    _, provider = devstore
    now = [time.time()]
    app = make_app(provider, KV_CLOCK=lambda: now[0])
    editor = client_for(app, "ed")
    running, _ = devstore
    running.delay_ms = 100
    try:
        url = start(editor, big_service)
        assert status(editor, url)["data-state"] == "running"
        # the clock moves on; the job's thread (on the same clock) has not written since
        now[0] += 3600
        lost = status(editor, url)
        assert lost["data-state"] == "lost" and "hx-trigger" not in lost
        cancel(editor, url)  # stop the thread: its next report reads the flag
    finally:
        running.delay_ms = 0


def test_two_instances_sharing_redis_sessions_share_jobs(devstore, big_service, redis_server,
                                                         monkeypatch):
    running, provider = devstore
    storage = {"SessionStorage": f"redis://{redis_server.host}:{redis_server.port}/3"}
    one = make_app(provider, dashboard=storage, KV_JOB_PROGRESS_KEYS=100,
                   KV_JOB_PROGRESS_SECONDS=0)
    two = make_app(provider, dashboard=storage)
    monkeypatch.setattr(drift, "CHECK_PAGE", 100)
    running.delay_ms = 100
    try:
        starter, other = client_for(one, "ed"), client_for(two, "vi")
        url = start(starter, big_service)
        seen = wait_for(other, url, lambda s: int(s["data-checked"]) >= 200,
                        "progress seen on the other instance")
        assert seen["data-state"] == "running"
        cancel(other, url)
        final = wait_for(starter, url, lambda s: s["data-state"] != "running", "stopped")
        assert final["data-state"] == "cancelled"
        assert status(other, url)["data-state"] == "cancelled"
    finally:
        running.delay_ms = 0
    # and a finished job's result is there for both
    url = start(other, big_service)
    done = wait_for(starter, url, lambda s: s["data-state"] == "done", "done")
    assert done["summary-stale"] == "3"


def test_a_poll_for_a_job_that_is_gone_replaces_the_poller(devstore):
    """A job that expired (or lives on a replica without shared storage) ends the polling."""
    _, provider = devstore
    editor = client_for(make_app(provider), "ed")
    gone = status(editor, "/index/job?id=" + "0" * 32)
    assert gone["data-state"] == "gone" and "hx-trigger" not in gone
    assert "No such job" in gone["body"]
