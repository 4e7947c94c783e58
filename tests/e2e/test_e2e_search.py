"""End to end: search and the state in the URL, in Debian's Chromium on a live dashboard."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        items = {f"shop:item:{i:04d}": json.dumps({"id": i, "name": f"Item {i}"})
                 for i in range(260)}
        items.update({"shop:sessions:42:cart": '{"items":["needle"]}',
                      "shop:sessions:43:cart": "[]", "shop:profile:alice": '{"id":"alice"}'})
        backend.seed(items)
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def keys_shown(page) -> list[str]:
    return page.locator('[data-testid="key-row"]').evaluate_all(
        "rows => rows.map(r => r.dataset.key)")


def test_pattern_search_finds_keys_inside_a_service(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    page.fill('[data-testid="match"]', "*:cart")
    expect(page.locator('[data-testid="match-end"]')).to_be_visible()
    assert sorted(keys_shown(page)) == ["shop:sessions:42:cart", "shop:sessions:43:cart"]
    assert "match=" in page.url
    page.reload()
    assert sorted(keys_shown(page)) == ["shop:sessions:42:cart", "shop:sessions:43:cart"]


def test_value_search_highlights_the_match(page):
    log_in(page)
    page.goto("/search?prefix=shop:")
    page.fill('[data-testid="search-q"]', "NEEDLE")
    page.check('[data-testid="search-icase"]')
    page.click('[data-testid="search-submit"]')
    row = page.locator('[data-testid="hit-row"]')
    expect(row).to_have_count(1)
    assert row.get_attribute("data-key") == "shop:sessions:42:cart"
    assert row.locator('[data-testid="hit-mark"]').inner_text() == "needle"
    assert "icase=1" in page.url and "q=NEEDLE" in page.url
    row.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/key\?key=shop"))


def test_the_filter_updates_breadcrumbs_title_and_links(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    page.fill('[data-testid="filter"]', "shop:sessions:")
    expect(page.locator('[data-testid="breadcrumbs"] a[data-prefix="shop:sessions:"]')).to_have_count(1)
    expect(page).to_have_title(re.compile(r"^shop:sessions: · "))
    assert "prefix=shop%3Asessions%3A" in page.locator('[data-testid="new-key"]').get_attribute(
        "href") or "prefix=shop:sessions:" in page.locator('[data-testid="new-key"]').get_attribute("href")
    page.click('[data-testid="view-folders"]')
    page.wait_for_url(re.compile(r"view=folders"))
    assert "prefix=shop:sessions:" in page.url or "prefix=shop%3Asessions%3A" in page.url
    expect(page.locator('[data-testid="folder-row"][data-prefix="shop:sessions:42:"]')).to_have_count(1)


def test_next_page_is_in_the_url_and_survives_a_reload(page):
    log_in(page)
    page.goto("/browse?prefix=shop:item:")
    rows = page.locator('[data-testid="key-row"]')
    expect(rows).to_have_count(100)
    page.click('[data-testid="next-page"]')
    expect(rows).to_have_count(200)
    page.wait_for_url(re.compile(r"cursor="))
    page.reload()  # what was on screen, read again from the start (issue 17 item 7)
    expect(rows).to_have_count(200)
    shown = keys_shown(page)
    assert shown[0] == "shop:item:0000" and shown[100] == "shop:item:0100"
    # the page alone (a shared link without the rows above it): its keys and the way back
    page.goto(re.sub(r"&shown=\d+", "", page.url))
    shown = keys_shown(page)
    assert shown[0] == "shop:item:0100" and len(shown) == 100
    page.click('[data-testid="first-page"]')
    page.wait_for_url(re.compile(r"/browse\?prefix=shop"))
    assert keys_shown(page)[0] == "shop:item:0000"


def test_no_page_asks_for_a_missing_favicon(page):
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page)
    page.goto("/browse?prefix=shop:")
    assert page.request.get("/favicon.ico").status == 200
    assert page.locator('link[rel="icon"]').get_attribute("href").endswith("favicon.svg")
    assert missing == []
