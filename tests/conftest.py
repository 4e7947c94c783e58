"""Shared fixtures: real stores for the provider contract suite, each under a fresh prefix."""

from __future__ import annotations

import itertools
import uuid

import pytest

from tests.support.backends import BACKEND_NAMES, Backend, start_backend

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
