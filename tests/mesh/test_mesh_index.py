"""The ``__keys`` index check and its repairs, against every real store.

Each test writes its own service under a fresh prefix: live keys straight to the store
(no index upkeep), then an index with chosen stale, missing and duplicate entries, and
compares the lists the check reports, and the index a repair writes, exactly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

import pytest

from dashboard import mesh
from dashboard.mesh.seed import seed
from dashboard.settings.load import load_settings
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.errors import Conflict
from dashboard.stores.mutations import NO_TTL
from tests.support.backends import Backend, start_backend

STORES = ["devstore", "devstore-legacy", "devstore-nolisting", "redis"]
ODD = "odd/ke y?#ü*[x]"

#: live keys and the drifted index most tests start from (``__keys`` lists itself)
LIVE = ["a", "b", "c", "d", ODD]
INDEX = ["b", "gone", "a", "b", "__keys", "c", "gone", "expired"]


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with start_backend(request.param) as backend:
        yield backend


def listing(backend: Backend) -> bool:
    return backend.provider.capabilities().key_listing


def write(backend: Backend, items: Mapping[str, str], ttl_ms: int | None = None) -> None:
    """Write keys straight to the store: no ``__keys`` upkeep, unlike ``Backend.seed``."""
    backend.bulk_writer(items, ttl_ms)


def put_index(provider: KeyValueProvider, service: mesh.Service, value: list | str) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    provider.put(service.index_full_key, text, ttl=NO_TTL)


def index_value(provider: KeyValueProvider, service: mesh.Service) -> str:
    return provider.get(service.index_full_key).value or ""


def full(service: mesh.Service, keys) -> list[str]:
    return sorted(service.prefix + k for k in keys)


@pytest.fixture
def service(prefix: str) -> mesh.Service:
    return mesh.Service(prefix[:-1], prefix)


@pytest.fixture
def drifted(store: Backend, service: mesh.Service) -> mesh.Service:
    """``LIVE`` keys, an expired one, and the drifted ``INDEX``."""
    write(store, {service.prefix + k: f'{{"k":"{k}"}}' for k in LIVE})
    write(store, {service.prefix + "expired": "soon gone"}, ttl_ms=1)
    put_index(store.provider, service, INDEX)
    time.sleep(0.02)
    return service


# --------------------------------------------------------------------------- check


def test_each_drift_kind_is_listed_exactly(store, drifted):
    progress: list[int] = []
    report = mesh.check_index(store.provider, drifted, on_progress=progress.append)

    assert report.index_exists and report.malformed is None
    assert report.stale == full(drifted, ["gone", "__keys", "expired"])
    assert report.duplicates == full(drifted, ["b", "gone"])
    assert report.indexed == len(INDEX)
    assert report.index_entries == tuple(INDEX)
    assert report.index_token == store.provider.get(drifted.index_full_key).token
    assert report.in_both == 3
    assert progress and not report.consistent
    if listing(store):
        assert report.unindexed_detectable
        assert report.unindexed == full(drifted, ["d", ODD])
        assert report.live == len(LIVE)
    else:
        # only the index entries can be checked: the ones that exist are the live keys
        assert not report.unindexed_detectable
        assert report.unindexed == []
        assert report.live == 3
        assert report.listing_note


def test_report_json_has_the_documented_keys(store, drifted):
    document = mesh.check_index(store.provider, drifted).to_json()
    assert {"prefix", "index_key", "indexed", "live", "stale", "unindexed", "duplicates",
            "malformed", "seconds", "in_both", "checked_at", "unindexed_detectable"} <= set(document)
    assert document["prefix"] == drifted.prefix
    assert document["index_key"] == drifted.index_full_key
    assert document["stale"] == full(drifted, ["gone", "__keys", "expired"])
    assert document["malformed"] is None
    json.dumps(document)  # serialisable as is


def test_consistent_index(store, service):
    write(store, {service.prefix + k: "v" for k in ("x", "y")})
    put_index(store.provider, service, ["y", "x"])
    report = mesh.check_index(store.provider, service)
    assert report.consistent
    assert (report.indexed, report.live, report.in_both) == (2, 2, 2)
    assert report.stale == report.unindexed == report.duplicates == []


NOT_JSON = "not json " + "x" * 300 + "TAIL"


@pytest.mark.parametrize("value, problem", [
    (NOT_JSON, "not valid JSON"),
    ('{"profile:alice": true}', "not a JSON array of strings"),
    ('["a", 1, null]', "not a JSON array of strings"),
])
def test_malformed_index_shows_the_reason_and_200_characters(store, service, value, problem):
    write(store, {service.prefix + k: "v" for k in ("a", "b")})
    put_index(store.provider, service, value)
    report = mesh.check_index(store.provider, service)

    assert report.index_exists and not report.consistent
    assert problem in report.malformed
    assert repr(value[:200]) in report.malformed
    assert "TAIL" not in report.malformed
    assert report.to_json()["malformed"] == report.malformed
    assert report.indexed == 0 and report.index_entries == ()
    for action in ("add-unindexed", "prune-stale", "dedupe"):
        with pytest.raises(mesh.RepairRefused, match="only"):
            mesh.plan_repair(store.provider, service, action, report=report)
    if not listing(store):
        with pytest.raises(mesh.RepairRefused):
            mesh.plan_repair(store.provider, service, "rebuild", report=report)
        return
    assert report.unindexed == full(service, ["a", "b"])
    plan = mesh.plan_repair(store.provider, service, "rebuild", report=report)
    assert plan.changes and plan.new_entries == ["a", "b"]
    mesh.apply_repair(store.provider, plan)
    assert index_value(store.provider, service) == '["a","b"]'


def test_malformed_index_without_keys_can_still_be_rebuilt(store, service):
    put_index(store.provider, service, "[oops")
    report = mesh.check_index(store.provider, service)
    assert report.malformed and report.live == 0
    if not listing(store):
        return
    plan = mesh.plan_repair(store.provider, service, "rebuild", report=report)
    assert plan.changes and plan.new_entries == []
    mesh.apply_repair(store.provider, plan)
    assert index_value(store.provider, service) == "[]"


def test_missing_index_is_drift_where_the_runtime_keeps_one(store, service):
    kept = replace(service, keeps_index=True)
    write(store, {kept.prefix + k: "v" for k in ("b", "a", "c")})
    report = mesh.check_index(store.provider, kept)
    assert not report.index_exists and report.index_token is None
    if not listing(store):
        # no listing and no index: nothing tells that keys exist
        assert report.consistent and report.live == 0
        return
    assert report.malformed.startswith("missing: the service has 3 keys but no index")
    assert not report.consistent
    assert report.unindexed == full(kept, ["a", "b", "c"])
    with pytest.raises(mesh.RepairRefused):
        mesh.plan_repair(store.provider, kept, "add-unindexed", report=report)
    result = mesh.apply_repair(store.provider, mesh.plan_repair(store.provider, kept, "rebuild"))
    assert result.previous_value is None
    assert index_value(store.provider, kept) == '["a","b","c"]'
    assert mesh.check_index(store.provider, kept).consistent


def test_missing_index_is_no_alarm_where_nothing_says_the_runtime_keeps_one(store, service):
    write(store, {service.prefix + k: "v" for k in ("b", "a")})
    expected = mesh.NoIndex if listing(store) else mesh.NoSuchService
    with pytest.raises(expected) as caught:
        mesh.check_index(store.provider, service)
    assert service.index_full_key in str(caught.value)
    with pytest.raises(expected):  # and no rebuild creates an index nobody keeps
        mesh.plan_repair(store.provider, service, "rebuild")
    assert store.provider.mget([service.index_full_key])[service.index_full_key] is None


def test_no_keys_and_no_index_is_no_such_service(store, service):
    with pytest.raises(mesh.NoSuchService, match="no such service"):
        mesh.check_index(store.provider, service)


def test_no_keys_and_no_index_is_consistent_where_the_runtime_keeps_one(store, service):
    report = mesh.check_index(store.provider, replace(service, keeps_index=True))
    assert report.consistent and not report.index_exists and report.malformed is None
    assert (report.indexed, report.live) == (0, 0)


def test_duplicates_are_harmless_unless_strict(store, service):
    write(store, {service.prefix + k: "v" for k in ("x", "y")})
    put_index(store.provider, service, ["x", "y", "x"])
    report = mesh.check_index(store.provider, service)
    assert report.duplicates == full(service, ["x"])
    assert report.consistent and not report.strictly_consistent


def test_seeded_drift_matches_the_seed_report(store):
    def bulk_put(items):
        for key, value, ttl_ms in items:
            write(store, {key: value}, ttl_ms)

    seeded = seed(store.provider, services=3, keys_per_service=40, drift_pct=25, seed=11,
                  bulk_put=bulk_put)
    assert seeded.indexed_services
    for name in seeded.indexed_services:
        service = mesh.Service(name, name + ":")
        drift = seeded.drift[name]
        report = mesh.check_index(store.provider, service)
        assert report.stale == full(service, drift.stale)
        assert report.duplicates == full(service, drift.duplicates)
        assert report.unindexed == (full(service, drift.missing) if listing(store) else [])
        assert report.indexed == len(seeded.live_keys[name]) - len(drift.missing) + len(
            drift.stale) + len(drift.duplicates)


def test_legacy_listing_cut_at_its_cap_keeps_stale_exact():
    from dashboard.devstore import start_devstore
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

    service = mesh.Service("capped", "capped:")
    with start_devstore(port=0, legacy=True) as running:
        for key in "abcde":
            running.store.put(service.prefix + key, "v")
        running.store.put(service.index_full_key, '["a","gone","b"]')
        provider = ToskaStoreProvider(running.url, legacy_list_cap=3)
        try:
            report = mesh.check_index(provider, service)
            with pytest.raises(mesh.RepairRefused, match="cannot list"):
                mesh.plan_repair(provider, service, "rebuild", report=report)
        finally:
            provider.close()
    assert report.stale == ["capped:gone"]  # a and b confirmed by a bulk read
    assert not report.unindexed_detectable and "listed only part" in report.listing_note
    assert set(report.unindexed) <= {"capped:c", "capped:d", "capped:e"}
    assert report.in_both == 2 and report.live == 2 + len(report.unindexed)


def test_services_with_index(store, prefix):
    indexed, bare, declared = f"{prefix[:-1]}i:", f"{prefix[:-1]}n:", f"{prefix[:-1]}d:"
    named = f"{prefix[:-1]}k:"
    write(store, {indexed + "k": "v", bare + "k": "v", named + "k": "v"})
    put_index(store.provider, mesh.Service("i", indexed), ["k"])
    settings = load_settings(environ={}, overrides={
        "Mesh": {"KeyValue": {"Provider": store.provider.kind}},
        "Dashboard": {"Services": [
            {"Name": "declared", "KeyPrefix": declared, "KeyIndexKey": "__idx",
             "EnableKeyIndex": True},
            {"Name": "bare", "KeyPrefix": bare},
            {"Name": "named", "KeyPrefix": named, "KeyIndexKey": "__named"},
        ]}})
    found = {s.prefix: s for s in mesh.services_with_index(store.provider, settings)}
    if store.provider.kind == "redis":
        assert found == {}  # the Redis runtime keeps no index: nothing to check or miss
        return
    assert found[declared].index_full_key == declared + "__idx"  # its runtime keeps one
    assert bare not in found  # configured, nothing says it keeps an index, none exists
    assert named not in found  # an index key name alone does not say the runtime keeps one
    if listing(store):
        assert found[indexed].index_full_key == indexed + "__keys"


def test_the_meshs_own_service_keeps_its_index_as_configured():
    settings = load_settings(environ={}, overrides={"Mesh": {
        "Service": {"ServiceName": "profiles"},
        "KeyValue": {"Provider": "ToskaStore", "ToskaStore": {
            "EnableKeyIndex": True, "KeyIndexKey": " meta:keys "}}}})
    own = mesh.service_for_prefix(settings, "profiles:")
    assert own.configured and own.keeps_index
    assert own.index_full_key == "profiles: meta:keys "  # verbatim, as the runtime builds it
    assert mesh.service_for_key(settings, "profiles:profile:alice") == own
    redis = load_settings(environ={}, overrides={"Mesh": {
        "Service": {"ServiceName": "profiles"},
        "KeyValue": {"ToskaStore": {"EnableKeyIndex": True}}}})
    assert mesh.service_for_prefix(redis, "profiles:").keeps_index is False


def test_service_for_prefix_uses_the_configured_index_key():
    settings = load_settings(environ={}, overrides={
        "Mesh": {"KeyValue": {"ToskaStore": {"KeyIndexKey": "__all"}}},
        "Dashboard": {"Services": [{"Name": "p", "KeyPrefix": "profiles", "KeyIndexKey": "__p"}]},
    })
    assert mesh.service_for_prefix(settings, "profiles").index_full_key == "profiles:__p"
    assert mesh.service_for_prefix(settings, "orders:").index_full_key == "orders:__all"
    assert mesh.service_for_prefix(settings, "profiles:sub").index_full_key == "profiles:sub:__all"


# --------------------------------------------------------------------------- repair

EXPECTED = {
    "add-unindexed": ["b", "gone", "a", "b", "c", "gone", "expired", "d", ODD],
    "prune-stale": ["b", "a", "b", "c"],
    "dedupe": ["b", "gone", "a", "c", "expired"],
    "rebuild": sorted(["a", "b", "c", "d", ODD]),
}
PLANNED = {  # (add, remove) as inner keys
    "add-unindexed": (["d", ODD], ["__keys"]),
    "prune-stale": ([], ["gone", "__keys", "expired"]),
    "dedupe": ([], ["b", "gone", "__keys"]),
    "rebuild": (["d", ODD], ["gone", "__keys", "expired"]),
}
NEEDS_LISTING = ("add-unindexed", "rebuild")


@pytest.mark.parametrize("action", mesh.ACTIONS)
def test_each_action_writes_exactly_the_expected_index(store, drifted, action, caplog):
    if action in NEEDS_LISTING and not listing(store):
        with pytest.raises(mesh.RepairRefused, match="cannot list"):
            mesh.plan_repair(store.provider, drifted, action)
        return
    before = index_value(store.provider, drifted)
    plan = mesh.plan_repair(store.provider, drifted, action)
    add, remove = PLANNED[action]
    assert (plan.add, plan.remove) == (full(drifted, add), full(drifted, remove))
    assert plan.new_entries == EXPECTED[action] and plan.changes
    assert plan.digest == mesh.plan_repair(store.provider, drifted, action).digest

    with caplog.at_level(logging.INFO, logger="dashboard.audit"):
        result = mesh.apply_repair(store.provider, plan, actor="tester")

    written = store.provider.get(drifted.index_full_key)
    assert written.value == mesh.serialise_index(EXPECTED[action])
    # the runtime's System.Text.Json bytes: compact, non-ASCII as upper-case \uXXXX
    assert written.value == json.dumps(EXPECTED[action], separators=(",", ":")).replace(
        "\\u00fc", "\\u00FC")
    if written.ttl_known:
        assert written.ttl_ms is None  # the runtime's format: no TTL
    assert result.previous_value == before and result.new_value == written.value
    assert result.attempts == 1
    assert result.removed == full(drifted, remove)
    assert result.added == full(drifted, add)
    [record] = [r for r in caplog.records if r.name == "dashboard.audit"]
    message = record.getMessage()
    assert "tester" in message and drifted.prefix in message and action in message
    assert f"added={len(add)} removed={len(remove)} attempts=1" in message

    again = mesh.check_index(store.provider, drifted)
    assert not mesh.plan_repair(store.provider, drifted, action, report=again).changes
    if action == "rebuild":
        assert again.consistent


def test_unknown_action_is_refused(store, drifted):
    with pytest.raises(mesh.RepairRefused, match="unknown"):
        mesh.plan_repair(store.provider, drifted, "reindex")


def test_repair_is_atomic_except_on_legacy_toskastore(store, drifted):
    mesh.check_index(store.provider, drifted)  # a first read tells index-mode servers apart
    assert mesh.repair_is_atomic(store.provider) is (store.name != "devstore-legacy")


class RacingProvider:
    """The real provider, except that ``writer`` runs once just before the first put.

    That puts a mesh service's index update between the repair's read of the index and
    its compare-and-swap write, every time.
    """

    def __init__(self, real: KeyValueProvider, writer: Callable[[], None], every: bool = False):
        self._real, self._writer, self._every = real, writer, every
        self.puts = 0

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def put(self, key: str, value: str, **options):
        self.puts += 1
        if self.puts == 1 or self._every:
            thread = threading.Thread(target=self._writer)
            thread.start()
            thread.join()
        return self._real.put(key, value, **options)


def runtime_writer(backend: Backend, service: mesh.Service, add: list[str], delete: list[str]):
    """Set and delete keys the way the mesh runtime does: blind read-modify-write of the index."""
    provider = backend.provider

    def update(change: Callable[[list[str]], list[str]]) -> None:
        keys = json.loads(provider.get(service.index_full_key).value or "[]")
        provider.put(service.index_full_key, json.dumps(change(keys)), ttl=NO_TTL)

    def run() -> None:
        for key in add:
            provider.put(service.prefix + key, '{"new":true}', ttl=NO_TTL)
            update(lambda keys, key=key: [*keys, key])
        for key in delete:
            provider.delete(service.prefix + key)
            update(lambda keys, key=key: [k for k in keys if k != key])

    return run


RACED = {  # the index after the writer added new:1, new:2 and deleted c meanwhile
    "add-unindexed": ["b", "gone", "a", "b", "gone", "expired", "new:1", "new:2", "d", ODD],
    "prune-stale": ["b", "a", "b", "new:1", "new:2"],
    "dedupe": ["b", "gone", "a", "expired", "new:1", "new:2"],
    "rebuild": sorted(["a", "b", "d", ODD, "new:1", "new:2"]),
}


@pytest.mark.parametrize("action", mesh.ACTIONS)
def test_repair_racing_a_runtime_writer_loses_none_of_its_keys(store, drifted, action):
    if action in NEEDS_LISTING and not listing(store):
        with pytest.raises(mesh.RepairRefused):  # without a listing, live keys are unknown
            mesh.plan_repair(store.provider, drifted, action)
        return
    plan = mesh.plan_repair(store.provider, drifted, action)
    racing = RacingProvider(store.provider, runtime_writer(store, drifted, ["new:1", "new:2"], ["c"]))

    result = mesh.apply_repair(racing, plan)

    final = json.loads(index_value(store.provider, drifted))
    assert final == RACED[action]
    assert {"new:1", "new:2"} <= set(final) and "__keys" not in final
    assert result.attempts == 2 and racing.puts == 2
    assert json.loads(result.previous_value) != list(INDEX)  # the writer's version was replaced


def test_repair_gives_up_when_the_index_keeps_changing(store, drifted):
    plan = mesh.plan_repair(store.provider, drifted, "prune-stale")
    counter = iter(range(1000))

    def writer() -> None:
        runtime_writer(store, drifted, [f"busy:{next(counter)}"], [])()

    racing = RacingProvider(store.provider, writer, every=True)
    with pytest.raises(Conflict, match="gave up after 3 attempts"):
        mesh.apply_repair(racing, plan, attempts=3)
    final = json.loads(index_value(store.provider, drifted))
    assert final[-3:] == ["busy:0", "busy:1", "busy:2"] and "gone" in final  # nothing written


def test_backup_hook_sees_the_value_being_replaced(store, drifted):
    seen: list[str | None] = []
    before = index_value(store.provider, drifted)
    plan = mesh.plan_repair(store.provider, drifted, "dedupe")
    mesh.apply_repair(store.provider, plan, before_write=seen.append)
    assert seen == [before]


def test_repair_of_a_consistent_index_writes_nothing(store, service):
    write(store, {service.prefix + "k": "v"})
    put_index(store.provider, service, ["k"])
    token = store.provider.get(service.index_full_key).token
    for action in mesh.ACTIONS:
        if action in NEEDS_LISTING and not listing(store):
            continue
        plan = mesh.plan_repair(store.provider, service, action)
        assert not plan.changes and plan.add == plan.remove == []
        assert mesh.apply_repair(store.provider, plan).attempts == 0
    assert store.provider.get(service.index_full_key).token == token


def test_redis_index_of_another_type_is_malformed():
    service = mesh.Service("typed", "typed:")
    with start_backend("redis") as redis_store:
        redis_store.extra["raw"].hset(service.index_full_key, "a", "1")
        report = mesh.check_index(redis_store.provider, service)
    assert "Redis hash" in report.malformed
