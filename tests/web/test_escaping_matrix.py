"""Escaping: hostile keys, values and a hostile service prefix on every page that shows them.

Each hostile text carries its own number (``alert(1)`` in key names, ``alert(2)`` in a JSON
value, ...), so a failure names the field that leaked. Every page and htmx partial is
rendered; none may contain the markup unescaped, and each must contain the escaped form
of what it shows (so the text was rendered at all). Which GET routes are covered is checked
against the URL map: a new page needs a case here (or a reason it shows no store data).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.routes import collected_routes, operator_client, store_snapshot, token_for
from tests.support.webapp import make_app

#: field -> its number inside the hostile text
MARK = {"key": 1, "json": 2, "raw": 3, "service": 4, "stale": 5, "typed": 6, "query": 7}
#: GET routes that show nothing from the store or from the request
NO_HOSTILE_TEXT = {
    "static": "files from static/",
    "ops.healthz": "a fixed JSON answer",
    "ops.readyz": "JSON naming the store, not its data",
    "store.overview": "the store's own status and statistics, no keys or values",
    "keys.download": "the exact stored bytes as an octet-stream attachment (nosniff), not HTML",
    "metrics.metrics": "Prometheus text: endpoint names and counts, no keys or values",
    "services.root": "a redirect to /services",
    "transfer.export": "a JSON Lines attachment of the exact values (nosniff), not HTML",
    "keys.favicon": "a fixed SVG icon",
    "access.environment_stylesheet": "a colour validated as #rrggbb at start-up",
    "audit.download": "JSON Lines (application/x-ndjson), never rendered as HTML",
    "live.stream": "an SSE stream (text/event-stream), not a page: its fragments are checked "
                   "with hostile keys and values in tests/web/test_live.py",
}


def hostile(n: int) -> str:
    """Markup, an attribute breakout, a Jinja expression, quotes and (escaped) ampersands."""
    return f'<script>alert({n})</script>"><img src=x onerror=alert({n})>{{{{7*7}}}}\'&amp;&'


@dataclass(frozen=True)
class World:
    service: str
    json_key: str
    raw_key: str
    leaf_key: str
    json_value: str
    raw_value: str

    @property
    def missing_key(self) -> str:
        return self.service + "missing" + hostile(MARK["key"])


def assert_escaped(body: str, shows: set[str], where: str) -> None:
    """No hostile markup as markup; the escaped form of each field in ``shows``."""
    for raw in ("<script>alert", "<img src=x onerror", '"><img'):
        assert raw not in body, f"{where}: unescaped {raw!r} at {body.find(raw)}: " + body[
            max(0, body.find(raw) - 200): body.find(raw) + 100]
    for name in shows:
        n = MARK[name]
        assert f"&lt;script&gt;alert({n})&lt;/script&gt;" in body, f"{where}: {name} not shown"
        assert f"&lt;img src=x onerror=alert({n})&gt;" in body, f"{where}: {name} not shown"
    if shows:
        # shown as text: the Jinja expression is not evaluated, the literal "&amp;" escaped
        assert "{{7*7}}" in body, where
        assert "&amp;amp;" in body, where


@pytest.fixture(scope="module")
def store():
    with start_backend("devstore") as backend:
        yield backend


@pytest.fixture(scope="module")
def app(store):
    return make_app(store.provider)


@pytest.fixture(scope="module")
def editor(app):
    return operator_client(app, "ed")


@pytest.fixture(scope="module")
def world(store) -> World:
    service = f"esc{uuid.uuid4().hex[:6]}{hostile(MARK['service'])}:"
    json_value = json.dumps({"h": hostile(MARK["json"]), hostile(MARK["json"]): [1]},
                            ensure_ascii=False)
    found = World(
        service=service,
        json_key=service + "j" + hostile(MARK["key"]),
        raw_key=service + "r" + hostile(MARK["key"]),
        leaf_key=service + "f" + hostile(MARK["key"]) + ":leaf",
        json_value=json_value,
        raw_value=hostile(MARK["raw"]),
    )
    store.seed({found.json_key: found.json_value, found.raw_key: found.raw_value,
                found.leaf_key: "1"})
    # an index with the JSON key, a stale hostile entry (and so two unindexed keys)
    inner = [found.json_key[len(service):], "gone" + hostile(MARK["stale"])]
    store.provider.put(service + "__keys", json.dumps(inner), ttl=NO_TTL)
    return found


def url(path: str, **query: str) -> str:
    return f"{path}?{urlencode(query)}"


def second_page_url(world: World, client) -> str:
    """Page 2 of the service's keys (2 a page): the rows an htmx "next page" appends."""
    first = client.get(url("/browse", prefix=world.service, limit="2")).get_data(as_text=True)
    cursor = re.search(r'data-testid="load-more">\s*<td colspan="4">\s*<a href="([^"]+)"', first)
    assert cursor, "the first page offers no next page"
    return cursor.group(1).replace("&amp;", "&")


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    build: Callable[[World, object], str]
    #: the hostile fields this page must show (escaped)
    shows: frozenset[str]
    status: int = 200


def _case(name, endpoint, build, *shows: str, status: int = 200) -> Case:
    return Case(name, endpoint, build, frozenset(shows), status)


def finished_job_url(world: World, client) -> str:
    """The page of a background check of the hostile service, once it has finished."""
    started = client.post("/index/check/start", data={
        "service": world.service, "csrf_token": token_for(client)})
    assert started.status_code == 303, started.get_data(as_text=True)[:300]
    target = started.headers["Location"]
    deadline = time.monotonic() + 30
    while 'data-state="done"' not in client.get(target).get_data(as_text=True):
        assert time.monotonic() < deadline, "the background check did not finish"
        time.sleep(0.05)
    return target


def match_continue_url(world: World, client) -> str:
    """The htmx "continue" of a pattern search stopped after its first hit (the JSON key):
    it goes on with the raw key."""
    first = client.get(url("/browse", prefix=world.service, match="[jr]*", limit="1")).get_data(
        as_text=True)
    found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="continue"', first)
    assert found, "the pattern search offers no continue link"
    return html.unescape(found.group(1))


def search_continue_url(world: World, client) -> str:
    """The htmx "continue" of a value search that stopped after one hit."""
    from dashboard.web.views import search

    saved = search.HIT_LIMIT
    search.HIT_LIMIT = 1
    try:
        first = client.get(url("/search", prefix=world.service, q="alert")).get_data(
            as_text=True)
    finally:
        search.HIT_LIMIT = saved
    found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="continue"', first)
    assert found, "the value search offers no continue link"
    return html.unescape(found.group(1))


MGET_KEYS = lambda w: "\n".join([w.json_key, w.raw_key, w.missing_key])  # noqa: E731

CASES = [
    _case("login-next", "auth.login",
          lambda w, c: url("/login", next="/browse?prefix=" + hostile(MARK["key"]))),
    _case("services", "services.index", lambda w, c: "/services", "service"),
    _case("summary", "services.summary", lambda w, c: url("/services/summary", prefix=w.service)),
    _case("browse-flat", "keys.browse", lambda w, c: url("/browse", prefix=w.service),
          "key", "json", "raw", "service"),
    _case("browse-folders", "keys.browse",
          lambda w, c: url("/browse", prefix=w.service, view="folders"), "key", "service"),
    _case("browse-next-rows", "keys.browse", second_page_url, "key", "json", "raw"),
    _case("audit", "audit.index", lambda w, c: "/audit"),
    _case("history", "history.timeline", lambda w, c: url("/key/history", key=w.json_key), "key"),
    _case("folder-count", "keys.folder_count",
          lambda w, c: url("/browse/count", prefix=w.leaf_key.rsplit(":", 1)[0] + ":")),
    _case("key-json", "keys.detail", lambda w, c: url("/key", key=w.json_key),
          "key", "json", "service"),
    _case("key-raw", "keys.detail", lambda w, c: url("/key", key=w.raw_key),
          "key", "raw", "service"),
    _case("key-missing", "keys.detail", lambda w, c: url("/key", key=w.missing_key),
          "key", "service", status=404),
    _case("edit-json", "edits.edit_form", lambda w, c: url("/key/edit", key=w.json_key),
          "key", "json"),
    _case("edit-raw", "edits.edit_form", lambda w, c: url("/key/edit", key=w.raw_key),
          "key", "raw"),
    _case("delete-json", "edits.delete", lambda w, c: url("/key/delete", key=w.json_key),
          "key", "json"),
    _case("delete-raw", "edits.delete", lambda w, c: url("/key/delete", key=w.raw_key),
          "key", "raw"),
    _case("new", "edits.new", lambda w, c: url("/key/new", prefix=w.service), "service"),
    _case("mget-results", "mget.lookup", lambda w, c: url("/mget", keys=MGET_KEYS(w)),
          "key", "json", "raw"),
    _case("mget-service", "mget.lookup",
          # two lines: a single line would be split at the spaces inside the keys
          lambda w, c: url("/mget", service=w.service,
                           keys="\n".join(k[len(w.service):] for k in (w.json_key, w.raw_key))),
          "key", "json", "raw", "service"),
    _case("index-overview", "index.overview", lambda w, c: "/index", "service"),
    _case("index-check", "index.check", lambda w, c: url("/index/check", service=w.service),
          "service", "stale", "key"),
    _case("index-row", "index.check",
          lambda w, c: url("/index/check", service=w.service, view="row"), "service"),
    _case("repair-prune", "index.repair",
          lambda w, c: url("/index/repair", service=w.service, action="prune-stale"),
          "service", "stale"),
    _case("repair-add", "index.repair",
          lambda w, c: url("/index/repair", service=w.service, action="add-unindexed"),
          "service", "key"),
    _case("index-job", "index.job", finished_job_url, "service", "stale", "key"),
    _case("import-form", "transfer.import_form", lambda w, c: "/import"),
    # search: a hostile pattern and query are shown too (as the key's mark: they hold it)
    _case("browse-match", "keys.browse",
          lambda w, c: url("/browse", prefix=w.service, match="*" + hostile(MARK["key"])),
          "key", "json", "raw", "service"),
    _case("browse-match-continue", "keys.browse", match_continue_url, "key", "raw"),
    _case("search-values-no-hit", "search.values",
          lambda w, c: url("/search", prefix=w.service, q=hostile(MARK["query"]) + "#none"),
          "service", "query"),
    _case("live-feed", "live.feed", lambda w, c: url("/live", prefix=w.service), "service"),
]


def test_every_get_route_has_an_escaping_case():
    covered = {case.endpoint for case in CASES} | set(NO_HOSTILE_TEXT)
    gets = {endpoint for endpoint, method in collected_routes() if method == "GET"}
    assert gets - covered == set(), "GET routes with no escaping case in test_escaping_matrix"
    assert covered - gets == set(), "escaping cases for routes the app no longer has"


def test_the_hostile_data_is_stored_as_written(store, world):
    """The pages are judged on exactly this text: the store kept it byte for byte."""
    assert store.provider.get(world.json_key).value == world.json_value
    assert store.provider.get(world.raw_key).value == world.raw_value


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_page_escapes_hostile_text(case, htmx, editor, store, world):
    target = case.build(world, editor)
    headers = {"HX-Request": "true"} if htmx else {}
    before = store_snapshot(store)
    response = editor.get(target, headers=headers)
    body = response.get_data(as_text=True)
    where = f"{case.name} ({'htmx' if htmx else 'page'}) GET {target}"
    assert response.status_code == case.status, f"{where}: {response.status_code} {body[:300]}"
    assert response.mimetype == "text/html", where
    assert_escaped(body, case.shows, where)
    assert store_snapshot(store) == before, f"{where} wrote to the store"


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_mget_exports_are_downloads_with_the_exact_values(fmt, editor, world):
    """Exports carry the values exactly (no HTML escaping), as attachments a browser never renders."""
    response = editor.get(url("/mget", keys=MGET_KEYS(world), format=fmt))
    assert response.status_code == 200
    assert response.mimetype == ("text/csv" if fmt == "csv" else "application/json")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_data(as_text=True)
    if fmt == "json":
        rows = [(r["key"], r["value"]) for r in json.loads(body)["results"]]
    else:
        rows = [(r["key"], r["value"] or None) for r in csv.DictReader(io.StringIO(body))]
    assert rows == [(world.json_key, world.json_value), (world.raw_key, world.raw_value),
                    (world.missing_key, None)]


# --- pages that answer a POST ----------------------------------------------------------

def _edit_review(w: World):
    return "/key/edit", {"key": w.json_key, "value": json.dumps({"h": hostile(MARK["typed"])}),
                         "ttl_mode": "none", "expected_version": "", "raw": ""}, 200


def _edit_conflict(w: World):
    return "/key/edit", {"key": w.json_key, "value": json.dumps({"h": hostile(MARK["typed"])}),
                         "ttl_mode": "none", "expected_version": "v999999", "confirm": "yes"}, 409


def _new_invalid(w: World):
    return "/key/new", {"key": w.service + "n" + hostile(MARK["key"]),
                        "value": hostile(MARK["typed"]), "ttl_mode": "none"}, 422


def _delete_conflict(w: World):
    return "/key/delete", {"key": w.json_key, "expected_version": "v999999", "confirm": "yes"}, 409


def _mget_post(w: World):
    return "/mget", {"keys": MGET_KEYS(w)}, 200


def _import_plan(w: World):
    lines = [json.dumps({"key": k, "value": v, "ttl_ms": None}, ensure_ascii=False)
             for k, v in ((w.json_key, json.dumps({"h": hostile(MARK["typed"])})),
                          (w.service + "n" + hostile(MARK["key"]), hostile(MARK["typed"])))]
    return "/import", {"text": "\n".join(lines), "mode": "overwrite"}, 200


def _import_invalid(w: World):
    return "/import", {"text": json.dumps({"key": hostile(MARK["key"]), "value": 1})}, 422


POSTED = [
    ("import-plan", _import_plan, {"key"}),
    ("import-invalid", _import_invalid, set()),
    ("edit-review", _edit_review, {"key", "json", "typed"}),
    ("edit-conflict", _edit_conflict, {"key", "json", "typed"}),
    ("new-invalid-json", _new_invalid, {"key", "typed"}),
    ("delete-conflict", _delete_conflict, {"key", "json"}),
    ("mget-post", _mget_post, {"key", "json", "raw"}),
]


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize(("name", "build", "shows"), POSTED, ids=[p[0] for p in POSTED])
def test_posted_page_escapes_hostile_text(name, build, shows, htmx, editor, store, world):
    path, data, status = build(world)
    headers = {"HX-Request": "true"} if htmx else {}
    before = store_snapshot(store)
    response = editor.post(path, data={**data, "csrf_token": token_for(editor)}, headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == status, f"{name}: {response.status_code} {body[:300]}"
    assert_escaped(body, shows, f"{name} ({'htmx' if htmx else 'page'})")
    assert store_snapshot(store) == before, f"{name} wrote to the store"


# --- value search hits: keys wrap at ':' and '/' (<wbr>), the match is <mark>ed ----------

SEARCH_HITS = {
    # "&amp;&" ends every hostile text: the excerpt holds the whole text before it
    "hits": (lambda w, c: url("/search", prefix=w.service, q="&amp;&"),
             {"key", "json", "raw", "service"}, 200),
    "hits-regex-icase": (lambda w, c: url("/search", prefix=w.service, q=r"&AMP;&$",
                                          regex="1", icase="1"), {"key", "raw"}, 200),
    "continue": (search_continue_url, {"key"}, 200),
    "bad-regex": (lambda w, c: url("/search", prefix=w.service, regex="1",
                                   q="(" + hostile(MARK["query"])), set(), 400),
}


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("name", sorted(SEARCH_HITS))
def test_value_search_escapes_hostile_text(name, htmx, editor, store, world):
    build, shows, status = SEARCH_HITS[name]
    target = build(world, editor)
    before = store_snapshot(store)
    response = editor.get(target, headers={"HX-Request": "true"} if htmx else {})
    body = response.get_data(as_text=True)
    where = f"search {name} ({'htmx' if htmx else 'page'}) GET {target}"
    # an htmx answer is swapped in only with 200: the reason shows beside the form
    assert response.status_code == (200 if htmx else status), f"{where}: {body[:300]}"
    assert "<script" not in body.replace('<script src="/static/', ""), where
    if name == "bad-regex":
        assert 'data-testid="search-problem"' in body, where
    else:
        assert 'data-testid="hit-mark"' in body or name == "continue", where
    # the line-break opportunities and the highlight are ours: the text around them is escaped
    plain = re.sub(r"</?mark[^>]*>", "", body.replace("<wbr>", ""))
    assert_escaped(plain, shows, where)
    assert store_snapshot(store) == before, f"{where} wrote to the store"
