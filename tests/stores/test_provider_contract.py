"""The provider contract: every backend passes the same suite.

Backends: the dev store (current, legacy, no key listing), a real redis-server, a real
3-primary Redis Cluster, and a real ToskaStore when TOSKASTORE_URL is set. Capability
differences are asserted, not skipped: a legacy server must *say* a TTL is unknown, not
pretend there is none.
"""

from __future__ import annotations

import json

import pytest

from dashboard.stores.entries import Entry
from dashboard.stores.errors import Conflict, InvalidRequest, NotFound, Unsupported
from dashboard.stores.mutations import KEEP_TTL, NO_TTL, TtlChange

ODD_KEYS = ["a/b", "a%2Fb", "a?b#c", "../x", "sp ace", "ünï:cødé", "x:y:z", "tab\there", "Ω/%20"]
HOUR_MS = 3_600_000


def caps(provider):
    return provider.capabilities()


def test_capabilities_are_consistent(provider):
    c = caps(provider)
    assert c.listing in {"range", "cursor", "legacy", "index", "scan"}
    if c.listing == "range":
        assert c.versions and c.ttl_visible and c.atomic_cas
    if provider.kind == "toskastore":
        # versions and conditions are proven by the server's answers, never by its listing
        assert c.ttl_visible == c.versions
    if c.transactions:
        assert c.atomic_cas
    if c.listing in {"legacy", "scan"}:
        assert not c.versions
    assert c.ordered == (c.listing != "scan")


def test_get_missing_key_raises_not_found(provider, prefix):
    with pytest.raises(NotFound):
        provider.get(prefix + "missing")


@pytest.mark.parametrize("odd", ODD_KEYS)
def test_special_character_keys_round_trip(backend, provider, prefix, odd):
    key = prefix + odd
    provider.put(key, '{"id":"x"}', ttl=NO_TTL)
    entry = provider.get(key)
    assert entry.key == key
    assert entry.value == '{"id":"x"}'
    backend.seed({key: '{"id":"x"}'})  # keeps the index in sync where listing needs it
    assert key in provider.list_keys(prefix, limit=1000).keys
    assert provider.mget([key])[key].value == '{"id":"x"}'
    assert provider.delete(key) is True
    with pytest.raises(NotFound):
        provider.get(key)


def test_list_keys_returns_exactly_the_prefix(backend, provider, prefix):
    other = prefix[:-1] + "x:"
    backend.seed({prefix + "b": "1", prefix + "a": "2", prefix + "c:d": "3", other + "a": "4"})
    page = provider.list_keys(prefix, limit=100)
    assert sorted(page.keys) == [prefix + "a", prefix + "b", prefix + "c:d"]
    assert page.keys == sorted(page.keys)
    assert page.next_cursor is None
    assert page.source == caps(provider).listing


def test_pagination_across_2500_keys_loses_and_repeats_nothing(backend, provider, prefix):
    expected = {f"{prefix}item:{i:05d}": str(i) for i in range(2600)}
    backend.seed(expected)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = provider.list_keys(prefix, cursor=cursor, limit=250)
        assert page.keys == sorted(page.keys)
        seen.extend(page.keys)
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
        assert pages < 100
    if caps(provider).ordered:
        assert seen == sorted(expected)
        assert pages >= 2600 // 250
    else:
        assert set(seen) == set(expected)
    assert sorted(set(provider.iter_keys(prefix, page_size=300))) == sorted(expected)
    assert len(list(provider.iter_keys(prefix, page_size=300))) == len(expected)


def test_scan_returns_values_and_ttl_states(backend, provider, prefix):
    backend.seed({prefix + "plain": '{"a":1}'})
    backend.seed({prefix + "expiring": '"soon"'}, ttl_ms=HOUR_MS)
    entries: dict[str, Entry] = {}
    cursor = None
    while True:
        page = provider.scan(prefix, cursor=cursor, limit=100)
        entries.update((e.key, e) for e in page.entries)
        cursor = page.next_cursor
        if not cursor:
            break
    assert entries[prefix + "plain"].value == '{"a":1}'
    assert entries[prefix + "expiring"].value == '"soon"'
    assert entries[prefix + "plain"].size == 7
    if caps(provider).ttl_visible and caps(provider).listing in {"range", "scan"}:
        assert entries[prefix + "plain"].ttl_known and entries[prefix + "plain"].ttl_ms is None
        assert 0 < entries[prefix + "expiring"].ttl_ms <= HOUR_MS
    if not caps(provider).ttl_visible:
        assert not entries[prefix + "expiring"].ttl_known


def test_get_reports_ttl_or_says_it_is_unknown(backend, provider, prefix):
    backend.seed({prefix + "t": "v"}, ttl_ms=HOUR_MS)
    entry = provider.get(prefix + "t")
    if caps(provider).ttl_visible:
        assert entry.ttl_known
        assert HOUR_MS - 60_000 < entry.ttl_ms <= HOUR_MS
        assert entry.expires_at_ms is not None
    else:
        assert entry.ttl_known is False
        assert entry.ttl_ms is None


def test_keep_ttl_edit_keeps_the_ttl(backend, provider, prefix):
    key = prefix + "session:1"
    backend.seed({key: '{"n":1}'}, ttl_ms=HOUR_MS)
    before = provider.get(key)
    if not caps(provider).ttl_visible:
        with pytest.raises(Unsupported):
            provider.put(key, '{"n":2}', ttl=KEEP_TTL, expected=before.token)
        assert provider.get(key).value == '{"n":1}'
        return
    provider.put(key, '{"n":2}', ttl=KEEP_TTL, expected=before.token)
    after = provider.get(key)
    assert after.value == '{"n":2}'
    assert after.ttl_ms is not None
    assert HOUR_MS - 60_000 < after.ttl_ms <= before.ttl_ms


def test_set_and_none_ttl_modes(provider, prefix):
    key = prefix + "k"
    provider.put(key, "1", ttl=TtlChange.set(HOUR_MS))
    if caps(provider).ttl_visible:
        assert 0 < provider.get(key).ttl_ms <= HOUR_MS
    provider.put(key, "2", ttl=NO_TTL)
    entry = provider.get(key)
    assert entry.value == "2"
    if caps(provider).ttl_visible:
        assert entry.ttl_known and entry.ttl_ms is None


def test_stale_token_conflicts_and_writes_nothing(provider, prefix):
    key = prefix + "profile:alice"
    provider.put(key, '{"v":1}', ttl=NO_TTL)
    seen = provider.get(key)
    provider.put(key, '{"v":2}', ttl=NO_TTL)  # another writer
    with pytest.raises(Conflict) as caught:
        provider.put(key, '{"v":"mine"}', ttl=NO_TTL, expected=seen.token)
    assert caught.value.current is not None
    assert caught.value.current.value == '{"v":2}'
    assert provider.get(key).value == '{"v":2}'


def test_fresh_token_writes(provider, prefix):
    key = prefix + "k"
    provider.put(key, "1", ttl=NO_TTL)
    seen = provider.get(key)
    written = provider.put(key, "2", ttl=NO_TTL, expected=seen.token)
    assert written.value == "2"
    assert provider.get(key).token != seen.token
    if caps(provider).versions:
        assert provider.get(key).version > seen.version


def test_create_only_refuses_an_existing_key(provider, prefix):
    key = prefix + "new"
    provider.put(key, "first", ttl=NO_TTL, create_only=True)
    with pytest.raises(Conflict) as caught:
        provider.put(key, "second", ttl=NO_TTL, create_only=True)
    assert caught.value.current.value == "first"
    assert provider.get(key).value == "first"


def test_delete_with_stale_token_conflicts(provider, prefix):
    key = prefix + "d"
    provider.put(key, "1", ttl=NO_TTL)
    seen = provider.get(key)
    provider.put(key, "2", ttl=NO_TTL)
    with pytest.raises(Conflict):
        provider.delete(key, expected=seen.token)
    assert provider.get(key).value == "2"
    assert provider.delete(key, expected=provider.get(key).token) is True
    with pytest.raises(NotFound):
        provider.get(key)


def test_mget_many_keys_with_missing_and_duplicates(backend, provider, prefix):
    present = {f"{prefix}m:{i}": json.dumps({"i": i}) for i in range(2500)}
    backend.seed(present)
    asked = [f"{prefix}m:{i}" for i in range(0, 2600, 1)] + [prefix + "m:5", prefix + "a/b?"]
    result = provider.mget(asked)
    assert list(result) == list(dict.fromkeys(asked))
    assert result[prefix + "m:7"].value == '{"i": 7}'
    assert result[prefix + "m:2599"] is None
    assert result[prefix + "a/b?"] is None
    assert sum(1 for v in result.values() if v is not None) == 2500


def test_info_reports_a_healthy_store(provider):
    info = provider.info()
    assert info.healthy is True
    assert info.kind == provider.kind
    assert info.name == provider.name


def test_list_segments_groups_the_next_level(backend, provider, prefix):
    backend.seed({prefix + k: "1" for k in ["a:1", "a:2", "b:1", "c", "d:x:y", "e"]})
    listing = provider.list_segments(prefix)
    assert listing.folders == [prefix + "a:", prefix + "b:", prefix + "d:"]
    assert listing.leaves == [prefix + "c", prefix + "e"]
    assert listing.complete
    capped = provider.list_segments(prefix, limit=2)
    assert not capped.complete
    if caps(provider).ordered:
        assert capped.folders == [prefix + "a:", prefix + "b:"] and capped.leaves == []
    else:
        shown = capped.folders + capped.leaves
        assert len(shown) == 2 and set(shown) <= set(listing.folders + listing.leaves)


def test_exists_many_tells_present_from_absent(backend, provider, prefix):
    # on a sorted listing a longer key sorts right after the asked one: never mistaken for it
    backend.seed({prefix + "a": "1", prefix + "ab": "2"})
    found = provider.exists_many([prefix + "a", prefix + "b", prefix + "ab", prefix + "a"])
    assert found == {prefix + "a": True, prefix + "b": False, prefix + "ab": True}


# --- exact content: raw bytes and tokens of the exact content (issue 15, items 5 and 7) --------

def _raw_client(backend):
    """The backend's own redis-py client where the store holds bytes (Redis), else None."""
    return backend.extra.get("raw")


def test_read_bytes_answers_the_stored_bytes(backend, provider, prefix):
    key = prefix + "doc"
    value = '{"name":"ünï cødé ☃","n":1}'
    provider.put(key, value, ttl=NO_TTL)
    assert provider.read_bytes(key) == value.encode("utf-8")
    assert provider.get(key).size == len(value.encode("utf-8"))
    with pytest.raises(NotFound):
        provider.read_bytes(prefix + "missing")
    raw = _raw_client(backend)
    if raw is None:
        assert not caps(provider).non_string_types  # a text store: its bytes are its text
        return
    binary = bytes(range(256)) * 4  # 1,024 bytes, most of them not UTF-8
    raw.set((prefix + "bin").encode(), binary)
    assert provider.read_bytes(prefix + "bin") == binary
    entry = provider.get(prefix + "bin")
    assert entry.size == 1024 and entry.exact_bytes == binary
    raw.hset((prefix + "h").encode(), mapping={b"f": b"v"})
    with pytest.raises(InvalidRequest):
        provider.read_bytes(prefix + "h")


def test_a_bulk_token_is_exact_and_conditions_a_write(provider, prefix):
    # the import plan's tokens come from mget(exact=True): on a store with versions they
    # are of the content (bulk reads carry no version there), and still compare exactly
    key = prefix + "cfg"
    provider.put(key, '{"v":1}', ttl=NO_TTL)
    seen = provider.mget([key], exact=True)[key]
    assert seen.verifiable and provider.get(key).matches(seen.token)
    provider.put(key, '{"v":2}', ttl=NO_TTL)  # another writer
    assert not provider.get(key).matches(seen.token)
    with pytest.raises(Conflict):
        provider.put(key, '{"v":"mine"}', ttl=NO_TTL, expected=seen.token)
    assert provider.get(key).value == '{"v":2}'
    fresh = provider.mget([key], exact=True)[key]
    assert provider.put(key, '{"v":3}', ttl=NO_TTL, expected=fresh.token).value == '{"v":3}'


def test_a_byte_changed_since_the_read_is_a_conflict_even_if_it_shows_the_same(backend,
                                                                                provider, prefix):
    raw = _raw_client(backend)
    if raw is None:
        assert not caps(provider).non_string_types
        return
    key = prefix + "bin"
    raw.set(key.encode(), b"\xff\xfe")
    seen = provider.get(key)
    raw.set(key.encode(), b"\xfe\xff")  # another writer: shown the same ("\ufffd\ufffd")
    assert provider.get(key).value == seen.value
    with pytest.raises(Conflict):
        provider.put(key, "mine", ttl=NO_TTL, expected=seen.token)
    with pytest.raises(Conflict):
        provider.delete(key, expected=seen.token)
    assert raw.get(key.encode()) == b"\xfe\xff"
