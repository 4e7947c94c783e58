"""One budget for the work a request may do (issue 15, items 12 and 13).

Counted, not timed: a budget of zero seconds forces "continue" after the one value a step
always examines; the bytes a page says it read are compared with the bytes the
provider's HTTP client received (counted under the client, ``tests/support/byte_count``),
on the dev store in each release mode and on redis-server.
"""

from __future__ import annotations

import json
import re

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores import budget, search
from dashboard.stores.budget import WorkBudget
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.byte_count import count_bytes
from tests.support.webapp import login, make_app

MB = 2**20
RELEASES = [{"release": "main"}, {"release": "0.9.1"}, {"release": "0.8"},
            {"no_key_listing": True}]


def _steps(provider, prefix, query, **options):
    pages = []
    cursor = None
    for _ in range(200):
        page = provider.search_values(prefix, query, cursor=cursor, **options)
        pages.append(page)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
    raise AssertionError("the value search never ends")


# --- item 12: the time budget is checked per value -------------------------------------

def test_a_spent_time_budget_answers_after_one_value_with_continue(backend, provider, prefix,
                                                                   monkeypatch):
    token = "w" * 6000
    backend.seed({f"{prefix}v:{i:02d}": f"{token} tail" for i in range(12)})
    monkeypatch.setattr(search, "MATCH_SECONDS", 0.0)
    first = provider.search_values(prefix, r"\w+\s", regex=True, limit=50)
    # the deadline is checked before every value, not between pages: one value, then stop
    assert first.scanned == 1 and len(first.hits) == 1
    assert first.next_cursor is not None and first.stopped == "its time budget"
    pages = _steps(provider, prefix, r"\w+\s", regex=True, limit=50)
    keys = [h.entry.key for p in pages for h in p.hits]
    assert sorted(keys) == [f"{prefix}v:{i:02d}" for i in range(12)]
    assert len(keys) == len(set(keys)) and pages[-1].scanned == 12


def test_the_search_page_says_the_step_stopped_at_its_time_budget(monkeypatch):
    with start_devstore(port=0) as running:
        for i in range(5):
            running.store.put(f"t:{i}", "w" * 6000 + " x")
        provider = ToskaStoreProvider(running.url)
        try:
            client = make_app(provider).test_client()
            login(client)
            monkeypatch.setattr(search, "MATCH_SECONDS", 0.0)
            page = client.get("/search?prefix=t:&q=%5Cw%2B%5Cs&regex=1").get_data(as_text=True)
        finally:
            provider.close()
    assert page.count('data-testid="hit-row"') == 1
    assert 'data-testid="continue"' in page and "stopped at its time budget" in page


def test_the_regex_timeout_is_capped_by_the_time_left():
    find = search.value_matcher("(a|aa)+!b", regex=True, icase=False)
    with pytest.raises(search.OutOfTime):
        find("a" * 60 + "!", 0.0)  # the request's time, not the pattern, ran out
    with pytest.raises(search.BadPattern):
        find("a" * 60 + "!")


# --- item 13: values are read through a byte budget ------------------------------------

@pytest.fixture(params=RELEASES, ids=lambda o: o.get("release", "nolisting"))
def big_store(request):
    with start_devstore(port=0, **request.param) as running:
        values = {f"big:{i:02d}": chr(ord("a") + i) * MB for i in range(6)}
        for key, value in values.items():
            running.store.put(key, value)
        if request.param.get("no_key_listing"):
            running.store.put("big:__keys", '["' + '","'.join(k[4:] for k in values) + '"]')
        provider = ToskaStoreProvider(running.url, timeout=30)
        provider.capabilities()
        counter = count_bytes(provider)
        try:
            yield provider, counter
        finally:
            provider.close()


def test_a_search_step_reads_no_more_than_its_byte_budget_and_says_what_it_read(big_store):
    provider, counter = big_store
    counter.reset()
    page = provider.search_values("big:", "needle", byte_budget=int(2.5 * MB))
    # what the page says it read is what arrived, and the rest of the page never did
    assert page.bytes_read == counter.received
    assert counter.received < 3 * MB
    assert page.next_cursor is not None and 1 <= page.scanned < 6
    pages = _steps(provider, "big:", "b" * 10, byte_budget=int(2.5 * MB))
    assert [h.entry.key for p in pages for h in p.hits] == ["big:01"]
    assert pages[-1].scanned == 6


def test_a_value_bigger_than_the_budget_is_searched_by_its_start(big_store):
    provider, counter = big_store
    counter.reset()
    page = provider.search_values("big:", "aaa", byte_budget=MB // 2)
    assert page.scanned == 1 and page.bytes_read == counter.received < MB
    hit, = page.hits
    assert hit.entry.key == "big:00" and hit.clipped and not hit.size_known


def test_a_budgeted_page_reads_values_up_to_the_budget_and_lists_the_rest_unread(big_store):
    provider, counter = big_store
    counter.reset()
    page = provider.scan("big:", limit=100, work=WorkBudget(bytes=int(2.5 * MB)))
    assert page.bytes_read == counter.received < 3 * MB
    assert [e.key for e in page.entries] == ["big:00", "big:01"]
    assert [u.key for u in page.unread] == [f"big:{i:02d}" for i in range(2, 6)]
    assert page.unread[0].start_bytes > 0  # the value being read when the budget ran out


def test_browse_shows_the_keys_whose_values_were_past_the_budget(big_store, monkeypatch):
    provider, counter = big_store
    monkeypatch.setattr(budget, "BROWSE_BYTES", int(1.5 * MB))
    client = make_app(provider).test_client()
    login(client)
    counter.reset()
    page = client.get("/browse?prefix=big:").get_data(as_text=True)
    assert counter.received < 2 * MB
    assert page.count('data-testid="key-row"') == 6
    assert page.count('data-unread="true"') == 5
    said = re.search(r'data-testid="values-unread">[^<]*read ([0-9.]+) MiB', page)
    assert said and float(said.group(1)) == round(counter.received / MB, 1)


@pytest.fixture
def redis_provider(redis_server):
    from dashboard.stores.redis.provider import RedisProvider

    provider = RedisProvider(host=redis_server.host, port=redis_server.port)
    provider._client.flushdb()
    yield provider
    provider.close()


def test_redis_search_reads_within_its_byte_budget(redis_provider):
    provider = redis_provider
    raw = provider._client
    for i in range(10):
        raw.set(f"rb:{i:02d}", b"z" * (300 * 1024))
    page = provider.search_values("rb:", "needle", byte_budget=700 * 1024)
    # previews of 256 KiB each: two fit, the third would pass the budget
    assert page.bytes_read <= 700 * 1024 and page.scanned == 2
    assert page.next_cursor is not None
    pages = _steps(provider, "rb:", "needle", byte_budget=700 * 1024)
    assert pages[-1].scanned == 10 and all(p.bytes_read <= 10 * 256 * 1024 for p in pages)


def test_redis_browse_is_charged_to_the_same_budget(redis_provider):
    provider = redis_provider
    provider._client.set("rv:a", b"q" * 10_000)
    work = WorkBudget(bytes=1 * MB)
    page = provider.scan("rv:", limit=100, preview_bytes=4096, work=work)
    assert [e.key for e in page.entries] == ["rv:a"] and page.entries[0].partial
    assert page.bytes_read == work.bytes_read == 4096 and work.calls_made == 1


# --- item 13: a pattern search in browse reads its hits' values through the budget -----

def test_a_match_page_reads_its_hits_values_through_the_budget(big_store, monkeypatch):
    provider, counter = big_store
    monkeypatch.setattr(budget, "BROWSE_BYTES", int(2.5 * MB))
    counter.reset()
    found = provider.scan_matching("big:", "0[0-5]", limit=100)
    page = found.rows()
    # the listing and the cut mget answer are what arrived, and all of it is reported
    assert counter.received < 3 * MB
    assert page.bytes_read == counter.received and page.byte_budget == int(2.5 * MB)
    assert [e.key for e in page.entries] == ["big:00", "big:01"]
    assert [u.key for u in page.unread] == [f"big:{i:02d}" for i in range(2, 6)]
    assert found.complete and found.scanned == 6  # unread hits are still hits, shown


def test_a_match_page_budget_holds_on_a_continued_step(big_store, monkeypatch):
    provider, counter = big_store
    monkeypatch.setattr(budget, "BROWSE_BYTES", int(1.5 * MB))
    first = provider.scan_matching("big:", "*", limit=2, budget=2)
    assert first.next_cursor is not None
    counter.reset()
    following = provider.scan_matching("big:", "*", cursor=first.next_cursor, limit=2,
                                       budget=2)
    page = following.rows()
    assert counter.received < 2 * MB and page.bytes_read == counter.received
    assert [e.key for e in page.entries] == ["big:02"]
    assert [u.key for u in page.unread] == ["big:03"]


def test_browse_with_a_pattern_shows_the_hits_past_the_budget_unread(big_store, monkeypatch):
    provider, counter = big_store
    monkeypatch.setattr(budget, "BROWSE_BYTES", int(1.5 * MB))
    client = make_app(provider).test_client()
    login(client)
    counter.reset()
    page = client.get("/browse?prefix=big:&match=*").get_data(as_text=True)
    assert counter.received < 2 * MB
    assert page.count('data-testid="key-row"') == 6
    assert page.count('data-unread="true"') == 5
    assert 'data-testid="value-unread"' in page and 'data-testid="match-end"' in page
    said = re.search(r'data-testid="values-unread">[^<]*read ([0-9.]+) MiB', page)
    assert said and float(said.group(1)) == round(counter.received / MB, 1)


def test_redis_match_is_charged_to_the_browse_budget(redis_provider, monkeypatch):
    provider = redis_provider
    for i in range(10):
        provider._client.set(f"rm:{i:02d}", b"m" * (100 * 1024))
    monkeypatch.setattr(budget, "BROWSE_BYTES", 300 * 1024)
    found = provider.scan_matching("rm:", "*", limit=100, preview_bytes=64 * 1024)
    page = found.rows()
    # previews of 64 KiB: four fit the first read (at least 256 KiB), then the budget is spent
    assert [e.key for e in page.entries] == [f"rm:{i:02d}" for i in range(4)]
    assert [u.key for u in page.unread] == [f"rm:{i:02d}" for i in range(4, 10)]
    assert page.bytes_read == 4 * 64 * 1024 and page.byte_budget == 300 * 1024


def test_a_match_step_is_charged_to_the_browse_budget_on_every_store(backend, provider, prefix,
                                                                      monkeypatch):
    keys = [f"{prefix}m:{i:02d}" for i in range(10)]
    backend.seed({key: "m" * (100 * 1024) for key in keys})
    monkeypatch.setattr(budget, "BROWSE_BYTES", 300 * 1024)
    page = provider.scan_matching(prefix, "m:*", limit=100, preview_bytes=64 * 1024).rows()
    # every hit is on the page, read or not, in key order; the reads stop near the budget
    assert [e.key for e in page.entries] + [u.key for u in page.unread] == keys
    assert page.entries and page.unread and page.byte_budget == 300 * 1024
    assert 0 < page.bytes_read < 600 * 1024


def test_a_match_page_whose_hits_are_all_unread_does_not_say_nothing_matches(big_store,
                                                                              monkeypatch):
    provider, counter = big_store
    monkeypatch.setattr(budget, "BROWSE_BYTES", 100 * 1024)
    client = make_app(provider).test_client()
    login(client)
    counter.reset()
    page = client.get("/browse?prefix=big:&match=0*").get_data(as_text=True)
    # the first value is bigger than the budget: its start is read, then nothing more
    assert counter.received < MB
    assert page.count('data-unread="true"') == 6 and 'data-testid="values-unread"' in page
    assert 'data-testid="empty"' not in page


def test_a_cut_mget_answer_salvages_exactly_the_values_that_arrived_whole():
    from dashboard.stores.toskastore.stream import salvage_values

    values = {"a": "plain", "b\u00e9": 'esc"aped\\ \u2603', "c": None, "d": "x" * 50, "e": 7}
    text = json.dumps({"count": 5, "values": values, "missing": []})
    assert salvage_values(text) == (values, None)
    for cut in range(len(text)):
        found, partial = salvage_values(text[:cut])
        # whatever is salvaged is exact, and only members that arrived whole
        assert all(values[key] == value for key, value in found.items())
        assert all(text.index(json.dumps(key)) < cut for key in found)
        if partial is not None:
            key, start = partial
            assert key not in found and values[key].startswith(start)
