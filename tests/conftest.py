"""Shared fixtures: real stores for the provider contract suite, each under a fresh prefix."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

from dashboard.devstore import start_devstore
from tests.support.backends import BACKEND_NAMES, Backend, start_backend
from tests.support.live import chromium
from tests.support.webapp import login, make_app

_prefix_counter = itertools.count()


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
    context = browser.new_context(base_url=base_url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        (tmp_path / "failure.html").write_text(page.content())
        print(f"screenshot of the failing screen: {tmp_path / 'failure.png'}")
    context.close()
    assert not refused, f"the page broke its Content-Security-Policy: {refused}"


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
