"""End to end: a live dashboard on a dev store, driven through Debian's Chromium."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        items = {f"shop:item:{i:04d}": json.dumps({"id": i, "name": f"Item {i}"})
                 for i in range(260)}
        items["shop:profile:alice"] = '{"id":"alice","displayName":"Alice"}'
        backend.seed(items)
        backend.seed({"shop:session:42": '{"cart":[1,2]}'}, ttl_ms=HOUR_MS)
        backend.provider.put("shop:__keys", json.dumps(sorted(k[5:] for k in items)), ttl=NO_TTL)
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def test_login_open_service_and_page_through_keys(page):
    log_in(page)
    row = page.locator('[data-testid="service-row"][data-prefix="shop:"]')
    row.locator('[data-testid="service-count"]').wait_for()
    assert row.locator('[data-testid="service-index"]').get_attribute("data-indexed") == "true"
    row.get_by_role("link", name="shop").click()
    rows = page.locator('[data-testid="key-row"]')
    expect(rows).to_have_count(100)  # the click starts a navigation: wait for its rows
    for expected in (200, 263):  # 260 items, alice, the session and the __keys index
        page.click('[data-testid="next-page"]')
        expect(rows).to_have_count(expected)
    keys = [rows.nth(i).get_attribute("data-key") for i in range(rows.count())]
    assert len(keys) == len(set(keys)) == 263
    assert page.locator('[data-testid="next-page"]').count() == 0


def test_a_reload_after_paging_shows_the_same_rows(page, browser, base_url):
    """Issue 17 item 7: three "Next" then F5 shows the rows that were on screen."""
    log_in(page)
    page.goto("/browse?prefix=shop:&limit=50")
    rows = page.locator('[data-testid="key-row"]')
    expect(rows).to_have_count(50)
    for expected in (100, 150, 200):
        page.click('[data-testid="next-page"]')
        expect(rows).to_have_count(expected)
    page.wait_for_url(re.compile(r"from=150"))  # htmx replaced the address with the position
    before = [rows.nth(i).get_attribute("data-key") for i in range(200)]
    page.reload()
    expect(rows).to_have_count(200)
    assert [rows.nth(i).get_attribute("data-key") for i in range(200)] == before
    expect(page.locator('[data-testid="restored"]')).to_contain_text("Keys 1–200")
    page.click('[data-testid="next-page"]')  # and it goes on from there
    expect(rows).to_have_count(250)
    line = page.locator('[data-testid="load-more"] [data-testid="rows-range"]')
    line.scroll_into_view_if_needed()  # the total is counted when the line comes into view
    expect(line).to_have_text("· Keys 1–250 of 263 shown")

    # without JavaScript, "Next" opens the page alone: which keys, and the way back
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    try:
        plain = context.new_page()
        log_in(plain)
        plain.goto("/browse?prefix=shop:&limit=50")
        plain.click('[data-testid="next-page"]')
        expect(plain.locator('[data-testid="key-row"]')).to_have_count(50)
        assert plain.locator('[data-testid="key-row"]').first.get_attribute(
            "data-key") == before[50]
        expect(plain.locator('[data-testid="page-range"]')).to_have_text(
            "this page starts at key 51")
        plain.click('[data-testid="first-page"]')
        assert plain.locator('[data-testid="key-row"]').first.get_attribute(
            "data-key") == before[0]
    finally:
        context.close()


def test_filter_box_narrows_the_list(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    page.fill('[data-testid="filter"]', "shop:prof")
    expect(page.locator('[data-testid="key-row"]')).to_have_count(1)
    assert page.locator('[data-testid="key-row"]').get_attribute("data-key") == "shop:profile:alice"
    assert "prefix=shop%3Aprof" in page.url or "prefix=shop:prof" in page.url


def test_edit_json_keeping_the_ttl(page, store):
    log_in(page)
    page.goto("/key?key=shop:session:42")
    before = int(page.locator('[data-testid="ttl"]').get_attribute("data-ttl-ms"))
    page.click('[data-testid="edit"]')
    assert page.locator('[data-testid="ttl-keep"]').is_checked()
    page.fill('[data-testid="value-input"]', '{"cart": [1, 2, 3]}')
    page.click('[data-testid="review"]')
    assert "3" in page.locator('[data-testid="diff"]').inner_text()
    page.click('[data-testid="confirm"]')
    page.wait_for_url(re.compile(r"/key\?key="))
    assert '"cart"' in page.locator('[data-testid="value"]').inner_text()
    after = int(page.locator('[data-testid="ttl"]').get_attribute("data-ttl-ms"))
    assert 0 < after <= before
    assert store.provider.get("shop:session:42").value == '{"cart":[1,2,3]}'


def test_conflict_when_another_writer_changes_the_key(page, store):
    store.provider.put("shop:item:0007", '{"id":7,"name":"Item 7"}', ttl=NO_TTL)
    log_in(page)
    page.goto("/key/edit?key=shop:item:0007")
    page.fill('[data-testid="value-input"]', '{"id":7,"name":"Mine"}')
    store.provider.put("shop:item:0007", '{"id":7,"name":"Theirs"}', ttl=NO_TTL)
    page.click('[data-testid="review"]')
    page.click('[data-testid="confirm"]')
    page.locator('[data-testid="conflict"]').wait_for()
    assert "Theirs" in page.locator('[data-testid="current-value"]').inner_text()
    assert "Mine" in page.locator('[data-testid="value-input"]').input_value()
    assert "Theirs" in store.provider.get("shop:item:0007").value
    page.click('[data-testid="review"]')
    page.click('[data-testid="confirm"]')
    page.wait_for_url(re.compile(r"/key\?key="))
    assert "Mine" in store.provider.get("shop:item:0007").value


def test_create_and_delete_a_key_with_the_index_following(page, store):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    page.click('[data-testid="new-key"]')
    page.fill('[data-testid="key-input"]', "shop:profile:zoe")
    page.fill('[data-testid="value-input"]', '{"id":"zoe"}')
    assert page.locator('[data-testid="update-index"]').is_checked()
    page.click('[data-testid="create"]')
    page.wait_for_url(re.compile(r"/key\?key="))
    assert "profile:zoe" in json.loads(store.provider.get("shop:__keys").value)
    page.click('[data-testid="delete"]')
    assert page.locator('[data-testid="key-name"]').inner_text() == "shop:profile:zoe"
    page.click('[data-testid="confirm-delete"]')
    page.wait_for_url(re.compile(r"/browse\?prefix=shop"))
    assert "profile:zoe" not in json.loads(store.provider.get("shop:__keys").value)
    assert page.locator('[data-testid="key-row"][data-key="shop:profile:zoe"]').count() == 0


def test_index_check_and_repair_from_the_browser(page, store):
    for inner in ("a", "b", "c"):
        store.provider.put(f"drifty:{inner}", "1", ttl=NO_TTL)
    store.provider.put("drifty:__keys", '["a","a","gone"]', ttl=NO_TTL)
    log_in(page)
    page.click("text=Index drift")
    row = page.locator('[data-testid="index-row"][data-prefix="drifty:"]')
    row.locator('[data-testid="row-stale"]').wait_for()
    assert row.get_attribute("data-consistent") == "false"
    row.get_by_role("link", name="drifty").click()
    summary = page.locator('[data-testid="drift-summary"]')
    assert (summary.get_attribute("data-stale"), summary.get_attribute("data-unindexed"),
            summary.get_attribute("data-duplicates")) == ("1", "2", "1")
    assert page.locator('[data-testid="drift-unindexed"] li').evaluate_all(
        "items => items.map(i => i.dataset.key)") == ["drifty:b", "drifty:c"]
    page.click('[data-testid="repair-rebuild"]')
    plan = page.locator('[data-testid="repair-plan"]')
    assert (plan.get_attribute("data-add"), plan.get_attribute("data-remove")) == ("2", "1")
    page.click('[data-testid="confirm-repair"]')
    assert page.locator('[data-testid="repair-result"]').is_visible()
    assert json.loads(store.provider.get("drifty:__keys").value) == ["a", "b", "c"]
    page.click('[data-testid="check-again"]')
    assert page.locator('[data-testid="drift-summary"]').get_attribute("data-consistent") == "true"


def test_edit_a_leased_key_keeps_it_on_its_lease(page, store):
    import httpx

    running = store.extra["running"]
    lease = httpx.post(f"{running.url}/leases", json={"ttl_ms": 600_000}).json()["lease"]["id"]
    httpx.put(f"{running.url}/kv/locks%3Ajob", json={"value": '{"owner":"a"}',
                                                           "lease_id": lease})
    log_in(page)
    page.goto("/key?key=locks:job")
    expect(page.locator('[data-testid="lease-note"]')).to_contain_text("follows the lease")
    page.click('[data-testid="edit"]')
    assert page.locator('[data-testid="ttl-keep"]').is_checked()
    expect(page.locator('[data-testid="lease-id"]')).to_have_text(lease)
    page.fill('[data-testid="value-input"]', '{"owner": "b"}')
    page.click('[data-testid="review"]')
    expect(page.locator('[data-testid="ttl-change"]')).to_contain_text("kept on lease")
    page.click('[data-testid="confirm"]')
    page.wait_for_url(re.compile(r"/key\?key="))
    stored = running.store.get("locks:job")
    assert stored["value"] == '{"owner":"b"}' and stored["metadata"]["lease_id"] == lease
