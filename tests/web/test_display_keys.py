"""Keys shown without spoofing: the ``show_key`` filter and every page that shows keys.

``rtl\\u202egpj.exe`` must not read as ``rtlexe.jpg``, and a zero-width space or a line
break must not make two keys look alike: pages show such characters as escapes, inside an
isolating ``<bdi dir="ltr">``, while links, data attributes and form fields keep the
exact key. Runs on the dev store and on a real redis-server.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from markupsafe import Markup

from dashboard.stores.mutations import NO_TTL
from dashboard.web.formatting import show_key
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app, post_form

# characters that must never reach a page's visible text unescaped
HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff]"
)
SPOOF = "rtl\u202egpj.exe"  # reads "rtlexe.jpg" where the override works


def visible_text(page: str) -> str:
    """The text a person sees: text nodes (title included), not attributes or form fields."""

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag, attrs):
            if tag in ("textarea", "script", "style"):
                self.skip += 1

        def handle_endtag(self, tag):
            if tag in ("textarea", "script", "style"):
                self.skip -= 1

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    collect = Collect()
    collect.feed(page)
    return "".join(collect.parts)


# --- the filter ------------------------------------------------------------------------

def test_show_key_isolates_and_makes_hidden_characters_visible():
    shown = show_key(SPOOF)
    assert isinstance(shown, Markup)
    assert shown == Markup(
        '<bdi class="show-key" dir="ltr">rtl<span class="esc" '
        'title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202E</span>gpj.exe</bdi>')


@pytest.mark.parametrize(("char", "escape"), [
    ("\u202e", "\\u202E"), ("\u202a", "\\u202A"), ("\u202b", "\\u202B"), ("\u202c", "\\u202C"),
    ("\u202d", "\\u202D"), ("\u2066", "\\u2066"), ("\u2067", "\\u2067"), ("\u2068", "\\u2068"),
    ("\u2069", "\\u2069"), ("\u200e", "\\u200E"), ("\u200f", "\\u200F"), ("\u061c", "\\u061C"),
    ("\u200b", "\\u200B"), ("\u200c", "\\u200C"), ("\u200d", "\\u200D"), ("\u2060", "\\u2060"),
    ("\ufeff", "\\uFEFF"), ("\u00ad", "\\u00AD"), ("\u00a0", "\\u00A0"), ("\u3164", "\\u3164"),
    ("\x00", "\\u0000"), ("\x1b", "\\u001B"), ("\x7f", "\\u007F"), ("\x85", "\\u0085"),
    ("\x9f", "\\u009F"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\U000e0041", "\\U000E0041"),
])
def test_show_key_escapes_each_hidden_character(char, escape):
    shown = str(show_key(f"a{char}b"))
    assert char not in shown
    assert re.search(rf'a<span class="esc" title="U\+[0-9A-F]{{4,5}} [^"]*">{re.escape(escape)}</span>b',
                     shown), shown


def test_show_key_escapes_html_and_never_trusts_the_input():
    shown = str(show_key('<script>x</script>&"\'' + "\u202e"))
    assert "<script>" not in shown and "&lt;script&gt;x&lt;/script&gt;&amp;&#34;&#39;" in shown
    # Markup input is escaped too: it is a key, not markup
    assert "&lt;b&gt;" in str(show_key(Markup("<b>")))
    # a literal backslash-u in a key is plain text, told apart from an escape by its style
    assert str(show_key("a\\u202Eb")) == '<bdi class="show-key" dir="ltr">a\\u202Eb</bdi>'


def test_show_key_never_raises_and_shows_bytes_that_are_not_utf8_as_fffd():
    assert show_key("svc:bin\udcffkey") == Markup('<bdi class="show-key" dir="ltr">svc:bin\ufffdkey</bdi>')
    assert show_key(None) == Markup('<bdi class="show-key" dir="ltr"></bdi>')
    assert "42" in show_key(42)
    assert "\ud800" not in show_key("\ud800x") and "x" in show_key("\ud800x")
    assert show_key("plain:key").striptags() == "plain:key"
    assert show_key(SPOOF).striptags() == "rtl\\u202Egpj.exe"  # for <title> and <option>


# --- on the pages ----------------------------------------------------------------------

@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def editor(store):
    client = make_app(store.provider, dashboard={"Services": [
        {"Name": "spoof\u202eevil", "KeyPrefix": "spoof\u202eevil:", "EnableKeyIndex": True},
    ]}).test_client()
    login(client, "ed")
    return client


KEYS = {
    f"dk:{SPOOF}": "1",
    "dk:zero\u200bwidth": "2",
    "dk:line\nbreak": "3",
    "dk:tab\there": "4",
    "dk:sub\u2067dir:leaf": "5",
}


def assert_shown_safely(page: str, *escapes: str) -> None:
    shown = visible_text(page)
    assert not HIDDEN.search(shown), [hex(ord(c)) for c in HIDDEN.findall(shown)]
    for escape in escapes:
        assert f'">{escape}</span>' in page, escape


def key_url(path: str, key: str) -> str:
    return f"{path}?key={quote(key, safe='')}"


def test_browse_shows_keys_escaped_and_isolated(editor, store):
    store.seed(KEYS)
    page = editor.get("/browse?prefix=dk:").get_data(as_text=True)
    assert_shown_safely(page, "\\u202E", "\\u200B", "\\n", "\\t", "\\u2067")
    assert page.count('<bdi class="show-key" dir="ltr">') >= len(KEYS)
    # the link and the data attribute keep the exact key
    assert 'href="/key?key=dk:rtl%E2%80%AEgpj.exe"' in page
    assert f'data-key="dk:{SPOOF}"' in page
    folders = editor.get("/browse?prefix=dk:&view=folders").get_data(as_text=True)
    assert_shown_safely(folders, "\\u202E", "\\u2067")
    assert 'data-prefix="dk:sub\u2067dir:"' in folders


def test_key_page_title_name_and_breadcrumbs_are_escaped(editor, store):
    store.seed(KEYS)
    key = "dk:sub\u2067dir:leaf"
    page = editor.get(key_url("/key", key)).get_data(as_text=True)
    assert_shown_safely(page, "\\u2067")
    assert re.search(r"<title>dk:sub\\u2067dir:leaf ·", page)
    crumbs = re.search(r'data-testid="breadcrumbs">(.*?)</nav>', page, re.S).group(1)
    assert '<bdi class="show-key" dir="ltr">sub<span class="esc"' in crumbs
    assert 'href="/browse?prefix=dk:sub%E2%81%A7dir:"' in crumbs
    assert 'data-testid="key-name"><bdi class="show-key" dir="ltr">dk:sub<span class="esc"' in page
    # write links keep the exact key
    assert 'href="/key/edit?key=dk:sub%E2%81%A7dir:leaf"' in page
    spoof = editor.get(key_url("/key", f"dk:{SPOOF}")).get_data(as_text=True)
    assert_shown_safely(spoof, "\\u202E")
    missing = editor.get(key_url("/key", "dk:gone\u202e:x"))
    assert missing.status_code == 404
    assert_shown_safely(missing.get_data(as_text=True), "\\u202E")


def test_mget_results_and_service_choices_are_escaped(editor, store):
    store.seed(KEYS)
    keys = "\n".join(["dk:" + SPOOF, "dk:zero\u200bwidth", "dk:absent\u202d"]) + "\n"
    response = post_form(editor, "/mget", {"keys": keys}, token_from="/mget")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert_shown_safely(page, "\\u202E", "\\u200B", "\\u202D")
    assert f'data-key="dk:{SPOOF}"' in page
    # the form keeps what was typed, exactly (a form field, not display)
    hidden = re.search(r'<textarea name="keys"[^>]*>\n(.*?)</textarea>', page, re.S).group(1)
    assert html.unescape(hidden) == keys
    form = editor.get("/mget").get_data(as_text=True)
    assert '<option value="spoof\u202eevil:" >spoof\\u202Eevil (spoof\\u202Eevil:)</option>' in form
    prefixed = post_form(editor, "/mget", {"keys": "a", "service": "spoof\u202eevil:"},
                         token_from="/mget").get_data(as_text=True)
    assert_shown_safely(prefixed, "\\u202E")


def test_services_and_index_pages_are_escaped(editor, store):
    prefix = "spoof\u202eevil:"
    store.provider.put(prefix + "a\u200b", "1", ttl=NO_TTL)
    store.provider.put(prefix + "b\u200b", "2", ttl=NO_TTL)  # unindexed
    store.provider.put(prefix + "__keys", '["gone\u202e", "a\u200b"]', ttl=NO_TTL)
    services = editor.get("/services").get_data(as_text=True)
    assert_shown_safely(services, "\\u202E")
    assert f'data-prefix="{prefix}"' in services
    summary = editor.get(f"/services/summary?prefix={quote(prefix)}").get_data(as_text=True)
    assert_shown_safely(summary)
    overview = editor.get("/index").get_data(as_text=True)
    # the Redis runtime keeps no index: the overview lists none there
    assert_shown_safely(overview, *(["\\u202E"] if store.provider.kind != "redis" else []))
    check = editor.get(f"/index/check?service={quote(prefix)}").get_data(as_text=True)
    assert_shown_safely(check, "\\u202E", "\\u200B")
    assert re.search(r"<title>Index of spoof\\u202Eevil ·", check)
    assert f'data-key="{prefix}gone\u202e"' in check  # stale entry, exact in the attribute
    row = editor.get(f"/index/check?service={quote(prefix)}&view=row",
                     headers={"HX-Request": "true"}).get_data(as_text=True)
    assert_shown_safely(row, "\\u202E")
    plan = editor.get(f"/index/repair?service={quote(prefix)}&action=prune-stale")
    assert plan.status_code == 200
    assert_shown_safely(plan.get_data(as_text=True), "\\u202E")


def test_browse_and_mget_rows_wrap_long_keys_at_colons_and_slashes():
    """A long key breaks after its ':' and '/' (<wbr>), hidden characters still escaped."""
    from dashboard.stores.entries import Entry
    from dashboard.web.formatting import key_rows, mget_rows

    with start_backend("devstore") as backend:
        app = make_app(backend.provider)
        plain = "orders:2025/11:order-0001"
        odd = "orders:a\u200bb/c"
        entries = [Entry(key=plain, value="1", ttl_ms=None), Entry(key=odd, value="2", ttl_ms=None)]
        with app.test_request_context("/browse"):
            rows = str(key_rows(app.jinja_env, entries))
            looked_up = str(mget_rows(app.jinja_env, [(plain, None)]))
    assert ">orders:<wbr>2025/<wbr>11:<wbr>order-0001</bdi>" in rows
    assert 'data-key="orders:2025/11:order-0001"' in rows  # the exact key stays exact
    assert "orders:<wbr>a" in rows and "\\u200B" in rows and "\u200b" not in rows.split(
        'data-key="orders:a\u200bb/c"', 1)[1]
    assert ">orders:<wbr>2025/<wbr>11:<wbr>order-0001</bdi>" in looked_up
