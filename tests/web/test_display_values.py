"""Values shown safely and without 500s: odd but valid JSON, hidden and bidi characters.

On the dev store and a real redis-server: a 5,000-digit integer and JSON nested 50,000
levels deep (values and ``__keys`` indexes) on every page that shows or parses them, and
previews/values whose control or bidi characters are shown as escapes.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from dashboard.mesh import meshjson
from dashboard.stores.entries import Entry
from dashboard.stores.mutations import NO_TTL
from dashboard.web.formatting import pretty_content, preview, show_key, show_value
from dashboard.web.views.keys import json_view
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app, post_form

BIG = "1" + "0" * 5000  # over Python's 4,300-digit int-to-str limit
DEEP = "[" * 50_000 + "]" * 50_000
DEEP_NOTE = f"not shown as JSON: nested deeper than {meshjson.MAX_DEPTH} levels"
BIG_OBJECT = '{"n":' + BIG + ',"m":-' + BIG + '.5e-999}'
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


# --- the filters -----------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_filters_never_raise_and_never_pass_a_bidi_control(text):
    for shown in (show_key(text), show_value(text), preview(Entry(key="k", value=text))):
        assert isinstance(shown, Markup)
        assert not set(BIDI) & set(shown)
        # every tag is ours; the text is escaped
        assert "<" not in re.sub(r'<bdi class="show-key" dir="ltr">|</bdi>|<span class="esc" '
                                 r'title="[^"<>]*">|</span>', "", shown)
    assert not re.search("[\t\n\r\u200b\u200d\ufeff]", show_key(text))
    assert json_view(text)[0] is None or isinstance(json_view(text)[0], str)


@pytest.mark.parametrize("text", [BIG, DEEP, "[" * 5000, "\ud800\udcff", "\x00" * 10, ""],
                         ids=["big-int", "deep", "unclosed", "surrogates", "nuls", "empty"])
def test_filters_take_odd_strings(text):
    entry = Entry(key=text, value=text)
    for shown in (show_key(text), show_value(text), preview(entry)):
        assert isinstance(shown, Markup)
    assert len(preview(entry).striptags()) <= 120
    assert pretty_content([text, {"a": float("inf")}])


def test_value_filters_show_bidi_and_controls_but_keep_ordinary_text():
    value = 'a\u202eb\r\nline\ttab\rcr\x00\u200b "e\u0301\u00a0\U0001f469\u200d\U0001f4bb"'
    shown = str(show_value(value))
    assert ">\\u202E</span>" in shown and ">\\u0000</span>" in shown and ">\\u200B</span>" in shown
    assert "b\r\nline\ttab" in shown  # line breaks and tabs lay the value out
    assert "<span class=\"esc\" title=\"U+000D control character\">\\r</span>cr" in shown  # a lone CR
    assert "e\u0301\u00a0\U0001f469\u200d\U0001f4bb" in shown  # accents, NBSP, emoji sequences
    assert "&#34;" in shown
    flat = str(preview(Entry(key="k", value="  one\n\ntwo\u202ethree\x07 ")))
    assert flat == ('one two<span class="esc" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202E</span>'
                    'three<span class="esc" title="U+0007 control character">\\u0007</span>')
    assert str(preview(Entry(key="k", value="<b>x</b>"))) == "&lt;b&gt;x&lt;/b&gt;"
    assert str(preview(Entry(key="k", value=None, type="hash", length=2))) == "[hash (2 items)]"


def test_json_view_explains_why_a_value_is_not_shown_as_json():
    assert json_view(DEEP) == (None, DEEP_NOTE)
    shown, note = json_view(BIG_OBJECT)
    assert note is None and BIG in shown
    assert json_view("not json") == (None, None)
    assert json_view(None) == (None, None)
    assert json_view('{"a":1}') == ('{\n  "a": 1\n}', None)


# --- on the pages ----------------------------------------------------------------------

@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def editor(store):
    client = make_app(store.provider, dashboard={"Services": [
        {"Name": "deepidx", "KeyPrefix": "deepidx:", "EnableKeyIndex": True},
        {"Name": "bigidx", "KeyPrefix": "bigidx:", "EnableKeyIndex": True},
    ]}).test_client()
    login(client, "ed")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def key_page(client, key: str):
    return client.get(f"/key?key={quote(key, safe='')}")


def shown_value(page: str) -> str:
    """The one rendering of the value the key page carries (a text view), without the
    ``<span class="ln">`` around each numbered line."""
    block = re.search(r'<pre class="value" data-testid="value" id="value-shown"[^>]*>(.*?)</pre>',
                      page, re.S).group(1)
    return html.unescape(re.sub(r'<span class="ln">|</span>(?=\r?\n|\Z)', "", block))


def raw_value(client, key: str) -> str:
    """The value as the key page's raw view shows it."""
    return shown_value(text(client.get(f"/key?key={quote(key, safe='')}&view=raw")))


def test_a_big_integer_shows_as_json_everywhere(editor, store):
    store.seed({"odd:big": BIG, "odd:bigobj": BIG_OBJECT})
    for key, value, opens in (("odd:big", BIG, "json"), ("odd:bigobj", BIG_OBJECT, "tree")):
        response = key_page(editor, key)
        assert response.status_code == 200
        page = text(response)
        # a number alone opens as JSON text, an object as a tree: digits exact in both
        assert f'data-format="{opens}"' in page and BIG in page
        pretty = text(editor.get(f"/key?key={quote(key, safe='')}&view=json"))
        assert 'data-format="json"' in pretty and BIG in pretty
        assert raw_value(editor, key) == value
    browse = editor.get("/browse?prefix=odd:")
    assert browse.status_code == 200 and BIG[:100] in text(browse)
    mget = post_form(editor, "/mget", {"keys": "odd:big\nodd:bigobj\n"}, token_from="/mget")
    assert mget.status_code == 200 and BIG[:100] in text(mget)


def test_json_nested_50000_deep_is_shown_raw_with_a_note(editor, store):
    store.seed({"odd:deep": DEEP})
    response = key_page(editor, "odd:deep")
    assert response.status_code == 200
    page = text(response)
    assert f'data-testid="json-note">{DEEP_NOTE}; shown raw.' in page
    assert 'data-format="raw"' in page and shown_value(page) == DEEP
    assert 'data-format="json"' not in page
    browse = editor.get("/browse?prefix=odd:")
    assert browse.status_code == 200 and "[" * 100 in text(browse)
    mget = post_form(editor, "/mget", {"keys": "odd:deep"}, token_from="/mget")
    assert mget.status_code == 200 and "[" * 100 in text(mget)
    download = post_form(editor, "/mget", {"keys": "odd:deep", "format": "json"}, token_from="/mget")
    assert download.status_code == 200 and DEEP in text(download)


def test_a_deep_or_oversized_index_is_malformed_on_check_and_repair(editor, store):
    store.provider.put("deepidx:a", "1", ttl=NO_TTL)
    store.provider.put("deepidx:__keys", DEEP, ttl=NO_TTL)
    store.provider.put("bigidx:a", "1", ttl=NO_TTL)
    store.provider.put("bigidx:__keys", f'["a", {BIG}]', ttl=NO_TTL)
    for service in ("deepidx:", "bigidx:"):
        check = editor.get(f"/index/check?service={service}")
        assert check.status_code == 200
        assert 'data-testid="drift-malformed"' in text(check) and "is not a JSON array" in text(check)
        row = editor.get(f"/index/check?service={service}&view=row", headers={"HX-Request": "true"})
        assert row.status_code == 200 and 'data-testid="drift-malformed"' in text(row)
        rebuild = editor.get(f"/index/repair?service={service}&action=rebuild")
        assert rebuild.status_code == 200
        assert 'data-testid="plan-malformed"' in text(rebuild)
        assert "The index is malformed" in text(rebuild) and "This rebuild replaces it" in text(rebuild)
        # any other repair is refused with the reason, never a 500
        refused = editor.get(f"/index/repair?service={service}&action=prune-stale")
        assert refused.status_code == 409 and "only rebuilt" in text(refused)
        assert "is not a JSON array of strings" in text(refused)
    # the index itself opens as a value
    page = text(key_page(editor, "deepidx:__keys"))
    assert DEEP_NOTE in page and shown_value(page) == DEEP


def test_hidden_characters_in_values_are_shown_and_copied_exactly(editor, store):
    value = '{"file":"rtl\u202egpj.exe","zw":"a\u200bb"}'
    store.seed({"odd:bidi": value, "odd:plain": '{"a":1}'})
    page = text(editor.get("/key?key=odd:bidi&view=json"))
    pretty = re.search(r'id="value-shown" data-format="json"[^>]*>(.*?)</pre>', page, re.S).group(1)
    assert "\u202e" not in pretty and ">\\u202E</span>gpj.exe" in pretty
    assert "\u202e" not in raw_value(editor, "odd:bidi")
    # "Copy value" and "Download" fetch the exact value; the page holds one rendering only
    assert 'data-copy-url="/key/download?key=odd:bidi"' in page and page.count("<pre") == 1
    # the tree (the default view) escapes the string the same way; its exact JSON is in
    # data-json, for "Copy value", and not shown
    tree = text(key_page(editor, "odd:bidi"))
    shown = re.search(r'data-format="tree">(.*?)</div>\n</div>', tree, re.S).group(1)
    assert "<pre" not in tree and ">\\u202E</span>gpj.exe" in shown
    assert "\u202e" not in re.sub(r'data-json="[^"]*"', "", shown)
    download = editor.get("/key/download?key=odd:bidi")
    assert download.get_data(as_text=True) == value
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    rows = text(editor.get("/browse?prefix=odd:"))
    preview_cell = re.search(r'data-key="odd:bidi"[^>]*>.*?<td class="preview"><code>(.*?)</code>', rows,
                             re.S).group(1)
    assert "\u202e" not in preview_cell and ">\\u202E</span>" in preview_cell
    mget = text(post_form(editor, "/mget", {"keys": "odd:bidi"}, token_from="/mget"))
    assert "\u202e" not in re.search(r'<td class="preview"><code>(.*?)</code>', mget, re.S).group(1)
