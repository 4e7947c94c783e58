"""Bulk lookups (/mget) through the Flask test client, on real stores (dev store and Redis)."""

from __future__ import annotations

import csv
import html
import io
import json
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from dashboard.web.views.mget import ParsedKeys, parse_keys
from tests.support.backends import start_backend
from tests.support.webapp import csrf_token, login, make_app, post_form

HOUR_MS = 3_600_000
ODD_KEYS = ["a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünïcødé:ключ", 'q"uo,te', "x&y=z"]
ROW = re.compile(r'<tr data-testid="mget-row" data-key="([^"]*)" data-found="(true|false)">(.*?)</tr>',
                 re.S)
PREVIEW = re.compile(r'<td class="preview"><code>(.*?)</code></td>', re.S)
TTL_CELL = re.compile(r'<td class="ttl"(?: data-ttl-ms="([^"]*)")?[^>]*>(.*?)</td>', re.S)
SUMMARY = re.compile(r'data-testid="mget-summary" data-found="(\d+)" data-missing="(\d+)">([^<]*)<')


# --- the input rule, without a store ----------------------------------------------------

def test_one_line_splits_on_commas_and_whitespace():
    assert parse_keys("a, b  c,,d\te").keys == ["a", "b", "c", "d", "e"]
    assert parse_keys("a,b\n").keys == ["a", "b"]  # the final line break ends the only line
    assert parse_keys("\n\n a b \n\n").keys == ["a", "b"]  # one non-blank line is still one line


def test_several_lines_are_one_key_each_trimmed():
    parsed = parse_keys("  sp ace \nx,y\r\nlast one\rq\n")
    assert parsed.keys == ["sp ace", "x,y", "last one", "q"]
    assert parsed == ParsedKeys(["sp ace", "x,y", "last one", "q"])


def test_blank_lines_and_duplicates_are_dropped_and_counted():
    parsed = parse_keys("b\n\n   \na\nb\na\nc\nb\n")
    assert parsed.keys == ["b", "a", "c"]  # first occurrence wins, input order kept
    assert (parsed.blank_lines, parsed.duplicates) == (2, 3)
    assert parsed.dropped_message == "2 blank lines and 3 duplicates dropped"
    assert parse_keys("a\n\na\n").dropped_message == "1 blank line and 1 duplicate dropped"
    assert parse_keys("a\nb\nb").dropped_message == "1 duplicate dropped"
    assert parse_keys("a\n\n\nb").dropped_message == "2 blank lines dropped"
    assert parse_keys("a\nb\n").dropped_message == ""


def test_empty_input_has_no_keys():
    for raw in ("", "   ", "\n\n", " , ,"):
        parsed = parse_keys(raw)
        assert parsed.keys == [] and parsed.dropped_message == ""


def test_service_prefix_is_added_where_missing_before_dedupe():
    parsed = parse_keys("profile:alice\nprofiles:profile:bob\nprofiles:profile:alice\n", "profiles:")
    assert parsed.keys == ["profiles:profile:alice", "profiles:profile:bob"]
    assert (parsed.prefixed, parsed.duplicates, parsed.prefix) == (1, 1, "profiles:")
    # a service given without its ':' gets one, as the runtime does
    assert parse_keys("a b", "svc").keys == ["svc:a", "svc:b"]
    assert parse_keys("a", "").keys == ["a"]


# --- on real stores ---------------------------------------------------------------------

@pytest.fixture(scope="module", params=["devstore", "devstore-legacy", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@dataclass
class Dataset:
    """2,500 distinct keys in a shuffled input with duplicates and blank lines."""

    text: str
    order: list[str]  # distinct full keys, input order
    values: dict[str, str]  # the keys that exist
    with_ttl: set[str]
    blank_lines: int
    duplicates: int


@pytest.fixture(scope="module")
def dataset(store) -> Dataset:
    rng = random.Random(4)
    keys = [f"mg:item:{i:05d}" for i in range(2500 - 2 * len(ODD_KEYS))]
    values = {k: json.dumps({"i": n}) for n, k in enumerate(keys) if n % 7}
    values.update({f"mg:odd:{odd}": json.dumps({"odd": odd}) for odd in ODD_KEYS})
    keys += [f"mg:odd:{odd}" for odd in ODD_KEYS] + [f"mg:gone:{odd}" for odd in ODD_KEYS]
    values["mg:odd:sp ace"] = 'line one\nline two, "quoted"'
    values["mg:odd:ünïcødé:ключ"] = '{"name":"Žofie ✓"}'
    with_ttl = {k for n, k in enumerate(values) if n % 5 == 1}
    store.seed({k: v for k, v in values.items() if k not in with_ttl})
    store.seed({k: values[k] for k in with_ttl}, ttl_ms=HOUR_MS)
    rng.shuffle(keys)
    lines = list(keys)
    repeats = rng.sample(keys, 40)
    for key in repeats:  # each repeat lands after its first occurrence
        lines.insert(rng.randrange(lines.index(key) + 1, len(lines) + 1), key)
    for position, blank in ((10, ""), (500, "   "), (2000, "\t")):
        lines.insert(position, blank)
    lines[3] = f"  {lines[3]}  "  # surrounding whitespace is trimmed
    return Dataset("\n".join(lines) + "\n", keys, values, with_ttl, 3, 40)


def text(response) -> str:
    return response.get_data(as_text=True)


@dataclass
class Row:
    key: str
    found: bool
    preview: str | None
    ttl_attr: str | None
    ttl_label: str


def rows_of(page: str) -> list[Row]:
    rows = []
    for key, found, cells in ROW.findall(page):
        preview = PREVIEW.search(cells)
        ttl = TTL_CELL.search(cells)
        rows.append(Row(html.unescape(key), found == "true",
                        html.unescape(preview.group(1)) if preview else None,
                        ttl.group(1), html.unescape(ttl.group(2)).strip()))
    return rows


def summary_of(page: str) -> tuple[int, int, str]:
    found, missing, label = SUMMARY.search(page).groups()
    return int(found), int(missing), label


def lookup(client, keys: str, **extra):
    return post_form(client, "/mget", {"keys": keys, **extra}, token_from="/mget")


@contextmanager
def store_reads(store):
    """Count the store's bulk reads while the block runs.

    On the dev store: the keys of each ``POST /kv/mget`` request (an httpx event hook on the
    provider's client). On Redis: the ``GET`` and ``TYPE`` commands (from INFO): a string
    or missing key costs PTTL + GET and no TYPE; only a non-string is asked its TYPE.
    """
    counts: dict[str, list[int]] = {"batches": []}
    if store.name.startswith("devstore"):
        def hook(request):
            if request.method == "POST" and request.url.path == "/kv/mget":
                counts["batches"].append(len(json.loads(request.content)["keys"]))

        hooks = store.provider._client.event_hooks["request"]
        hooks.append(hook)
        try:
            yield counts
        finally:
            hooks.remove(hook)
    else:
        def calls() -> tuple[int, int]:
            stats = store.extra["raw"].info("commandstats")
            return tuple(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                         for name in ("get", "type"))

        before = calls()
        yield counts
        after = calls()
        counts["get_calls"] = [after[0] - before[0]]
        counts["type_calls"] = [after[1] - before[1]]


def test_2500_keys_in_input_order_with_exact_found_and_missing(editor, dataset, store):
    response = lookup(editor, dataset.text)
    assert response.status_code == 200
    page = text(response)
    rows = rows_of(page)
    assert [r.key for r in rows] == dataset.order
    assert [r.found for r in rows] == [k in dataset.values for k in dataset.order]
    found = len(dataset.values)
    assert found < 2500 and summary_of(page) == (found, 2500 - found,
                                                 f"{found} found, {2500 - found} missing")
    dropped = re.search(r'data-testid="mget-dropped" data-blank="(\d+)" data-duplicates="(\d+)">'
                        r"([^<]*)<", page)
    assert dropped.groups()[:2] == ("3", "40")
    assert "3 blank lines and 40 duplicates dropped" in dropped.group(3)
    for row in rows:
        if row.found:
            assert row.preview == " ".join(dataset.values[row.key].split())
    for odd in ODD_KEYS:
        assert next(r for r in rows if r.key == f"mg:odd:{odd}").found
        assert not next(r for r in rows if r.key == f"mg:gone:{odd}").found


def test_each_key_link_opens_its_entry(editor, dataset):
    page = text(lookup(editor, "\n".join(f"mg:odd:{odd}" for odd in ODD_KEYS)))
    links = re.findall(r'<td class="key"><a href="([^"]+)">', page)
    assert len(links) == len(ODD_KEYS)
    for link, odd in zip(links, ODD_KEYS, strict=True):
        detail = editor.get(html.unescape(link))
        assert detail.status_code == 200
        # the name is shown isolated (show_key): <bdi class="show-key" dir="ltr">key</bdi>
        name = re.search(r'data-testid="key-name"><bdi class="show-key" dir="ltr">(.*?)</bdi></code>',
                         text(detail)).group(1)
        assert html.unescape(name) == f"mg:odd:{odd}"


def test_lookup_is_batched_not_one_request_per_key(editor, dataset, store):
    with store_reads(store) as reads:
        assert lookup(editor, dataset.text).status_code == 200
    if store.name.startswith("devstore"):
        assert reads["batches"] == [500] * 5  # 2,500 distinct keys, 500 a request
    else:
        # each distinct key read once, in pipelines; strings and missing keys need no TYPE
        assert reads["get_calls"] == [2500] and reads["type_calls"] == [0]


def test_service_selector_prefixes_keys(editor, store):
    store.seed({"mgsvc:profile:alice": '{"n":"alice"}', "mgsvc:profile:bob": '{"n":"bob"}'})
    form = text(editor.get("/mget"))
    assert '<option value="mgsvc:"' in form
    response = lookup(editor, "profile:alice\nmgsvc:profile:bob\nprofile:carol\nmgsvc:profile:alice\n",
                      service="mgsvc:")
    page = text(response)
    rows = rows_of(page)
    assert [(r.key, r.found) for r in rows] == [
        ("mgsvc:profile:alice", True), ("mgsvc:profile:bob", True), ("mgsvc:profile:carol", False),
    ]
    assert summary_of(page)[:2] == (2, 1)
    assert 'data-prefixed="2"' in page and "1 duplicate dropped" in page
    assert '<option value="mgsvc:" selected>' in page


def test_configured_services_are_offered(store):
    client = make_app(store.provider, dashboard={
        "Services": [{"Name": "billing", "KeyPrefix": "bill"}],
    }).test_client()
    login(client, "vi")
    assert '<option value="bill:" >billing (bill:)</option>' in text(client.get("/mget"))


def test_more_keys_than_the_limit_is_a_clear_error_and_looks_nothing_up(editor, store):
    too_many = "\n".join(f"mg:limit:{i}" for i in range(10_001))
    with store_reads(store) as reads:
        response = lookup(editor, too_many)
        partial = editor.post("/mget", data={"keys": too_many, "csrf_token": csrf_token(editor, "/mget")},
                              headers={"HX-Request": "true"})
        download = lookup(editor, too_many, format="csv")
    assert response.status_code == 400
    assert 'data-testid="mget-error"' in text(response)
    assert "10,001 keys is more than the 10,000 one lookup allows" in text(response)
    assert 'data-testid="mget-row"' not in text(response)
    assert "mg:limit:10000" in text(response)  # the input is kept in the form to be split up
    assert text(partial).startswith('<section id="mget-results"')  # htmx swaps the error in
    assert partial.status_code == 200 and 'data-testid="mget-error"' in text(partial)
    assert download.status_code == 400 and "Content-Disposition" not in download.headers
    assert reads.get("batches", []) == [] and reads.get("get_calls", [0]) == [0]
    assert reads.get("type_calls", [0]) == [0]


def test_the_limit_counts_distinct_keys_and_allows_exactly_10000(editor):
    keys = [f"mg:limit:{i}" for i in range(10_000)]
    response = lookup(editor, "\n".join(keys + keys[:5]))
    assert response.status_code == 200
    page = text(response)
    assert page.count('data-testid="mget-row"') == 10_000
    assert summary_of(page)[:2] == (0, 10_000)


def test_the_limit_follows_the_setting(store):
    client = make_app(store.provider, dashboard={"MgetMaxKeys": 3}).test_client()
    login(client)
    assert lookup(client, "a b c").status_code == 200
    refused = lookup(client, "a b c d")
    assert refused.status_code == 400 and "more than the 3 one lookup allows" in text(refused)


def download(client, fmt: str, keys: str, method: str = "post", **extra):
    if method == "post":
        response = lookup(client, keys, format=fmt, **extra)
    else:
        response = client.get("/mget?" + "&".join(
            f"{name}={quote(value, safe='')}" for name, value in
            {"keys": keys, "format": fmt, **extra}.items()))
    assert response.status_code == 200, text(response)
    assert response.headers["Content-Disposition"] == f'attachment; filename="mget.{fmt}"'
    return response


def test_csv_and_json_downloads_parse_back_to_the_table(editor, dataset):
    table = rows_of(text(lookup(editor, dataset.text)))
    csv_response = download(editor, "csv", dataset.text)
    assert csv_response.mimetype == "text/csv"
    records = list(csv.DictReader(io.StringIO(text(csv_response), newline="")))
    assert [r["key"] for r in records] == [r.key for r in table] == dataset.order
    assert [r["found"] == "true" for r in records] == [r.found for r in table]
    for record in records:
        assert record["found"] in ("true", "false")
        expected = dataset.values.get(record["key"])
        assert record["value"] == (expected if expected is not None else "")
        assert record["type"] == ("string" if expected is not None else "")
    assert list(records[0]) == ["key", "found", "value", "ttl_ms", "type", "ttl"]

    json_response = download(editor, "json", dataset.text)
    assert json_response.mimetype == "application/json"
    document = json.loads(text(json_response))
    results = document["results"]
    assert [r["key"] for r in results] == dataset.order
    assert [r["found"] for r in results] == [r.found for r in table]
    assert [r["value"] for r in results] == [dataset.values.get(k) for k in dataset.order]
    assert set(results[0]) == {"key", "found", "value", "ttl_ms", "ttl_known", "ttl", "type"}
    assert (document["found"], document["missing"]) == (len(dataset.values),
                                                        2500 - len(dataset.values))
    assert {r["found"] for r in records if "sp ace" in r["key"]} == {"true", "false"}


def test_downloads_work_from_a_get_query_too(editor, store):
    store.seed({"mgget:a": "1", "mgget:b": "two, \"2\""})
    csv_text = text(download(editor, "csv", "a,b,c", method="get", service="mgget:"))
    ttl = ("no expiry" if store.provider.capabilities().mget_ttl
           else "unknown: this store does not report TTLs")
    assert list(csv.reader(io.StringIO(csv_text, newline=""))) == [
        ["key", "found", "value", "ttl_ms", "type", "ttl"],
        ["mgget:a", "true", "1", "", "string", ttl],
        ["mgget:b", "true", 'two, "2"', "", "string", ttl],
        ["mgget:c", "false", "", "", "", ""],
    ]
    document = json.loads(text(download(editor, "json", "mgget:a mgget:zz", method="get")))
    assert [(r["key"], r["found"], r["value"]) for r in document["results"]] == [
        ("mgget:a", True, "1"), ("mgget:zz", False, None)]


def test_download_form_reposts_the_same_input(editor, store):
    store.seed({"mgre:a": "1"})
    keys = "a\n\nb\na\n"
    page = text(lookup(editor, keys, service="mgre:"))
    form = re.search(r'<form class="mget-downloads.*?</form>', page, re.S).group(0)
    # HTML drops one newline right after <textarea>: the text starts after it
    hidden = re.search(r"<textarea name=\"keys\"[^>]*>\n(.*?)</textarea>", form, re.S).group(1)
    assert html.unescape(hidden) == keys
    assert '<input type="hidden" name="service" value="mgre:">' in form
    assert 'name="format" value="csv"' in form and 'name="format" value="json"' in form
    assert 'name="csrf_token"' in form
    again = json.loads(text(download(editor, "json", html.unescape(hidden), service="mgre:")))
    assert [(r["key"], r["found"]) for r in again["results"]] == [("mgre:a", True),
                                                                  ("mgre:b", False)]


def test_ttl_is_shown_when_the_store_reports_it(editor, store):
    store.seed({"mgttl:with": "1"}, ttl_ms=HOUR_MS)
    store.seed({"mgttl:without": "2"})
    keys = "mgttl:with mgttl:without"
    with_ttl, without = rows_of(text(lookup(editor, keys)))
    records = list(csv.DictReader(io.StringIO(text(download(editor, "csv", keys)), newline="")))
    results = json.loads(text(download(editor, "json", keys)))["results"]
    # ToskaStore main's mget answers no metadata: its TTLs come from the range listing
    assert store.provider.capabilities().mget_ttl == (store.name != "devstore-legacy")
    if store.provider.capabilities().mget_ttl:
        assert 0 < int(with_ttl.ttl_attr) <= HOUR_MS
        assert re.fullmatch(r"expires in (59m \d+s|1h)", with_ttl.ttl_label), with_ttl.ttl_label
        assert (without.ttl_attr, without.ttl_label) == ("none", "no expiry")
        assert 0 < int(records[0]["ttl_ms"]) <= HOUR_MS and records[1]["ttl_ms"] == ""
        assert records[0]["ttl"] == with_ttl.ttl_label and records[1]["ttl"] == "no expiry"
        assert results[0]["ttl_known"] and 0 < results[0]["ttl_ms"] <= HOUR_MS
        assert results[1]["ttl_known"] and results[1]["ttl_ms"] is None
        assert [r["ttl"] for r in results] == [r["ttl"] for r in records]
    else:
        unknown = "unknown: this store does not report TTLs"
        for row in (with_ttl, without):
            assert (row.ttl_attr, row.ttl_label) == ("unknown", unknown)
        assert records[0]["ttl_ms"] == records[1]["ttl_ms"] == ""
        assert records[0]["ttl"] == records[1]["ttl"] == unknown
        assert [(r["ttl_known"], r["ttl_ms"], r["ttl"]) for r in results] == [
            (False, None, unknown)] * 2


def test_non_string_types_are_listed_with_their_type(editor, store):
    if not store.provider.capabilities().non_string_types:
        return  # only Redis keeps hashes, lists and sets
    store.extra["raw"].hset("mgtype:hash", mapping={"f": "v"})
    with store_reads(store) as reads:
        page = text(lookup(editor, "mgtype:hash"))
    # GET answers WRONGTYPE; then TYPE, and TYPE again beside HLEN + HSCAN
    assert reads["get_calls"] == [1] and reads["type_calls"] == [2]
    (row,) = rows_of(page)
    assert row.found and row.preview.startswith("[hash")
    (record,) = csv.DictReader(io.StringIO(text(download(editor, "csv", "mgtype:hash")), newline=""))
    assert (record["found"], record["value"], record["type"]) == ("true", "", "hash")


def test_script_like_keys_and_values_are_escaped(editor, store):
    evil = "mgxss:<script>alert(1)</script>"
    store.seed({evil: "<img src=x onerror=alert(2)>"})
    for page in (text(lookup(editor, evil + "\nmgxss:<b>gone</b>\n")),
                 text(editor.post("/mget", data={"keys": evil, "csrf_token": csrf_token(editor, "/mget")},
                                  headers={"HX-Request": "true"})),
                 text(editor.get("/mget?keys=" + quote(evil, safe="")))):
        assert "<script>alert(1)" not in page and "<img src=x" not in page and "<b>gone" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert [(r.key, r.found) for r in rows_of(text(lookup(editor, evil)))] == [(evil, True)]


def test_login_is_required(client):
    response = client.get("/mget")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    htmx = client.get("/mget", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    posted = client.post("/mget", data={"keys": "a", "csrf_token": csrf_token(client)})
    assert posted.status_code == 302 and posted.headers["Location"].startswith("/login")
    download = client.get("/mget?keys=a&format=csv")
    assert download.status_code == 302 and "Content-Disposition" not in download.headers


def test_viewer_may_look_up(viewer, store):
    store.seed({"mgvi:a": "1"})
    response = lookup(viewer, "mgvi:a mgvi:b")
    assert response.status_code == 200
    assert summary_of(text(response))[:2] == (1, 1)


def test_csrf_token_is_required_on_post(editor, store):
    store.seed({"mgcsrf:a": "1"})
    with store_reads(store) as reads:
        response = editor.post("/mget", data={"keys": "mgcsrf:a"})
        htmx = editor.post("/mget", data={"keys": "mgcsrf:a"}, headers={"HX-Request": "true"})
        download = editor.post("/mget", data={"keys": "mgcsrf:a", "format": "csv"})
    assert response.status_code == 400 and 'data-testid="mget-row"' not in text(response)
    assert "security token" in text(htmx)
    assert download.status_code == 400 and "Content-Disposition" not in download.headers
    assert reads.get("batches", []) == [] and reads.get("get_calls", [0]) == [0]
    assert reads.get("type_calls", [0]) == [0]


def test_htmx_post_gets_the_results_partial(editor, store):
    store.seed({"mghx:a": "1"})
    response = editor.post("/mget", data={"keys": "mghx:a\nmghx:b",
                                          "csrf_token": csrf_token(editor, "/mget")},
                           headers={"HX-Request": "true"})
    body = text(response)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert body.startswith('<section id="mget-results"') and "<html" not in body
    assert [(r.key, r.found) for r in rows_of(body)] == [("mghx:a", True), ("mghx:b", False)]
    full = text(lookup(editor, "mghx:a\nmghx:b"))
    assert "<html" in full and 'data-testid="mget-form"' in full and 'id="mget-results"' in full


def test_get_with_keys_runs_a_bookmarkable_lookup(editor, store):
    store.seed({"mgbm:a": "1"})
    page = text(editor.get("/mget?keys=mgbm:a,mgbm:b"))
    assert [(r.key, r.found) for r in rows_of(page)] == [("mgbm:a", True), ("mgbm:b", False)]
    link = html.unescape(re.search(r'href="([^"]+)" data-testid="mget-permalink"',
                                   text(lookup(editor, "a\nb", service="mgbm:"))).group(1))
    again = text(editor.get(link))
    assert [(r.key, r.found) for r in rows_of(again)] == [("mgbm:a", True), ("mgbm:b", False)]
    form = text(editor.get("/mget"))
    assert 'data-testid="mget-form"' in form and 'data-testid="mget-row"' not in form
    assert 'data-testid="mget-error"' not in form


def test_empty_input_and_unknown_format_are_refused(editor):
    empty = lookup(editor, "\n  \n")
    assert empty.status_code == 400 and "No keys to look up" in text(empty)
    bad = editor.get("/mget?keys=a&format=xml")
    assert bad.status_code == 400 and "Unknown download format" in text(bad)
