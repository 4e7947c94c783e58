"""The key page's views of a value: the JSON tree, numbered lines, hex, collection tables.

The pure functions of ``dashboard/web/value_views.py`` first, then the key page through
the Flask test client on a dev store and a real redis-server.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.mesh import meshjson
from dashboard.stores.entries import Entry
from dashboard.web import value_views as vv
from dashboard.web.formatting import show_value
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app

BIDI_NAME = "rtl\u202egpj.exe"


def tree_of(text: str) -> str:
    tree = vv.json_tree(meshjson.loads(text))
    assert tree is not None
    return str(tree)


def words(markup: str) -> str:
    """Text as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


# --- paths -------------------------------------------------------------------------------

def test_paths_are_jsonpath_as_redisjson_writes_them():
    assert vv.json_path([]) == "$"
    assert vv.json_path(["items", 2, "name"]) == "$.items[2].name"
    assert vv.json_path(["odd key", "_x9", "9x"]) == '$["odd key"]._x9["9x"]'
    assert vv.json_path(['say "hi"\\', "\u00e9t\u00e9"]) == '$["say \\"hi\\"\\\\"]["\u00e9t\u00e9"]'
    assert vv.path_segment("") == '[""]' and vv.path_segment("a\nb") == '["a\\nb"]'
    assert vv.path_segment("\ud800") == '["\\uD800"]'  # a lone surrogate, escaped


# --- the tree ----------------------------------------------------------------------------

def test_the_tree_is_nested_details_with_a_path_step_on_each_node():
    tree = tree_of('{"a":1,"items":[{"name":"x"},2.50,null,true],"odd key":{},"e":[]}')
    assert tree.startswith('<div class="jt-node jt-obj" data-seg=""><details open><summary>')
    assert tree.count("<details") == 3  # the root, items and items[0]: {} and [] are leaves
    segs = re.findall(r'data-seg="([^"]*)"', tree)
    assert segs == ["", ".a", ".items", "[0]", ".name", "[1]", "[2]", "[3]",
                    "[&#34;odd key&#34;]", ".e"]
    assert '<span class="jt-v jt-num">2.50</span>' in tree  # numbers as written
    assert '<span class="jt-v jt-null">null</span>' in tree
    assert '<span class="jt-v jt-bool">true</span>' in tree
    assert '<span class="jt-v jt-empty">{}</span>' in tree
    assert '<span class="jt-n">4 keys</span>' in tree and '<span class="jt-n">1 key</span>' in tree
    assert '<span class="jt-n">4 items</span>' in tree
    assert words(tree).startswith('{…}4 keys"a": 1"items": […]4 items0: {…}1 key"name": "x"')


def test_scalars_and_documents_over_the_node_limit_have_no_tree():
    for scalar in ('"text"', "42", "null", "true"):
        assert vv.json_tree(meshjson.loads(scalar)) is None
    fits = [0] * (vv.MAX_TREE_NODES - 1)  # and the root
    assert vv.json_tree(fits) is not None
    assert vv.json_tree(fits + [0]) is None
    assert vv.count_nodes(fits + [0], vv.MAX_TREE_NODES) is None


def test_strings_in_the_tree_are_escaped_as_show_value_escapes_them():
    value = json.dumps({BIDI_NAME: "a\u200bb\u202e<script>alert(1)</script>&amp;"},
                       ensure_ascii=False)
    tree = tree_of(value)
    assert "\u202e" not in re.sub(r'data-(json|seg)="[^"]*"', "", tree)
    assert "\u200b" not in re.sub(r'data-(json|seg)="[^"]*"', "", tree)
    assert "<script>" not in tree and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;" in tree
    literal = '"a\u200bb\u202e<script>alert(1)</script>&amp;"'
    assert str(show_value(literal)) in tree  # the very markup the text views show
    # the exact JSON of what is shown with escapes travels in data-json (for "Copy value")
    exact = re.search(r'<span class="jt-v jt-str" data-json="([^"]*)"', tree).group(1)
    assert html.unescape(exact) == literal
    name = re.search(r'<span class="jt-k">(.*?)</span><span class="jt-colon">', tree).group(1)
    assert name == str(show_value(f'"{BIDI_NAME}"'))
    seg = re.search(r'data-seg="(\[[^"]*)"', tree).group(1)
    assert html.unescape(seg) == f'["{BIDI_NAME}"]'


def test_strings_are_written_as_the_json_view_writes_them():
    value = '{"s":"tab\\there \\u0007 \\"q\\" \\\\ \\ud800 \\u00e9"}'
    tree = tree_of(value)
    shown = meshjson.pretty(value).split(": ", 1)[1].rsplit("\n", 1)[0]
    assert shown == '"tab\\there \\u0007 \\"q\\" \\\\ \\uD800 \u00e9"'
    # all of it printable: shown as it is, and its text is its JSON (no data-json)
    assert f'<span class="jt-v jt-str">{html.escape(shown, quote=True).replace("&quot;", "&#34;")}' \
           f'</span>' in tree and "data-json" not in tree


def test_deep_nesting_is_laid_out_to_a_bound_then_shown_as_json():
    deep = "[" * 900 + '"x"' + "]" * 900  # within what meshjson reads (1,000 levels)
    tree = tree_of(deep)
    assert tree.count("<details") == vv.MAX_TREE_DEPTH
    rest = vv.compact_json(meshjson.loads(deep))[vv.MAX_TREE_DEPTH:-vv.MAX_TREE_DEPTH]
    assert f'<span class="jt-v jt-deep" title="nested deeper than the tree shows: its JSON">' \
           f'{rest.replace(chr(34), "&#34;")}</span>' in tree
    assert vv.count_nodes(meshjson.loads(deep), 10_000) == vv.MAX_TREE_DEPTH + 1


def test_a_small_tree_opens_fully_a_big_one_its_first_levels():
    small = tree_of(json.dumps({"a": {"b": {"c": {"d": 1}}}}))
    assert small.count("<details open>") == small.count("<details") == 4
    big = tree_of(json.dumps({"a": {"b": {"c": list(range(vv.OPEN_ALL_NODES))}}}))
    assert big.count("<details open>") == vv.OPEN_DEPTH and big.count("<details") == 4


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_compact_json_reads_back_as_the_same_document(document):
    text = json.dumps(document)
    parsed = meshjson.loads(text)
    compact = vv.compact_json(parsed)
    assert meshjson.loads(compact) == parsed
    assert "\n" not in compact
    tree = vv.json_tree(parsed)
    assert tree is None or isinstance(tree, str)


# --- numbered lines ----------------------------------------------------------------------

def unnumbered(lines: vv.Lines) -> str:
    return re.sub(r'<span class="ln">|</span>(?=\r?\n|\Z)', "", str(lines.html))


@pytest.mark.parametrize("text", [
    "one", "one\ntwo", "one\r\ntwo\r\n", "a\rb\nc", "\n\n", "x\u202ey\n\x00\n", "<b>&amp;</b>\n",
])
def test_numbered_lines_are_the_value_as_show_value_shows_it(text):
    lines = vv.numbered_lines(text)
    assert unnumbered(lines) == str(show_value(text))
    assert lines.count == lines.numbered == str(lines.html).count('<span class="ln">')


def test_numbered_lines_count_lines_as_an_editor_does():
    assert vv.numbered_lines("").count == 0 and str(vv.numbered_lines("").html) == ""
    assert vv.numbered_lines("a").count == 1
    assert vv.numbered_lines("a\n").count == 1  # a final line break ends the last line
    assert vv.numbered_lines("a\n\n").count == 2
    assert vv.numbered_lines("a\rb").count == 1  # a lone CR is shown, not a break
    crlf = str(vv.numbered_lines("a\r\nb").html)
    assert crlf == '<span class="ln">a</span>\r\n<span class="ln">b</span>'


def test_lines_past_the_limit_are_shown_unnumbered():
    lines = vv.numbered_lines("l\n" * 10 + "end", most=4)
    assert (lines.count, lines.numbered, lines.digits) == (11, 4, 1)
    assert str(lines.html).count('<span class="ln">') == 4
    assert str(lines.html).endswith('<span class="ln-rest">' + "l\n" * 6 + "end</span>")
    assert words(str(lines.html)) == "l\n" * 10 + "end"


# --- hex ---------------------------------------------------------------------------------

def test_hex_rows_have_offset_bytes_and_ascii():
    dump = vv.hex_dump(b"Hello <world>\x00\xff\x7f" + bytes(range(20)))
    rows = str(dump.html).splitlines()
    assert len(rows) == 3 and (dump.shown, dump.total) == (36, 36)
    assert rows[0] == ('<span class="hx-off">00000000</span>  48 65 6c 6c 6f 20 3c 77  '
                       '6f 72 6c 64 3e 00 ff 7f  <span class="hx-asc">Hello &lt;world&gt;...</span>')
    assert rows[2].startswith('<span class="hx-off">00000020</span>  10 11 12 13' + " " * 38)
    assert rows[2].endswith('<span class="hx-asc">....</span>')
    # the ASCII column starts at the same place on a short row
    assert rows[2].index("hx-asc") == rows[0].index("hx-asc")


def test_hex_is_bounded():
    dump = vv.hex_dump(bytes(1000), most=64)
    assert (dump.shown, dump.total) == (64, 1000) and str(dump.html).count("\n") == 4
    assert vv.hex_dump(b"").html == ""


def test_binary_means_not_utf8_or_control_characters():
    assert vv.looks_binary(Entry(key="k", value="\ufffd", data=b"\xff"))
    assert vv.looks_binary(Entry(key="k", value="a\x00b"))
    assert vv.looks_binary(Entry(key="k", value="\x1b[31mred"))
    assert not vv.looks_binary(Entry(key="k", value="tab\there\r\nline\u202e"))
    assert not vv.looks_binary(Entry(key="k", value=None, type="hash", content={}))


# --- collections -------------------------------------------------------------------------

def test_collections_are_tables_of_what_was_read():
    hashed = vv.collection_table(Entry(key="h", value=None, type="hash", length=1204,
                                       content={"a": "1", "b<": "x\u202ey"}))
    assert hashed.columns == ("Field", "Value")
    assert [tuple(map(str, row)) for row in hashed.rows] == [
        ('<bdi class="show-key" dir="ltr">a</bdi>', "1"),
        ('<bdi class="show-key" dir="ltr">b&lt;</bdi>', str(show_value("x\u202ey")))]
    assert hashed.extent == "first 2 of 1,204 fields (the first the store returned, sorted)"
    listed = vv.collection_table(Entry(key="l", value=None, type="list", length=2,
                                       content=["x", "y"]))
    assert [tuple(map(str, r)) for r in listed.rows] == [("0", "x"), ("1", "y")]
    assert listed.extent == "all 2 items"
    zset = vv.collection_table(Entry(key="z", value=None, type="zset", length=300,
                                     content=[["m", 1.0], ["n", 2.5], ["o", float("inf")]]))
    assert [str(r[1]) for r in zset.rows] == ["1", "2.5", "inf"]
    assert zset.extent == "first 3 of 300 members (lowest scores first)"
    members = vv.collection_table(Entry(key="s", value=None, type="set", length=1,
                                        content=["only"]))
    assert members.columns == ("Member",) and members.extent == "all 1 member"
    stream = vv.collection_table(Entry(key="x", value=None, type="stream", length=1,
                                       content=[["1-0", {"f": "v", "g": "w"}]]))
    assert words(str(stream.rows[0][1])) == "f: v\ng: w"
    assert vv.collection_table(Entry(key="j", value=None, type="ReJSON-RL")) is None


def test_a_long_cell_is_cut():
    table = vv.collection_table(Entry(key="l", value=None, type="list", length=1,
                                      content=["x" * (vv.CELL_CHARS + 5)]))
    cell = str(table.rows[0][1])
    assert cell.startswith("x" * vv.CELL_CHARS + '<span class="cell-cut">… 5 more characters')


# --- the key page --------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def page(client, key: str, view: str | None = None) -> str:
    url = f"/key?key={quote(key, safe='')}" + (f"&view={view}" if view else "")
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def shown_format(body: str) -> str:
    return re.search(r'id="value-shown" data-format="([^"]+)"', body).group(1)


def tabs(body: str) -> list[str]:
    return re.findall(r'data-testid="show-([a-z]+)"', body)


def test_each_kind_of_value_opens_in_its_view_with_the_others_a_tab_away(editor, store):
    store.seed({"vv:doc": '{"a":[1,2]}', "vv:num": "42", "vv:text": "line 1\nline 2\n",
                "vv:ctl": "a\x1bb"})
    doc = page(editor, "vv:doc")
    assert shown_format(doc) == "tree" and tabs(doc) == ["tree", "pretty", "raw", "hex"]
    assert 'aria-current="page">Tree</a>' in doc
    assert 'static/value.js" defer' in doc and "static/value.css" in doc
    assert shown_format(page(editor, "vv:doc", "json")) == "json"
    assert shown_format(page(editor, "vv:doc", "nonsense")) == "tree"
    num = page(editor, "vv:num")
    assert shown_format(num) == "json" and tabs(num) == ["pretty", "raw", "hex"]
    text = page(editor, "vv:text")
    assert shown_format(text) == "raw" and tabs(text) == ["raw", "hex"]
    assert 'data-lines="2"' in text and "Not JSON: shown raw." in text
    assert '<span class="ln">line 1</span>\n<span class="ln">line 2</span>\n</pre>' in text
    ctl = page(editor, "vv:ctl")
    assert shown_format(ctl) == "hex" and 'data-testid="binary-note"' in ctl
    assert "61 1b 62" in ctl and "Holds control characters: shown as hex." in ctl
    hexed = page(editor, "vv:text", "hex")
    assert "6c 69 6e 65 20 31 0a 6c" in hexed and "14 bytes." in hexed


def test_a_document_too_big_for_a_tree_is_shown_as_text(editor, store):
    store.seed({"vv:many": json.dumps(list(range(vv.MAX_TREE_NODES)))})
    body = page(editor, "vv:many")
    assert shown_format(body) == "json" and 'data-testid="tree-note"' in body
    assert f"More than the {vv.MAX_TREE_NODES:,} values a tree shows: shown as JSON text." in body


def test_a_value_over_the_render_limit_is_its_start_raw_numbered(store):
    client = make_app(store.provider, dashboard={"MaxRenderBytes": 1024}).test_client()
    login(client, "vi")
    store.seed({"vv:big": "row\n" * 1000})
    body = page(client, "vv:big")
    assert 'data-testid="value-truncated"' in body and tabs(body) == []
    assert shown_format(body) == "raw" and 'data-lines="256"' in body
    assert 'data-format="hex"' not in page(client, "vv:big", "hex")  # not offered for a part


@pytest.fixture(scope="module")
def redis_store():
    with start_backend("redis") as backend:
        yield backend


@pytest.fixture
def redis_viewer(redis_store):
    client = make_app(redis_store.provider).test_client()
    login(client, "vi")
    return client


def test_a_binary_redis_value_opens_as_hex_of_its_exact_bytes(redis_store, redis_viewer, prefix):
    raw = redis_store.extra["raw"]
    raw.set(f"{prefix}bin".encode(), b"\x89PNG\r\n\x1a\n\xff\xfe<" + bytes(range(8)))
    body = page(redis_viewer, f"{prefix}bin")
    assert shown_format(body) == "hex" and tabs(body) == ["raw", "hex"]
    assert "Not UTF-8 text: shown as hex." in body and "19 bytes." in body
    assert ('<span class="hx-off">00000000</span>  89 50 4e 47 0d 0a 1a 0a  ff fe 3c 00 01 02 03 04'
            '  <span class="hx-asc">.PNG......&lt;.....</span>') in body
    assert shown_format(page(redis_viewer, f"{prefix}bin", "raw")) == "raw"


def test_a_redis_hash_is_a_table_of_its_first_fields(redis_store, redis_viewer, prefix):
    raw = redis_store.extra["raw"]
    raw.hset(f"{prefix}h", mapping={f"field{i:04d}": f"value <{i}>" for i in range(1204)})
    body = page(redis_viewer, f"{prefix}h")
    assert shown_format(body) == "hash"
    assert '<th scope="col">Field</th><th scope="col">Value</th>' in body
    rows = re.findall(r'<tr data-testid="value-row"><td>(.*?)</td><td>(.*?)</td></tr>', body)
    assert len(rows) == 100
    field, value = rows[0]
    assert words(field).startswith("field") and words(value) == f"value <{int(words(field)[5:])}>"
    assert re.search(r"first 100 of 1,204 fields", body)
    raw.hset(f"{prefix}small", mapping={"b": "2", "a": "1"})
    small = page(redis_viewer, f"{prefix}small")
    assert "shown read-only: all 2 fields." in small
    assert [words(f) for f, _ in re.findall(
        r'<tr data-testid="value-row"><td>(.*?)</td><td>(.*?)</td></tr>', small)] == ["a", "b"]


@pytest.mark.parametrize(("kind", "columns", "extent"), [
    ("list", ["Index", "Value"], "first 100 of 150 items"),
    ("set", ["Member"], "all 3 members"),
    ("zset", ["Member", "Score"], "all 2 members"),
    ("stream", ["ID", "Fields"], "all 1 entry"),
])
def test_each_redis_collection_is_a_table(redis_store, redis_viewer, prefix, kind, columns, extent):
    raw = redis_store.extra["raw"]
    key = f"{prefix}{kind}"
    {"list": lambda: raw.rpush(key, *[f"item {i}" for i in range(150)]),
     "set": lambda: raw.sadd(key, "a", "b", "c"),
     "zset": lambda: raw.zadd(key, {"low": 1.5, "high": 10}),
     "stream": lambda: raw.xadd(key, {"f": "v"}, id="1-1")}[kind]()
    body = page(redis_viewer, key)
    body = body[body.index('id="value-collection"'):body.index("</table>")]
    assert re.findall(r'<th scope="col">([^<]+)</th>', body) == columns
    assert extent in body and shown_format(body) == kind
    cells = [words(c) for c in re.findall(r"<td>(.*?)</td>", body, re.S)]
    expected = {"list": ["0", "item 0"], "set": ["a"], "zset": ["low", "1.5"],
                "stream": ["1-1", "f: v"]}[kind]
    assert cells[:len(expected)] == expected
