"""End to end: the keyboard shortcuts (static/keyboard.js) in Debian's Chromium."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.support.backends import start_backend
from tests.support.live import log_in, serve_app
from tests.support.webapp import make_app

pytestmark = pytest.mark.e2e
KEY_PAGE = re.compile(r"/key\?key=shop(:|%3A)item(:|%3A)0000$")
EDIT_PAGE = re.compile(r"/key/edit\?key=shop(:|%3A)item(:|%3A)0000$")


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        backend.seed({f"shop:item:{i:04d}": json.dumps({"id": i, "name": f"Item {i}"})
                      for i in range(120)})
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    with serve_app(make_app(store.provider)) as url:
        yield url


def current(page):
    return page.locator("tr.kb-current")


def assert_current(page, key: str) -> None:
    expect(current(page)).to_have_count(1)
    expect(current(page)).to_have_attribute("data-key", key)
    expect(current(page)).to_have_attribute("aria-current", "true")


def test_j_k_move_the_highlight_enter_opens_and_e_edits(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)
    expect(current(page)).to_have_count(0)
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert_current(page, "shop:item:0001")
    page.keyboard.press("k")
    assert_current(page, "shop:item:0000")
    page.keyboard.press("k")  # the first row stays the first
    assert_current(page, "shop:item:0000")
    page.keyboard.press("Alt+j")  # with a modifier: not a shortcut
    assert_current(page, "shop:item:0000")
    # the row's link has the focus; from anywhere else Enter still opens the highlighted key
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("Enter")
    page.wait_for_url(KEY_PAGE)
    page.keyboard.press("e")  # the key page's Edit link
    page.wait_for_url(EDIT_PAGE)
    editor = page.locator('[data-testid="value-input"]')
    editor.press("Control+Home")
    editor.press("e")  # in the editor, "e" is a letter typed
    expect(editor).to_have_value(re.compile(r"^e\{"))
    assert EDIT_PAGE.search(page.url), page.url


def test_e_on_a_highlighted_row_opens_its_edit_page_for_an_editor_only(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    page.keyboard.press("j")
    page.keyboard.press("e")
    page.wait_for_url(EDIT_PAGE)

    page.context.clear_cookies()
    log_in(page, "vi")
    page.goto("/browse?prefix=shop:")
    page.keyboard.press("j")
    assert_current(page, "shop:item:0000")
    page.keyboard.press("e")  # a viewer may not edit: nothing happens
    page.wait_for_timeout(300)
    assert "/browse?" in page.url, page.url
    page.goto("/key?key=shop:item:0000")
    expect(page.locator('[data-testid="edit"]')).to_have_count(0)
    page.keyboard.press("e")
    page.wait_for_timeout(300)
    assert KEY_PAGE.search(page.url), page.url


def test_slash_focuses_the_filter_and_typing_j_there_moves_nothing(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    box = page.locator('[data-testid="filter"]')
    page.keyboard.press("j")
    assert_current(page, "shop:item:0000")
    page.keyboard.press("/")
    expect(box).to_be_focused()
    expect(box).to_have_value("shop:")  # the "/" is not typed
    page.keyboard.type("j")
    expect(box).to_have_value("shop:j")
    assert_current(page, "shop:item:0000")
    page.keyboard.press("Escape")  # leaves the field, keeps what was typed
    expect(box).not_to_be_focused()
    expect(box).to_have_value("shop:j")


def test_question_mark_opens_the_shortcuts_and_escape_closes_them(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    overlay = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(overlay).to_be_hidden()
    page.keyboard.press("?")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Open the highlighted key")
    page.keyboard.press("j")  # the page behind the overlay does not move
    expect(current(page)).to_have_count(0)
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()
    # the footer's hint opens it too, and its button closes it
    page.click('[data-testid="shortcuts-hint"]')
    expect(overlay).to_be_visible()
    page.click('[data-testid="shortcuts-close"]')
    expect(overlay).to_be_hidden()


def test_rows_htmx_appends_are_included(page):
    log_in(page)
    page.goto("/browse?prefix=shop:")
    rows = page.locator('[data-testid="key-row"]')
    page.click('[data-testid="next-page"]')
    expect(rows).to_have_count(120)
    page.keyboard.press("k")  # from no highlight, k starts at the last row: an appended one
    assert_current(page, "shop:item:0119")
    expect(current(page)).to_be_in_viewport()
    page.keyboard.press("k")
    assert_current(page, "shop:item:0118")


def test_bulk_lookup_and_search_rows(page):
    log_in(page)
    page.goto("/mget")
    page.keyboard.press("/")
    keys = page.locator('[data-testid="mget-keys"]')
    expect(keys).to_be_focused()
    page.keyboard.type("shop:item:0003\nshop:item:0000")
    page.keyboard.press("Escape")
    expect(keys).not_to_be_focused()
    page.click('[data-testid="mget-submit"]')
    expect(page.locator('[data-testid="mget-row"]')).to_have_count(2)
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert_current(page, "shop:item:0000")
    page.keyboard.press("Enter")
    page.wait_for_url(KEY_PAGE)

    page.goto("/search?prefix=shop:&q=Item+0")
    expect(page.locator('[data-testid="search-q"]')).not_to_be_focused()
    page.keyboard.press("/")
    expect(page.locator('[data-testid="search-q"]')).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(current(page)).to_have_attribute("data-testid", "hit-row")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/key\?key="))
