"""ToskaStoreProvider against real servers on real sockets: the dev store in each mode,
a small proxy that hides the range API (a cursor-only server), and a non-JSON server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote

import httpx
import pytest

from dashboard.devstore import start_devstore
from dashboard.stores import errors
from dashboard.stores.entries import content_token
from dashboard.stores.mutations import NO_TTL, TtlChange
from dashboard.stores.toskastore.provider import ToskaStoreProvider, default_index_key_for
from tests.support.other_servers import HTML_PAGE, Background, answering_everything

SPECIAL_KEYS = ["a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünï:cødé", "..", "."]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def serve() -> Iterator[Callable[..., object]]:
    """Start dev stores on free ports; every one is stopped after the test."""
    running = []

    def start(**options):
        server = start_devstore(port=0, **options)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., ToskaStoreProvider]]:
    """Build providers; every one is closed after the test."""
    providers: list[ToskaStoreProvider] = []

    def make(url: str, **options) -> ToskaStoreProvider:
        provider = ToskaStoreProvider(url, **options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


def record_requests(provider: ToskaStoreProvider) -> list[tuple[str, bytes]]:
    """(method, raw path) of every request the provider sends from now on."""
    log: list[tuple[str, bytes]] = []
    provider._client.event_hooks["request"].append(
        lambda request: log.append((request.method, request.url.raw_path))
    )
    return log


@pytest.fixture
def html_server() -> Iterator[str]:
    """Something that is not ToskaStore: answers every request with an HTML page."""
    with answering_everything(*HTML_PAGE) as url:
        yield url


@pytest.fixture
def cursor_server(serve) -> Iterator[tuple[str, object]]:
    """A server with cursor-paged ``/kv/keys`` but no range API: a proxy in front of a
    current dev store that answers 404 on ``GET /kv`` and forwards everything else."""
    backend = serve()
    upstream = httpx.Client(base_url=backend.url)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.command == "GET" and self.path.split("?", 1)[0] == "/kv":
                status, payload, headers = 404, b'{"error":"not_found"}', {}
            else:
                forwarded = {name: value for name, value in self.headers.items() if name.lower()
                             in ("authorization", "if-match", "if-none-match", "content-type")}
                answer = upstream.request(self.command, self.path, content=body,
                                          headers=forwarded)
                status, payload = answer.status_code, answer.content
                headers = {n: v for n, v in answer.headers.items()
                           if n.lower() in ("etag", "retry-after")}
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, *args) -> None:
            pass

    background = Background(Handler)
    yield background.url, backend
    background.stop()
    upstream.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def walk(provider: ToskaStoreProvider, prefix: str, limit: int) -> list[str]:
    keys: list[str] = []
    cursor = None
    for _ in range(10_000):
        page = provider.list_keys(prefix, cursor=cursor, limit=limit)
        assert len(page.keys) <= limit
        keys.extend(page.keys)
        cursor = page.next_cursor
        if cursor is None:
            return keys
    raise AssertionError("listing never ended")


# ---------------------------------------------------------------------- detection


def test_current_server_is_detected_with_range_listing(serve, connect):
    server = serve()
    provider = connect(server.url)
    caps = provider.capabilities()
    assert (caps.listing, caps.ordered, caps.versions, caps.ttl_visible, caps.atomic_cas) == (
        "range", True, True, True, True)
    assert caps.watch and caps.key_listing and caps.mget_ttl and not caps.non_string_types
    info = provider.info()
    assert info.kind == "toskastore" and info.healthy and info.generation == "current"
    assert isinstance(info.stats, dict) and info.stats
    assert provider.name == f"ToskaStore {server.url}"


def test_legacy_server_is_detected(serve, connect):
    provider = connect(serve(legacy=True).url)
    caps = provider.capabilities()
    assert caps.listing == "legacy"
    assert not caps.versions and not caps.ttl_visible and not caps.atomic_cas and not caps.watch
    info = provider.info()
    assert info.generation == "legacy" and "TTLs and versions unknown" in info.detail


def test_server_without_key_listing_uses_the_index(serve, connect):
    server = serve(no_key_listing=True)
    server.store.put("svc:a", "1")
    provider = connect(server.url)
    caps = provider.capabilities()
    assert caps.listing == "index" and not caps.key_listing
    assert "__keys index" in provider.info().detail
    provider.get("svc:a")  # the first read shows whether this server keeps metadata
    assert provider.capabilities().versions and provider.capabilities().ttl_visible


def test_legacy_server_without_key_listing_has_no_versions(serve, connect):
    server = serve(legacy=True, no_key_listing=True)
    server.store.put("svc:a", "1")
    provider = connect(server.url)
    assert provider.capabilities().listing == "index"
    assert provider.get("svc:a").version is None
    assert not provider.capabilities().versions
    with pytest.raises(errors.Unsupported):
        provider.put("svc:a", "2")  # keep TTL: invisible here
    assert server.store.get("svc:a")["value"] == "1"
    assert provider.info().generation == "legacy"


def test_cursor_server_is_detected(cursor_server, connect):
    url, _backend = cursor_server
    caps = connect(url).capabilities()
    assert caps.listing == "cursor" and caps.versions and not caps.watch


def test_detection_runs_once_even_from_many_threads(serve, connect):
    provider = connect(serve().url)
    log = record_requests(provider)
    threads = [threading.Thread(target=provider.capabilities) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.list_keys("")
    probes = [path for _, path in log if path.startswith(b"/kv?limit=1")]
    assert probes == [b"/kv?limit=1&include_metadata=true"]
    assert [path for _, path in log if path == b"/health"] == [b"/health"]


def test_default_index_key():
    assert default_index_key_for("profiles:profile:") == ("profiles:", "profiles:__keys")
    assert default_index_key_for("profiles:") == ("profiles:", "profiles:__keys")
    assert default_index_key_for("profiles") is None


def test_name_never_shows_secrets(connect):
    provider = connect("http://user:pw@kv.example:4000", token="s3cret")
    assert "s3cret" not in provider.name and "pw" not in provider.name
    assert provider.name == "ToskaStore http://kv.example:4000"
    assert connect("http://kv:4000", name="prod").name == "prod"


# ---------------------------------------------------------------------- keys on the wire


@pytest.mark.parametrize("mode", [{}, {"legacy": True}])
def test_special_keys_round_trip(serve, connect, mode):
    server = serve(**mode)
    provider = connect(server.url)
    for n, key in enumerate(SPECIAL_KEYS):
        provider.put(key, f"value {n}", ttl=NO_TTL)
    # the server stored exactly these keys: each went over as ONE path segment
    assert server.store.keys() == sorted(SPECIAL_KEYS)
    for n, key in enumerate(SPECIAL_KEYS):
        assert provider.get(key).value == f"value {n}"
        assert server.store.get(key)["value"] == f"value {n}"
    assert provider.list_keys("", limit=100).keys == sorted(SPECIAL_KEYS)
    assert provider.list_keys("a", limit=100).keys == sorted(k for k in SPECIAL_KEYS
                                                             if k.startswith("a"))
    got = provider.mget(SPECIAL_KEYS + ["missing/key"])
    assert [e.value if e else None for e in got.values()] == [
        f"value {n}" for n in range(len(SPECIAL_KEYS))] + [None]
    for key in SPECIAL_KEYS:
        assert provider.delete(key) is True
    assert server.store.keys() == []


def test_keys_are_sent_pre_encoded(serve, connect):
    provider = connect(serve().url)
    log = record_requests(provider)
    for key in ["a/b", "a%2Fb", "../x", "..", "a?b#c"]:
        provider.put(key, "v", ttl=NO_TTL)
    puts = [path for method, path in log if method == "PUT"]
    assert puts == [b"/kv/a%2Fb", b"/kv/a%252Fb", b"/kv/..%2Fx", b"/kv/%2E%2E", b"/kv/a%3Fb%23c"]


def test_empty_key_is_rejected_before_any_request(serve, connect):
    provider = connect(serve().url)
    with pytest.raises(errors.InvalidRequest):
        provider.get("")


# ---------------------------------------------------------------------- TTLs and writes


def test_get_reports_metadata(serve, connect):
    server = serve()
    server.store.put("k", "v", ttl_ms=60_000)
    entry = connect(server.url).get("k")
    assert entry.value == "v" and entry.ttl_known and entry.version == 1
    assert 0 < entry.ttl_ms <= 60_000
    assert entry.expires_at_ms == server.store.get("k")["metadata"]["expires_at"]
    assert entry.created_at_ms and entry.updated_at_ms and entry.token == "v1"


def test_missing_key_is_not_found(serve, connect):
    with pytest.raises(errors.NotFound) as caught:
        connect(serve().url).get("nope/x")
    assert caught.value.key == "nope/x"


def test_keep_ttl_edit_keeps_the_ttl(serve, connect):
    server = serve()
    provider = connect(server.url)
    first = provider.put("k", "one", ttl=TtlChange.set(60_000))
    second = provider.put("k", "two", expected=first.token)  # ttl defaults to keep
    assert second.value == "two" and second.version == first.version + 1
    assert second.ttl_ms is not None and 0 < second.ttl_ms <= 60_000
    stored = server.store.get("k")
    assert stored["value"] == "two" and stored["metadata"]["expires_at"] is not None
    assert 0 < provider.get("k").ttl_ms <= 60_000


def test_keep_ttl_on_a_key_without_expiry_stays_without(serve, connect):
    server = serve()
    provider = connect(server.url)
    provider.put("k", "one", ttl=NO_TTL)
    entry = provider.put("k", "two")
    assert entry.ttl_known and entry.ttl_ms is None
    assert server.store.get("k")["metadata"]["expires_at"] is None


def test_keep_ttl_on_a_missing_key_is_not_found(serve, connect):
    server = serve()
    with pytest.raises(errors.NotFound):
        connect(server.url).put("ghost", "v")
    assert server.store.get("ghost") is None


def test_set_and_drop_ttl(serve, connect):
    server = serve()
    provider = connect(server.url)
    entry = provider.put("k", "v", ttl=TtlChange.set(5_000))
    assert 0 < entry.ttl_ms <= 5_000
    assert server.store.get("k")["metadata"]["expires_at"] is not None
    entry = provider.put("k", "w", ttl=NO_TTL, expected=entry.token)
    assert entry.ttl_known and entry.ttl_ms is None and entry.expires_at_ms is None
    assert server.store.get("k")["metadata"]["expires_at"] is None


@pytest.mark.parametrize("ttl", [TtlChange("keep"), TtlChange.set(9_000), NO_TTL])
def test_stale_version_conflicts_and_writes_nothing(serve, connect, ttl):
    server = serve()
    provider = connect(server.url)
    seen = provider.put("k", "mine", ttl=TtlChange.set(60_000))
    server.store.put("k", "theirs", ttl_ms=60_000)  # someone else writes meanwhile
    with pytest.raises(errors.Conflict) as caught:
        provider.put("k", "overwrite", ttl=ttl, expected=seen.token)
    assert caught.value.current is not None and caught.value.current.value == "theirs"
    assert caught.value.current.version == 2
    assert server.store.get("k")["value"] == "theirs"
    assert server.store.get("k")["metadata"]["version"] == 2


def test_stale_digest_conflicts_on_a_current_server(serve, connect):
    server = serve()
    provider = connect(server.url)
    provider.put("k", "mine", ttl=NO_TTL)
    digest = content_token("string", b"mine")
    server.store.put("k", "theirs")
    with pytest.raises(errors.Conflict) as caught:
        provider.put("k", "overwrite", ttl=NO_TTL, expected=digest)
    assert caught.value.current.value == "theirs"
    assert server.store.get("k")["value"] == "theirs"
    server.store.put("k", "mine")
    assert provider.put("k", "ok", ttl=NO_TTL, expected=digest).value == "ok"


def test_expected_on_a_deleted_key_conflicts_with_no_current(serve, connect):
    server = serve()
    provider = connect(server.url)
    seen = provider.put("k", "v", ttl=NO_TTL)
    server.store.delete("k")
    with pytest.raises(errors.Conflict) as caught:
        provider.put("k", "w", ttl=NO_TTL, expected=seen.token)
    assert caught.value.current is None
    assert server.store.get("k") is None


@pytest.mark.parametrize("mode", [{}, {"release": "0.9.1"}, {"legacy": True}])
def test_create_only_conflicts_when_the_key_exists(serve, connect, mode):
    server = serve(**mode)
    provider = connect(server.url)
    created = provider.put("new", "first", ttl=NO_TTL, create_only=True)
    assert created.value == "first"
    with pytest.raises(errors.Conflict) as caught:
        provider.put("new", "second", ttl=NO_TTL, create_only=True)
    assert caught.value.current is not None and caught.value.current.value == "first"
    assert server.store.get("new")["value"] == "first"


def test_put_returns_the_entry_from_the_response(serve, connect):
    server = serve()
    entry = connect(server.url).put("k", "v", ttl=TtlChange.set(10_000))
    stored = server.store.get("k")["metadata"]
    assert entry.version == stored["version"] and entry.expires_at_ms == stored["expires_at"]


def test_delete_reports_existence_and_checks_versions(serve, connect):
    server = serve()
    provider = connect(server.url)
    seen = provider.put("k", "v", ttl=NO_TTL)
    server.store.put("k", "changed")
    with pytest.raises(errors.Conflict) as caught:
        provider.delete("k", expected=seen.token)
    assert caught.value.current.value == "changed"
    assert server.store.get("k")["value"] == "changed"
    assert provider.delete("k", expected=caught.value.current.token) is True
    assert server.store.get("k") is None
    assert provider.delete("k") is False


# ---------------------------------------------------------------------- legacy servers


def test_legacy_entries_have_unknown_ttl_and_no_version(serve, connect):
    server = serve(legacy=True)
    server.store.put("k", "v", ttl_ms=60_000)
    entry = connect(server.url).get("k")
    assert entry.value == "v" and not entry.ttl_known and entry.version is None
    assert entry.ttl_ms is None and entry.token.startswith("x")


def test_legacy_keep_ttl_is_unsupported_and_writes_nothing(serve, connect):
    server = serve(legacy=True)
    server.store.put("k", "v", ttl_ms=60_000)
    provider = connect(server.url)
    with pytest.raises(errors.Unsupported) as caught:
        provider.put("k", "w")
    assert "cannot report TTLs" in str(caught.value) and "set a TTL" in str(caught.value)
    assert server.store.get("k")["value"] == "v"
    entry = provider.put("k", "w", ttl=TtlChange.set(30_000))
    assert entry.value == "w" and not entry.ttl_known
    assert server.store.get("k")["metadata"]["expires_at"] is not None


def test_legacy_stale_digest_conflicts(serve, connect):
    server = serve(legacy=True)
    server.store.put("k", "mine")
    provider = connect(server.url)
    seen = provider.get("k")
    server.store.put("k", "theirs")
    with pytest.raises(errors.Conflict) as caught:
        provider.put("k", "overwrite", ttl=NO_TTL, expected=seen.token)
    assert caught.value.current.value == "theirs"
    assert server.store.get("k")["value"] == "theirs"
    with pytest.raises(errors.Conflict):
        provider.delete("k", expected=seen.token)
    assert server.store.get("k") is not None


def test_legacy_cap_sets_the_truncated_flag(serve, connect):
    server = serve(legacy=True)
    for n in range(12):
        server.store.put(f"svc:{n:02}", "v")
    provider = connect(server.url, legacy_list_cap=5)
    first = provider.list_keys("svc:", limit=3)
    assert first.truncated and first.source == "legacy" and len(first.keys) == 3
    second = provider.list_keys("svc:", cursor=first.next_cursor, limit=3)
    assert second.truncated and len(second.keys) == 2 and second.next_cursor is None
    shown = first.keys + second.keys
    assert shown == sorted(set(shown)) and len(shown) == 5
    assert not connect(server.url, legacy_list_cap=12).list_keys("svc:", limit=100).truncated


def test_bad_cursor_is_an_invalid_request(serve, connect):
    provider = connect(serve(legacy=True).url)
    with pytest.raises(errors.InvalidRequest):
        provider.list_keys("", cursor="not-ours")


# ---------------------------------------------------------------------- the __keys index


def test_index_mode_lists_from_the_index(serve, connect):
    server = serve(no_key_listing=True)
    server.store.put("svc:__keys", json.dumps(["b", "a", "c:1", "a", "c:2", "gone"]))
    for key in ("svc:a", "svc:b", "svc:c:1", "svc:c:2", "svc:unindexed"):
        server.store.put(key, key.upper())
    provider = connect(server.url)
    page = provider.list_keys("svc:", limit=100)
    assert page.source == "index" and not page.truncated
    assert page.keys == ["svc:a", "svc:b", "svc:c:1", "svc:c:2", "svc:gone"]
    assert provider.list_keys("svc:c:", limit=100).keys == ["svc:c:1", "svc:c:2"]
    assert walk(provider, "svc:", 2) == page.keys
    scanned = provider.scan("svc:", limit=100)
    assert scanned.source == "index"
    assert [(e.key, e.value) for e in scanned.entries] == [
        ("svc:a", "SVC:A"), ("svc:b", "SVC:B"), ("svc:c:1", "SVC:C:1"), ("svc:c:2", "SVC:C:2")]


def test_index_mode_without_an_index_lists_nothing(serve, connect):
    provider = connect(serve(no_key_listing=True).url)
    assert provider.list_keys("svc:").keys == []
    assert provider.list_keys("svc:").source == "index"
    assert provider.list_keys("noprefix").keys == []


def test_custom_index_key(serve, connect):
    server = serve(no_key_listing=True)
    server.store.put("svc:meta-index", json.dumps(["x"]))
    provider = connect(server.url, index_key_for=lambda prefix: ("svc:", "svc:meta-index"))
    assert provider.list_keys("svc:").keys == ["svc:x"]


def test_index_key_with_a_colon_lists_the_service_not_the_index_prefix(serve, connect):
    server = serve(no_key_listing=True)
    server.store.put("svc:meta:keys", json.dumps(["x", "y:z"]))
    provider = connect(server.url, index_key_for=lambda prefix: ("svc:", "svc:meta:keys"))
    assert provider.list_keys("svc:").keys == ["svc:x", "svc:y:z"]


@pytest.mark.parametrize("raw", ["not json", '{"a": 1}', '["ok", 3]'])
def test_malformed_index_is_a_bad_response_naming_it(serve, connect, raw):
    server = serve(no_key_listing=True)
    server.store.put("svc:__keys", raw)
    with pytest.raises(errors.BadResponse) as caught:
        connect(server.url).list_keys("svc:")
    assert "svc:__keys" in str(caught.value) and caught.value.key == "svc:__keys"


# ---------------------------------------------------------------------- pagination


def seed(store, count: int, prefix: str = "p:") -> list[str]:
    keys = [f"{prefix}{n:05}" for n in range(count)]
    for key in keys:
        store.put(key, "v")
    store.put("other:1", "v")
    store.put("p", "not under the prefix")
    return keys


@pytest.mark.parametrize("mode", [{}, {"legacy": True}])
@pytest.mark.parametrize("limit", [1000, 333])
def test_pagination_loses_and_repeats_nothing(serve, connect, mode, limit):
    server = serve(**mode)
    keys = seed(server.store, 2_600)
    provider = connect(server.url)
    assert walk(provider, "p:", limit) == keys
    assert list(provider.iter_keys("p:", page_size=limit)) == keys


def test_pagination_on_a_cursor_server(cursor_server, connect):
    url, backend = cursor_server
    keys = seed(backend.store, 2_600)
    provider = connect(url)
    assert provider.capabilities().listing == "cursor"
    assert walk(provider, "p:", 1000) == keys
    page = provider.list_keys("p:", limit=5000)  # clamped to the server's maximum
    assert len(page.keys) == 1000 and page.source == "cursor"


def test_pagination_from_a_large_index(serve, connect):
    server = serve(no_key_listing=True)
    names = [f"{n:05}" for n in range(2_600)]
    server.store.put("p:__keys", json.dumps(names + names[:50]))
    assert walk(connect(server.url), "p:", 1000) == [f"p:{n}" for n in names]


def test_range_scan_is_one_request_per_page(serve, connect):
    server = serve()
    keys = seed(server.store, 2_500)
    server.store.put("p:00007", "with ttl", ttl_ms=60_000)
    provider = connect(server.url)
    provider.capabilities()
    log = record_requests(provider)
    entries, cursor, pages = [], None, 0
    while True:
        page = provider.scan("p:", cursor=cursor, limit=1000)
        pages += 1
        entries.extend(page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(log) == pages == 3
    assert [e.key for e in entries] == keys
    assert all(e.ttl_known and e.version for e in entries)
    assert 0 < entries[7].ttl_ms <= 60_000 and entries[7].value == "with ttl"


def test_legacy_scan_is_one_listing_and_one_mget_per_page(serve, connect):
    server = serve(legacy=True)
    keys = seed(server.store, 1_200)
    provider = connect(server.url, mget_batch=1000)
    provider.capabilities()
    log = record_requests(provider)
    page = provider.scan("p:", limit=1000)
    # one listing request and one mget call (one request while the page fits a batch)
    assert [method for method, _ in log] == ["GET", "POST"]
    assert [e.key for e in page.entries] == keys[:1000]
    assert page.source == "legacy" and not page.entries[0].ttl_known


def test_mget_batches(serve, connect):
    server = serve()
    keys = seed(server.store, 2_500)
    provider = connect(server.url, mget_batch=500)
    provider.capabilities()  # detection's requests are not what is counted
    log = record_requests(provider)
    got = provider.mget(keys)
    assert [entry for entry in log if entry[0] == "POST"] == [("POST", b"/kv/mget")] * 5
    # their TTLs: adjacent keys come from a few range listings with metadata, no values
    listings = [path for method, path in log if method == "GET"]
    assert len(log) == 5 + len(listings) and len(listings) <= 4
    assert all(path.startswith(b"/kv?") and b"include_metadata=true" in path
               and b"include_values" not in path for path in listings)
    assert list(got) == keys and all(e is not None and e.value == "v" for e in got.values())
    assert all(e.ttl_known and e.ttl_ms is None and e.version == 1 for e in got.values())


def test_mget_keeps_input_order_and_drops_duplicates(serve, connect):
    server = serve()
    server.store.put("b", "B", ttl_ms=60_000)
    server.store.put("a", "A")
    provider = connect(server.url, mget_batch=2)
    provider.capabilities()
    log = record_requests(provider)
    got = provider.mget(["b", "absent", "a", "b"])
    assert [method for method, _ in log] == ["GET", "POST", "POST"]  # metadata, 2 batches
    assert list(got) == ["b", "absent", "a"]
    assert got["absent"] is None and got["a"].value == "A"
    assert got["b"].ttl_known and 0 < got["b"].ttl_ms <= 60_000 and got["b"].version == 1
    assert got["a"].ttl_known and got["a"].ttl_ms is None


# issue 17 item 2: main's POST /kv/mget answers values only; TTLs come from its listing

def test_mget_on_main_reports_the_ttls_and_versions_the_key_page_reads(serve, connect):
    server = serve()
    day = 86_400_000
    server.store.put("svc:long", "1", ttl_ms=12 * day)
    server.store.put("svc:plain", "2")
    for n in range(300):  # keys between them: the wanted keys are scattered
        server.store.put(f"svc:m:{n:04d}", "x")
    provider = connect(server.url)
    got = provider.mget(["svc:plain", "svc:absent", "svc:long"])
    read = provider.get("svc:long")
    assert got["svc:long"].ttl_known and abs(got["svc:long"].ttl_ms - read.ttl_ms) < 5_000
    assert got["svc:long"].expires_at_ms == read.expires_at_ms
    assert got["svc:long"].version == read.version == 1
    assert got["svc:plain"].ttl_known and got["svc:plain"].ttl_ms is None
    assert got["svc:absent"] is None
    assert provider.capabilities().mget_ttl


def test_mget_metadata_of_scattered_keys_costs_small_listings_not_values(serve, connect):
    server = serve()
    keys = [f"s:{n:05d}" for n in range(3_000)]
    for key in keys:
        server.store.put(key, "v" * 2_000, ttl_ms=3_600_000)
    provider = connect(server.url)
    provider.capabilities()
    wanted = keys[::97]  # 31 keys, 96 others between each two
    sizes: list[int] = []
    provider._client.event_hooks["response"].append(
        lambda response: sizes.append(int(response.headers.get("content-length") or 0))
        if response.request.method == "GET" else None)
    got = provider.mget(wanted)
    assert all(got[k].ttl_known and 0 < got[k].ttl_ms <= 3_600_000 for k in wanted)
    # one listing per walk at first, then two items a request: bounded, and no value travels
    assert len(sizes) <= len(wanted) + 4 and sum(sizes) < 300_000


def test_mget_reports_ttls_on_main_and_says_unknown_where_the_release_cannot(serve, connect):
    for release in ("main", "0.9.1", "0.8"):
        server = serve(release=release)
        server.store.put("svc:a", "1", ttl_ms=60_000)
        provider = connect(server.url)
        provider.capabilities()  # detection probes the range API once: not counted
        log = record_requests(provider)
        got = provider.mget(["svc:a"])
        listed = [path for method, path in log if path.startswith(b"/kv?")]
        if release == "main":
            assert got["svc:a"].ttl_known and 0 < got["svc:a"].ttl_ms <= 60_000
            assert provider.capabilities().mget_ttl and len(listed) == 1
        else:  # 0.8 and v0.9.1 cannot report TTLs: nothing more is asked of them
            assert not got["svc:a"].ttl_known and not provider.capabilities().mget_ttl
            assert listed == []


def test_a_key_search_reports_its_hits_ttls_charged_to_its_budget(serve, connect):
    server = serve()
    server.store.put("svc:a:1", "1", ttl_ms=3_600_000)
    server.store.put("svc:a:2", "2")
    server.store.put("svc:b:1", "3", ttl_ms=60_000)
    provider = connect(server.url)
    from tests.support.byte_count import count_bytes

    provider.capabilities()  # detection's answers are not the search's
    counter = count_bytes(provider)
    page = provider.scan_matching("svc:", "*:1", limit=100).rows()
    assert [e.key for e in page.entries] == ["svc:a:1", "svc:b:1"]
    assert all(e.ttl_known and 0 < e.ttl_ms <= 3_600_000 for e in page.entries)
    assert page.bytes_read == counter.received  # the metadata listing is charged too


def test_mget_of_nothing_sends_nothing(serve, connect):
    provider = connect(serve().url)
    log = record_requests(provider)
    assert provider.mget([]) == {} and log == []


# ---------------------------------------------------------------------- real failures


def test_stopped_server_is_unavailable(serve, connect):
    server = serve()
    provider = connect(server.url)
    provider.capabilities()
    server.stop()
    with pytest.raises(errors.Unavailable) as caught:
        provider.get("k")
    assert server.url in str(caught.value) and "connection refused" in str(caught.value)


def test_nothing_listening_is_unavailable(connect):
    provider = connect(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(errors.Unavailable):
        provider.capabilities()
    with pytest.raises(errors.Unavailable):
        provider.info()


def test_wrong_token_is_unauthorized(serve, connect):
    server = serve(token="right")
    with pytest.raises(errors.Unauthorized) as caught:
        connect(server.url, token="wrong").list_keys("")
    assert "401" in str(caught.value) and "wrong" not in str(caught.value)
    with pytest.raises(errors.Unauthorized) as caught:
        connect(server.url).get("k")
    assert "none is configured" in str(caught.value)
    connect(server.url, token="right").put("k", "v", ttl=NO_TTL)
    assert server.store.get("k")["value"] == "v"


def test_read_token_cannot_write(serve, connect):
    server = serve(read_token="reader", write_token="writer")
    server.store.put("k", "v")
    provider = connect(server.url, token="reader")
    assert provider.get("k").value == "v"
    with pytest.raises(errors.Unauthorized) as caught:
        provider.put("k", "w", ttl=NO_TTL)
    assert "write scope" in str(caught.value)
    assert server.store.get("k")["value"] == "v"


def test_read_only_follower_is_forbidden(serve, connect):
    server = serve(read_only=True)
    server.store.put("k", "v")
    provider = connect(server.url)
    assert provider.get("k").value == "v"
    with pytest.raises(errors.Forbidden) as caught:
        provider.put("k", "w", ttl=NO_TTL)
    assert "403" in str(caught.value)
    with pytest.raises(errors.Forbidden):
        provider.delete("k")
    assert server.store.get("k")["value"] == "v"


def test_slow_server_times_out_as_unavailable(serve, connect):
    server = serve()
    provider = connect(server.url, timeout=0.3)
    provider.capabilities()
    server.delay_ms = 1000
    with pytest.raises(errors.Unavailable) as caught:
        provider.get("k")
    assert "timed out after 0.3s" in str(caught.value)


def test_unavailable_store_is_unavailable(serve, connect):
    server = serve()
    provider = connect(server.url)
    provider.capabilities()
    server.set_unavailable(True)
    with pytest.raises(errors.Unavailable) as caught:
        provider.list_keys("")
    assert "503" in str(caught.value)
    info = provider.info()  # an unhealthy store still answers /health: not an exception
    assert not info.healthy and "unhealthy" in info.detail
    server.set_unavailable(False)
    assert provider.list_keys("").keys == []


def test_rate_limit_is_reported(serve, connect):
    server = serve(rate_limit_per_s=1)
    provider = connect(server.url)
    with pytest.raises(errors.RateLimited) as caught:
        for _ in range(20):
            provider.mget(["k"])
    # upstream sends no Retry-After: the message still says what to do
    assert caught.value.retry_after is None and "wait a moment" in str(caught.value)


def test_oversized_value_is_an_invalid_request(serve, connect):
    server = serve(max_body_bytes=1024)
    provider = connect(server.url)
    with pytest.raises(errors.InvalidRequest) as caught:
        provider.put("big", "x" * 4096, ttl=NO_TTL)
    assert "too large" in str(caught.value)
    assert server.store.get("big") is None


def test_non_json_answers_are_bad_responses(html_server, connect):
    provider = connect(html_server)
    with pytest.raises(errors.NotAStore) as caught:
        provider.capabilities()
    assert "not a ToskaStore" in str(caught.value) and "not JSON" in str(caught.value)
    with pytest.raises(errors.NotAStore):
        provider.get("k")  # never "key not found" from a server that is not a store
    with pytest.raises(errors.NotAStore):
        provider.info()


def test_segments_on_a_range_server_skip_instead_of_reading_every_key():
    with start_devstore(port=0) as running:
        for i in range(3000):
            running.store.put(f"svc{i % 3}:item:{i}", "1")
        running.store.put("top", "1")
        provider = ToskaStoreProvider(running.url)
        requests: list[str] = []
        provider._client.event_hooks["request"].append(lambda r: requests.append(str(r.url)))
        listing = provider.list_segments("")
        assert listing.folders == ["svc0:", "svc1:", "svc2:"] and listing.leaves == ["top"]
        assert listing.complete
        # one probe at detection, one request per entry, one that finds the end
        assert len([u for u in requests if "/kv?" in u]) <= 1 + 4 + 1
        provider.close()


# ---------------------------------------------------------------------- releases


def test_each_release_is_told_by_its_answers_not_its_listing(serve, connect):
    seen = {}
    for release in ("main", "0.9.1", "0.8"):
        server = serve(release=release)
        server.store.put("svc:a", "1")
        caps = connect(server.url).capabilities()
        seen[release] = (caps.listing, caps.versions, caps.atomic_cas, caps.transactions,
                         caps.leases)
    assert seen == {
        "main": ("range", True, True, True, True),
        # cursor pages, but no metadata and If-Match ignored: nothing conditional is trusted
        "0.9.1": ("cursor", False, False, False, False),
        "0.8": ("legacy", False, False, False, False),
    }


def test_an_empty_main_server_proves_its_conditions_without_writing(serve, connect):
    server = serve()
    provider = connect(server.url)
    caps = provider.capabilities()
    assert caps.versions and caps.atomic_cas and caps.transactions
    assert server.store.keys() == [] and server.store.revision == 0  # the probes wrote nothing
    assert provider.release() == "main"


def test_create_only_on_0_9_1_never_overwrites_a_key_written_after_the_form_opened(serve, connect):
    server = serve(release="0.9.1")
    provider = connect(server.url)
    assert not provider.capabilities().atomic_cas  # the form says: checked by reading first
    server.store.put("svc:new", "written by the service meanwhile")
    with pytest.raises(errors.Conflict):
        provider.put("svc:new", "from the dashboard", ttl=NO_TTL, create_only=True)
    assert server.store.get("svc:new")["value"] == "written by the service meanwhile"


def test_a_stale_edit_on_0_9_1_is_refused_by_reading_first(serve, connect):
    server = serve(release="0.9.1")
    server.store.put("svc:k", "seen")
    provider = connect(server.url)
    token = provider.get("svc:k").token
    assert token.startswith("x")  # no versions: the token is the value's digest
    server.store.put("svc:k", "changed by the service")
    with pytest.raises(errors.Conflict):
        provider.put("svc:k", "mine", ttl=NO_TTL, expected=token)
    assert server.store.get("svc:k")["value"] == "changed by the service"


# ---------------------------------------------------------------------- leases


def lease(server, ttl_ms: int = 60_000) -> str:
    answer = httpx.post(f"{server.url}/leases", json={"ttl_ms": ttl_ms})
    assert answer.status_code == 201
    return answer.json()["lease"]["id"]


def put_on_lease(server, key: str, value: str, lease_id: str) -> None:
    answer = httpx.put(f"{server.url}/kv/{quote(key, safe='')}",
                       json={"value": value, "lease_id": lease_id})
    assert answer.status_code == 200 and answer.json()["metadata"]["lease_id"] == lease_id


def test_a_leased_key_shows_its_lease_and_the_lease_s_expiry(serve, connect):
    server = serve()
    lease_id = lease(server, 60_000)
    put_on_lease(server, "locks:job", '{"owner":"a"}', lease_id)
    entry = connect(server.url).get("locks:job")
    assert entry.lease_id == lease_id and entry.ttl_known
    assert 0 < entry.ttl_ms <= 60_000


def test_keep_ttl_edit_keeps_a_leased_key_on_its_lease(serve, connect):
    server = serve()
    lease_id = lease(server)
    put_on_lease(server, "locks:job", '{"owner":"a"}', lease_id)
    provider = connect(server.url)
    seen = provider.get("locks:job")
    provider.put("locks:job", '{"owner":"b"}', expected=seen.token)  # ttl: keep
    stored = server.store.get("locks:job")
    assert stored["value"] == '{"owner":"b"}' and stored["metadata"]["lease_id"] == lease_id
    assert httpx.delete(f"{server.url}/leases/{lease_id}").status_code == 200
    assert server.store.get("locks:job") is None  # still follows the lease: revoked with it


def test_setting_a_ttl_on_a_leased_key_detaches_it(serve, connect):
    server = serve()
    lease_id = lease(server)
    put_on_lease(server, "locks:job", "v", lease_id)
    provider = connect(server.url)
    seen = provider.get("locks:job")
    provider.put("locks:job", "v2", ttl=NO_TTL, expected=seen.token)
    assert server.store.get("locks:job")["metadata"]["lease_id"] is None
    httpx.delete(f"{server.url}/leases/{lease_id}")
    assert server.store.get("locks:job")["value"] == "v2"  # detached: survives the revoke


def test_a_keepalive_between_reading_and_saving_does_not_fail_the_edit(serve, connect):
    server = serve()
    lease_id = lease(server)
    put_on_lease(server, "locks:job", "v", lease_id)
    provider = connect(server.url)
    seen = provider.get("locks:job")
    for _ in range(3):  # the owner renews its lease: each keepalive bumps the key's version
        assert httpx.post(f"{server.url}/leases/{lease_id}/keepalive").status_code == 200
    assert server.store.get("locks:job")["metadata"]["version"] > seen.version
    provider.put("locks:job", "v2", expected=seen.token)
    assert server.store.get("locks:job")["value"] == "v2"


def test_a_real_change_to_a_leased_key_still_conflicts(serve, connect):
    server = serve()
    lease_id = lease(server)
    put_on_lease(server, "locks:job", "v", lease_id)
    provider = connect(server.url)
    seen = provider.get("locks:job")
    put_on_lease(server, "locks:job", "taken over", lease_id)
    with pytest.raises(errors.Conflict) as caught:
        provider.put("locks:job", "mine", expected=seen.token)
    assert caught.value.current.value == "taken over"


def test_a_revoked_lease_before_the_save_writes_nothing(serve, connect):
    server = serve()
    lease_id = lease(server)
    put_on_lease(server, "locks:job", "v", lease_id)
    provider = connect(server.url)
    seen = provider.get("locks:job")
    httpx.delete(f"{server.url}/leases/{lease_id}")
    with pytest.raises(errors.Conflict):
        provider.put("locks:job", "v2", expected=seen.token)
    assert server.store.get("locks:job") is None


def test_keep_ttl_does_not_extend_the_expiry_by_the_store_s_latency(serve, connect):
    server = serve(delay_ms=300)
    server.store.put("svc:k", "v", ttl_ms=60_000)
    before = server.store.get("svc:k")["metadata"]["expires_at"]
    provider = connect(server.url)
    seen = provider.get("svc:k")
    assert seen.read_rtt_ms >= 300
    provider.put("svc:k", "v2", expected=seen.token)  # ttl: keep
    after = server.store.get("svc:k")["metadata"]["expires_at"]
    # before the fix the key gained the 300 ms the write spent reaching the store
    assert before - 1_000 < after <= before + 50
