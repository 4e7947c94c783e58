"""End to end: sorting the browse rows by size and TTL, kept across "Next" and a reload, and
the range line's total, in Debian's Chromium on a live dashboard."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import TtlChange
from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e

ITEMS = 260
MINUTE_MS = 60_000


def item(i: int) -> str:
    return f"shop:item:{i:04d}"


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        # sizes that do not follow the keys' order; every tenth key expires, later ones later
        backend.seed({item(i): json.dumps({"id": i, "pad": "x" * ((i * 7) % 50)})
                      for i in range(ITEMS) if i % 10})
        for i in range(0, ITEMS, 10):
            backend.provider.put(item(i), json.dumps({"id": i}),
                                 ttl=TtlChange.set((ITEMS - i) * MINUTE_MS))
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def rows(page) -> list[dict]:
    """Each key row on screen, in order: key, data-size and the TTL cell's data-ttl-ms."""
    return page.locator('[data-testid="key-row"]').evaluate_all(
        """rows => rows.map(r => ({key: r.dataset.key, size: Number(r.dataset.size),
                                   ttl: r.querySelector('td.ttl').dataset.ttlMs}))""")


def last_row_id(page) -> str:
    return page.locator("#keys-rows > tr").last.get_attribute("data-testid")


def assert_size_descending(shown: list[dict]) -> None:
    sizes = [row["size"] for row in shown]
    assert sizes == sorted(sizes, reverse=True)
    # ties keep the listing's order
    for a, b in zip(shown, shown[1:], strict=False):
        if a["size"] == b["size"]:
            assert a["key"] < b["key"]


def test_sort_by_size_descending_survives_next_and_a_reload(page):
    log_in(page)
    page.goto("/browse?prefix=shop:item:")
    size = page.locator('th[data-sort="size"]')
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)
    assert rows(page)[0]["key"] == item(0)  # the listing's order until asked
    size.get_by_role("button", name="Size").click()
    expect(size).to_have_attribute("aria-sort", "ascending")
    sizes = [row["size"] for row in rows(page)]
    assert sizes == sorted(sizes)
    size.get_by_role("button").click()
    expect(size).to_have_attribute("aria-sort", "descending")
    assert_size_descending(rows(page))
    assert "sort=size&order=desc" in page.url
    assert page.locator('th[data-sort="key"]').get_attribute("aria-sort") is None

    page.click('[data-testid="next-page"]')  # htmx appends 100 rows: sorted in with the rest
    expect(page.locator('[data-testid="key-row"]')).to_have_count(200)
    assert_size_descending(rows(page))
    assert last_row_id(page) == "load-more"
    page.wait_for_url(re.compile(r"cursor=.*sort=size&order=desc"))

    page.reload()  # the pages on screen, read again, sorted the same way
    expect(page.locator('[data-testid="key-row"]')).to_have_count(200)
    expect(page.locator('th[data-sort="size"]')).to_have_attribute("aria-sort", "descending")
    assert_size_descending(rows(page))
    assert last_row_id(page) == "load-more"

    page.click('[data-testid="next-page"]')  # the last page: "the end" stays last
    expect(page.locator('[data-testid="key-row"]')).to_have_count(ITEMS)
    assert_size_descending(rows(page))
    assert last_row_id(page) == "rows-end"
    expect(page.locator('[data-testid="rows-end"]')).to_have_text(
        f"Keys 1–{ITEMS} of {ITEMS} shown, the end of the list.")


def test_sort_by_ttl_puts_no_expiry_after_every_finite_ttl(page):
    log_in(page)
    page.goto("/browse?prefix=shop:item:&sort=ttl")  # a link with the sort applies it
    ttl = page.locator('th[data-sort="ttl"]')
    expect(ttl).to_have_attribute("aria-sort", "ascending")
    shown = rows(page)
    finite = [int(row["ttl"]) for row in shown if row["ttl"] not in ("none", "unknown")]
    assert len(finite) == 10 and finite == sorted(finite)
    assert [row["ttl"] for row in shown[:10]] == [str(t) for t in finite]
    assert all(row["ttl"] == "none" for row in shown[10:])
    assert shown[0]["key"] == item(90)  # the shortest TTL on the first page

    ttl.get_by_role("button").click()  # descending: no expiry first, then the longest TTL
    expect(ttl).to_have_attribute("aria-sort", "descending")
    shown = rows(page)
    assert all(row["ttl"] == "none" for row in shown[:90])
    assert [row["key"] for row in shown[90:]] == [item(i) for i in range(0, 100, 10)]
    assert "sort=ttl&order=desc" in page.url

    ttl.get_by_role("button").click()  # a third time: the listing's order, and the URL says so
    expect(ttl).not_to_have_attribute("aria-sort", re.compile(".*"))
    assert [row["key"] for row in rows(page)] == [item(i) for i in range(100)]
    assert "sort=" not in page.url and "order=" not in page.url


def test_the_range_line_counts_the_whole_prefix(page):
    log_in(page)
    page.goto("/browse?prefix=shop:item:")
    line = page.locator('[data-testid="load-more"] [data-testid="rows-range"]')
    line.scroll_into_view_if_needed()  # counted when it comes into view
    expect(line).to_have_text(f"· Keys 1–100 of {ITEMS} shown")
    page.click('[data-testid="next-page"]')
    expect(page.locator('[data-testid="key-row"]')).to_have_count(200)
    line.scroll_into_view_if_needed()
    expect(line).to_have_text(f"· Keys 1–200 of {ITEMS} shown")


def test_the_filter_keeps_the_sort(page):
    log_in(page)
    page.goto("/browse?prefix=shop:item:")
    page.locator('th[data-sort="size"]').get_by_role("button").click()
    page.fill('[data-testid="filter"]', "shop:item:01")
    page.wait_for_url(re.compile(r"prefix=shop(:|%3A)item(:|%3A)01.*sort=size&order=asc"))
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)
    expect(page.locator('th[data-sort="size"]')).to_have_attribute("aria-sort", "ascending")
    sizes = [row["size"] for row in rows(page)]
    assert sizes == sorted(sizes)
