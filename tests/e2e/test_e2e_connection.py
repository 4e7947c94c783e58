"""End to end: an htmx request that never reaches the dashboard is said, not swallowed.

The answers are made by the browser's request routing, standing in for an ingress that
answers 502 or a dashboard that is restarting; the dashboard and the store are real.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e
NEXT_PAGE = "**/browse?*cursor=*"


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        backend.seed({f"conn:item:{i:04d}": json.dumps({"id": i}) for i in range(150)})
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def test_an_ingress_error_and_a_dropped_connection_show_a_banner_until_a_request_succeeds(page):
    log_in(page)
    page.goto("/browse?prefix=conn:")
    rows = page.locator('[data-testid="key-row"]')
    expect(rows).to_have_count(100)
    banner = page.locator('[data-testid="connection-error"]')
    # the range line counts its total once scrolled into view: that request succeeding
    # later would (rightly) clear the banner this test waits for, so let it finish first
    page.locator('[data-testid="load-more"]').scroll_into_view_if_needed()
    expect(page.locator('[data-testid="rows-total"][data-count]')).to_have_count(1)

    page.route(NEXT_PAGE, lambda route: route.fulfill(status=502, body="<h1>Bad gateway</h1>"))
    page.click('[data-testid="next-page"]')
    expect(banner).to_contain_text("HTTP 502")
    assert "Bad gateway" not in page.locator("#flash").inner_html()  # the answer is not shown
    expect(rows).to_have_count(100)
    page.unroute(NEXT_PAGE)

    page.route(NEXT_PAGE, lambda route: route.abort("connectionreset"))
    page.click('[data-testid="next-page"]')
    expect(banner).to_contain_text("did not answer")
    page.unroute(NEXT_PAGE)

    page.click('[data-testid="next-page"]')
    expect(rows).to_have_count(150)
    expect(banner).to_have_count(0)
