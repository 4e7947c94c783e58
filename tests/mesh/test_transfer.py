"""Export and import of a prefix with TTLs (``dashboard.mesh.transfer``), on real stores."""

from __future__ import annotations

import json
import time

import pytest

from dashboard.mesh import transfer
from dashboard.mesh.transfer import jsonl
from dashboard.settings.load import load_settings
from dashboard.stores.errors import Unavailable
from dashboard.stores.mutations import NO_TTL, TtlChange
from tests.support.backends import settings_for, start_backend

BACKENDS = ["devstore", "devstore-legacy", "redis"]
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=BACKENDS)
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def export(store, prefix) -> bytes:
    return b"".join(transfer.export_lines(store.provider, prefix, page_size=3))


def wipe(store, prefix) -> None:
    for key in list(store.provider.iter_keys(prefix)):
        store.provider.delete(key)


def do_import(store, data: bytes, mode="create-only", ttl_policy="expiry", settings=None):
    settings = settings or settings_for(store)
    parsed = transfer.parse(data, max_bytes=16 * MiB)
    plan = transfer.make_plan(store.provider, settings, parsed, mode=mode, ttl_policy=ttl_policy)
    assert not plan.refused, plan.to_json()
    return plan, transfer.apply(store.provider, settings, plan)


def snapshot(store, prefix) -> dict:
    keys = list(store.provider.iter_keys(prefix))
    return {key: store.provider.get(key) for key in keys}


def seed_text(store, prefix) -> dict[str, str]:
    items = {
        prefix + "doc": '{"id":"alice","displayName":"Zo\\u00EB"}',
        prefix + "raw": "plain text\r\nwith lines\tand tabs",
        prefix + "unicode": "Zoë 🚀 \u2028",
        prefix + "config/theme": "dark",
        prefix + "empty": "",
    }
    store.seed({k: v for k, v in items.items() if not k.endswith("doc")})
    store.seed({prefix + "doc": items[prefix + "doc"]}, ttl_ms=600_000)
    return items


def test_round_trip_keeps_keys_values_and_ttls(store, prefix):
    items = seed_text(store, prefix)
    before = snapshot(store, prefix)
    data = export(store, prefix)
    lines = data.decode().splitlines()
    assert len(lines) == len(before)
    assert {json.loads(line).get("key") for line in lines} >= set(items)

    wipe(store, prefix)
    assert snapshot(store, prefix) == {}
    started = time.time()
    plan, result = do_import(store, data)
    elapsed_ms = int((time.time() - started) * 1000) + 2000
    assert result.complete, result.to_json()
    after = snapshot(store, prefix)
    assert set(after) == set(before)
    for key, was in before.items():
        now = after[key]
        assert (now.type, now.value) == (was.type, was.value), key
        if was.ttl_known and was.ttl_ms is not None:
            assert now.ttl_ms is not None and was.ttl_ms - now.ttl_ms <= elapsed_ms + 5000, key
            assert now.ttl_ms <= was.ttl_ms, key
        elif was.ttl_known:
            assert now.ttl_ms is None, key

    # importing the same file again: everything is unchanged, nothing to write
    again = transfer.make_plan(store.provider, settings_for(store),
                               transfer.parse(data, max_bytes=MiB), mode="create-only")
    assert again.counts["unchanged"] == len(before) and not again.writes, again.to_json()


def test_redis_types_binary_values_and_keys_round_trip_exactly(store, prefix):
    if store.provider.kind != "redis":
        pytest.skip("only Redis holds bytes and non-string types")
    raw = store.extra["raw"]
    p = prefix.encode()
    raw.set(p + b"bin", b"\xff\x00\xfe binary")
    raw.set(p + b"k\xff\xfe", b"value of a non-UTF-8 key", px=500_000)
    raw.hset(p + b"hash", mapping={b"f1": b"v1", b"f\xff": b"\x00\x01"})
    raw.rpush(p + b"list", b"a", b"b", b"a")
    raw.sadd(p + b"set", b"x", b"y")
    raw.zadd(p + b"zset", {b"m1": 1.5, b"m2": -2})
    raw.xadd(p + b"stream", {b"f": b"v"}, id="1-1")
    raw.xadd(p + b"stream", {b"g": b"w"}, id="2-0")
    raw.pexpire(p + b"hash", 700_000)

    def dump_all() -> dict:
        out = {}
        for key in raw.scan_iter(match=p + b"*"):
            kind = raw.type(key).decode()
            read = {"string": raw.get, "hash": raw.hgetall,
                    "list": lambda k: raw.lrange(k, 0, -1), "set": raw.smembers,
                    "zset": lambda k: raw.zrange(k, 0, -1, withscores=True),
                    "stream": lambda k: raw.xrange(k)}[kind]
            out[key] = (kind, read(key), raw.pttl(key) > 0)
        return out

    before = dump_all()
    data = export(store, prefix)
    records = [json.loads(line) for line in data.splitlines()]
    by_kind = {r.get("type", "string"): r for r in records}
    assert by_kind["hash"]["content_encoding"] == "base64"
    assert any("value_b64" in r for r in records) and any("key_b64" in r for r in records)
    for key in list(raw.scan_iter(match=p + b"*")):
        raw.delete(key)
    plan, result = do_import(store, data)
    assert result.complete and len(result.written) == len(before), result.to_json()
    assert dump_all() == before


def test_plan_classifies_new_changed_unchanged_skipped_and_blocked(store, prefix):
    store.seed({prefix + "same": '{"a":1}', prefix + "other": '{"a":1,"b":2}'})
    now = int(time.time() * 1000)
    data = "\n".join(json.dumps(r) for r in [
        {"key": prefix + "same", "value": '{"a":1}', "ttl_ms": None},
        {"key": prefix + "other", "value": '{"a":2,"c":3}', "ttl_ms": None},
        {"key": prefix + "fresh", "value": "1", "ttl_ms": 60_000, "expires_at_ms": now + 60_000},
        {"key": prefix + "expired", "value": "1", "ttl_ms": 10, "expires_at_ms": now - 5_000},
    ]).encode()
    parsed = transfer.parse(data, max_bytes=MiB)
    settings = settings_for(store)

    def plan(mode, ttl_policy="expiry"):
        made = transfer.make_plan(store.provider, settings, parsed, mode=mode,
                                  ttl_policy=ttl_policy)
        return {k.key[len(prefix):]: (k.action, k.note) for k in made.keys}, made

    overwrite, _ = plan("overwrite")
    same_action = overwrite["same"][0]
    # a legacy store cannot report TTLs: an equal value still counts as unchanged
    assert same_action == "unchanged"
    assert overwrite["other"][0] == "changed" and "+c" in overwrite["other"][1]
    assert "-b" in overwrite["other"][1] and "~a" in overwrite["other"][1]
    assert overwrite["fresh"][0] == "new"
    assert overwrite["expired"] == ("skipped", overwrite["expired"][1])
    assert "expired since the export" in overwrite["expired"][1]
    skip, _ = plan("skip-existing")
    assert skip["other"][0] == "skipped" and skip["other"][1].startswith("exists")
    create, made = plan("create-only")
    assert create["other"][0] == "blocked" and "create-only" in made.refused
    with pytest.raises(ValueError):
        transfer.apply(store.provider, settings, made)
    restarted, _ = plan("overwrite", "restart")
    assert restarted["expired"][0] == "new"


def test_an_invalid_file_writes_nothing_and_names_its_lines(store, prefix):
    good = json.dumps({"key": prefix + "a", "value": "1", "ttl_ms": None})
    data = "\n".join([
        good,
        "{not json",
        json.dumps({"key": prefix + "b", "value": {"nested": True}}),
        json.dumps({"key": prefix + "c", "value": "x", "ttl": 5}),
        json.dumps({"key": prefix + "a", "value": "2"}),
        "",
        json.dumps({"key": prefix + "d", "value": "x", "ttl_ms": -4}),
        json.dumps({"key": prefix + "e", "type": "hash", "content": {}}),
    ]).encode()
    parsed = transfer.parse(data, max_bytes=MiB)
    assert [bad.line for bad in parsed.invalid] == [2, 3, 4, 5, 7, 8]
    messages = {bad.line: bad.message for bad in parsed.invalid}
    assert "not valid JSON" in messages[2] and "'ttl'" in messages[4]
    assert "already on line 1" in messages[5]
    plan = transfer.make_plan(store.provider, settings_for(store), parsed, mode="overwrite")
    assert "invalid line" in plan.refused
    with pytest.raises(ValueError):
        transfer.apply(store.provider, settings_for(store), plan)
    assert snapshot(store, prefix) == {}
    with pytest.raises(transfer.TooBig, match="Dashboard__MaxImportBytes"):
        transfer.parse(data, max_bytes=10)


def test_a_key_changed_between_plan_and_confirm_is_not_clobbered(store, prefix):
    if not store.provider.capabilities().atomic_cas:
        pytest.skip("this release ignores conditional writes (the plan says so)")
    store.seed({prefix + "x": "old"})
    data = "\n".join(json.dumps({"key": prefix + k, "value": "imported", "ttl_ms": None})
                     for k in ("x", "y")).encode()
    settings = settings_for(store)
    parsed = transfer.parse(data, max_bytes=MiB)
    plan = transfer.make_plan(store.provider, settings, parsed, mode="overwrite")
    assert [k.action for k in plan.keys] == ["changed", "new"]
    # meanwhile someone changes x and creates y
    store.provider.put(prefix + "x", "theirs", ttl=NO_TTL)
    store.provider.put(prefix + "y", "theirs too", ttl=NO_TTL)
    result = transfer.apply(store.provider, settings, plan)
    assert not result.complete and result.written == []
    assert [k for k, _ in result.conflicts] == [prefix + "x", prefix + "y"]
    assert store.provider.get(prefix + "x").value == "theirs"
    assert store.provider.get(prefix + "y").value == "theirs too"


class FailingAfter:
    """The store, failing every write after the first ``n`` (a store that went down)."""

    def __init__(self, inner, n: int) -> None:
        self._inner, self.n = inner, n

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def put(self, key, value, **kwargs):
        if self.n <= 0:
            raise Unavailable("the store went away", store="test", key=key)
        self.n -= 1
        return self._inner.put(key, value, **kwargs)

    def restore(self, item, **kwargs):
        if self.n <= 0:
            raise Unavailable("the store went away", store="test", key=item.key)
        self.n -= 1
        return self._inner.restore(item, **kwargs)


def test_a_store_failure_midway_says_exactly_what_was_written(store, prefix):
    keys = [f"{prefix}k{i}" for i in range(5)]
    data = "\n".join(json.dumps({"key": k, "value": str(i), "ttl_ms": None})
                     for i, k in enumerate(keys)).encode()
    settings = settings_for(store)
    failing = FailingAfter(store.provider, 2)
    plan = transfer.make_plan(failing, settings, transfer.parse(data, max_bytes=MiB),
                              mode="create-only")
    result = transfer.apply(failing, settings, plan)
    assert not result.complete
    assert result.written == keys[:2]
    assert result.failed[0] == keys[2] and "went away" in result.failed[1]
    assert result.not_attempted == keys[3:]
    assert sorted(snapshot(store, prefix)) == keys[:2]


def test_imported_keys_join_their_service_index(prefix):
    with start_backend("devstore") as backend:
        backend.provider.put(prefix + "__keys", '["old"]', ttl=NO_TTL)
        backend.provider.put(prefix + "old", "1", ttl=NO_TTL)
        data = "\n".join(json.dumps({"key": prefix + k, "value": "v", "ttl_ms": None})
                         for k in ("a", "b")).encode()
        settings = load_settings(environ={}, overrides={
            "Mesh": {"KeyValue": {"Provider": "ToskaStore"}}})
        plan, result = do_import(backend, data, settings=settings)
        assert result.complete and result.written == [prefix + "a", prefix + "b"]
        assert json.loads(backend.provider.get(prefix + "__keys").value) == ["old", "a", "b"]
        assert any("Added the imported keys" in line for line in result.index)

        # an exported index is not written as a value: the imported keys rebuild it
        exported = b"".join(transfer.export_lines(backend.provider, prefix))
        for key in list(backend.provider.iter_keys(prefix)):
            backend.provider.delete(key)
        plan, result = do_import(backend, exported, settings=settings)
        skipped = [k for k in plan.keys if k.action == "skipped"]
        assert [k.key for k in skipped] == [prefix + "__keys"]
        assert sorted(json.loads(backend.provider.get(prefix + "__keys").value)) == [
            "a", "b", "old"]


def test_the_line_format_is_exact_for_odd_text():
    from dashboard.stores.entries import Dumped

    lone = Dumped(key="svc:\udcff", value="bad \ud800 surrogate", ttl_ms=5, expires_at_ms=99)
    line = jsonl.encode_line(lone)
    assert json.loads(line)["key_b64"] == "c3ZjOv8="
    back = jsonl.decode_line(line.decode())
    assert (back.key, back.value, back.ttl_ms, back.expires_at_ms) == (
        lone.key, lone.value, 5, 99)
    unknown = Dumped(key="a", value="v", ttl_known=False)
    assert json.loads(jsonl.encode_line(unknown)) == {"key": "a", "value": "v", "ttl_ms": None,
                                                     "ttl_known": False}
    assert TtlChange.set(5).ms == 5
