"""End to end: break-glass elevation, masking, the environment band, and a key's history
with its undo, in Debian's Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        backend.seed({"pay:card:1": '{"amount":5}', "identity:u1": '{"email":"ann@x.io"}'})
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    app = make_app(store.provider, dashboard={
        "Elevation": {"Required": True, "MaxMinutes": 30},
        "Environment": {"Name": "production", "Color": "red"},
        "Access": [{"Prefixes": "identity:", "Role": "viewer", "Users": "ed"}],
        "Masking": [{"Prefixes": "identity:", "JsonFields": "email"}]})
    with serve_app(app) as url:
        yield url


def test_an_editor_elevates_with_a_reason_writes_and_ends_it(page, store):
    log_in(page)
    expect(page).to_have_title(re.compile(r"^\[production\] "))
    expect(page.locator('[data-testid="environment-band"]')).to_have_text("production")
    page.goto("/key?key=pay:card:1")
    expect(page.locator('[data-testid="edit"]')).to_have_count(0)
    form = page.locator('[data-testid="elevate-form"]')
    form.locator("summary").click()
    page.fill('[data-testid="elevate-reason"]', "INC-77 refund stuck")
    page.fill('[data-testid="elevate-minutes"]', "15")
    page.click('[data-testid="elevate"]')
    page.wait_for_url(re.compile(r"/key\?key=pay"))  # back where the operator was
    banner = page.locator('[data-testid="elevation-banner"]')
    expect(banner).to_contain_text("INC-77 refund stuck")
    expect(banner).to_contain_text("15 min")
    page.click('[data-testid="edit"]')
    page.fill('[data-testid="value-input"]', '{"amount":6}')
    page.click('[data-testid="review"]')
    page.click('[data-testid="confirm"]')
    page.wait_for_url(re.compile(r"/key\?key=pay"))
    assert store.provider.get("pay:card:1").value in ('{"amount":6}', '{"amount": 6}')
    page.goto("/audit")
    expect(page.locator('[data-testid="audit-row"][data-action="edit"] [data-testid="audit-reason"]')
           ).to_contain_text("INC-77 refund stuck")
    page.click('[data-testid="end-elevation"]')
    expect(page.locator('[data-testid="elevation-banner"]')).to_have_count(0)
    page.goto("/key?key=pay:card:1")
    expect(page.locator('[data-testid="edit"]')).to_have_count(0)


def test_a_masked_field_reads_as_dots_until_the_editor_may_write_there(page):
    log_in(page)
    page.goto("/key?key=identity:u1&view=json")
    expect(page.locator('[data-testid="value"]')).to_contain_text("••••")
    expect(page.locator('[data-testid="value"]')).not_to_contain_text("ann@x.io")


def test_a_keys_history_shows_an_edit_and_undoes_it(page, store):
    store.provider.put("pay:card:2", '{"amount":1}', ttl=NO_TTL)
    log_in(page)
    page.goto("/key?key=pay:card:2")
    page.locator('[data-testid="elevate-form"] summary').click()
    page.fill('[data-testid="elevate-reason"]', "INC-78 wrong amount")
    page.click('[data-testid="elevate"]')
    page.click('[data-testid="edit"]')
    page.fill('[data-testid="value-input"]', '{"amount":2}')
    page.click('[data-testid="review"]')
    page.click('[data-testid="confirm"]')
    page.wait_for_url(re.compile(r"/key\?key=pay"))
    page.click('[data-testid="history"]')
    entry = page.locator('[data-testid="history-entry"][data-action="edit"]')
    expect(entry).to_have_count(1)
    expect(entry.locator('[data-testid="history-diff"]')).to_contain_text('"amount": 2')
    entry.locator('[data-testid="revert"]').click()
    expect(page.locator('[data-testid="flash"]')).to_contain_text("Undone")
    expect(page.locator('[data-testid="history-entry"]').first).to_have_attribute(
        "data-action", "revert")
    assert store.provider.get("pay:card:2").value == '{"amount":1}'
    page.click('[data-testid="end-elevation"]')
