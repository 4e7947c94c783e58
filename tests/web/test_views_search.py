"""Search and the state in the URL, through the Flask test client, on the dev store and Redis.

Pattern search (``/browse?match=``), value search (``/search``), the page position in
the URL (``cursor=``: reload shows the same page, htmx "next" answers replace the URL),
htmx filter answers that refresh breadcrumbs, title and links, and the favicon.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from dashboard.web.views import keys as keys_views
from dashboard.web.views import search as search_views
from tests.support.backends import start_backend
from tests.support.webapp import make_app

HX = {"HX-Request": "true"}


@pytest.fixture(scope="module", params=["devstore", "redis", "devstore-nolisting"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def text(response) -> str:
    return response.get_data(as_text=True)


def row_keys(body: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'data-testid="key-row" data-key="([^"]*)"', body)]


def hit_keys(body: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'data-testid="hit-row" data-key="([^"]*)"', body)]


def continue_url(body: str) -> str | None:
    found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="continue"', body)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture(scope="module")
def shop(store):
    items = {f"shop:item:{i:04d}": json.dumps({"id": i, "tag": "cart" if i % 50 == 7 else "x"})
             for i in range(400)}
    items.update({"shop:sessions:42:cart": '{"items":[1,2]}', "shop:sessions:43:cart": "[]",
                  "shop:sessions:43:profile": "{}", "shop:a*b:cart": "odd"})
    store.seed(items)
    return items


def test_pattern_search_lists_the_matching_keys_with_the_same_rows(editor, shop):
    body = text(editor.get("/browse?prefix=shop:&match=sessions:*:cart"))
    assert sorted(row_keys(body)) == ["shop:sessions:42:cart", "shop:sessions:43:cart"]
    assert 'data-testid="match-end"' in body and "the search is complete" in body
    assert 'data-testid="match-scope"' in body
    assert "<title>shop: matching sessions:*:cart · ToskaMesh KV</title>" in body
    # the flat link keeps the pattern; folders (which list everything) keep the prefix
    assert 'href="/browse?prefix=shop:&amp;match=sessions:*:cart&amp;view=flat"' in body
    assert 'href="/browse?prefix=shop:&amp;view=folders"' in body
    assert row_keys(text(editor.get("/browse?prefix=shop:a*b:&match=*"))) == ["shop:a*b:cart"]


def test_a_literal_pattern_that_finds_nothing_suggests_wildcards(editor, shop):
    body = text(editor.get("/browse?prefix=shop:&match=cart"))
    assert row_keys(body) == [] and 'data-testid="empty"' in body
    assert 'data-testid="match-widen"' in body and "match=*cart*" in body


def test_a_budgeted_pattern_search_continues_to_every_match(editor, store, shop, monkeypatch):
    monkeypatch.setattr(keys_views, "MATCH_BUDGET", 60)
    expected = sorted(k for k in shop if k.endswith("7") and k.startswith("shop:item:"))
    first = editor.get("/browse?prefix=shop:&match=item:*7&limit=5")
    body = text(first)
    found = row_keys(body)
    following = continue_url(body)
    if store.provider.capabilities().listing != "scan":
        assert following is not None
        assert re.search(r"Scanned [\d,]+ (of [\d,]+ keys|keys under)", body), body[-600:]
    steps = 0
    while following is not None:
        steps += 1
        assert steps < 200
        more = editor.get(following, headers=HX)
        part = text(more)
        assert "<html" not in part and "HX-Request" in more.headers["Vary"]
        # the address bar follows: reload or share the link and get this step again
        assert more.headers["HX-Replace-Url"].startswith("/browse?prefix=shop:&match=item:*7")
        assert "cursor=" in more.headers["HX-Replace-Url"]
        found += row_keys(part)
        following = continue_url(part)
    assert sorted(set(found)) == expected
    if store.provider.capabilities().ordered:
        assert found == expected


def test_a_page_opened_at_a_cursor_shows_that_page_and_the_way_back(editor, store, shop):
    first = text(editor.get("/browse?prefix=shop:item:&limit=50"))
    found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="next-page"', first)
    if found is None:
        assert not store.provider.capabilities().ordered
        return
    following = html.unescape(found.group(1))
    more = editor.get(following, headers=HX)
    replaced = more.headers["HX-Replace-Url"]
    assert "cursor=" in replaced and replaced.startswith("/browse?prefix=shop:item:")
    # a reload of that URL: what was on screen, read again from the start
    page = text(editor.get(replaced))
    assert "<html" in page and 'data-testid="restored"' in page
    assert row_keys(page) == row_keys(first) + row_keys(text(more))
    # the page alone (no count of rows above it): its rows and the way back
    alone = text(editor.get(re.sub(r"&shown=\d+", "", replaced)))
    assert 'data-testid="first-page"' in alone and row_keys(alone) == row_keys(text(more))
    assert 'data-testid="first-page"' not in first


def test_an_htmx_filter_answer_updates_breadcrumbs_title_and_links(editor, shop):
    body = text(editor.get("/browse?prefix=shop:sessions:&view=flat", headers=HX))
    assert body.startswith('<section id="keys-results"')
    assert "<title>shop:sessions: · ToskaMesh KV</title>" in body
    crumbs = re.search(r'<nav class="crumbs" id="keys-crumbs"[^>]*hx-swap-oob="true".*?</nav>',
                       body, re.S)
    assert crumbs and 'data-prefix="shop:sessions:"' in crumbs.group(0)
    links = re.search(r'<span class="views" id="keys-links"[^>]*hx-swap-oob="true".*?</span>\s*$',
                      body, re.S)
    assert links, body[-800:]
    assert 'href="/browse?prefix=shop:sessions:&amp;view=folders"' in links.group(0)
    assert 'href="/key/new?prefix=shop:sessions:"' in links.group(0)
    # the whole page carries no out-of-band copies
    page = text(editor.get("/browse?prefix=shop:sessions:"))
    assert "hx-swap-oob" not in page and page.count('id="keys-crumbs"') == 1


def test_value_search_shows_each_hit_with_a_highlighted_excerpt(editor, shop):
    body = text(editor.get("/search?prefix=shop:sessions:&q=ITEMS&icase=1"))
    assert hit_keys(body) == ["shop:sessions:42:cart"]
    assert '{&#34;<mark data-testid="hit-mark">items</mark>&#34;:[1,2]}' in body
    assert 'href="/key?key=shop:sessions:42:cart"' in body
    assert "shop:<wbr>sessions:<wbr>42:<wbr>cart" in body  # long keys wrap at ':'
    assert 'data-testid="search-end"' in body
    body = text(editor.get("/search?prefix=shop:sessions:&q=ITEMS"))
    assert hit_keys(body) == [] and 'data-testid="empty"' in body
    body = text(editor.get(r"/search?prefix=shop:&q=%22tag%22:%20%22c.rt%22&regex=1"))
    assert len(hit_keys(body)) == 8


def test_value_search_continues_where_the_budget_stopped(editor, shop, monkeypatch):
    monkeypatch.setattr(search_views, "KEY_BUDGET", 40)
    monkeypatch.setattr(search_views, "HIT_LIMIT", 3)
    body = text(editor.get("/search?prefix=shop:item:&q=cart"))
    hits = hit_keys(body)
    following = continue_url(body)
    assert following is not None and 'data-testid="search-progress"' in body
    while following is not None:
        more = editor.get(following, headers=HX)
        assert more.headers["HX-Replace-Url"].startswith("/search?prefix=shop:item:&q=cart")
        hits += hit_keys(text(more))
        following = continue_url(text(more))
    assert sorted(set(hits)) == [f"shop:item:{i:04d}" for i in range(7, 400, 50)]
    # reloading a continued step shows it with the way back to the first one
    page = text(editor.get(more.headers["HX-Replace-Url"]))
    assert 'data-testid="first-page"' in page


def test_value_search_says_why_a_pattern_is_refused(editor, shop):
    bad = editor.get("/search?prefix=shop:&q=(unclosed&regex=1")
    assert bad.status_code == 400 and "not a valid regular expression" in text(bad)
    swapped = editor.get("/search?prefix=shop:&q=(unclosed&regex=1", headers=HX)
    assert swapped.status_code == 200 and 'data-testid="search-problem"' in text(swapped)
    empty = text(editor.get("/search?prefix=shop:"))
    assert 'data-testid="search-help"' in empty and 'data-testid="hits-table"' not in empty


def test_the_favicon_answers_without_a_login(client):
    icon = client.get("/favicon.ico")
    body = icon.get_data(as_text=True)
    icon.close()  # a file response stays open until closed
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert body.startswith("<svg")
    static = client.get("/static/favicon.svg")
    static.get_data()
    static.close()
    assert static.status_code == 200


def test_every_page_links_the_favicon(editor):
    assert 'rel="icon" href="/static/favicon.svg"' in text(editor.get("/services"))


@pytest.fixture
def app(store):
    return make_app(store.provider)
