"""Import and export under hostile input and unlucky timing (issue 15: items 6, 8, 9, 14,
15, 18, 19, 20, and the create-only compare-and-set), on real stores."""

from __future__ import annotations

import io
import json
import math
import threading
import time

import pytest

from dashboard.mesh import transfer
from dashboard.mesh.transfer import jsonl
from dashboard.mesh.transfer.jsonl import MAX_EXPIRES_AT_MS
from dashboard.stores.entries import Dumped
from dashboard.stores.mutations import NO_TTL
from dashboard.web.views.transfer import claim
from tests.support.backends import settings_for, start_backend
from tests.support.webapp import csrf_token, login, make_app

BACKENDS = ["devstore", "devstore-0.9.1", "devstore-legacy", "redis", "redis-cluster"]
MiB = 1024 * 1024
#: every thread and request a test starts ends within this
TIMEOUT_S = 30


@pytest.fixture(scope="module", params=BACKENDS)
def store(request):
    with start_backend(request.param) as backend:
        yield backend


def lines(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()


def plan_of(store, data: bytes, mode="create-only", ttl_policy="expiry"):
    parsed = transfer.parse(data, max_bytes=16 * MiB)
    return transfer.make_plan(store.provider, settings_for(store), parsed, mode=mode,
                              ttl_policy=ttl_policy)


def stored(store, key: str):
    return store.provider.mget([key]).get(key)


def strict_json(line: bytes):
    """RFC 8259: no NaN, Infinity or -Infinity."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(line, parse_constant=refuse)


# --------------------------------------------------------------------------- 8, 14, 15: plan


def test_lines_no_store_can_hold_are_refused_in_the_plan_by_line(store, prefix):
    """Lone surrogates, TTLs and expiries past the year 9999: refused with their line, so
    the confirmation never stops midway (items 8 and 14); nothing is written."""
    now = int(time.time() * 1000)
    data = lines(
        {"key": prefix + "good", "value": "fine", "ttl_ms": None},
        {"key": prefix + "lone", "value": "a\ud800b", "ttl_ms": None},
        {"key": prefix + "k\ud800", "value": "v", "ttl_ms": None},
        {"key": prefix + "forever", "value": "v", "ttl_ms": 10**20},
        {"key": prefix + "far", "value": "v", "ttl_ms": 5, "expires_at_ms": 10**20},
        {"key": prefix + "late", "value": "v", "ttl_ms": MAX_EXPIRES_AT_MS - now + 10**9,
         "expires_at_ms": now + 1},
    )
    plan = plan_of(store, data, ttl_policy="restart")
    reasons = {bad.line: bad.message for bad in plan.invalid}
    assert sorted(reasons) == [2, 3, 4, 5, 6], plan.to_json()
    assert "lone surrogate (U+D800" in reasons[2] and "lone surrogate" in reasons[3]
    assert "year 9999" in reasons[4] and "year 9999" in reasons[5] and "9999" in reasons[6]
    assert "invalid line" in plan.refused
    with pytest.raises(ValueError):
        transfer.apply(store.provider, settings_for(store), plan)
    assert stored(store, prefix + "good") is None


def test_a_key_of_raw_bytes_is_refused_by_a_text_store_and_written_by_redis(store, prefix):
    """A Redis -> ToskaStore migration: a key that is not UTF-8 is a plan line with its
    reason on ToskaStore (item 15), never a 500; Redis holds it."""
    raw_key = prefix.encode() + b"k\xff"
    data = lines({"key_b64": jsonl._b64(raw_key), "value": "v", "ttl_ms": None},
                 {"key": prefix + "ok", "value": "v", "ttl_ms": None})
    plan = plan_of(store, data)
    assert not plan.refused, plan.to_json()
    first = plan.keys[0]
    if store.provider.capabilities().non_string_types:
        assert first.action == "new"
    else:
        assert (first.line, first.action) == (1, "skipped") and "not UTF-8" in first.note
    result = transfer.apply(store.provider, settings_for(store), plan)
    assert result.complete, result.to_json()
    assert prefix + "ok" in result.written
    assert (first.key in result.written) == (first.action == "new")


def test_a_key_longer_than_a_url_takes_is_refused_on_toskastore(store, prefix):
    """A 64 KiB key cannot go in a ToskaStore URL: refused by line (item 8); Redis takes it."""
    long_key = prefix + "k" * 65536
    data = lines({"key": prefix + "short", "value": "v", "ttl_ms": None},
                 {"key": long_key, "value": "v", "ttl_ms": None})
    plan = plan_of(store, data)
    if store.provider.kind != "toskastore":
        assert not plan.invalid and len(plan.writes) == 2
        return
    assert [bad.line for bad in plan.invalid] == [2]
    assert "URL" in plan.invalid[0].message
    assert stored(store, prefix + "short") is None


# --------------------------------------------------------------------------- 8: apply


def test_a_write_that_fails_unexpectedly_midway_lists_written_and_not_attempted(store, prefix):
    """A confirmation restores its plan without re-checking (the web's ``restore_plan``):
    a line the store refuses or the dashboard cannot send stops the import there, and the
    result names the keys written, that key, and the keys never attempted (item 8)."""
    keys = [f"{prefix}k{i}" for i in range(5)]
    records = [{"key": k, "value": "v", "ttl_ms": None} for k in keys]
    records[2]["value"] = "a\ud800b"  # no store takes it: the plan would have refused it
    parsed = transfer.parse(lines(*records), max_bytes=MiB)
    plan = transfer.restore_plan(parsed, "create-only", "expiry",
                                 {k: ["new", None, None, ""] for k in keys})
    result = transfer.apply(store.provider, settings_for(store), plan)
    assert not result.complete
    assert result.written == keys[:2]
    stopped = result.unknown + ([result.failed[0]] if result.failed else [])
    assert stopped == [keys[2]], result.to_json()
    assert result.not_attempted == keys[3:]
    assert [k for k in keys if stored(store, k) is not None] == keys[:2]


# --------------------------------------------------------------------------- 14: key page


def test_the_key_page_shows_an_extreme_expiry_instead_of_failing(store, prefix):
    """A key whose expiry is past the year 9999 (written by another tool): no 500."""
    key = prefix + "far"
    if store.provider.kind == "redis":
        raw = store.extra["raw"]
        raw.set(key, "v")
        raw.pexpireat(key, 2**62)
    elif store.extra["running"].release == "main":
        store.extra["running"].store.put(key, "v", ttl_ms=10**20)
    else:
        pytest.skip("this release reports no TTL")
    client = make_app(store.provider).test_client()
    login(client, "vi")
    page = client.get("/key", query_string={"key": key})
    assert page.status_code == 200
    assert "after the year 9999" in page.get_data(as_text=True)


# --------------------------------------------------------------------------- 18: scores


def test_an_infinite_zset_score_is_exported_as_json_and_read_back_exactly(store, prefix):
    if not store.provider.capabilities().non_string_types:
        pytest.skip("only Redis holds zsets")
    raw = store.extra["raw"]
    key = (prefix + "z").encode()
    raw.zadd(key, {b"top": math.inf, b"bottom": -math.inf, b"mid": 1.5})
    exported = b"".join(transfer.export_lines(store.provider, prefix))
    record = strict_json(exported.splitlines()[0])
    assert sorted(record["content"], key=lambda pair: pair[0]) == [
        ["bottom", "-inf"], ["mid", 1.5], ["top", "inf"]]
    raw.delete(key)
    plan = plan_of(store, exported)
    result = transfer.apply(store.provider, settings_for(store), plan)
    assert result.complete, result.to_json()
    assert raw.zrange(key, 0, -1, withscores=True) == [
        (b"bottom", -math.inf), (b"mid", 1.5), (b"top", math.inf)]


def test_the_writer_never_emits_nan_or_infinity():
    line = jsonl.encode_line(Dumped(key="z", type="zset", members=[[b"a", math.inf]]))
    assert strict_json(line)["content"] == [["a", "inf"]]
    with pytest.raises(ValueError):
        jsonl.encode_line(Dumped(key="z", type="zset", members=[[b"a", math.nan]]))
    # files written before: Infinity still reads back as an infinite score
    old = jsonl.decode_line('{"key":"z","type":"zset","content":[["a",Infinity]],"ttl_ms":null}')
    assert old.members == [[b"a", math.inf]]


# --------------------------------------------------------------------------- create-only CAS


def test_create_only_never_overwrites_a_key_written_after_the_plan(store, prefix):
    """The compare-and-set of a create-only import against what the plan saw: a key
    created between plan and confirm keeps the other writer's value and is reported."""
    if not store.provider.capabilities().atomic_cas:
        pytest.skip("this release ignores conditional writes (the plan says so)")
    data = lines(*({"key": prefix + k, "value": "imported", "ttl_ms": None}
                   for k in ("taken", "free")))
    plan = plan_of(store, data)
    assert [k.action for k in plan.keys] == ["new", "new"]
    store.provider.put(prefix + "taken", "theirs", ttl=NO_TTL)
    result = transfer.apply(store.provider, settings_for(store), plan)
    assert result.written == [prefix + "free"]
    assert [k for k, _ in result.conflicts] == [prefix + "taken"]
    assert result.not_written == [prefix + "taken"] and not result.complete
    assert stored(store, prefix + "taken").value == "theirs"


# --------------------------------------------------------------------------- 6: export


@pytest.fixture(scope="module")
def legacy():
    """A 0.8 dev store listed through a cap of 100 (``Dashboard__LegacyListCap``)."""
    from dashboard.devstore import start_devstore
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    with start_devstore(port=0, release="0.8") as running:
        provider = ToskaStoreProvider(running.url, timeout=10.0, legacy_list_cap=100)
        try:
            yield running, provider
        finally:
            provider.close()


def test_a_truncated_web_export_says_so_in_the_file_and_the_answer(legacy):
    running, provider = legacy
    for i in range(150):
        running.store.put(f"cap:k{i:03d}", str(i))
    client = make_app(provider).test_client()
    login(client, "vi")
    answer = client.get("/export?prefix=cap:")
    assert answer.status_code == 200
    assert answer.headers["X-Export-Complete"] == "false"
    rows = answer.get_data().splitlines()
    assert len(rows) == 101
    marker = strict_json(rows[-1])
    assert marker["incomplete"] is True and marker["keys"] == 100
    assert marker["prefix"] == "cap:" and "LegacyListCap" in marker["reason"]

    # import reads the marker: a partial backup, said on the plan; its keys can be imported
    login(client, "ed")
    token = csrf_token(client, "/import")
    plan = client.post("/import", data={"csrf_token": token, "mode": "skip-existing",
                                        "file": (io.BytesIO(answer.get_data()), "cap.jsonl")})
    body = plan.get_data(as_text=True)
    assert plan.status_code == 200, body
    assert 'data-testid="plan-incomplete"' in body and 'data-invalid="0"' in body
    parsed = transfer.parse(answer.get_data(), max_bytes=MiB)
    assert parsed.incomplete is not None and parsed.incomplete.keys == 100
    assert len(parsed.records) == 100 and not parsed.invalid


def test_a_complete_export_has_no_marker_and_a_misplaced_marker_is_invalid(legacy):
    running, provider = legacy
    running.store.put("whole:a", "1")
    client = make_app(provider).test_client()
    login(client, "vi")
    answer = client.get("/export?prefix=whole:")
    assert "X-Export-Complete" not in answer.headers
    assert [strict_json(r)["key"] for r in answer.get_data().splitlines()] == ["whole:a"]
    marker = jsonl.marker_line("whole:", 1, "test").decode()
    joined = transfer.parse(lines(marker, {"key": "whole:b", "value": "v"}), max_bytes=MiB)
    assert [bad.line for bad in joined.invalid] == [1]
    assert "not the last line" in joined.invalid[0].message


def test_a_store_failing_midway_ends_the_export_with_the_marker():
    with start_backend("devstore") as backend:
        running = backend.extra["running"]
        for i in range(9):
            running.store.put(f"mid:k{i}", str(i))
        stats = transfer.ExportStats()
        out = []
        try:
            for line in transfer.export_lines(backend.provider, "mid:", page_size=3,
                                              stats=stats):
                out.append(line)
                if len(out) == 3:
                    running.set_unavailable(True)
        finally:
            running.set_unavailable(False)
    assert len(out) == 4 and not stats.complete
    marker = strict_json(out[-1])
    assert marker["incomplete"] is True and marker["keys"] == 3
    assert "failed after 3 key(s)" in marker["reason"]


def test_the_cli_export_writes_the_marker_too(legacy, tmp_path, capsys, monkeypatch):
    from dashboard.main import main

    for name in ("Mesh__KeyValue__Provider", "Dashboard__LegacyListCap"):
        monkeypatch.delenv(name, raising=False)
    running, _ = legacy
    for i in range(120):
        running.store.put(f"clicap:k{i:03d}", str(i))
    config = tmp_path / "appsettings.json"
    config.write_text(json.dumps({"Mesh": {"KeyValue": {
        "Provider": "ToskaStore", "ToskaStore": {"BaseUrl": running.url}}},
        "Dashboard": {"LegacyListCap": 100}}))
    out = tmp_path / "cap.jsonl"
    assert main(["export", "--config", str(config), "--prefix", "clicap:", "--output",
                 str(out), "--quiet"]) == 1
    assert "incomplete" in capsys.readouterr().err
    rows = out.read_bytes().splitlines()
    assert len(rows) == 101 and strict_json(rows[-1])["incomplete"] is True
    assert main(["import", "--config", str(config), str(out), "--yes"]) == 0
    assert "incomplete export" in capsys.readouterr().out


# --------------------------------------------------------------------------- 9: one confirm


def test_a_claim_is_taken_once_among_concurrent_callers(tmp_path, redis_server):
    """The atomic add a confirmation claims its upload with, in each session storage."""
    import redis as redis_lib
    from cachelib import FileSystemCache, RedisCache, SimpleCache

    client = redis_lib.Redis(host=redis_server.host, port=redis_server.port)
    caches = [SimpleCache(), FileSystemCache(str(tmp_path / "files")),
              RedisCache(client, key_prefix="t:")]
    try:
        for cache in caches:
            for round_ in range(5):
                barrier = threading.Barrier(8, timeout=TIMEOUT_S)
                won: list[bool] = []

                def race(cache=cache, round_=round_, barrier=barrier, won=won):
                    barrier.wait()
                    won.append(claim(cache, f"import-claim:{round_}", {"n": 1}, 60))

                threads = [threading.Thread(target=race) for _ in range(8)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(TIMEOUT_S)
                assert sorted(won) == [False] * 7 + [True], (type(cache).__name__, won)
            assert cache.get("import-claim:0") == {"n": 1}
    finally:
        client.close()


def test_a_second_confirmation_of_one_plan_writes_nothing(tmp_path):
    """A double click: while the first confirmation writes, the second answers 409 and
    writes nothing (item 9); the button is disabled on submit."""
    with start_backend("devstore-0.9.1") as backend:
        running = backend.extra["running"]
        app = make_app(backend.provider)
        client = app.test_client()
        login(client, "ed")
        token = csrf_token(client, "/import")
        data = lines(*({"key": f"twice:k{i}", "value": "v", "ttl_ms": None}
                       for i in range(20)))
        plan = client.post("/import", data={"csrf_token": token, "file": (
            io.BytesIO(data), "x.jsonl")})
        body = plan.get_data(as_text=True)
        assert plan.status_code == 200, body
        assert "data-submit-once" in body
        upload = body.split('name="upload" value="')[1].split('"')[0]

        running.delay_ms = 50  # the first confirmation takes about a second
        first: list = []
        writer = threading.Thread(target=lambda: first.append(client.post(
            "/import/confirm", data={"csrf_token": token, "upload": upload})))
        writer.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while running.store.get("twice:k0") is None and time.monotonic() < deadline:
                time.sleep(0.01)
            second = app.test_client()
            second.set_cookie("kvdash_session", client.get_cookie("kvdash_session").value)
            again = second.post("/import/confirm", data={"csrf_token": token,
                                                         "upload": upload})
            assert again.status_code == 409
            assert "already being applied" in again.get_data(as_text=True)
        finally:
            writer.join(TIMEOUT_S)
            running.delay_ms = 0
        assert first and first[0].status_code == 200
        assert 'data-written="20"' in first[0].get_data(as_text=True)
        audit = [line for line in client.get("/audit").get_data(as_text=True).splitlines()
                 if "twice:k0" in line]
        assert audit, "the first confirmation's writes are audited"


# --------------------------------------------------------------------------- 19: sizes


def test_size_refusals_state_the_size_exactly():
    limit = 16 * MiB
    with pytest.raises(transfer.TooBig) as refused:
        transfer.parse(b"x" * (limit + 1), max_bytes=limit)
    message = str(refused.value)
    assert "16,777,216 bytes" in message and "is 16.0 MiB, more than" not in message
    with pytest.raises(transfer.TooBig) as refused:
        transfer.parse(b"x" * (limit + 2), max_bytes=limit)
    assert "16,777,218 bytes, more than the 16.0 MiB (16,777,216 bytes)" in str(refused.value)


def test_an_upload_over_the_request_limit_names_the_setting(devstore_provider):
    app = make_app(devstore_provider, dashboard={"MaxImportBytes": 4096},
                   MAX_CONTENT_LENGTH=64 * 1024)
    client = app.test_client()
    login(client, "ed")
    token = csrf_token(client, "/import")
    big = b"x" * (200 * 1024)
    refused = client.post("/import", data={"csrf_token": token,
                                           "file": (io.BytesIO(big), "big.jsonl")})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 413
    assert "Dashboard__MaxImportBytes" in body and 'data-testid="import-error"' in body
    assert "4,096 bytes" in body or "4.0 KiB" in body


# --------------------------------------------------------------------------- 20: messages


def test_an_unconfirmed_write_inside_an_import_is_stated_exactly():
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    with start_backend("devstore") as backend:
        running = backend.extra["running"]
        slow = ToskaStoreProvider(running.url, timeout=0.3)
        try:
            app = make_app(slow)
            client = app.test_client()
            login(client, "ed")
            token = csrf_token(client, "/import")
            data = lines(*({"key": f"unk:k{i}", "value": "v", "ttl_ms": None}
                           for i in range(4)))
            plan = client.post("/import", data={"csrf_token": token, "file": (
                io.BytesIO(data), "x.jsonl")})
            upload = plan.get_data(as_text=True).split('name="upload" value="')[1].split('"')[0]
            running.delay_ms = 1000  # every answer comes after the dashboard gave up
            try:
                done = client.post("/import/confirm", data={"csrf_token": token,
                                                            "upload": upload})
            finally:
                running.delay_ms = 0
            body = done.get_data(as_text=True)
        finally:
            slow.close()
    assert done.status_code == 200, body
    assert "Nothing else was changed" not in body
    assert 'data-unknown="1"' in body and 'data-not-written="3"' in body
    assert 'data-written="0"' in body
    assert "unknown whether 1 key(s) were written" in body and "3 key(s) not written" in body
