"""The browse page sorts and counts like RedisInsight: what the server gives static/browse.js
(the sortable headers, each row's size and TTL, the sort kept in every URL), the total
under the prefix in the range line, and value previews cut at word boundaries."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from dashboard.devstore import start_devstore
from dashboard.stores.entries import Entry
from dashboard.stores.mutations import TtlChange
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from dashboard.web.formatting import BOUNDARY_REACH, key_rows, preview, shorten, size_attr
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app


@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


#: tests of "Next": on Redis a SCAN page of a small keyspace may hold every key at once
paged = pytest.mark.parametrize("store", ["devstore"], indirect=True)


def text(response) -> str:
    return response.get_data(as_text=True)


def browse(client, prefix: str, **args: str) -> str:
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in args.items())
    answer = client.get(f"/browse?prefix={quote(prefix, safe='')}" + (f"&{query}" if query else ""))
    assert answer.status_code == 200, text(answer)
    return text(answer)


def attr(page: str, testid: str, name: str) -> str:
    tag = re.search(rf'<[^>]*data-testid="{testid}"[^>]*>', page).group(0)
    return html.unescape(re.search(rf'\b{name}="([^"]*)"', tag).group(1))


def range_line(page: str) -> str:
    """The range line as read: tags dropped, spaces collapsed."""
    span = re.search(r'<span[^>]*data-testid="rows-range".*?(?=</td>)', page, re.S).group(0)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", span))).strip()


# --- previews cut at word or punctuation boundaries --------------------------------------

def test_a_long_text_is_cut_between_words_with_an_ellipsis():
    cut = shorten("word " * 40, 120)
    assert cut == ("word " * 24).rstrip() + "…"
    assert len(cut) <= 120
    sentence = "The quick brown fox jumps over the lazy dog. " * 5
    shown = shorten(sentence, 60)
    assert shown.endswith("…") and len(shown) <= 60
    assert sentence.startswith(shown[:-1]) and sentence[len(shown) - 1] in " ."  # a whole word


def test_the_cut_keeps_punctuation_before_it():
    value = '{"id": 1, "name": "Item 1", "description": "a long description of the thing", ' \
            '"tags": ["alpha","beta","gamma"]}'
    cut = shorten(value, 100)
    assert cut.endswith("…") and len(cut) <= 100
    kept = cut[:-1]
    assert value.startswith(kept)
    # never between two letters or digits
    assert not (kept[-1].isalnum() and value[len(kept)].isalnum())


def test_one_long_token_is_cut_where_the_limit_falls():
    assert shorten("x" * 300, 120) == "x" * 119 + "…"
    # a boundary further back than BOUNDARY_REACH is not used
    far = "ab " + "c" * 200
    assert shorten(far, 120) == far[:119] + "…"
    near = "a" * (119 - BOUNDARY_REACH + 2) + " " + "c" * 200
    assert shorten(near, 120) == near[: 119 - BOUNDARY_REACH + 2] + "…"


def test_short_text_is_left_whole():
    assert shorten("short value", 120) == "short value"
    assert shorten("x" * 120, 120) == "x" * 120


def test_accents_and_emoji_sequences_are_not_split():
    accents = "re\u0301sume\u0301 " * 30  # combining accents
    cut = shorten(accents, 50)
    assert cut.endswith("e\u0301…")
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined
    cut = shorten(family * 30, 50)
    assert cut.endswith(family + "…") and len(cut[:-1]) % len(family) == 0


@pytest.mark.parametrize(("value", "ending"), [
    ("word " * 30, "word word…"),  # printable ASCII (the fast path)
    ("line\none\ttab " * 20, "line one tab…"),  # whitespace collapsed first
    ("word " * 22 + "\u202e" * 20, "word " + "\\u202E" * 9 + "…"),  # hidden characters at the cut
    ("mot\u00a0" * 40, "mot\u00a0mot…"),  # a non-ASCII space is a boundary, and stays
])
def test_previews_break_at_boundaries_and_keep_escapes_whole(value, ending):
    shown = str(preview(Entry(key="k", value=value)))
    # every escape is whole: one span per hidden character, with its full escape
    spans = re.findall(r'<span class="esc" title="[^"]*">([^<]*)</span>', shown)
    assert all(span == "\\u202E" for span in spans)
    assert shown.count("<span") == shown.count("</span>") == len(spans)
    plain = html.unescape(re.sub(r"<[^>]+>", "", shown))
    assert plain.endswith(ending), plain


def test_preview_never_ends_inside_a_word():
    shown = str(preview(Entry(key="k", value='{"name": "' + "alpha beta gamma " * 20 + '"}')))
    assert re.search(r"(alpha|beta|gamma)…$", shown)
    assert len(html.unescape(shown)) <= 120


# --- rows carry what the browser sorts by ------------------------------------------------

def test_rows_carry_their_size_for_sorting():
    strings = Entry(key="s", value="héllo")
    hashed = Entry(key="h", value=None, type="hash", length=3)
    module = Entry(key="m", value=None, type="ReJSON-RL")
    partial = Entry(key="p", value="abc", stored_size=9000)
    assert [size_attr(e) for e in (strings, hashed, module, partial)] == ["6", "3", "", "9000"]
    app = make_app()
    with app.test_request_context("/browse"):
        rows = str(key_rows(app.jinja_env, [strings, hashed, module]))
    assert '<tr data-testid="key-row" data-key="s" data-size="6">' in rows
    assert 'data-key="h" data-size="3"' in rows and 'data-key="m" data-size=""' in rows


def test_the_table_offers_sorting_by_key_ttl_and_size(store, prefix):
    store.seed({f"{prefix}a": "1", f"{prefix}bb": "22"})
    store.provider.put(f"{prefix}ttl", "x", ttl=TtlChange.set(3_600_000))
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = browse(client, prefix)
    head = re.search(r"<thead>.*?</thead>", page, re.S).group(0)
    assert re.findall(r'<th scope="col" data-sort="(\w+)"', head) == ["key", "ttl", "size"]
    assert re.search(r'<script src="[^"]*/static/browse\.js" defer></script>', page)
    sizes = dict(re.findall(r'data-key="([^"]+)" data-size="(\d*)"', page))
    assert sizes[f"{prefix}a"] == "1" and sizes[f"{prefix}bb"] == "2"
    ttl = re.search(rf'data-key="{re.escape(prefix)}ttl".*?data-ttl-ms="(\d+)"', page, re.S)
    assert 0 < int(ttl.group(1)) <= 3_600_000


# --- the sort is kept from page to page ---------------------------------------------------

@paged
def test_next_pages_and_their_address_keep_the_sort(store, prefix):
    store.seed({f"{prefix}{i:03d}": str(i) for i in range(25)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = browse(client, prefix, limit="10", sort="size", order="desc")
    for url in (attr(page, "next-page", "href"), attr(page, "next-page", "hx-get")):
        assert "sort=size&order=desc" in url
    more = client.get(attr(page, "next-page", "hx-get"), headers={"HX-Request": "true"})
    assert "sort=size&order=desc" in more.headers["HX-Replace-Url"]
    assert "sort=size&order=desc" in attr(text(more), "next-page", "hx-get")
    # a reload of the appended pages: all rows again, still sorted the same way
    reloaded = text(client.get(more.headers["HX-Replace-Url"]))
    assert reloaded.count('data-testid="key-row"') == 20
    assert "sort=size&order=desc" in attr(reloaded, "next-page", "hx-get")
    # a page alone links back to the first page with its sort
    alone = text(client.get(re.sub(r"&shown=\d+", "", more.headers["HX-Replace-Url"])))
    assert "sort=size&amp;order=desc" in re.search(r'<a [^>]*data-testid="first-page"', alone).group(0)


@paged
@pytest.mark.parametrize(("args", "kept"), [
    ({"sort": "ttl"}, "sort=ttl&order=asc"),
    ({"sort": "key", "order": "sideways"}, "sort=key&order=asc"),
    ({"sort": "bogus", "order": "desc"}, None),
])
def test_only_known_sorts_are_carried(store, prefix, args, kept):
    store.seed({f"{prefix}{i:03d}": str(i) for i in range(3)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    url = attr(browse(client, prefix, limit="2", **args), "next-page", "hx-get")
    if kept:
        assert kept in url
    else:
        assert "sort=" not in url and "order=" not in url


# --- "Keys 1–100 of 260 shown" -----------------------------------------------------------

@paged
def test_the_range_line_counts_the_prefix_lazily(store, prefix):
    store.seed({f"{prefix}{i:04d}": "v" for i in range(260)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = browse(client, prefix)
    assert range_line(page) == "· Keys 1–100 shown"  # the count is not on the first answer
    total = re.search(r'<span data-testid="rows-total"[^>]*>', page).group(0)
    assert 'hx-trigger="revealed"' in total and 'hx-swap="outerHTML"' in total
    count_url = html.unescape(re.search(r'hx-get="([^"]+)"', total).group(1))
    assert count_url.startswith("/browse/count?") and "last=100" in count_url
    answer = text(client.get(count_url, headers={"HX-Request": "true"}))
    assert 'data-count="260" data-exact="true"' in answer
    assert html.unescape(re.sub(r"<[^>]+>", "", answer)).strip() == "of 260"
    # the folders view's count of the same endpoint is unchanged
    folder = text(client.get(f"/browse/count?prefix={quote(prefix, safe='')}"))
    assert 'data-testid="folder-count" data-count="260"' in folder


def test_a_bounded_count_says_at_least_and_never_less_than_on_screen(store, prefix):
    store.seed({f"{prefix}{i:04d}": "v" for i in range(1003)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    answer = text(client.get(f"/browse/count?prefix={quote(prefix, safe='')}&last=1100"))
    assert 'data-exact="false"' in answer and "a bounded count" in answer
    assert html.unescape(re.sub(r"<[^>]+>", "", answer)).strip() == "of ≥ 1100"
    answer = text(client.get(f"/browse/count?prefix={quote(prefix, safe='')}&last=100"))
    assert html.unescape(re.sub(r"<[^>]+>", "", answer)).strip() == "of ≥ 1000"


def test_a_single_page_says_its_total_and_the_end_without_a_count(store, prefix):
    store.seed({f"{prefix}{i}": "v" for i in range(3)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = browse(client, prefix)
    assert 'data-testid="rows-end"' in page and 'data-testid="load-more"' not in page
    assert range_line(page) == "Keys 1–3 of 3 shown, the end of the list."
    assert "/browse/count" not in page


@paged
def test_the_last_page_after_next_says_the_total(store, prefix):
    store.seed({f"{prefix}{i:02d}": "v" for i in range(15)})
    client = make_app(store.provider).test_client()
    login(client, "vi")
    first = browse(client, prefix, limit="10")
    more = text(client.get(attr(first, "next-page", "hx-get"), headers={"HX-Request": "true"}))
    assert range_line(more) == "Keys 1–15 of 15 shown, the end of the list."


def test_an_empty_prefix_has_no_range_line(store, prefix):
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = browse(client, prefix)
    assert 'data-testid="empty"' in page and 'data-testid="rows-range"' not in page


def test_a_failed_total_leaves_the_line_as_it_was():
    running = start_devstore(port=0)
    provider = ToskaStoreProvider(running.url, timeout=1)
    try:
        client = make_app(provider).test_client()
        login(client, "vi")
        running.stop()
        answer = client.get("/browse/count?prefix=svc:&last=100", headers={"HX-Request": "true"})
        assert answer.status_code == 200  # htmx swaps it: the placeholder does not stay
        body = text(answer)
        assert 'data-failed="true"' in body and "could not be counted" in body
        assert html.unescape(re.sub(r"<[^>]+>", "", body)).strip() == ""
    finally:
        provider.close()
