"""End to end: live pages on a real redis-server with keyspace notifications, in Chromium.

Redis keeps no versions and no history, so what differs from ToskaStore is checked here:
the key page follows by value, the feed has puts, deletes and expiries, and resuming a
paused feed says that events may have been missed instead of replaying them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import NO_TTL, TtlChange
from dashboard.stores.redis.provider import RedisProvider
from tests.e2e.test_e2e_live import SHOWN_MS, connected
from tests.support.live import log_in, serve_app
from tests.support.redis_server import RedisServer
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store():
    """A redis-server with notifications on before any provider has looked (it caches)."""
    with RedisServer() as server:
        with server.client() as client:
            client.config_set("notify-keyspace-events", "KEA")
        provider = RedisProvider(host=server.host, port=server.port, timeout=10.0)
        try:
            yield SimpleNamespace(provider=provider)
        finally:
            provider.close()


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def test_an_open_key_page_follows_its_key_on_redis(page, store):
    store.provider.put("rlive:doc", '{"n":1}', ttl=NO_TTL)
    log_in(page)
    page.goto("/key?key=rlive:doc")
    connected(page, "key-live")
    store.provider.put("rlive:doc", '{"n":2,"by":"another writer"}', ttl=NO_TTL)
    expect(page.locator('[data-testid="value"]')).to_contain_text("another writer",
                                                                  timeout=SHOWN_MS)
    expect(page.locator('[data-testid="live-notice"]')).to_contain_text("Changed")
    store.provider.delete("rlive:doc")
    expect(page.locator('[data-testid="live-notice"]')).to_contain_text("was deleted",
                                                                        timeout=SHOWN_MS)


def test_the_feed_lists_puts_deletes_and_expiries_on_redis(page, store):
    log_in(page)
    page.goto("/live?prefix=rlive:feed:")
    page.wait_for_function(
        "() => document.getElementById('live-connector').dataset.state === 'open'")
    store.provider.put("rlive:feed:a", "first", ttl=NO_TTL)
    store.provider.delete("rlive:feed:a")
    store.provider.put("rlive:feed:short", "soon gone", ttl=TtlChange.set(200))
    events = page.locator('[data-testid="live-event"]')
    expect(events).to_have_count(4, timeout=SHOWN_MS + 2_000)  # Redis expires actively, ~10/s
    ops = [events.nth(i).get_attribute("data-op") for i in range(4)]
    assert ops == ["expire", "put", "delete", "put"]  # newest first
    assert [events.nth(i).get_attribute("data-key") for i in (0, 2)] == [
        "rlive:feed:short", "rlive:feed:a"]
    page.click('[data-testid="live-pause"]')
    page.click('[data-testid="live-pause"]')  # resume: Redis cannot replay the gap
    expect(page.locator("body")).to_contain_text("missed", timeout=SHOWN_MS)


def test_browse_follow_on_redis(page, store):
    store.provider.put("rlive:follow:old", "1", ttl=NO_TTL)
    log_in(page)
    page.goto("/browse?prefix=rlive:follow:")
    page.click('[data-testid="follow-live"]')
    page.wait_for_function(
        "() => { const c = document.getElementById('follow-connector');"
        " return c && c.dataset.state === 'open'; }")
    store.provider.put("rlive:follow:new", "hello", ttl=NO_TTL)
    expect(page.locator('[data-testid="key-row"]').first).to_have_attribute(
        "data-key", "rlive:follow:new", timeout=SHOWN_MS)
    store.provider.delete("rlive:follow:old")
    expect(page.locator('tr[data-key="rlive:follow:old"]')).to_have_class(
        "live-gone", timeout=SHOWN_MS)
