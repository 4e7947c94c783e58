"""End to end: bulk lookups on a live dashboard, driven through Debian's Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        backend.seed({"team:profile:alice": '{"id":"alice","displayName":"Alice"}',
                      "team:profile:bob": '{"id":"bob"}',
                      "team:odd:sp ace": "<b>not bold</b>"})
        backend.seed({"team:session:42": '{"cart":[1,2]}'}, ttl_ms=HOUR_MS)
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def rows(page) -> list[tuple[str, str]]:
    found = page.locator('[data-testid="mget-row"]')
    return [(found.nth(i).get_attribute("data-key"), found.nth(i).get_attribute("data-found"))
            for i in range(found.count())]


def test_paste_keys_and_see_the_table(page):
    log_in(page, "vi")  # a viewer: lookups are read-only
    page.goto("/mget")
    page.fill('[data-testid="mget-keys"]', "team:profile:bob\n"
                                            "team:profile:nobody\n"
                                            "\n"
                                            "  team:odd:sp ace  \n"
                                            "team:profile:bob\n"
                                            "team:session:42\n")
    page.click('[data-testid="mget-submit"]')
    summary = page.locator('[data-testid="mget-summary"]')
    summary.wait_for()
    assert page.url.endswith("/mget")  # swapped in by htmx, the form stays as typed
    assert (summary.get_attribute("data-found"), summary.get_attribute("data-missing")) == ("3", "1")
    assert summary.inner_text() == "3 found, 1 missing"
    assert rows(page) == [("team:profile:bob", "true"), ("team:profile:nobody", "false"),
                          ("team:odd:sp ace", "true"), ("team:session:42", "true")]
    assert "1 blank line and 1 duplicate dropped" in page.locator(
        '[data-testid="mget-dropped"]').inner_text()
    odd = page.locator('[data-testid="mget-row"][data-key="team:odd:sp ace"]')
    assert odd.locator("td.preview").inner_text() == "<b>not bold</b>"  # shown as text
    assert "team:profile:bob" in page.locator('[data-testid="mget-keys"]').input_value()

    with page.expect_download() as csv_download:
        page.click('[data-testid="mget-download-csv"]')
    assert csv_download.value.suggested_filename == "mget.csv"
    csv_text = Path(csv_download.value.path()).read_bytes().decode("utf-8")
    records = list(csv.DictReader(io.StringIO(csv_text, newline="")))
    assert [(r["key"], r["found"]) for r in records] == rows(page)
    assert records[2]["value"] == "<b>not bold</b>"

    with page.expect_download() as json_download:
        page.click('[data-testid="mget-download-json"]')
    document = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert [(r["key"], "true" if r["found"] else "false") for r in document["results"]] == rows(page)

    page.click('[data-testid="mget-row"][data-key="team:odd:sp ace"] a')
    page.wait_for_url(re.compile(r"/key\?key="))
    assert page.locator('[data-testid="key-name"]').inner_text() == "team:odd:sp ace"


def test_service_selector_prefixes_pasted_keys(page):
    log_in(page, "vi")
    page.goto("/mget")
    page.select_option('[data-testid="mget-service"]', "team:")
    page.fill('[data-testid="mget-keys"]', "profile:alice, profile:zoe team:profile:bob")
    page.click('[data-testid="mget-submit"]')
    page.locator('[data-testid="mget-summary"]').wait_for()
    assert rows(page) == [("team:profile:alice", "true"), ("team:profile:zoe", "false"),
                          ("team:profile:bob", "true")]
    link = page.locator('[data-testid="mget-permalink"]').get_attribute("href")
    page.goto(link)  # the lookup is bookmarkable
    assert rows(page) == [("team:profile:alice", "true"), ("team:profile:zoe", "false"),
                          ("team:profile:bob", "true")]
    assert page.locator('[data-testid="mget-service"]').input_value() == "team:"


def test_too_many_keys_shows_the_error_in_place(page):
    log_in(page, "vi")
    page.goto("/mget")
    # typing 10,001 lines keystroke by keystroke is slow: paste them as the value at once
    page.locator('[data-testid="mget-keys"]').evaluate(
        "(area, text) => { area.value = text; }", "\n".join(f"team:k:{i}" for i in range(10_001)))
    page.click('[data-testid="mget-submit"]')
    error = page.locator('[data-testid="mget-error"]')
    error.wait_for()
    assert "10,001 keys is more than the 10,000" in error.inner_text()
    assert page.locator('[data-testid="mget-row"]').count() == 0
