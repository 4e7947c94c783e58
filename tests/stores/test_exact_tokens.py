"""Every Redis write compares the exact stored content (issue 15, items 5 and 16).

Real redis-server and a real 3-primary Redis Cluster. A token is a digest of the exact
content: a string's bytes, a hash, list, set, zset or stream whole (digested on the
server by ``redis_digest``, which must agree with ``base.content_token`` byte for byte).
Edits, deletes and imports compare it, so a field set or a byte changed after the read
is a conflict, never silently lost; the import plan classifies keys on the same exact
content; where a collection is too big to digest, nothing is written blind.
"""

from __future__ import annotations

import json

import pytest

from dashboard.mesh import transfer
from dashboard.mesh.transfer import jsonl
from dashboard.settings.load import load_settings
from dashboard.stores.entries import UNVERIFIED, Dumped, content_token
from dashboard.stores.errors import Conflict
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.redis import digest as redis_digest
from dashboard.stores.redis.types import read_exact
from tests.support.backends import start_backend

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def raw(store):
    return store.extra["raw"]


@pytest.fixture
def provider(store):
    return store.provider


def settings():
    return load_settings(environ={}, overrides={"Mesh": {"KeyValue": {"Provider": "Redis"}}})


def big_hash(raw, key: str, fields: int = 150) -> dict[bytes, bytes]:
    mapping = {f"field:{i:04d}".encode(): f'{{"n":{i}}}'.encode() for i in range(fields)}
    raw.hset(key.encode(), mapping=mapping)
    return mapping


def outside_preview(entry, mapping: dict[bytes, bytes]) -> bytes:
    """A field of the hash that the entry's (100-element) preview does not show."""
    shown = {field.encode() for field in entry.content}
    return next(field for field in sorted(mapping, reverse=True) if field not in shown)


def plan_and_apply(provider, data: bytes, mode: str, between=None):
    parsed = transfer.parse(data, max_bytes=16 * MiB)
    plan = transfer.make_plan(provider, settings(), parsed, mode=mode)
    assert not plan.refused, plan.to_json()
    if between is not None:
        between()
    return plan, transfer.apply(provider, settings(), plan)


def line(item: Dumped) -> bytes:
    return jsonl.encode_line(item)


def test_the_server_digest_is_the_token_of_the_exact_content(provider, raw, prefix):
    key = prefix.encode()
    raw.set(key + b"str", b"\xff\x00\xfe")
    raw.set(key + b"empty", b"")
    raw.hset(key + b"hash", mapping={b"a": b"1", b"\xff": b"\x00\xfe", b"": b"", b"b": b"x" * 300})
    raw.rpush(key + b"list", b"x", b"", b"\xff\xfe", b"x")
    raw.sadd(key + b"set", b"a", b"\xff", b"")
    raw.zadd(key + b"zset", {b"a": 1.5, b"b": float("inf"), b"c": -0.1, b"d": 1e20, b"e": 3,
                             b"f": float("-inf"), b"g": 0.1 + 0.2})
    raw.xadd(key + b"stream", {b"f": b"v", b"g": b"\xff"}, id="1-1")
    raw.xadd(key + b"stream", {b"x": b""}, id="2-0")
    names = [b"str", b"empty", b"hash", b"list", b"set", b"zset", b"stream"]
    with provider._translate():  # detects a cluster first, as every provider call does
        exact = read_exact(provider, [key + name for name in names])
    for name, item in zip(names, exact, strict=True):
        expected = content_token(item.type, data=item.data, members=item.members)
        answer = raw.execute_command("EVAL", redis_digest.SCRIPT, 1, key + name,
                                     redis_digest.MAX_ELEMENTS)
        assert redis_digest.parse(answer)[2] == expected, name
        entry = provider.get(item.key)
        assert entry.token == expected and entry.verifiable, name
        # the import's reading of an export line agrees too
        again = jsonl.decode_line(line(item).decode())
        assert content_token(again.type, data=again.data, members=again.members) == expected


def test_a_field_set_beyond_the_preview_is_a_conflict(provider, raw, prefix):
    key = prefix + "profile"
    mapping = big_hash(raw, key)
    seen = provider.get(key)
    assert seen.length == 150 and len(seen.content) == 100  # shown: a preview
    raw.hset(key.encode(), outside_preview(seen, mapping), b"changed by the service")
    with pytest.raises(Conflict):
        provider.delete(key, expected=seen.token)
    assert raw.hlen(key.encode()) == 150
    assert provider.delete(key, expected=provider.get(key).token) is True


def test_a_binary_byte_changed_after_the_read_is_a_conflict_for_edit_and_delete(provider, raw,
                                                                                prefix):
    key = prefix + "blob"
    raw.set(key.encode(), b"\x00\xff\xfe")
    seen = provider.get(key)
    assert seen.size == 3 and seen.exact_bytes == b"\x00\xff\xfe"
    raw.set(key.encode(), b"\x00\xfe\xff")  # shown the same: "\x00\ufffd\ufffd"
    with pytest.raises(Conflict):
        provider.put(key, "mine", ttl=NO_TTL, expected=seen.token)
    with pytest.raises(Conflict):
        provider.delete(key, expected=seen.token)
    assert raw.get(key.encode()) == b"\x00\xfe\xff"
    # an unchanged binary value still takes a write based on what was read
    assert provider.put(key, "fixed", expected=provider.get(key).token).value == "fixed"


def test_an_import_never_overwrites_a_change_made_after_its_plan(provider, raw, prefix):
    hash_key, blob_key = prefix + "profile", prefix + "blob"
    mapping = big_hash(raw, hash_key)
    raw.set(blob_key.encode(), b"\xff\xfe")
    seen = provider.get(hash_key)
    changed_field = outside_preview(seen, mapping)
    imported = {**mapping, b"field:0000": b'{"n":"imported"}'}
    data = line(Dumped(hash_key, "hash", members=imported)) + \
        line(Dumped(blob_key, data=b"\xff\xfd"))

    def another_writer():
        raw.hset(hash_key.encode(), changed_field, b"set after the plan")
        raw.set(blob_key.encode(), b"\xfe\xff")  # the same text, other bytes

    plan, result = plan_and_apply(provider, data, "overwrite", between=another_writer)
    assert [k.action for k in plan.keys] == ["changed", "changed"]
    assert result.written == [] and {k for k, _ in result.conflicts} == {hash_key, blob_key}
    assert raw.hget(hash_key.encode(), changed_field) == b"set after the plan"
    assert raw.hget(hash_key.encode(), b"field:0000") == b'{"n":0}'
    assert raw.get(blob_key.encode()) == b"\xfe\xff"


def test_an_import_of_exact_content_writes_it_when_nothing_changed(provider, raw, prefix):
    hash_key, blob_key = prefix + "profile", prefix + "blob"
    mapping = big_hash(raw, hash_key)
    raw.set(blob_key.encode(), b"\xff\xfe")
    imported = {**mapping, b"field:0149": b"new"}
    data = line(Dumped(hash_key, "hash", members=imported)) + \
        line(Dumped(blob_key, data=b"\xff\xfd"))
    plan, result = plan_and_apply(provider, data, "overwrite")
    assert result.written == [hash_key, blob_key] and result.complete
    assert raw.hget(hash_key.encode(), b"field:0149") == b"new"
    assert raw.get(blob_key.encode()) == b"\xff\xfd"


def test_reimporting_an_identical_export_in_create_only_changes_nothing(provider, raw, prefix):
    key = prefix.encode()
    big_hash(raw, prefix + "profile")
    raw.set(key + b"blob", b"\xff\xfe\x00")
    raw.set(key + b"text", "Zoë".encode())
    raw.rpush(key + b"list", b"b", b"a", b"\xff")
    raw.sadd(key + b"set", *[f"m{i}".encode() for i in range(300)])
    raw.zadd(key + b"zset", {b"a": 0.1 + 0.2, b"b": float("inf")})
    raw.xadd(key + b"stream", {b"f": b"\xff"}, id="5-1")
    data = b"".join(transfer.export_lines(provider, prefix, page_size=3))
    plan, result = plan_and_apply(provider, data, "create-only")
    assert {k.key: k.action for k in plan.keys} == {
        k.key: "unchanged" for k in plan.keys} and len(plan.keys) == 7
    assert result.written == [] and result.complete


def test_the_plan_compares_bytes_not_the_text_shown(provider, raw, prefix):
    shown_alike, one_byte = prefix + "alike", prefix + "one"
    raw.set(shown_alike.encode(), b"\xff\xfe")
    raw.set(one_byte.encode(), b"\xff")
    data = (line(Dumped(shown_alike, value="\ufffd\ufffd"))
            + line(Dumped(one_byte, value="ab")))
    parsed = transfer.parse(data, max_bytes=MiB)
    plan = transfer.make_plan(provider, settings(), parsed, mode="create-only")
    assert [k.action for k in plan.keys] == ["blocked", "blocked"]
    overwrite = transfer.make_plan(provider, settings(), parsed, mode="overwrite")
    assert [k.action for k in overwrite.keys] == ["changed", "changed"]
    assert "value 2 B → 6 B" in overwrite.keys[0].note
    assert "value 1 B → 2 B" in overwrite.keys[1].note


def test_a_collection_too_big_to_digest_is_never_written_blind(provider, raw, prefix,
                                                               monkeypatch):
    monkeypatch.setattr(redis_digest, "MAX_ELEMENTS", 120)
    key = prefix + "profile"
    mapping = big_hash(raw, key)
    seen = provider.get(key)
    assert not seen.verifiable and seen.token.startswith(UNVERIFIED)
    with pytest.raises(Conflict) as caught:
        provider.delete(key, expected=seen.token)
    assert "could not be verified" in caught.value.message
    assert raw.hlen(key.encode()) == 150
    data = line(Dumped(key, "hash", members={**mapping, b"field:0000": b"other"}))
    parsed = transfer.parse(data, max_bytes=MiB)
    plan = transfer.make_plan(provider, settings(), parsed, mode="overwrite")
    (planned,) = plan.keys
    assert planned.action == "skipped" and "could not be verified" in planned.note
    assert planned.token is None
    result = transfer.apply(provider, settings(), plan)
    assert result.written == [] and raw.hget(key.encode(), b"field:0000") == b'{"n":0}'


def test_browse_rows_and_bulk_lookups_do_not_digest_collections(provider, raw, prefix):
    # the digest costs server time: only reads that a write may be based on pay for it
    key = prefix + "profile"
    big_hash(raw, key, fields=5)
    assert provider.mget([key])[key].token.startswith(UNVERIFIED)
    (row,) = provider.scan(prefix, limit=10).entries
    assert not row.verifiable
    assert provider.mget([key], exact=True)[key].verifiable


def _reset_stats(raw, cluster: bool) -> None:
    if cluster:
        raw.config_resetstat(target_nodes=raw.ALL_NODES)
    else:
        raw.config_resetstat()


def _calls(raw, cluster: bool, command: str) -> int:
    """How often ``command`` ran since the reset, on every node."""
    if cluster:
        per_node = raw.info("commandstats", target_nodes=raw.ALL_NODES).values()
    else:
        per_node = [raw.info("commandstats")]
    return sum(stats.get(f"cmdstat_{command}", {}).get("calls", 0) for stats in per_node)


def test_a_string_key_page_costs_no_more_commands(provider, raw, prefix, store):
    cluster = store.name == "redis-cluster"
    key = prefix + "doc"
    raw.set(key.encode(), json.dumps({"a": 1}).encode())
    provider.get(key)  # connected and detected
    _reset_stats(raw, cluster)
    entry = provider.get(key, max_bytes=1024)
    assert entry.verifiable
    assert _calls(raw, cluster, "eval") == _calls(raw, cluster, "multi") == 0
    assert _calls(raw, cluster, "get") == 0 and _calls(raw, cluster, "getrange") == 1
    hash_key = prefix + "profile"
    big_hash(raw, hash_key, fields=5)
    _reset_stats(raw, cluster)
    provider.get(hash_key, max_bytes=1024)
    assert _calls(raw, cluster, "eval") == 1
