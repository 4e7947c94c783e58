"""RedisProvider against a real redis-server started on a free loopback port."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest
import redis

from dashboard.stores import errors
from dashboard.stores.entries import now_ms
from dashboard.stores.mutations import KEEP_TTL, NO_TTL, TtlChange
from dashboard.stores.redis.provider import RedisProvider, glob_escape
from tests.support.redis_server import RedisServer, free_port


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client to arrange and inspect data behind the provider's back."""
    with server.client() as client:
        yield client


@pytest.fixture
def provider(server: RedisServer) -> Iterator[RedisProvider]:
    server.flushall()
    p = RedisProvider(host=server.host, port=server.port, timeout=5.0)
    yield p
    p.close()


def count_pipelines(monkeypatch: pytest.MonkeyPatch, provider: RedisProvider) -> list[int]:
    """Count the pipelines the provider executes (each is one round trip)."""
    executed: list[int] = []
    real_pipeline = provider._client.pipeline

    def spying_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a, **kw):
            executed.append(len(pipe.command_stack))
            return real_execute(*a, **kw)

        pipe.execute = execute
        return pipe

    monkeypatch.setattr(provider._client, "pipeline", spying_pipeline)
    return executed


# -- identity ---------------------------------------------------------------------------


def test_capabilities_and_name_without_secret(server: RedisServer) -> None:
    p = RedisProvider(host=server.host, port=server.port, db=2, password="s3cret-pw")
    try:
        caps = p.capabilities()
        assert (caps.listing, caps.ordered, caps.versions, caps.ttl_visible) == (
            "scan", False, False, True)
        assert (caps.atomic_cas, caps.mget_ttl, caps.non_string_types, caps.watch) == (
            True, True, True, False)
        assert p.kind == "redis"
        assert p.name == f"Redis 127.0.0.1:{server.port}/2"
        assert "s3cret" not in p.name
    finally:
        p.close()


def test_ssl_uses_tls_connections() -> None:
    p = RedisProvider(host="localhost", ssl=True)
    assert p._pool.connection_class is redis.SSLConnection
    p.close()


def test_standalone_server_is_detected_and_keeps_the_s_cursor(
    provider: RedisProvider, raw: redis.Redis,
) -> None:
    raw.mset({f"d:{i}": "v" for i in range(30)})
    assert provider.cluster_mode is None, "nothing is contacted before the first call"
    page = provider.list_keys("d:", limit=10)
    assert provider.cluster_mode is False
    assert page.next_cursor is None or page.next_cursor.startswith("s:")
    with pytest.raises(errors.InvalidRequest):
        provider.list_keys("d:", cursor="c:0:0")


def test_connection_string_endpoints_reach_the_provider(server: RedisServer) -> None:
    from dashboard.settings.model import Settings
    from dashboard.settings.redis_connection import parse_redis_connection_string
    from dashboard.stores import make_provider

    parsed = parse_redis_connection_string("a:1, b:2 ,[::1]:3,a:1,password=pw,ssl=true")
    assert parsed.all_endpoints == (("a", 1), ("b", 2), ("::1", 3))
    assert (parsed.host, parsed.port) == ("a", 1)
    assert parse_redis_connection_string("redis://h:7/0").all_endpoints == (("h", 7),)
    settings = parse_redis_connection_string(f"{server.host}:{server.port},10.255.255.1:9")
    p = make_provider(Settings(redis=settings))
    try:
        assert p.name == f"Redis {server.host}:{server.port},10.255.255.1:9/0"
        p.put("k", "v")  # a standalone server is read on the first endpoint
        assert p.get("k").value == "v" and p.cluster_mode is False
    finally:
        p.close()


def test_standalone_with_a_dead_first_endpoint_is_unavailable(server: RedisServer) -> None:
    dead = free_port()
    p = RedisProvider(endpoints=[("127.0.0.1", dead), (server.host, server.port)], timeout=2.0)
    try:
        with pytest.raises(errors.Unavailable) as info:
            p.list_keys("")
        assert f"127.0.0.1:{dead}" in info.value.message
        assert p.cluster_mode is None, "detection is tried again on the next call"
    finally:
        p.close()


def test_glob_escape() -> None:
    assert glob_escape(b"a*b?c[d]e\\f") == b"a\\*b\\?c\\[d\\]e\\\\f"
    assert glob_escape(b"plain:key") == b"plain:key"


# -- listing ----------------------------------------------------------------------------

GLOB_KEYS = [
    "svc:a*b", "svc:a*bc", "svc:axb", "svc:ab", "svc:a?c", "svc:abc", "svc:aXc",
    "svc:[x]", "svc:x", "svc:x]", "svc:\\y", "svc:\\", "svc:a\\*", "svc:a\\b",
    "other:a*b", "svcx",
]


@pytest.mark.parametrize("prefix", [
    "svc:a*", "svc:a*b", "svc:a?", "svc:[", "svc:[x]", "svc:x]", "svc:\\", "svc:a\\",
    "svc:a", "svc:", "",
])
def test_glob_characters_in_prefix_list_exactly_the_right_keys(
    provider: RedisProvider, raw: redis.Redis, prefix: str,
) -> None:
    raw.mset({k: "v" for k in GLOB_KEYS})
    page = provider.list_keys(prefix, limit=1000)
    assert page.keys == sorted(k for k in GLOB_KEYS if k.startswith(prefix))
    assert page.next_cursor is None
    assert page.source == "scan"


@pytest.mark.parametrize("scan_count", [10, 1000])
def test_pagination_across_2600_keys_loses_nothing(
    server: RedisServer, provider: RedisProvider, raw: redis.Redis, scan_count: int,
) -> None:
    expected = {f"pg:{i:05d}" for i in range(2600)}
    noise = {f"other:{i}" for i in range(400)}
    raw.mset({k: "v" for k in expected | noise})
    p = RedisProvider(host=server.host, port=server.port, scan_count=scan_count)
    try:
        seen: set[str] = set()
        pages = []
        cursor = None
        while True:
            page = p.list_keys("pg:", cursor=cursor, limit=100)
            pages.append(page)
            assert page.keys == sorted(set(page.keys)), "a page is de-duplicated and sorted"
            seen.update(page.keys)
            if page.next_cursor is None:
                break
            assert page.next_cursor.startswith("s:")
            # dense keys: the page's SCAN budget finds a full page before it runs out
            assert len(page.keys) >= 100, "a page that is not the last holds at least limit keys"
            cursor = page.next_cursor
        assert len(pages) > 1
        assert seen == expected

        listed = list(p.iter_keys("pg:", page_size=100))
        assert len(listed) == len(set(listed)) == 2600
        assert set(listed) == expected
        count, exact = p.count_keys("pg:", cap=1000)
        if scan_count == 1000:
            assert (count, exact) == (1000, False)
            assert p.count_keys("pg:", cap=5000) == (2600, True)
        else:  # 16 SCAN calls of 10 slots: a bounded count says "at least", never more
            assert not exact and 0 < count < 1000
    finally:
        p.close()


def test_listing_never_uses_keys_command(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.mset({f"k:{i}": "v" for i in range(300)})
    raw.config_resetstat()
    provider.list_keys("k:", limit=50)
    provider.scan("k:", limit=50)
    assert len(list(provider.iter_keys("k:"))) == 300
    stats = raw.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert stats["cmdstat_scan"]["calls"] >= 3


@pytest.mark.parametrize("cursor", ["bogus", "s:", "s:-1", "s:1x", "x:5", "s:١"])
def test_invalid_cursor_is_invalid_request(provider: RedisProvider, cursor: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        provider.list_keys("svc:", cursor=cursor)
    assert provider.name in str(info.value)


def test_non_positive_limit_is_invalid_request(provider: RedisProvider) -> None:
    with pytest.raises(errors.InvalidRequest):
        provider.scan("svc:", limit=0)


# -- scan pages -------------------------------------------------------------------------


def test_scan_page_has_values_ttls_and_types(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("svc:plain", '{"id":"alice"}')
    raw.set("svc:ttl", "soon", px=120_000)
    raw.hset("svc:hash", mapping={"f": "1"})
    raw.set("elsewhere", "x")
    before = now_ms()
    page = provider.scan("svc:", limit=100)
    assert page.source == "scan" and page.next_cursor is None
    by_key = {e.key: e for e in page.entries}
    assert sorted(by_key) == ["svc:hash", "svc:plain", "svc:ttl"]
    assert by_key["svc:plain"].value == '{"id":"alice"}'
    assert by_key["svc:plain"].ttl_ms is None and by_key["svc:plain"].expires_at_ms is None
    ttl_entry = by_key["svc:ttl"]
    assert ttl_entry.ttl_known and 0 < ttl_entry.ttl_ms <= 120_000
    assert ttl_entry.expires_at_ms > before
    assert by_key["svc:hash"].type == "hash" and by_key["svc:hash"].content == {"f": "1"}


def test_scan_page_is_one_pipeline_without_type_plus_two_for_other_types(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw.mset({f"s:{i:03d}": str(i) for i in range(300)})
    executed = count_pipelines(monkeypatch, provider)
    page = provider.scan("s:", limit=300)
    assert len(page.entries) == 300
    assert executed == [600], "all strings: one round trip of PTTL + GET a key, no TYPE"
    executed.clear()
    page = provider.scan("s:", limit=300, preview_bytes=100)
    assert len(page.entries) == 300
    assert executed == [900], "a preview: PTTL + STRLEN + GETRANGE a key, no TYPE"

    raw.rpush("s:list", "a", "b")
    executed.clear()
    page = provider.scan("s:", limit=1000)
    assert len(page.entries) == 301
    listed = next(e for e in page.entries if e.key == "s:list")
    assert (listed.type, listed.length, listed.content) == ("list", 2, ["a", "b"])
    # only the key whose GET answered WRONGTYPE: its TYPE, then TYPE + LLEN + LRANGE
    assert executed == [602, 1, 3], "non-string types add two round trips, for them alone"


def test_scan_skips_keys_that_vanished(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw.set("svc:here", "1")
    real_scan = provider._client.scan

    def scan_reporting_a_deleted_key(*args, **kwargs):
        cursor, keys = real_scan(*args, **kwargs)
        return cursor, [*keys, b"svc:gone"]

    monkeypatch.setattr(provider._client, "scan", scan_reporting_a_deleted_key)
    page = provider.scan("svc:")
    assert [e.key for e in page.entries] == ["svc:here"]


# -- keys and values --------------------------------------------------------------------

SPECIAL_KEYS = [
    "a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünïcödé:键", "emoji:🔑", "tab\tkey",
    "colon:a:b", "quote\"'", "star*", "brack[1]", "back\\slash",
]


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_character_keys_round_trip(
    provider: RedisProvider, raw: redis.Redis, key: str,
) -> None:
    written = provider.put(key, f"value of {key}", create_only=True)
    assert written.key == key
    assert raw.get(key.encode()) == f"value of {key}".encode()
    assert provider.get(key).value == f"value of {key}"
    assert provider.list_keys(key).keys == [key]
    assert provider.mget([key])[key].value == f"value of {key}"
    assert provider.delete(key, expected=written.token) is True
    assert raw.exists(key.encode()) == 0


def test_non_utf8_key_round_trips_exactly(provider: RedisProvider, raw: redis.Redis) -> None:
    raw_key = b"bin:\xff\xfeA"
    raw.set(raw_key, b"v1")
    (key,) = provider.list_keys("bin:").keys
    entry = provider.get(key)
    assert entry.value == "v1"
    provider.put(key, "v2", expected=entry.token)
    assert raw.get(raw_key) == b"v2"
    assert raw.keys("bin:*") == [raw_key]  # test-side check only; the provider never uses KEYS


def test_non_utf8_value_is_shown_with_replacement(
    provider: RedisProvider, raw: redis.Redis,
) -> None:
    raw.set("bv", b"\xffok")
    entry = provider.get("bv")
    assert entry.value == "\ufffdok"
    provider.put("bv", "fixed", expected=entry.token)
    assert raw.get("bv") == b"fixed"


def test_unencodable_key_or_value_is_invalid_request(
    provider: RedisProvider, raw: redis.Redis,
) -> None:
    # a lone high surrogate is neither UTF-8 nor a surrogateescape'd byte
    with pytest.raises(errors.InvalidRequest):
        provider.put("bad\ud800key", "v")
    with pytest.raises(errors.InvalidRequest):
        provider.put("good", "bad\ud800value")
    assert raw.dbsize() == 0


def test_get_missing_key_is_not_found(provider: RedisProvider) -> None:
    with pytest.raises(errors.NotFound) as info:
        provider.get("nope")
    assert info.value.key == "nope"
    assert provider.name in str(info.value)


# -- TTL modes --------------------------------------------------------------------------


def test_keep_ttl_edit_keeps_the_ttl(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("t", "old", px=600_000)
    before = provider.get("t")
    written = provider.put("t", "new", ttl=KEEP_TTL, expected=before.token)
    assert raw.get("t") == b"new"
    remaining = raw.pttl("t")
    assert 300_000 < remaining <= before.ttl_ms
    assert written.ttl_ms is not None and 300_000 < written.ttl_ms <= 600_000
    assert written.value == "new" and written.token == provider.get("t").token


def test_set_ttl_mode_sets_a_new_ttl(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("t", "old")
    written = provider.put("t", "new", ttl=TtlChange.set(60_000))
    assert 0 < raw.pttl("t") <= 60_000
    assert 0 < written.ttl_ms <= 60_000


def test_none_ttl_mode_drops_the_ttl(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("t", "old", px=600_000)
    written = provider.put("t", "new", ttl=NO_TTL, expected=provider.get("t").token)
    assert raw.pttl("t") == -1
    assert written.ttl_ms is None and written.expires_at_ms is None


# -- conditional writes -----------------------------------------------------------------


def test_stale_token_write_conflicts_and_writes_nothing(
    provider: RedisProvider, raw: redis.Redis,
) -> None:
    raw.set("cfg", "seen")
    seen = provider.get("cfg")
    raw.set("cfg", "theirs")
    with pytest.raises(errors.Conflict) as info:
        provider.put("cfg", "mine", expected=seen.token)
    assert raw.get("cfg") == b"theirs"
    assert info.value.current is not None and info.value.current.value == "theirs"
    assert info.value.key == "cfg" and provider.name in str(info.value)


def test_current_token_write_succeeds(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("cfg", "seen")
    written = provider.put("cfg", "mine", expected=provider.get("cfg").token)
    assert raw.get("cfg") == b"mine"
    assert written.value == "mine" and written.type == "string"


def test_expected_token_but_key_gone_conflicts(
    provider: RedisProvider, raw: redis.Redis,
) -> None:
    raw.set("cfg", "seen")
    seen = provider.get("cfg")
    raw.delete("cfg")
    with pytest.raises(errors.Conflict) as info:
        provider.put("cfg", "mine", expected=seen.token)
    assert info.value.current is None
    assert raw.exists("cfg") == 0


def test_create_only_conflicts_on_existing_key(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("new", "already")
    with pytest.raises(errors.Conflict) as info:
        provider.put("new", "mine", create_only=True)
    assert info.value.current is not None and info.value.current.value == "already"
    assert raw.get("new") == b"already"


def test_create_only_creates_with_ttl(provider: RedisProvider, raw: redis.Redis) -> None:
    written = provider.put("new", "v", create_only=True, ttl=TtlChange.set(30_000))
    assert raw.get("new") == b"v"
    assert 0 < raw.pttl("new") <= 30_000
    assert 0 < written.ttl_ms <= 30_000


def test_write_retried_after_watch_error_still_compares(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change between our read and EXEC aborts the write; the retry sees the new value."""
    raw.set("race", "seen")
    seen = provider.get("race")
    real_read = provider._read_one
    calls = []

    def read_then_interfere(raw_key):
        entry = real_read(raw_key)
        if not calls:
            raw.set("race", "theirs")  # after our read, before our EXEC
        calls.append(entry)
        return entry

    monkeypatch.setattr(provider, "_read_one", read_then_interfere)
    with pytest.raises(errors.Conflict) as info:
        provider.put("race", "mine", expected=seen.token)
    assert raw.get("race") == b"theirs"
    assert info.value.current.value == "theirs"
    assert len(calls) == 2


def test_delete_with_stale_token_conflicts(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("d", "seen")
    seen = provider.get("d")
    raw.set("d", "theirs")
    with pytest.raises(errors.Conflict) as info:
        provider.delete("d", expected=seen.token)
    assert raw.get("d") == b"theirs"
    assert info.value.current.value == "theirs"
    assert provider.delete("d", expected=info.value.current.token) is True
    assert raw.exists("d") == 0


def test_delete_missing_key_returns_false(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.set("d", "v")
    token = provider.get("d").token
    assert provider.delete("d") is True
    assert provider.delete("d") is False
    assert provider.delete("d", expected=token) is False


# -- non-string types -------------------------------------------------------------------


@pytest.fixture
def collections(raw: redis.Redis) -> dict[str, str]:
    raw.hset("c:hash", mapping={"b": "2", "a": "1"})
    raw.rpush("c:list", "x", "y", "x")
    raw.sadd("c:set", "pear", "apple")
    raw.zadd("c:zset", {"low": 1, "high": 10.5})
    raw.xadd("c:stream", {"event": "start"}, id="1-0")
    raw.xadd("c:stream", {"event": "stop"}, id="2-0")
    return {"c:hash": "hash", "c:list": "list", "c:set": "set", "c:zset": "zset",
            "c:stream": "stream"}


def test_non_string_types_are_read_with_type_and_content(
    provider: RedisProvider, collections: dict[str, str],
) -> None:
    expected_content = {
        "c:hash": ({"a": "1", "b": "2"}, 2),
        "c:list": (["x", "y", "x"], 3),
        "c:set": (["apple", "pear"], 2),
        "c:zset": ([["low", 1.0], ["high", 10.5]], 2),
        "c:stream": ([["1-0", {"event": "start"}], ["2-0", {"event": "stop"}]], 2),
    }
    by_scan = {e.key: e for e in provider.scan("c:").entries}
    by_mget = provider.mget(list(collections))
    for key, type_name in collections.items():
        for entry in (provider.get(key), by_scan[key], by_mget[key]):
            assert entry.type == type_name
            assert entry.value is None and not entry.editable
            assert (entry.content, entry.length) == expected_content[key]


def test_put_over_non_string_type_is_refused(
    provider: RedisProvider, raw: redis.Redis, collections: dict[str, str],
) -> None:
    for key, type_name in collections.items():
        entry = provider.get(key)
        with pytest.raises(errors.InvalidRequest) as info:
            provider.put(key, "text", expected=entry.token)
        assert type_name in str(info.value)
        with pytest.raises(errors.InvalidRequest):
            provider.put(key, "text")
        assert raw.type(key) == type_name.encode()
    with pytest.raises(errors.Conflict):  # a string token no longer matches: it changed
        provider.put("c:hash", "text", expected=provider.get("c:list").token)


def test_large_collections_preview_first_100(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.rpush("big:list", *[f"i{n:03d}" for n in range(250)])
    raw.hset("big:hash", mapping={f"f{n:03d}": n for n in range(300)})
    raw.sadd("big:set", *[f"m{n:03d}" for n in range(300)])
    raw.zadd("big:zset", {f"z{n:03d}": n for n in range(300)})
    for n in range(150):
        raw.xadd("big:stream", {"n": n})
    entries = provider.mget(["big:list", "big:hash", "big:set", "big:zset", "big:stream"])
    assert entries["big:list"].length == 250
    assert entries["big:list"].content == [f"i{n:03d}" for n in range(100)]
    assert entries["big:hash"].length == 300 and len(entries["big:hash"].content) == 100
    assert entries["big:set"].length == 300
    assert len(entries["big:set"].content) == 100
    assert entries["big:set"].content == sorted(entries["big:set"].content)
    assert entries["big:zset"].content[:2] == [["z000", 0.0], ["z001", 1.0]]
    assert len(entries["big:zset"].content) == 100
    assert entries["big:stream"].length == 150 and len(entries["big:stream"].content) == 100


def test_delete_non_string_with_its_token(
    provider: RedisProvider, raw: redis.Redis, collections: dict[str, str],
) -> None:
    raw.hset("big:hash", mapping={f"f{n:03d}": n for n in range(300)})
    for key in [*collections, "big:hash"]:
        # the preview is stable, so the token read a moment ago still matches
        assert provider.delete(key, expected=provider.get(key).token) is True
        assert raw.exists(key) == 0


def test_key_changing_type_mid_read_is_read_again(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hash replaced by a list between the two pipelines is re-read, not mis-shown."""
    raw.hset("shifty", "f", "v")
    real_read_collections = provider._read_collections
    passes = []

    def read_after_type_change(*args, **kwargs):
        if not passes:
            raw.delete("shifty")
            raw.rpush("shifty", "now", "a", "list")
        passes.append(1)
        return real_read_collections(*args, **kwargs)

    monkeypatch.setattr(provider, "_read_collections", read_after_type_change)
    entry = provider.get("shifty")
    assert (entry.type, entry.content, entry.length) == ("list", ["now", "a", "list"], 3)
    assert len(passes) == 2


@pytest.mark.parametrize("preview_bytes", [None, 4])
def test_a_hash_that_becomes_a_string_or_vanishes_before_its_type_is_asked(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    preview_bytes: int | None,
) -> None:
    """Between the string read (WRONGTYPE) and TYPE: a new string is read again, a
    deleted key is missing, never a hash shown from the wrong replies."""
    raw.hset("flip", "f", "v")
    raw.hset("gone", "f", "v")
    real_read_others = provider._read_others
    passes = []

    def change_before_type(*args, **kwargs):
        if not passes:
            raw.delete("flip", "gone")
            raw.set("flip", "now a string")
        passes.append(1)
        return real_read_others(*args, **kwargs)

    monkeypatch.setattr(provider, "_read_others", change_before_type)
    flip, gone = provider._read_entries([b"flip", b"gone"], preview_bytes=preview_bytes)
    assert gone is None and len(passes) == 1  # the second pass read "flip" as a string
    assert (flip.type, flip.content) == ("string", None)
    if preview_bytes is None:
        assert flip.value == "now a string" and not flip.partial
    else:
        assert flip.value == "now " and flip.partial and flip.size == len("now a string")


# -- bulk reads -------------------------------------------------------------------------


def test_mget_2500_keys_with_missing_and_duplicates_keeps_order(
    provider: RedisProvider, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = [f"m:{i:04d}" for i in range(2200)]
    raw.mset({k: f"v{k}" for k in present})
    raw.set("m:ttl", "t", px=600_000)
    raw.hset("m:hash", "f", "v")
    missing = [f"missing:{i}" for i in range(300)]
    requested = present + missing + ["m:ttl", "m:hash"]
    random.Random(7).shuffle(requested)
    requested += requested[:200]  # duplicates
    unique_order = list(dict.fromkeys(requested))
    assert len(requested) >= 2500

    executed = count_pipelines(monkeypatch, provider)
    result = provider.mget(requested)

    assert list(result) == unique_order
    for key in present:
        assert result[key].value == f"v{key}"
    assert all(result[key] is None for key in missing)
    assert result["m:ttl"].ttl_ms > 0
    assert result["m:hash"].type == "hash" and result["m:hash"].content == {"f": "v"}
    batches = -(-len(unique_order) // provider.mget_batch)
    # one pipeline a batch (PTTL + GET a key, no TYPE); the batch holding the hash adds
    # two for that key alone: its TYPE, then TYPE + HLEN + HSCAN
    assert len(executed) == batches + 2
    assert max(executed) == 2 * provider.mget_batch
    assert sorted(executed)[:2] == [1, 3]


def test_mget_empty(provider: RedisProvider) -> None:
    assert provider.mget([]) == {}


# -- info -------------------------------------------------------------------------------


def test_info_reports_version_and_stats(provider: RedisProvider, raw: redis.Redis) -> None:
    raw.mset({"a": "1", "b": "2"})
    raw.set("c", "3", px=600_000)
    info = provider.info()
    assert info.kind == "redis" and info.healthy and info.name == provider.name
    assert info.generation == f"redis {raw.info('server')['redis_version']}"
    assert info.stats["dbsize"] == 3
    assert info.stats["keys_with_expiry"] == 1
    assert info.stats["role"] == "master"
    assert "used_memory_human" in info.stats


# -- failures from real servers ---------------------------------------------------------


def test_stopped_server_is_unavailable() -> None:
    with RedisServer() as srv:
        p = RedisProvider(host=srv.host, port=srv.port, timeout=2.0)
        p.put("k", "v")
        srv.stop()
        try:
            for call in (lambda: p.get("k"), lambda: p.list_keys(), p.info,
                         lambda: p.put("k", "w"), lambda: p.mget(["k"])):
                with pytest.raises(errors.Unavailable) as info:
                    call()
                assert f"127.0.0.1:{srv.port}" in str(info.value)
                assert p.name in str(info.value)
        finally:
            p.close()


def test_nothing_listening_is_unavailable() -> None:
    p = RedisProvider(host="127.0.0.1", port=free_port(), timeout=2.0)
    try:
        with pytest.raises(errors.Unavailable):
            p.info()
    finally:
        p.close()


def test_silent_server_times_out_as_unavailable() -> None:
    # a socket that accepts connections (kernel backlog) but never answers
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        p = RedisProvider(host="127.0.0.1", port=listener.getsockname()[1], timeout=0.3)
        try:
            with pytest.raises(errors.Unavailable) as info:
                p.get("k")
            assert "did not answer" in str(info.value)
        finally:
            p.close()


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    with RedisServer(password="right-pw") as srv:
        yield srv


@pytest.mark.parametrize("password", ["wrong-pw", None])
def test_bad_or_missing_password_is_unauthorized(
    password_server: RedisServer, password: str | None,
) -> None:
    p = RedisProvider(host=password_server.host, port=password_server.port, password=password)
    try:
        with pytest.raises(errors.Unauthorized) as info:
            p.get("k")
        assert p.name in str(info.value)
        assert "wrong-pw" not in str(info.value) and "right-pw" not in str(info.value)
        with pytest.raises(errors.Unauthorized):
            p.info()
    finally:
        p.close()


def test_right_password_works(password_server: RedisServer) -> None:
    p = RedisProvider(host=password_server.host, port=password_server.port, password="right-pw")
    try:
        p.put("k", "v")
        assert p.get("k").value == "v"
    finally:
        p.close()


def test_write_to_replica_is_forbidden() -> None:
    with RedisServer() as primary, RedisServer(
        extra_args=["--replicaof", primary.host, str(primary.port), "--replica-read-only", "yes"],
    ) as replica:
        p = RedisProvider(host=replica.host, port=replica.port)
        try:
            for write in (lambda: p.put("k", "v"), lambda: p.put("k", "v", create_only=True),
                          lambda: p.delete("k")):
                with pytest.raises(errors.Forbidden) as info:
                    write()
                assert "replica" in str(info.value)
            assert p.info().stats["role"] == "slave"
            assert "replica of" in p.info().detail
        finally:
            p.close()
