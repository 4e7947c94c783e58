"""End to end behind an ingress at /kv/ and on plain localhost: nothing leaves the prefix.

Each test runs in three setups, each a live dashboard on one shared dev store, driven
through Debian's Chromium:

- ``stripped``: a real reverse proxy (tests/support/prefix_proxy.py) serves the app at
  ``/kv/``, strips ``/kv`` and sends ``X-Forwarded-Prefix`` (``Dashboard__ForwardedProxies=1``);
- ``kept``: the proxy keeps ``/kv`` and the app is told its prefix with
  ``Dashboard__PathBase=/kv`` (with ``Dashboard__ForwardedProxies=1``, as in
  deploy/kubernetes/configmap.yaml);
- ``localhost``: that same deployed configuration reached directly at ``/``, as through
  ``kubectl port-forward``.

Both proxies answer 404 to anything outside ``/kv/``, as the ingress does. Every request the
browser makes (documents, redirects, htmx requests, static files, form posts, downloads) is
recorded and must stay under ``/kv/`` behind the proxy, at the root on localhost, and none
may answer 404.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import pytest
from playwright.sync_api import expect

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import Backend, start_backend
from tests.support.live import serve_app
from tests.support.prefix_proxy import prefix_proxy
from tests.support.webapp import OPERATORS, make_app

pytestmark = pytest.mark.e2e
PREFIX = "/kv"
SHOP_ITEMS = 120  # more than one page of 100 keys, so "next page" loads in place


@dataclass(frozen=True)
class Site:
    """Where the browser finds the dashboard: ``origin + root + path``."""

    name: str
    origin: str
    root: str  # "/kv" behind the ingress, "" on localhost

    def url(self, path: str) -> str:
        return self.origin + self.root + path

    def inside(self, url: str) -> bool:
        """The URL is this dashboard's, under its root (and, on localhost, not under /kv)."""
        if not url.startswith(self.origin + "/"):
            return False
        path = urlsplit(url).path
        if self.root:
            return path.startswith(self.root + "/")
        return path != PREFIX and not path.startswith(PREFIX + "/")


@pytest.fixture(scope="module")
def store() -> Iterator[Backend]:
    with start_backend("devstore") as backend:
        items = {f"shop:item:{i:04d}": json.dumps({"id": i, "name": f"Item {i}"})
                 for i in range(SHOP_ITEMS)}
        items["shop:profile:alice"] = '{"id":"alice","displayName":"Alice"}'
        backend.seed(items)
        backend.provider.put("shop:__keys", json.dumps(sorted(k[5:] for k in items)), ttl=NO_TTL)
        yield backend


@pytest.fixture(scope="module", params=["stripped", "kept", "localhost"])
def site(request, store) -> Iterator[Site]:
    if request.param == "stripped":
        app = make_app(store.provider, dashboard={"ForwardedProxies": 1})
        with serve_app(app) as upstream, prefix_proxy(upstream, prefix=PREFIX, strip=True) as proxy:
            yield Site(request.param, proxy.url, PREFIX)
        return
    # the deployed configuration (deploy/kubernetes/configmap.yaml)
    app = make_app(store.provider, dashboard={"PathBase": PREFIX, "ForwardedProxies": 1})
    with serve_app(app) as upstream:
        if request.param == "kept":
            with prefix_proxy(upstream, prefix=PREFIX, strip=False) as proxy:
                yield Site(request.param, proxy.url, PREFIX)
        else:
            yield Site(request.param, upstream, "")


@pytest.fixture(scope="module")
def base_url(site: Site) -> str:
    """For the shared ``page`` fixture; these tests always navigate by absolute URL."""
    return site.url("/")


@dataclass
class Traffic:
    """Every request the browser context makes and every answer it gets."""

    site: Site
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    responses: list[tuple[int, str, str, dict[str, str]]] = field(default_factory=list)
    failures: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, context) -> None:
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("requestfailed", self._failed)

    def _request(self, request) -> None:
        with self.lock:
            self.requests.append((request.method, request.url, request.resource_type))

    def _response(self, response) -> None:
        with self.lock:
            self.responses.append((response.status, response.url, response.request.method,
                                   dict(response.headers)))

    def _failed(self, request) -> None:
        with self.lock:
            self.failures.append((request.method, request.url, request.failure))

    def kinds(self) -> set[str]:
        return {kind for _, _, kind in self.requests}

    def check(self) -> None:
        """Every request stayed inside the dashboard's root; none answered 404 (or 5xx)."""
        with self.lock:
            requests, responses = list(self.requests), list(self.responses)
            failures = list(self.failures)
        assert requests, "the browser made no requests"
        # ERR_ABORTED: a navigation that became a download; anything else (a refused or
        # reset connection) is the proxy or the app failing
        assert all(failure == "net::ERR_ABORTED" for _, _, failure in failures), failures
        outside = [(method, url, kind) for method, url, kind in requests
                   if urlsplit(url).scheme in ("http", "https") and not self.site.inside(url)]
        assert not outside, f"requests outside {self.site.url('/')}: {outside}"
        broken = [(status, method, url) for status, url, method, _ in responses
                  if status == 404 or status >= 500]
        assert not broken, f"answers 404/5xx: {broken}"
        # where the app sends the browser next: redirects and htmx's own navigation headers
        for _, url, _, headers in responses:
            for name in ("location", "hx-redirect", "hx-location", "hx-push-url"):
                if name in headers and headers[name] not in ("false", ""):
                    target = urljoin(url, headers[name])
                    assert self.site.inside(target), f"{url} sends {name}: {headers[name]}"


@pytest.fixture
def traffic(page, site: Site) -> Traffic:
    recorded = Traffic(site)
    recorded.attach(page.context)
    return recorded


# --- driving the pages ----------------------------------------------------------------------

def where(url: str) -> tuple[str, dict[str, str]]:
    """A URL's decoded path and query, so ``prefix=shop%3A`` and ``prefix=shop:`` compare equal."""
    parts = urlsplit(url)
    return unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True))


def assert_on(page, site: Site, path: str, **query: str) -> None:
    assert where(page.url) == (site.root + path, query), page.url


def wait_on(page, site: Site, path: str, **query: str) -> None:
    page.wait_for_url(lambda url: where(url) == (site.root + path, query))


def submit_login(page, name: str = "ed") -> None:
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", OPERATORS[name][0])
    with page.expect_navigation():
        page.click("form button[type=submit]:has-text('Log in')")


def on_login_page(page, site: Site, next_url: str) -> None:
    path, query = where(page.url)
    assert path == site.root + "/login", page.url
    assert where(query["next"]) == where(next_url), page.url
    expect(page.locator("input[name=username]")).to_be_visible()


def log_in_from_root(page, site: Site, name: str = "ed") -> None:
    page.goto(site.url("/"))
    on_login_page(page, site, site.root + "/services")
    submit_login(page, name)
    assert_on(page, site, "/services")


def nav(page, label: str) -> None:
    with page.expect_navigation():
        page.locator("header.topbar nav").get_by_role("link", name=label).click()


def shop_key_count(store: Backend) -> int:
    count, exact = store.provider.count_keys("shop:", cap=1000)
    assert exact
    return count


# --- the tests --------------------------------------------------------------------------------

def test_logged_out_root_and_bookmark_go_to_login_and_back_under_the_prefix(page, site, traffic):
    page.goto(site.url("/"))
    on_login_page(page, site, site.root + "/services")
    expect(page.locator('[data-testid="flash"]')).to_contain_text("Please log in")
    submit_login(page)
    assert_on(page, site, "/services")
    expect(page.locator("header.topbar .who")).to_contain_text("ed (editor)")

    with page.expect_navigation():
        page.click("header.topbar form button:has-text('Log out')")
    assert_on(page, site, "/login")
    expect(page.locator('[data-testid="flash"]')).to_contain_text("logged out")

    bookmark = site.root + "/browse?prefix=shop:"
    page.goto(site.origin + bookmark)
    on_login_page(page, site, bookmark)
    submit_login(page)
    assert_on(page, site, "/browse", prefix="shop:")
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)

    # the stylesheet and both scripts came from under the prefix too
    assert {"document", "stylesheet", "script"} <= traffic.kinds()
    static = [url for status, url, _, _ in traffic.responses if "/static/" in url]
    assert {urlsplit(url).path for url in static} >= {
        site.root + "/static/app.css", site.root + "/static/app.js",
        site.root + "/static/vendor/htmx-2.0.11.min.js"}
    traffic.check()


def test_services_browse_next_page_folders_and_a_key(page, site, traffic, store):
    log_in_from_root(page, site)
    row = page.locator('[data-testid="service-row"][data-prefix="shop:"]')
    expect(row.locator('[data-testid="service-count"]')).to_be_visible()  # htmx "load"
    assert row.locator('[data-testid="service-index"]').get_attribute("data-indexed") == "true"
    with page.expect_navigation():
        row.get_by_role("link", name="shop").click()
    assert_on(page, site, "/browse", prefix="shop:")

    rows = page.locator('[data-testid="key-row"]')
    expect(rows).to_have_count(100)
    page.click('[data-testid="next-page"]')  # htmx: appends the next page in place
    expect(rows).to_have_count(shop_key_count(store))
    assert page.locator('[data-testid="next-page"]').count() == 0
    # the page position replaces the URL (under the prefix): a reload shows this page
    path, query = where(page.url)
    assert path == site.root + "/browse" and query.get("prefix") == "shop:", page.url
    assert {"prefix", "cursor"} <= set(query) <= {"prefix", "cursor", "limit", "from", "shown"}

    page.fill('[data-testid="filter"]', "shop:prof")  # htmx with hx-push-url
    expect(rows).to_have_count(1)
    wait_on(page, site, "/browse", prefix="shop:prof", view="flat")

    with page.expect_navigation():
        page.click('[data-testid="view-folders"]')
    with page.expect_navigation():
        page.locator('[data-testid="breadcrumbs"] a[data-prefix="shop:"]').click()
    folder = page.locator('[data-testid="folder-row"][data-prefix="shop:item:"]')
    expect(folder.locator('[data-testid="folder-count"]')).to_have_attribute(
        "data-count", str(SHOP_ITEMS))  # htmx "revealed"

    with page.expect_navigation():
        page.locator('[data-testid="folder-row"][data-prefix="shop:profile:"] a').click()
    assert_on(page, site, "/browse", prefix="shop:profile:", view="folders")
    with page.expect_navigation():
        page.locator('[data-testid="key-row"][data-key="shop:profile:alice"] a').click()
    assert_on(page, site, "/key", key="shop:profile:alice")
    expect(page.locator('[data-testid="key-name"]')).to_have_text("shop:profile:alice")
    with page.expect_navigation():
        page.locator('[data-testid="breadcrumbs"]').get_by_role("link", name="all").click()
    assert_on(page, site, "/browse")
    nav(page, "Services")
    assert_on(page, site, "/services")
    traffic.check()


def test_edit_with_review_and_confirm(page, site, traffic, store):
    log_in_from_root(page, site)
    nav(page, "Browse")
    page.fill('[data-testid="filter"]', "shop:profile:")
    link = page.locator('[data-testid="key-row"][data-key="shop:profile:alice"] a')
    with page.expect_navigation():
        link.click()
    with page.expect_navigation():
        page.click('[data-testid="edit"]')
    assert_on(page, site, "/key/edit", key="shop:profile:alice")
    assert page.locator('[data-testid="ttl-keep"]').is_checked()
    page.fill('[data-testid="value-input"]', json.dumps({"id": "alice", "setup": site.name}))
    with page.expect_navigation():
        page.click('[data-testid="review"]')
    expect(page.locator('[data-testid="diff"]')).to_contain_text(site.name)
    with page.expect_navigation():
        page.click('[data-testid="confirm"]')
    assert_on(page, site, "/key", key="shop:profile:alice")
    expect(page.locator('[data-testid="value"]')).to_contain_text(site.name)
    assert json.loads(store.provider.get("shop:profile:alice").value)["setup"] == site.name
    traffic.check()


def test_create_and_delete_a_key(page, site, traffic, store):
    key = f"shop:profile:new-{site.name}"
    log_in_from_root(page, site)
    page.goto(site.url("/browse?prefix=shop:"))
    with page.expect_navigation():
        page.click('[data-testid="new-key"]')
    assert_on(page, site, "/key/new", prefix="shop:")
    page.fill('[data-testid="key-input"]', key)
    page.fill('[data-testid="value-input"]', '{"id":"new"}')
    with page.expect_navigation():
        page.click('[data-testid="create"]')
    assert_on(page, site, "/key", key=key)
    assert key[5:] in json.loads(store.provider.get("shop:__keys").value)

    with page.expect_navigation():
        page.click('[data-testid="delete"]')
    assert_on(page, site, "/key/delete", key=key)
    expect(page.locator('[data-testid="key-name"]')).to_have_text(key)
    with page.expect_navigation():
        page.click('[data-testid="confirm-delete"]')
    assert_on(page, site, "/browse", prefix="shop:profile:")
    assert key[5:] not in json.loads(store.provider.get("shop:__keys").value)
    assert page.locator(f'[data-testid="key-row"][data-key="{key}"]').count() == 0
    traffic.check()


def test_bulk_lookup_with_csv_download_and_permalink(page, site, traffic):
    log_in_from_root(page, site, "vi")
    nav(page, "Bulk lookup")
    assert_on(page, site, "/mget")
    page.fill('[data-testid="mget-keys"]', "shop:item:0001\nshop:nothing\nshop:item:0002\n")
    page.click('[data-testid="mget-submit"]')  # htmx POST, swapped in place
    summary = page.locator('[data-testid="mget-summary"]')
    expect(summary).to_have_text("2 found, 1 missing")
    assert_on(page, site, "/mget")

    with page.expect_download() as download:
        page.click('[data-testid="mget-download-csv"]')
    assert download.value.suggested_filename == "mget.csv"
    assert ("POST", site.url("/mget"), "document") in traffic.requests  # the download's form
    records = list(csv.DictReader(io.StringIO(
        Path(download.value.path()).read_text(encoding="utf-8"), newline="")))
    assert [(r["key"], r["found"]) for r in records] == [
        ("shop:item:0001", "true"), ("shop:nothing", "false"), ("shop:item:0002", "true")]

    with page.expect_navigation():
        page.click('[data-testid="mget-permalink"]')
    path, query = where(page.url)
    assert path == site.root + "/mget" and "shop:nothing" in query["keys"]
    expect(page.locator('[data-testid="mget-summary"]')).to_have_text("2 found, 1 missing")
    with page.expect_navigation():
        page.locator('[data-testid="mget-row"][data-key="shop:item:0002"] a').click()
    assert_on(page, site, "/key", key="shop:item:0002")
    traffic.check()


def test_index_overview_check_and_repair(page, site, traffic, store):
    service = f"drift{site.name}:"
    for inner in ("a", "b"):
        store.provider.put(f"{service}{inner}", "1", ttl=NO_TTL)
    store.provider.put(f"{service}__keys", '["a","gone"]', ttl=NO_TTL)
    log_in_from_root(page, site)
    nav(page, "Index drift")
    assert_on(page, site, "/index")
    row = page.locator(f'[data-testid="index-row"][data-prefix="{service}"]')
    expect(row.locator('[data-testid="row-stale"]')).to_have_attribute("data-count", "1")  # htmx
    with page.expect_navigation():
        row.get_by_role("link", name=service[:-1]).click()
    summary = page.locator('[data-testid="drift-summary"]')
    assert (summary.get_attribute("data-stale"), summary.get_attribute("data-unindexed")) == ("1", "1")
    with page.expect_navigation():
        page.click('[data-testid="recheck"]')
    with page.expect_navigation():
        page.click('[data-testid="repair-rebuild"]')
    plan = page.locator('[data-testid="repair-plan"]')
    assert (plan.get_attribute("data-add"), plan.get_attribute("data-remove")) == ("1", "1")
    with page.expect_navigation():
        page.click('[data-testid="confirm-repair"]')
    expect(page.locator('[data-testid="repair-result"]')).to_be_visible()
    assert json.loads(store.provider.get(f"{service}__keys").value) == ["a", "b"]
    with page.expect_navigation():
        page.click('[data-testid="check-again"]')
    expect(page.locator('[data-testid="drift-summary"]')).to_have_attribute("data-consistent", "true")
    traffic.check()


@pytest.mark.parametrize("trigger", ["next-page", "filter"])
def test_session_expired_during_an_htmx_request_returns_to_the_page(page, site, traffic, trigger):
    log_in_from_root(page, site)
    page.goto(site.url("/browse?prefix=shop:"))
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)
    # the range line counts its total once it scrolls into view: let that request finish
    # first, or it would meet the ended session too and race the click's redirect
    page.locator('[data-testid="load-more"]').scroll_into_view_if_needed()
    expect(page.locator('[data-testid="rows-total"][data-count]')).to_have_count(1)
    page.context.clear_cookies()  # the session is gone, as after its idle timeout
    with page.expect_navigation(url=lambda url: where(url)[0] == site.root + "/login"):
        if trigger == "next-page":
            page.click('[data-testid="next-page"]')  # an htmx GET for a fragment of rows
        else:
            page.fill('[data-testid="filter"]', "shop:item:00")  # an htmx GET for the results
    on_login_page(page, site, site.root + "/browse?prefix=shop:")
    unauthorized = [(status, url) for status, url, _, headers in traffic.responses
                    if "hx-redirect" in headers]
    assert unauthorized and all(status == 401 for status, _ in unauthorized), unauthorized

    submit_login(page)
    assert_on(page, site, "/browse", prefix="shop:")
    # the whole page, not the fragment the htmx request asked for
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator('[data-testid="breadcrumbs"]')).to_be_visible()
    expect(page.locator('[data-testid="filter"]')).to_have_value("shop:")
    expect(page.locator('[data-testid="key-row"]')).to_have_count(100)
    assert page.locator("html > head > title").count() == 1
    traffic.check()


def test_the_harness_catches_a_request_that_escapes_the_prefix(page, site, traffic):
    """The checks above would see a link outside the prefix: the ingress answers it 404."""
    log_in_from_root(page, site)
    kinds = traffic.kinds()
    assert {"document", "stylesheet", "script"} <= kinds and kinds & {"xhr", "fetch"}, kinds
    traffic.check()
    escaped = site.origin + ("/services" if site.root else PREFIX + "/services")
    response = page.goto(escaped)
    if site.root:
        assert response.status == 404  # answered by the ingress, not the app
    with pytest.raises(AssertionError, match="outside"):
        traffic.check()
