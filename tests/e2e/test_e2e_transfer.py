"""End to end: export a prefix, then import it through the browser (upload, plan, confirm)."""

from __future__ import annotations

import json
from pathlib import Path

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
        backend.seed({"trip:a": '{"n":1}', "trip:b": "text"})
        backend.seed({"trip:ttl": '{"n":2}'}, ttl_ms=3_600_000)
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def test_export_then_import_through_the_browser(page, store, base_url, tmp_path):
    log_in(page)
    page.goto("/browse?prefix=trip:")
    with page.expect_download() as download:
        page.click('[data-testid="export-prefix"]')  # the browse page's export link
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.endswith(".jsonl")
    assert len(data.splitlines()) == 3
    for key in ("trip:a", "trip:b", "trip:ttl"):
        store.provider.delete(key)
    store.provider.put("trip:b", "someone else's", ttl=NO_TTL)
    upload = tmp_path / "trip.jsonl"
    upload.write_bytes(data)

    page.goto("/import")
    page.set_input_files('[data-testid="import-file"]', str(upload))
    page.check('[data-testid="mode-skip-existing"]')
    page.click('[data-testid="import-plan"]')
    counts = page.locator('[data-testid="plan-counts"]')
    expect(counts).to_have_attribute("data-new", "2")
    expect(counts).to_have_attribute("data-skipped", "1")
    assert store.provider.exists_many(["trip:a"])["trip:a"] is False  # the plan wrote nothing
    # a click submits once: the button is disabled as soon as the form is submitted (held
    # here, so the screen stays), then the form goes on its way (the server also refuses a
    # second confirmation of one plan)
    # the page's deferred scripts must have run (a loaded machine paints the plan first)
    page.wait_for_load_state("load")
    page.evaluate("window.addEventListener('submit', (event) => event.preventDefault())")
    page.click('[data-testid="import-confirm"]')
    expect(page.locator('[data-testid="import-confirm"]')).to_be_disabled()
    page.evaluate("document.querySelector('[data-testid=import-confirm-form]').submit()")
    result = page.locator('[data-testid="import-result"]')
    expect(result).to_have_attribute("data-complete", "true")
    expect(result).to_have_attribute("data-written", "2")
    assert store.provider.get("trip:a").value == '{"n":1}'
    assert store.provider.get("trip:b").value == "someone else's"
    ttl = store.provider.get("trip:ttl").ttl_ms
    assert ttl is not None and 3_500_000 < ttl <= 3_600_000
    assert json.loads(data.splitlines()[0])["key"] == "trip:a"
