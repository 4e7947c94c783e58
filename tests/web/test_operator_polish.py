"""Issue 17's small things: collection sizes, edit only what the form takes, repair buttons
in words, the import page's export, and the index overview's drift and check times.

Through the Flask test client on real stores: a dev store and a real redis-server.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest

from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app


@pytest.fixture(scope="module")
def redis_store():
    with start_backend("redis") as backend:
        yield backend


@pytest.fixture(scope="module")
def dev_store():
    with start_backend("devstore") as backend:
        yield backend


def client_on(provider, name: str = "ed", **dashboard):
    client = make_app(provider, dashboard=dashboard or None).test_client()
    login(client, name)
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def words(page: str) -> str:
    """The page's text as read: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def dd(page: str, term: str) -> str:
    """What the key page's ``<dt>term</dt>`` says."""
    found = re.search(rf"<dt>{term}</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    assert found, f"no {term} on the page"
    return words(found.group(1))


# --- (a) Redis collections show their real sizes ----------------------------------------

def test_a_redis_hash_page_shows_its_field_count_and_memory_not_zero_bytes(redis_store, prefix):
    raw = redis_store.extra["raw"]
    key = f"{prefix}profile"
    raw.hset(key, mapping={f"field{i}": f"value {i}" for i in range(1204)})
    page = text(client_on(redis_store.provider).get(f"/key?key={quote(key)}"))
    size = dd(page, "Size")
    assert size.startswith("hash, 1,204 fields") and "0 B" not in size
    memory = re.search(r'data-testid="memory-usage"[^>]*>([^<]+)<', page).group(1)
    assert memory.endswith(" in memory") and not memory.startswith("0 B")


@pytest.mark.parametrize(("kind", "expected"), [
    ("list", "list, 3 items"), ("set", "set, 2 members"), ("zset", "zset, 1 member"),
    ("stream", "stream, 1 entry"),
])
def test_each_redis_collection_page_counts_its_elements(redis_store, prefix, kind, expected):
    raw = redis_store.extra["raw"]
    key = f"{prefix}{kind}"
    {"list": lambda: raw.rpush(key, "a", "b", "c"), "set": lambda: raw.sadd(key, "a", "b"),
     "zset": lambda: raw.zadd(key, {"a": 1.0}),
     "stream": lambda: raw.xadd(key, {"f": "v"})}[kind]()
    page = text(client_on(redis_store.provider, "vi").get(f"/key?key={quote(key)}"))
    assert dd(page, "Size").startswith(expected)


def test_browse_rows_show_a_collections_count_in_the_size_column(redis_store, prefix):
    raw = redis_store.extra["raw"]
    raw.hset(f"{prefix}h", mapping={"a": "1", "b": "2"})
    raw.rpush(f"{prefix}l", "x")
    raw.set(f"{prefix}s", "hello")
    page = text(client_on(redis_store.provider, "vi").get(f"/browse?prefix={quote(prefix)}"))
    sizes = dict(re.findall(r'data-key="([^"]+)".*?<td class="size">([^<]*)</td>', page, re.S))
    assert sizes == {f"{prefix}h": "2 fields", f"{prefix}l": "1 item", f"{prefix}s": "5 B"}


def test_a_refused_memory_usage_leaves_the_count_and_no_memory(redis_store, prefix):
    from dashboard.stores.redis.provider import RedisProvider

    raw = redis_store.extra["raw"]
    server = redis_store.extra["server"]
    key = f"{prefix}h"
    raw.hset(key, mapping={"a": "1"})
    raw.execute_command("ACL", "SETUSER", "nomemory", "on", ">pw", "~*", "&*", "+@all",
                        "-memory")
    limited = RedisProvider(host=server.host, port=server.port, username="nomemory",
                            password="pw")
    try:
        assert limited.memory_usage(key) is None
        response = client_on(limited, "vi").get(f"/key?key={quote(key)}")
    finally:
        limited.close()
        raw.execute_command("ACL", "DELUSER", "nomemory")
    assert response.status_code == 200
    page = text(response)
    assert dd(page, "Size") == "hash, 1 field" and 'data-testid="memory-usage"' not in page


# --- (b) edit is not offered for values too big to edit ---------------------------------

@pytest.mark.parametrize("which", ["devstore", "redis"])
def test_a_value_bigger_than_the_edit_form_offers_download_not_edit(
        which, dev_store, redis_store, prefix):
    store = dev_store if which == "devstore" else redis_store
    key = f"{prefix}big"
    store.provider.put(key, json.dumps({"blob": "x" * 3000}), ttl=NO_TTL)
    store.provider.put(f"{prefix}small", '{"a":1}', ttl=NO_TTL)
    client = client_on(store.provider, MaxRenderBytes=1024)
    page = text(client.get(f"/key?key={quote(key)}"))
    assert 'data-testid="edit"' not in page
    refused = re.search(r'data-testid="edit-refused">(.*?)</p>', page, re.S).group(1)
    sentence = ("This value is 2.9 KiB, more than the 1.0 KiB the browser edits "
                "(Dashboard__MaxRenderBytes), so it is not offered for editing")
    assert sentence in words(refused)
    assert f'href="/key/download?key={quote(key, safe=":")}"' in refused
    # the edit address answers with the same sentence, on the key page: no editor
    edit = client.get(f"/key/edit?key={quote(key)}")
    assert edit.status_code == 302 and edit.headers["Location"].startswith("/key?")
    landed = text(client.get(edit.headers["Location"]))
    assert words(landed).count(sentence) == 1  # the page's own note, said once
    assert "<textarea" not in landed
    # a value the form takes is still offered for editing
    small = text(client.get(f"/key?key={quote(prefix)}small"))
    assert 'data-testid="edit"' in small and 'data-testid="edit-refused"' not in small


# --- (c) repair buttons say what they do ------------------------------------------------

def drifted(store, service: str) -> None:
    for inner in ("a", "b", "c"):
        store.provider.put(service + inner, "1", ttl=NO_TTL)
    store.provider.put(service + "__keys", json.dumps(["a", "a", "x", "b", "y"]), ttl=NO_TTL)


def test_repair_buttons_say_in_words_what_each_repair_does(dev_store, prefix):
    drifted(dev_store, prefix)
    page = text(client_on(dev_store.provider).get(f"/index/check?service={quote(prefix)}"))
    buttons = {action: words(label) for action, label in re.findall(
        r'data-testid="repair-([a-z-]+)"[^>]*>(.*?)</a>', page, re.S)}
    index = f"{prefix}__keys"
    assert buttons == {
        "add-unindexed": f"Add 1 unindexed key to {index}",
        "prune-stale": f"Remove 2 stale entries from {index}",
        "dedupe": f"Remove the duplicate entries of 1 key from {index}",
        "rebuild": f"Rewrite {index} from the live keys (sorted)",
    }


def test_the_repair_confirm_page_is_titled_with_the_same_words(dev_store, prefix):
    drifted(dev_store, prefix)
    page = text(client_on(dev_store.provider).get(
        f"/index/repair?service={quote(prefix)}&action=prune-stale"))
    title = re.search(r'<h1 data-testid="repair-title"[^>]*>(.*?)</h1>', page, re.S).group(1)
    assert words(title) == f"Remove 2 stale entries from {prefix}__keys"


# --- (d) the import page links to the export it names -----------------------------------

def test_the_import_page_links_to_the_export_it_names(dev_store, prefix):
    dev_store.provider.put(f"{prefix}a", '{"a":1}', ttl=NO_TTL)
    client = client_on(dev_store.provider)
    page = text(client.get("/import"))
    assert 'href="#export-form"' in page
    form = re.search(r'<form method="get" action="([^"]+)"[^>]*id="export-form"(.*?)</form>',
                     page, re.S)
    assert form and form.group(1) == "/export"
    assert 'name="prefix"' in form.group(2) and 'href="/services"' in form.group(2)
    # what the form sends is the export itself
    export = client.get(f"{form.group(1)}?prefix={quote(prefix)}")
    assert export.status_code == 200
    assert [json.loads(line)["key"] for line in text(export).splitlines()] == [f"{prefix}a"]


# --- (e) the index overview highlights drift and says when each was checked --------------

def test_an_index_row_marks_drift_and_says_when_it_was_checked(dev_store, prefix):
    drifted(dev_store, prefix)
    client = client_on(dev_store.provider, "vi")
    row = text(client.get(f"/index/check?service={quote(prefix)}&view=row",
                          headers={"HX-Request": "true"}))
    assert row.startswith("<tr") and 'data-drift="true"' in row
    assert 'data-testid="row-drift"' in row
    checked = re.search(r'data-testid="row-checked" data-checked-at-ms="(\d+)">([^<]+)', row)
    assert checked and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ", checked.group(2))
    # a consistent service is not marked
    other = f"{prefix[:-1]}ok:"
    dev_store.provider.put(other + "a", "1", ttl=NO_TTL)
    dev_store.provider.put(other + "__keys", '["a"]', ttl=NO_TTL)
    clean = text(client.get(f"/index/check?service={quote(other)}&view=row",
                            headers={"HX-Request": "true"}))
    assert 'data-drift="false"' in clean and 'data-testid="row-drift"' not in clean


def test_the_overview_shows_each_services_last_check_while_it_checks_again(dev_store, prefix):
    drifted(dev_store, prefix)
    client = client_on(dev_store.provider, "vi")
    client.get(f"/index/check?service={quote(prefix)}")  # checked once in this process
    page = text(client.get("/index"))
    row = re.search(rf'<tr data-testid="index-row" data-prefix="{re.escape(prefix)}".*?</tr>',
                    page, re.S).group(0)
    last = re.search(r'data-testid="row-last-check" data-checked-at-ms="\d+" '
                     r'data-consistent="false">(.*?)</span>\s*</td>', row, re.S)
    assert last and re.fullmatch(r"last checked \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: drift",
                                 words(last.group(1)))
    assert "checking…" in row  # and it is checked again as the page loads
