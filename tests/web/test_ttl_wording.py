"""One TTL on every page (issue 17, item 2), on the dev store in each release and Redis.

ToskaStore main's ``POST /kv/mget`` answers values without metadata: the bulk lookup (its
page, CSV and JSON) and a pattern search's rows must still show the TTL the key page
shows, as the plain listing does. 0.9.1 and 0.8 cannot report TTLs and say so in the
same words everywhere; every state has one wording: "no expiry", "expires in …",
"unknown: this store does not report TTLs", "expired".
"""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from dashboard.stores.entries import Entry
from dashboard.web.formatting import TTL_UNKNOWN, ttl_label, ttl_text
from tests.support.backends import start_backend
from tests.support.webapp import post_form

DAY_MS = 86_400_000
#: 12 days less half an hour: "expires in 11d 23h" for the next half hour
LONG_MS = 12 * DAY_MS - 30 * 60_000
KEYS = ("tw:long", "tw:plain")
ROW = re.compile(r'<tr data-testid="(?:key|mget)-row" data-key="([^"]*)"[^>]*>(.*?)</tr>', re.S)
TTL_CELL = re.compile(r'<td class="ttl" data-ttl-ms="([^"]*)">([^<]*)</td>')
KEY_PAGE_TTL = re.compile(r'data-testid="ttl" data-ttl-ms="([^"]*)">\s*([^<(]*?)\s*(?:\(at |</dd>)')


@pytest.fixture(scope="module", params=["devstore", "devstore-0.9.1", "devstore-legacy", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        backend.seed({"tw:long": "1"}, ttl_ms=LONG_MS)
        backend.seed({"tw:plain": "2"})
        for n in range(50):  # other keys between and around them
            backend.seed({f"tw:m:{n:03d}": "x"})
        yield backend


def _text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def _cells(page: str) -> dict[str, tuple[str, str]]:
    """{key: (data-ttl-ms, label)} of the table rows of ``page``."""
    found = {}
    for key, cells in ROW.findall(page):
        cell = TTL_CELL.search(cells)
        if cell:
            found[html.unescape(key)] = (cell.group(1), html.unescape(cell.group(2)).strip())
    return found


def _key_page(client, key: str) -> tuple[str, str]:
    attr, label = KEY_PAGE_TTL.search(_text(client.get("/key", query_string={"key": key}))).groups()
    return attr, html.unescape(label).strip()


def _ttl_views(client) -> dict[str, dict[str, tuple[str, str]]]:
    """Every page and download that shows the TTLs of KEYS: {view: {key: (ms, label)}}."""
    keys = " ".join(KEYS)
    views = {
        "key page": {key: _key_page(client, key) for key in KEYS},
        "mget": _cells(_text(post_form(client, "/mget", {"keys": keys}, token_from="/mget"))),
        "browse": _cells(_text(client.get("/browse?prefix=tw:&view=flat"))),
        "pattern search": _cells(_text(client.get("/browse?prefix=tw:&match=*&view=flat"))),
    }
    csv_text = _text(post_form(client, "/mget", {"keys": keys, "format": "csv"},
                               token_from="/mget"))
    views["mget csv"] = {r["key"]: (r["ttl_ms"], r["ttl"])
                         for r in csv.DictReader(io.StringIO(csv_text, newline=""))}
    document = json.loads(_text(post_form(client, "/mget", {"keys": keys, "format": "json"},
                                          token_from="/mget")))
    views["mget json"] = {r["key"]: ("" if r["ttl_ms"] is None else str(r["ttl_ms"]), r["ttl"])
                          for r in document["results"]}
    views["mget json known"] = {r["key"]: (str(r["ttl_known"]), r["ttl"])
                                for r in document["results"]}
    return views


def test_every_page_and_download_shows_the_ttl_the_key_page_shows(editor, store):
    views = _ttl_views(editor)
    reports = store.provider.capabilities().ttl_visible
    for view, cells in views.items():
        assert set(KEYS) <= set(cells), (view, cells)
        long_ms, long_label = cells["tw:long"]
        plain_ms, plain_label = cells["tw:plain"]
        if not reports:  # 0.9.1 and 0.8: the same words everywhere
            assert long_label == plain_label == TTL_UNKNOWN, (view, cells)
            continue
        assert long_label == "expires in 11d 23h", (view, cells)
        assert plain_label == "no expiry", (view, cells)
        if view == "mget json known":
            assert long_ms == plain_ms == "True"
            continue
        key_page_ms = int(views["key page"]["tw:long"][0])
        assert abs(int(long_ms) - key_page_ms) < 5_000, (view, long_ms, key_page_ms)
        assert plain_ms in ("none", ""), (view, cells)
    if not reports:
        # 0.8 and v0.9.1 genuinely cannot report TTLs: the attribute and the JSON say so
        assert {views[v]["tw:long"][0] for v in ("key page", "mget", "pattern search")} == {
            "unknown"}
        assert views["mget json known"]["tw:long"][0] == "False"


def test_one_wording_for_each_ttl_state():
    assert ttl_text(None) == "no expiry"
    assert ttl_text(93_600_000) == "expires in 1d 2h"
    assert ttl_text(None, known=False) == ttl_text(5, known=False) == (
        "unknown: this store does not report TTLs")
    assert ttl_text(0) == "expired"
    assert ttl_label(Entry(key="k", value="v", ttl_ms=None, ttl_known=False)) == TTL_UNKNOWN
    assert ttl_label(Entry(key="k", value="v", ttl_ms=90_000)) == "expires in 1m 30s"
