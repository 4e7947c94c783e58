"""Every route through the Flask test client, on real stores (dev store modes and Redis)."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest

from dashboard.stores.errors import NotFound
from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend
from tests.support.webapp import csrf_token, login, make_app, post_form

HOUR_MS = 3_600_000
ODD_KEYS = ["a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünïcødé:ключ", "x&y=z"]


@pytest.fixture(scope="module", params=["devstore", "devstore-legacy", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def text(response) -> str:
    return response.get_data(as_text=True)


def key_url(path: str, key: str) -> str:
    return f"{path}?key={quote(key, safe='')}"


def edit(client, key: str, value: str, *, ttl_mode: str = "keep", ttl: str = "",
         expected: str | None = None, confirm: bool = True, **extra):
    """Submit the edit form as the browser does (review, then confirm)."""
    page = client.get(key_url("/key/edit", key))
    assert page.status_code == 200, text(page)
    if expected is None:
        expected = re.search(r'name="expected_version" value="([^"]*)"', text(page)).group(1)
    data = {"key": key, "value": value, "ttl_mode": ttl_mode, "ttl": ttl,
            "expected_version": expected, "compact": "on", **extra}
    if confirm:
        data["confirm"] = "yes"
    return post_form(client, "/key/edit", data, token_from=key_url("/key/edit", key))


# --- health and auth -------------------------------------------------------------------

def test_healthz_needs_no_login(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_the_store_to_operators_only(client, store):
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 200 and anonymous.get_json() == {"status": "ready"}
    login(client, "vi")
    assert client.get("/readyz").get_json()["store"] == store.provider.name


@pytest.mark.parametrize("url", ["/services", "/browse?prefix=a:", "/key?key=a", "/key/edit?key=a",
                                 "/key/new", "/key/delete?key=a", "/services/summary?prefix=a:"])
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_htmx_request_without_login_redirects_the_whole_page(client):
    response = client.get("/services/summary?prefix=a:", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_wrong_password_is_refused(client):
    response = client.post("/login", data={"username": "ed", "password": "nope",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 401
    assert "Wrong name or password" in text(response)
    assert client.get("/services").status_code == 302


def test_login_redirects_only_to_local_paths(client):
    for target, expected in [("/browse?prefix=a:", "/browse?prefix=a:"),
                             ("//evil.example/x", "/services"), ("https://evil.example", "/services")]:
        response = client.post("/login", data={"username": "ed", "password": "ed-pass",
                                               "next": target, "csrf_token": csrf_token(client)})
        assert response.headers["Location"] == expected
        client.post("/logout", data={"csrf_token": csrf_token(client, "/services")})


def test_session_cookie_is_httponly_and_lax(client):
    response = client.post("/login", data={"username": "ed", "password": "ed-pass",
                                           "csrf_token": csrf_token(client)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = client.post("/login", base_url="https://localhost",
                        headers={"Referer": "https://localhost/login"},
                        data={"username": "ed", "password": "ed-pass",
                              "csrf_token": csrf_token(client)})
    assert "Secure" in https.headers["Set-Cookie"]


def test_logout_needs_csrf_and_ends_the_session(editor):
    assert editor.post("/logout").status_code == 400
    assert editor.get("/services").status_code == 200
    editor.post("/logout", data={"csrf_token": csrf_token(editor, "/services")})
    assert editor.get("/services").status_code == 302


# --- reading ----------------------------------------------------------------------------

def test_services_lists_each_prefix_with_lazy_counts(editor, store):
    store.seed({"svcone:a": "1", "svcone:b": "2", "svctwo:x": "3"})
    page = text(editor.get("/services"))
    if store.provider.capabilities().key_listing:
        assert 'data-prefix="svcone:"' in page and 'data-prefix="svctwo:"' in page
    summary = editor.get("/services/summary?prefix=svcone:", headers={"HX-Request": "true"})
    assert 'data-count="2"' in text(summary)
    assert 'data-exact="true"' in text(summary)


def test_an_index_shows_on_toskastore_and_is_plain_data_on_redis(editor, store):
    store.seed({"plain:a": "1"})
    store.provider.put("plain:__keys", '["a"]', ttl=NO_TTL)
    summary = text(editor.get("/services/summary?prefix=plain:", headers={"HX-Request": "true"}))
    if store.provider.kind == "redis":  # the Redis runtime keeps no index
        assert 'data-indexed="false"' in summary and 'data-count="2"' in summary
    else:
        assert 'data-indexed="true"' in summary and 'data-count="1"' in summary


def row_keys(body: str) -> list[str]:
    """The keys of a page's rows, in the order shown."""
    return [html.unescape(k) for k in re.findall(r'data-testid="key-row" data-key="([^"]*)"', body)]


def next_page_url(body: str) -> str | None:
    found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="next-page"', body)
    return html.unescape(found.group(1)) if found else None


def test_browse_pages_through_keys(editor, store):
    keys = {f"pg:item:{i:04d}": json.dumps({"i": i}) for i in range(130)}
    store.seed(keys)
    everything = sorted(keys)
    first = text(editor.get("/browse?prefix=pg:&limit=50"))
    pages = [row_keys(first)]
    following = next_page_url(first)
    if following is None:
        # SCAN may hand back a small keyspace in one batch; then every key is on this page.
        assert not store.provider.capabilities().ordered
        assert sorted(pages[0]) == everything
        return
    assert pages[0] == everything[:50]  # the first 50 in order, on every ordered store
    while following is not None:
        assert len(pages) < 10, "the pages never end: the cursor is not followed"
        assert "cursor=" in following and "limit=50" in following
        more = editor.get(following, headers={"HX-Request": "true"})
        assert "<html" not in text(more)
        assert "HX-Request" in more.headers["Vary"]
        page = row_keys(text(more))
        assert page, f"an empty page after {following}"
        seen = {key for earlier in pages for key in earlier}
        assert not seen & set(page), f"{following} repeats keys of earlier pages"
        pages.append(page)
        following = next_page_url(text(more))
    # page 2 holds exactly the next keys; all pages together are every key, once, in order
    assert pages[1] == everything[50:100]
    assert [key for page in pages for key in page] == everything
    assert [len(page) for page in pages] == [50, 50, 30]


def test_a_reload_after_paging_shows_what_was_on_screen(editor, store):
    """Issue 17 item 7: "Next" three times, then F5: the URL the pages left in the address
    bar shows every row that was on screen, or (too many to re-read) its own rows, which
    keys they are ("keys 301-400") and a way back to the first page."""
    keys = {f"reload:item:{i:04d}": str(i) for i in range(130)}
    store.seed(keys)
    everything = sorted(keys)
    first = text(editor.get("/browse?prefix=reload:&limit=20"))
    if next_page_url(first) is None:  # SCAN handed back everything at once
        assert not store.provider.capabilities().ordered
        return
    shown, last, address = row_keys(first), first, ""
    for _ in range(3):  # three "Next 20 keys", appended in place by htmx
        more = editor.get(next_page_url(last), headers={"HX-Request": "true"})
        last = text(more)
        shown += row_keys(last)
        address = more.headers["HX-Replace-Url"]  # what the address bar shows
    assert "from=60" in address and "cursor=" in address
    reloaded = text(editor.get(address))  # F5: a whole page at the address bar's URL
    assert "<html" in reloaded
    assert row_keys(reloaded) == shown and len(shown) == 80
    if store.provider.capabilities().ordered:
        assert shown == everything[:80]
    assert 'data-testid="restored"' in reloaded and "Keys 1–80" in reloaded
    # the next page continues from there, numbered
    after = editor.get(next_page_url(reloaded), headers={"HX-Request": "true"})
    assert not set(row_keys(text(after))) & set(shown)
    assert 'data-first="1" data-last="100"' in text(after)

    # a page without the rows above it on screen (a link opened in a new tab, no
    # JavaScript): its own rows, which keys they are, and the way back
    alone = re.sub(r"&shown=\d+", "", address)
    single = text(editor.get(alone))
    assert row_keys(single) == shown[60:]
    assert 'data-testid="page-range" data-first="61"' in single
    assert "keys 61–80" in single
    back = re.search(r'href="([^"]+)" data-testid="first-page"', single)
    assert back and "cursor" not in html.unescape(back.group(1))
    # too far to re-read: the same, never thousands of keys read again
    far = re.sub(r"from=\d+", "from=900", address).replace("shown=60", "shown=900")
    page = text(editor.get(far))
    assert row_keys(page) == shown[60:] and "this page starts at key 901" in page
    # a cursor from before positions were kept says so
    old = re.sub(r"&(from|shown)=\d+", "", address)
    assert "its position in the listing is not known" in text(editor.get(old))


def test_browse_filter_partial_and_folders(editor, store):
    store.seed({"fold:profile:a": "1", "fold:profile:b": "2", "fold:session:1": "3", "fold:top": "4"})
    partial = text(editor.get("/browse?prefix=fold:prof", headers={"HX-Request": "true"}))
    assert partial.startswith('<section id="keys-results"')
    assert 'data-key="fold:profile:a"' in partial and "fold:session:1" not in partial
    folders = text(editor.get("/browse?prefix=fold:&view=folders"))
    assert 'data-prefix="fold:profile:"' in folders and 'data-prefix="fold:session:"' in folders
    assert 'data-key="fold:top"' in folders
    count = text(editor.get("/browse/count?prefix=fold:profile:"))
    assert 'data-count="2"' in count


def test_key_page_shows_value_ttl_and_version(editor, store):
    store.seed({"kp:doc": '{"displayName":"Alice","tags":["kv"]}'}, ttl_ms=HOUR_MS)
    page = text(editor.get("/key?key=kp:doc"))
    # a JSON object opens as a tree, a member per line
    assert '"displayName": "Alice"' in html.unescape(re.sub(r"<[^>]+>", "", page))
    assert 'data-format="tree"' in page
    ttl = re.search(r'data-testid="ttl" data-ttl-ms="([^"]+)"', page).group(1)
    if store.provider.capabilities().ttl_visible:
        assert 0 < int(ttl) <= HOUR_MS and "UTC" in page
    else:
        assert ttl == "unknown"
    version = re.search(r'data-testid="version">([^<]*)</dd>', page).group(1)
    stored = store.provider.get("kp:doc").version
    if store.provider.capabilities().versions:
        assert stored is not None and version == str(stored)
        # the version shown follows the store's: a write moves it
        store.provider.put("kp:doc", '{"displayName":"Bob"}', ttl=NO_TTL)
        moved = re.search(r'data-testid="version">([^<]*)</dd>', text(editor.get("/key?key=kp:doc")))
        assert moved.group(1) == str(store.provider.get("kp:doc").version) != version
    elif store.provider.kind == "redis":
        assert version == "— (Redis keeps no versions)"
    else:
        assert version == "unknown"


def test_missing_key_is_a_404_that_links_back(editor):
    response = editor.get("/key?key=svc:sub:gone")
    assert response.status_code == 404
    assert "does not exist" in text(response)
    assert 'href="/browse?prefix=svc:sub:"' in text(response)


def test_script_like_keys_and_values_are_escaped(editor, store):
    evil = "xss:<script>alert(1)</script>"
    store.seed({evil: '<img src=x onerror=alert(2)>'})
    for url in ["/browse?prefix=xss:", key_url("/key", evil)]:
        page = text(editor.get(url))
        assert "<script>alert(1)" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("odd", ODD_KEYS)
def test_special_character_keys_open_and_save(editor, store, odd):
    key = "odd:" + odd
    store.seed({key: '{"v":1}'})
    page = editor.get(key_url("/key", key) + "&view=json")
    assert page.status_code == 200
    body = text(page)
    shown = re.search(r'<code data-testid="key-name">(.*?)</code>', body).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", shown)) == key  # this key, not a mangled one
    pretty = re.search(r'<pre class="value" data-testid="value"[^>]*>(.*?)</pre>', body, re.S)
    assert html.unescape(re.sub(r"<[^>]+>", "", pretty.group(1))) == '{\n  "v": 1\n}'
    assert key in row_keys(text(editor.get("/browse?prefix=odd:&limit=500")))
    ttl_mode = "keep" if store.provider.capabilities().ttl_visible else "none"
    response = edit(editor, key, '{"v": 2}', ttl_mode=ttl_mode)
    assert response.status_code == 303, text(response)
    assert store.provider.get(key).value == '{"v":2}'


# --- writing ----------------------------------------------------------------------------

def test_edit_shows_a_diff_before_saving(editor, store):
    store.seed({"ed:d": '{"a":1}'})
    mode = "keep" if store.provider.capabilities().ttl_visible else "none"
    response = edit(editor, "ed:d", '{"a": 2}', ttl_mode=mode, confirm=False)
    page = text(response)
    assert 'data-testid="diff"' in page and "-  &#34;a&#34;: 1" in page
    assert store.provider.get("ed:d").value == '{"a":1}'


def test_keep_ttl_edit_keeps_the_ttl(editor, store):
    store.seed({"ttl:k": '{"n":1}'}, ttl_ms=HOUR_MS)
    response = edit(editor, "ttl:k", '{"n":2}', ttl_mode="keep")
    if not store.provider.capabilities().ttl_visible:
        assert response.status_code == 422
        assert "cannot be kept" in text(response)
        assert store.provider.get("ttl:k").value == '{"n":1}'
        return
    assert response.status_code == 303
    entry = store.provider.get("ttl:k")
    assert entry.value == '{"n":2}'
    assert HOUR_MS - 60_000 < entry.ttl_ms <= HOUR_MS


def test_set_ttl_from_text(editor, store):
    store.seed({"ttl:s": "1"})
    response = edit(editor, "ttl:s", "2", ttl_mode="set", ttl="15m")
    assert response.status_code == 303
    if store.provider.capabilities().ttl_visible:
        assert 14 * 60_000 < store.provider.get("ttl:s").ttl_ms <= 15 * 60_000


def test_bad_ttl_and_bad_json_write_nothing(editor, store):
    store.seed({"bad:k": '{"ok":true}'})
    bad_ttl = edit(editor, "bad:k", '{"ok":false}', ttl_mode="set", ttl="soon")
    assert bad_ttl.status_code == 422 and "not understood" in text(bad_ttl)
    bad_json = edit(editor, "bad:k", '{"ok":', ttl_mode="none")
    assert bad_json.status_code == 422 and "not valid JSON" in text(bad_json)
    assert store.provider.get("bad:k").value == '{"ok":true}'
    raw = edit(editor, "bad:k", "plain text, not JSON", ttl_mode="none", raw="on")
    assert raw.status_code == 303
    assert store.provider.get("bad:k").value == "plain text, not JSON"


def test_conflict_writes_nothing_and_shows_both_values(editor, store):
    store.seed({"cf:k": '{"v":1}'})
    page = text(editor.get("/key/edit?key=cf:k"))
    expected = re.search(r'name="expected_version" value="([^"]*)"', page).group(1)
    store.provider.put("cf:k", '{"v":"other"}', ttl=NO_TTL)  # another writer meanwhile
    response = edit(editor, "cf:k", '{"v":"mine"}', ttl_mode="none", expected=expected)
    assert response.status_code == 409
    body = text(response)
    assert 'data-testid="conflict"' in body and 'data-testid="current-value"' in body
    assert "other" in body and "mine" in body
    assert store.provider.get("cf:k").value == '{"v":"other"}'
    fresh = re.search(r'name="expected_version" value="([^"]*)"', body).group(1)
    again = edit(editor, "cf:k", '{"v":"mine"}', ttl_mode="none", expected=fresh)
    assert again.status_code == 303
    assert store.provider.get("cf:k").value == '{"v":"mine"}'


def test_viewer_cannot_write(viewer, store):
    store.seed({"ro:k": "1"})
    assert 'data-testid="edit"' not in text(viewer.get("/key?key=ro:k"))
    assert viewer.get("/key/edit?key=ro:k").status_code == 403
    response = post_form(viewer, "/key/edit", {"key": "ro:k", "value": "2", "ttl_mode": "none",
                                               "confirm": "yes", "raw": "on"})
    assert response.status_code == 403
    assert post_form(viewer, "/key/delete", {"key": "ro:k", "confirm": "yes"}).status_code == 403
    assert store.provider.get("ro:k").value == "1"


def test_read_only_mode_refuses_every_write(store):
    client = make_app(store.provider, dashboard={"ReadOnly": True}).test_client()
    login(client, "ed")
    store.seed({"rom:k": "1"})
    page = text(client.get("/key?key=rom:k"))
    assert 'data-testid="edit"' not in page and 'data-testid="read-only"' in page
    assert client.get("/key/new?prefix=rom:").status_code == 403
    response = post_form(client, "/key/new", {"key": "rom:n", "value": "1", "ttl_mode": "none",
                                              "raw": "on"})
    assert response.status_code == 403
    with pytest.raises(NotFound):
        store.provider.get("rom:n")


def test_csrf_token_is_required(editor, store):
    store.seed({"csrf:k": "1"})
    response = editor.post("/key/edit", data={"key": "csrf:k", "value": "2", "ttl_mode": "none",
                                              "raw": "on", "confirm": "yes"})
    assert response.status_code == 400
    assert store.provider.get("csrf:k").value == "1"
    htmx = editor.post("/key/delete", data={"key": "csrf:k", "confirm": "yes"},
                       headers={"HX-Request": "true"})
    assert "security token" in text(htmx)
    assert store.provider.get("csrf:k").value == "1"


def test_create_and_delete_follow_the_index(editor, store):
    store.seed({"idx:a": "1"})
    store.provider.put("idx:__keys", '["a"]', ttl=NO_TTL)
    created = post_form(editor, "/key/new", {"key": "idx:b", "value": '{"b":1}', "ttl_mode": "set",
                                             "ttl": "1h", "update_index": "on", "compact": "on"},
                        token_from="/key/new?prefix=idx:")
    assert created.status_code == 303
    assert store.provider.get("idx:b").value == '{"b":1}'
    # the Redis runtime keeps no index: there a key named __keys is plain data, left alone
    indexed = ["a"] if store.provider.kind == "redis" else ["a", "b"]
    assert json.loads(store.provider.get("idx:__keys").value) == indexed
    again = post_form(editor, "/key/new", {"key": "idx:b", "value": "2", "ttl_mode": "none",
                                           "raw": "on"})
    assert again.status_code == 409 and "already exists" in text(again)
    assert store.provider.get("idx:b").value == '{"b":1}'
    confirm = editor.get("/key/delete?key=idx:b")
    assert 'data-testid="confirm-delete"' in text(confirm) and "idx:b" in text(confirm)
    token = store.provider.get("idx:b").token
    deleted = post_form(editor, "/key/delete", {"key": "idx:b", "expected_version": token,
                                                "update_index": "on", "confirm": "yes"})
    assert deleted.status_code == 303
    assert deleted.headers["Location"] == "/browse?prefix=idx:"
    with pytest.raises(NotFound):
        store.provider.get("idx:b")
    assert json.loads(store.provider.get("idx:__keys").value) == ["a"]


def test_legacy_store_warns_that_ttl_is_unknown(editor, store):
    store.seed({"leg:k": "1"}, ttl_ms=HOUR_MS)
    page = text(editor.get("/key/edit?key=leg:k"))
    unknown = 'data-testid="ttl-unknown-warning"' in page
    assert unknown == (not store.provider.capabilities().ttl_visible)
    if unknown:
        assert 'value="keep"' in page and "disabled" in page  # keep cannot be chosen
        no_choice = edit(editor, "leg:k", "2", ttl_mode="", raw="on")
        assert no_choice.status_code == 422 and "Choose what happens to the TTL" in text(no_choice)
        assert store.provider.get("leg:k").value == "1"


def test_store_down_gives_a_clear_page_naming_the_store():
    with start_backend("devstore") as backend:
        client = make_app(backend.provider).test_client()
        login(client, "ed")
        backend.extra["running"].stop()
        response = client.get("/browse?prefix=a:")
        assert response.status_code == 503
        body = text(response)
        assert "Store unavailable" in body and backend.provider.name in body
        assert "Traceback" not in body
        htmx = client.get("/browse?prefix=a:", headers={"HX-Request": "true"})
        assert 'data-testid="error-banner"' in text(htmx) and "<html" not in text(htmx)
        assert client.get("/readyz").status_code == 503

