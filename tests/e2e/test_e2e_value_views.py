"""End to end: the key page's value views in Debian's Chromium, on a real redis-server.

A JSON value as a tree (fold, unfold, copy a path and a value through the clipboard), raw
text with line numbers that copying leaves out, a binary value as hex, a hash as a table.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from dashboard.mesh import meshjson
from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e

DOC = json.dumps({"items": [{"name": "needle"}, {"name": "b\u202ec"}], "odd key": {"x": 1},
                  "n": 1.5, "t": True}, ensure_ascii=False)
TEXT = "alpha\nbeta\r\n\ngamma"


@pytest.fixture(scope="module")
def store():
    with start_backend("redis") as backend:
        backend.seed({"vv:doc": DOC, "vv:text": TEXT})
        raw = backend.extra["raw"]
        raw.set(b"vv:bin", b"\x89PNG\r\n\x1a\n\xff\x00binary")
        raw.hset("vv:hash", mapping={f"f{i:03d}": f"value {i}" for i in range(150)})
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


@pytest.fixture
def clipboard(page, base_url):
    """The page may write and the test read the system clipboard."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)

    def read() -> str:
        return page.evaluate("navigator.clipboard.readText()")

    return read


def node(page, *segs: str):
    """The tree node at the path made of ``segs`` (each a data-seg), from the root."""
    selector = '[data-testid="value"] > .jt-node[data-seg=""]'
    for seg in segs:
        selector += f' > details > .jt-kids > .jt-node[data-seg={json.dumps(seg)}]'
    return page.locator(selector)


def copy(page, target, which: str) -> None:
    target.locator(":scope > details > summary, :scope > .jt-v").first.hover()
    target.locator(f':scope > .jt-acts > [data-testid="{which}"]').click()


def test_a_json_value_is_a_tree_that_folds_and_copies_paths_and_values(page, clipboard):
    log_in(page)
    page.goto("/key?key=vv:doc")
    expect(page.locator('[data-testid="value"]')).to_have_attribute("data-format", "tree")
    expect(page.locator('[data-testid="tree-expand-all"]')).to_be_visible()  # value.js ran
    items = node(page, ".items")
    needle = node(page, ".items", "[0]", ".name")
    expect(needle).to_be_visible()
    # fold and unfold at any depth: <details>
    items.locator(":scope > details > summary").click()
    expect(needle).to_be_hidden()
    expect(items.locator(":scope > details > summary")).to_contain_text("[…]2 items")
    items.locator(":scope > details > summary").click()
    expect(needle).to_be_visible()
    node(page, ".items", "[0]").locator(":scope > details > summary").click()
    expect(needle).to_be_hidden()
    page.click('[data-testid="tree-expand-all"]')
    expect(needle).to_be_visible()
    page.click('[data-testid="tree-collapse-all"]')
    expect(items).to_be_hidden()  # inside the folded root
    page.click('[data-testid="tree-expand-all"]')

    # each node has its buttons, named for screen readers; their labels are drawn by CSS,
    # so the tree's text (what a selection copies) is the document alone
    expect(needle.get_by_role("button", name="Copy path")).to_have_count(1)
    assert "Copy" not in page.locator('[data-testid="value"]').inner_text()
    # copy a path: JSONPath, as RedisJSON takes it
    copy(page, needle, "copy-path")
    assert clipboard() == "$.items[0].name"
    expect(needle.locator('[data-testid="copy-path"]')).to_have_attribute("data-state", "copied")
    expect(page.locator('[data-testid="tree-status"]')).to_have_text(
        "Copied the path $.items[0].name")
    copy(page, node(page, '["odd key"]', ".x"), "copy-path")
    assert clipboard() == '$["odd key"].x'
    # copy a value: the sub-value as JSON, exact where the page shows escapes
    hidden = node(page, ".items", "[1]", ".name")
    expect(hidden.locator(".esc")).to_have_text("\\u202E")
    copy(page, hidden, "copy-node-value")
    assert clipboard() == '"b\u202ec"'
    copy(page, node(page, ".items", "[0]"), "copy-node-value")
    assert clipboard() == '{\n  "name": "needle"\n}'
    # a container's buttons sit beside its summary: copying does not fold it
    expect(node(page, ".items", "[0]").locator(":scope > details")).to_have_attribute("open", "")
    root = page.locator('[data-testid="value"] > .jt-node[data-seg=""]')
    copy(page, root, "copy-node-value")
    assert clipboard() == meshjson.pretty(DOC)  # as the JSON view writes it

    page.click('[data-testid="show-pretty"]')
    expect(page.locator('[data-testid="value"]')).to_have_attribute("data-format", "json")
    assert page.locator('[data-testid="value"]').inner_text() == meshjson.pretty(DOC).replace(
        "\u202e", "\\u202E")


def test_raw_text_has_line_numbers_that_copying_leaves_out(page, clipboard):
    log_in(page)
    page.goto("/key?key=vv:text")
    shown = page.locator('[data-testid="value"]')
    expect(shown).to_have_attribute("data-format", "raw")
    lines = shown.locator(".ln")
    expect(lines).to_have_count(4)
    numbers = lines.evaluate_all(
        "spans => spans.map(s => getComputedStyle(s, '::before').content)")
    assert numbers == ["counter(ln)"] * 4
    # the number sits left of the text, in the padding
    gutter = lines.nth(3).evaluate(
        "s => s.getBoundingClientRect().left - s.parentElement.getBoundingClientRect().left")
    assert gutter > 20
    # select the whole value and copy it as an operator would: the text, not the numbers
    shown.evaluate("""pre => {
        const range = document.createRange();
        range.selectNodeContents(pre);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
    }""")
    assert page.evaluate("getSelection().toString()") == TEXT.replace("\r\n", "\n")
    page.keyboard.press("Control+C")
    assert clipboard().replace("\r\n", "\n") == TEXT.replace("\r\n", "\n")
    assert "1" not in clipboard()


def test_a_binary_value_opens_as_hex(page):
    log_in(page)
    page.goto("/key?key=vv:bin")
    shown = page.locator('[data-testid="value"]')
    expect(shown).to_have_attribute("data-format", "hex")
    expect(page.locator('[data-testid="binary-note"]')).to_have_text(
        "Not UTF-8 text: shown as hex.")
    assert shown.inner_text().splitlines() == [
        "00000000  89 50 4e 47 0d 0a 1a 0a  ff 00 62 69 6e 61 72 79  .PNG......binary"]
    expect(page.locator('[data-testid="hex-extent"]')).to_have_text("16 bytes.")
    page.click('[data-testid="show-raw"]')
    expect(shown).to_have_attribute("data-format", "raw")


def test_a_redis_hash_is_a_table(page):
    log_in(page, "vi")
    page.goto("/key?key=vv:hash")
    table = page.locator('[data-testid="value"]')
    expect(table).to_have_attribute("data-format", "hash")
    expect(table.locator('[data-testid="value-row"]')).to_have_count(100)
    expect(page.locator('[data-testid="collection-extent"]')).to_contain_text(
        "first 100 of 150 fields")
    row = table.locator('[data-testid="value-row"]').first
    field, value = row.locator("td").all_inner_texts()
    assert field.startswith("f") and value == f"value {int(field[1:])}"
    expect(page.locator('[data-testid="size"]')).to_contain_text("hash, 150 fields")
