"""End to end: axe-core's WCAG 2 A and AA rules on the main pages, light and dark.

axe-core is vendored (tests/e2e/vendor/axe-<version>.min.js, MPL-2.0, with its licence): a
test-only asset, never served by the dashboard. It is evaluated in the page through the
DevTools protocol (``page.evaluate``), which the page's Content-Security-Policy does not
govern, so the pages are checked under the same policy they are served with (no
``bypass_csp``, and the fixture still fails a test on any CSP report).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.live import checked_page, log_in, serve_app
from tests.support.webapp import login, make_app, post_form

pytestmark = pytest.mark.e2e

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa"]
#: the body's background in each scheme (app.css's --bg): the theme really applied
BACKGROUND = {"light": "rgb(247, 248, 250)", "dark": "rgb(15, 20, 32)"}
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        items = {f"shop:item:{i:04d}": json.dumps({"id": i, "name": f"Item {i}"}) for i in range(30)}
        items["shop:profile:alice"] = json.dumps({"id": "alice", "displayName": "Alice",
                                                  "tags": ["a", "b"], "age": 41, "admin": False})
        backend.seed(items)
        backend.seed({"shop:session:42": '{"cart":[1,2]}'}, ttl_ms=HOUR_MS)
        backend.provider.put("shop:__keys", json.dumps(sorted(k[5:] for k in items)), ttl=NO_TTL)
        yield backend


@pytest.fixture(scope="module")
def base_url(store):
    app = make_app(store.provider)
    client = app.test_client()  # a write, so /audit has an entry to show
    login(client)
    answer = post_form(client, "/key/new", {"key": "shop:created:1", "value": '{"made":true}',
                                            "ttl_mode": "none", "compact": "on", "update_index": "on"})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    with serve_app(app) as url:
        yield url


@pytest.fixture(params=["light", "dark"])
def scheme(request) -> str:
    return request.param


@pytest.fixture
def themed(browser, base_url, scheme, request, tmp_path):
    """A page whose system colour scheme is ``scheme``; CSP reports fail the test."""
    with checked_page(browser, request, tmp_path, base_url=base_url,
                      color_scheme=scheme) as page:
        yield page


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2 A/AA violations on what the page shows now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        """async (tags) => {
             const result = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                     resultTypes: ["violations"]});
             return result.violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}));
           }""", AXE_TAGS)


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(f"    {node['target']}: {(node['summary'] or '').replace(chr(10), ' ')}"
                     for node in violation["nodes"][:8])
    return "\n".join(lines)


def settled(page) -> None:
    """No htmx request in flight (lazy counts, index checks): axe sees the final screen."""
    page.wait_for_load_state("networkidle")
    expect(page.locator(".htmx-request")).to_have_count(0)


# --- the pages: each brings one screen into view ----------------------------------------

def _login(page) -> None:
    page.goto("/login")


def _services(page) -> None:
    log_in(page)
    expect(page.locator('[data-testid="service-counting"]')).to_have_count(0)


def _browse(page) -> None:
    log_in(page)
    page.goto("/browse?prefix=shop:")
    expect(page.locator('[data-testid="key-row"]').first).to_be_visible()


def _folders(page) -> None:
    log_in(page)
    page.goto("/browse?prefix=shop:&view=folders")
    expect(page.locator('[data-testid="folder-row"]').first).to_be_visible()


def _key(page) -> None:
    """A JSON value as the key page first shows it."""
    log_in(page)
    page.goto("/key?key=shop:profile:alice")
    expect(page.locator('[data-testid="value"]')).to_be_visible()


def _key_json(page) -> None:
    """The same value as indented JSON text."""
    log_in(page)
    page.goto("/key?key=shop:profile:alice&view=json")
    expect(page.locator('[data-testid="value"]')).to_be_visible()


def _edit(page) -> None:
    log_in(page)
    page.goto("/key/edit?key=shop:profile:alice")
    expect(page.locator('[data-testid="value-input"]')).to_be_visible()


def _mget(page) -> None:
    log_in(page)
    page.goto("/mget")
    page.fill('[data-testid="mget-keys"]', "shop:profile:alice\nshop:profile:nobody\nshop:session:42")
    page.click('[data-testid="mget-submit"]')
    expect(page.locator('[data-testid="mget-row"]')).to_have_count(3)


def _search(page) -> None:
    log_in(page)
    page.goto("/search?prefix=shop:&q=Item+1")
    expect(page.locator('[data-testid="hit-row"]').first).to_be_visible()


def _audit(page) -> None:
    log_in(page)
    page.goto("/audit")
    expect(page.locator('[data-testid="audit-row"]').first).to_be_visible()


def _index(page) -> None:
    log_in(page)
    page.goto("/index")
    expect(page.locator('[data-testid="index-row"]').first).to_be_visible()
    expect(page.locator('[data-testid="row-checking"]')).to_have_count(0)


def _import(page) -> None:
    log_in(page)
    page.goto("/import")
    expect(page.locator('[data-testid="import-form"]')).to_be_visible()


def _store(page) -> None:
    log_in(page)
    page.goto("/store")


def _shortcuts(page) -> None:
    log_in(page)
    page.goto("/browse?prefix=shop:")
    expect(page.locator('[data-testid="shortcuts-hint"]')).to_be_visible()
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()


PAGES = {"login": _login, "services": _services, "browse": _browse, "folders": _folders,
         "key": _key, "key-json": _key_json, "edit": _edit, "mget": _mget, "search": _search,
         "audit": _audit, "index": _index, "import": _import, "store": _store,
         "shortcuts-overlay": _shortcuts}


@pytest.mark.parametrize("name", list(PAGES))
def test_the_page_has_no_wcag_a_or_aa_violations(page, name):
    """Each page once, checked in the light scheme, then switched to dark in place (the
    system setting changes under an open page, as it does at dusk)."""
    PAGES[name](page)
    settled(page)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == BACKGROUND[scheme], f"the {scheme} theme did not apply: {background}"
        violations = axe_violations(page)
        assert not violations, (f"axe-core {AXE.name} on {name} ({scheme}, {page.url}):\n"
                                + describe(violations))


def test_the_live_feed_has_no_wcag_a_or_aa_violations(themed, scheme, store):
    """The feed with events in it (its stream stays open: no network-idle wait here)."""
    log_in(themed)
    themed.goto(f"/live?prefix=shop:live{scheme}:")
    themed.wait_for_function(
        "() => document.getElementById('live-connector').dataset.state === 'open'")
    store.provider.put(f"shop:live{scheme}:a", '{"n":1}', ttl=NO_TTL)
    store.provider.delete(f"shop:live{scheme}:a")
    expect(themed.locator('[data-testid="live-event"]')).to_have_count(2, timeout=10_000)
    violations = axe_violations(themed)
    assert not violations, f"axe-core {AXE.name} on the live feed ({scheme}):\n" + describe(violations)


def test_axe_is_vendored_with_its_licence_and_a_versioned_name():
    assert re.fullmatch(r"axe-\d+\.\d+\.\d+\.min\.js", AXE.name) and AXE.is_file()
    version = AXE.name.removeprefix("axe-").removesuffix(".min.js")
    assert AXE.read_text(encoding="utf-8").startswith(f"/*! axe v{version}")
    licence = AXE.with_name(f"axe-{version}.LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("Mozilla Public License")
