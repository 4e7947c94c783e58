"""Shared fixtures: real stores for the provider contract suite, each under a fresh prefix."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import uuid

import pytest

from dashboard.devstore import start_devstore
from tests.support.backends import BACKEND_NAMES, Backend, start_backend
from tests.support.live import checked_page, chromium
from tests.support.processes import kill_all, live_children
from tests.support.webapp import login, make_app

_prefix_counter = itertools.count()
# the dashboard keeps its own files (the audit trail's SQLite file) under $XDG_STATE_HOME by
# default: every test process (and the commands it starts) gets a fresh one, never the
# home directory's
_STATE = tempfile.mkdtemp(prefix="kv-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
_LEAKED = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session", params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest):
    """Each store the contract suite covers, started once per session."""
    with start_backend(request.param) as running:
        yield running


@pytest.fixture
def prefix() -> str:
    """A service prefix no other test uses, so tests share servers without clearing them."""
    return f"ct{next(_prefix_counter)}{uuid.uuid4().hex[:6]}:"


@pytest.fixture
def provider(backend: Backend):
    return backend.provider


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the item, so fixtures can react to a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# --- web apps: a test module provides a `store` fixture (a Backend) ----------------------

@pytest.fixture
def app(store: Backend):
    return make_app(store.provider)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def editor(client):
    login(client, "ed")
    return client


@pytest.fixture
def viewer(client):
    login(client, "vi")
    return client


# --- browsers: an e2e module provides a `base_url` fixture (a live server) ---------------

@pytest.fixture(scope="session")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser, base_url, request, tmp_path):
    """A fresh browser context; the failing screen is saved under the test's temp dir."""
    with checked_page(browser, request, tmp_path, base_url=base_url,
                      accept_downloads=True) as page:
        yield page


# --- the CLI reads the environment: tests start from none of the mesh's settings -------

@pytest.fixture
def clean_environment(monkeypatch):
    """Only what a test sets itself configures the CLI."""
    for name in list(os.environ):
        if name.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def devstore():
    """A current-generation dev store for the module's tests."""
    with start_devstore(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def devstore_provider(devstore):
    """A ToskaStore provider on the module's dev store."""
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    provider = ToskaStoreProvider(devstore.url)
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server for the module's tests."""
    from tests.support.redis_server import RedisServer

    with RedisServer() as server:
        yield server


# --- no test leaves a process behind: the run fails on a leftover child -----------------

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture is torn down: a child of this pytest process still running is
    a leak. It is killed, and the run fails naming its command line. Under xdist each
    worker checks its own children and hands them to the controller; the workers
    themselves, and the dev store ``scripts/with-devstore`` started beside pytest, are not
    pytest's leftovers."""
    leftovers = live_children()
    kill_all(leftovers)
    found = [f"pid {child.pid}: {child.command}" for child in leftovers]
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: the controller reports
        worker_output["leaked_processes"] = found
        return
    leaked = session.config.stash.setdefault(_LEAKED, [])
    leaked.extend(found)
    if leaked and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist: a worker's leftover children, as its session finish found them."""
    found = getattr(node, "workeroutput", {}).get("leaked_processes", [])
    worker = getattr(node, "gateway", None)
    name = getattr(worker, "id", "worker")
    node.config.stash.setdefault(_LEAKED, []).extend(f"{name} {line}" for line in found)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    leaked = config.stash.get(_LEAKED, [])
    if leaked:
        terminalreporter.section("processes left running", sep="=", red=True, bold=True)
        terminalreporter.line("the tests left these child processes running (now killed); "
                              "the run fails:", red=True)
        for line in leaked:
            terminalreporter.line(f"  {line}")
