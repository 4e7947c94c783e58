"""Sample data: written through real providers, with exactly the index drift it reports."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from dashboard.devstore import start_devstore
from dashboard.mesh import meshjson, open_store
from dashboard.mesh.seed import ODD_KEYS, XSS_VALUE, SeedReport, seed, service_names
from dashboard.settings.load import load_settings
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.errors import NotFound
from tests.support.redis_server import RedisServer

SERVICES = 5
KEYS = 60
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


@pytest.fixture(scope="module", params=["devstore", "redis"])
def seeded(request: pytest.FixtureRequest) -> Iterator[tuple[KeyValueProvider, SeedReport]]:
    """A fresh store of each kind, seeded once through ``mesh.open_store``'s provider."""
    if request.param == "devstore":
        with start_devstore(port=0) as running:
            settings = load_settings(environ={}, overrides={"Mesh": {"KeyValue": {
                "Provider": "ToskaStore", "ToskaStore": {"BaseUrl": running.url}}}})
            provider = open_store(settings)
            try:
                yield provider, seed(provider, services=SERVICES, keys_per_service=KEYS)
            finally:
                provider.close()
    else:
        with RedisServer() as server:
            settings = load_settings(environ={}, overrides={"Mesh": {"KeyValue": {
                "Provider": "Redis",
                "Redis": {"ConnectionString": f"{server.host}:{server.port}"}}}})
            provider = open_store(settings)
            try:
                yield provider, seed(provider, services=SERVICES, keys_per_service=KEYS)
            finally:
                provider.close()


def read_index(provider: KeyValueProvider, report: SeedReport, service: str) -> list[str]:
    entry = provider.get(report.index_full_key(service))
    assert entry.ttl_ms is None or not entry.ttl_known
    index = json.loads(entry.value)
    assert isinstance(index, list)
    return index


def test_services_and_live_keys(seeded):
    provider, report = seeded
    assert report.services == ["profiles", "sessions", "orders", "catalog", "notifications"]
    indexes = len(report.indexed_services)
    assert report.keys_written == SERVICES * KEYS + indexes
    for service in report.services:
        listed = set(provider.iter_keys(f"{service}:"))
        listed.discard(report.index_full_key(service))
        assert listed == {f"{service}:{k}" for k in report.live_keys[service]}
        assert len(report.live_keys[service]) == KEYS


def test_most_services_have_an_index_and_one_has_none(seeded):
    provider, report = seeded
    assert len(report.indexed_services) == SERVICES - 1
    assert report.unindexed_services == ["catalog"]
    with pytest.raises(NotFound):
        provider.get(report.index_full_key("catalog"))


def test_index_drift_matches_the_report_exactly(seeded):
    provider, report = seeded
    for service in report.indexed_services:
        index = read_index(provider, report, service)
        live = set(report.live_keys[service])
        drift = report.drift[service]
        assert report.index_key not in index
        assert set(index) - live == set(drift.stale)
        assert live - set(index) == set(drift.missing)
        counts = Counter(index)
        assert {k for k, n in counts.items() if n > 1} == set(drift.duplicates)
        assert all(counts[k] == 2 for k in drift.duplicates)
        assert drift.stale and drift.missing and drift.duplicates
        assert len(index) == len(live) - len(drift.missing) + len(drift.stale) + len(
            drift.duplicates
        )


def test_odd_keys_and_values_round_trip(seeded):
    provider, report = seeded
    service = report.odd_service
    assert service == "profiles"
    for key in ODD_KEYS:
        assert key in report.live_keys[service]
        assert provider.get(f"{service}:{key}").value is not None
    assert provider.get(f"{service}:note:xss").value == XSS_VALUE
    assert provider.get(f"{service}:empty").value == ""
    assert provider.get(f"{service}:xml:feed").value.startswith("<?xml")
    blob = provider.get(f"{service}:blob:avatar").value
    assert len(base64.b64decode(blob, validate=True)) == 48
    with pytest.raises(json.JSONDecodeError):
        json.loads(provider.get(f"{service}:text:plain").value)
    theme = json.loads(provider.get(f"{service}:config/theme").value)
    assert theme["theme"] == "dark"


def _property_names(document) -> Iterator[str]:
    if isinstance(document, dict):
        for name, value in document.items():
            yield name
            yield from _property_names(value)
    elif isinstance(document, list):
        for item in document:
            yield from _property_names(item)


def test_values_are_compact_camel_case_json(seeded):
    provider, report = seeded
    documents = 0
    for service in report.services:
        keys = [f"{service}:{k}" for k in report.live_keys[service]]
        for key, entry in provider.mget(keys).items():
            assert entry is not None, key
            try:
                document = json.loads(entry.value)
            except json.JSONDecodeError:
                continue
            if not isinstance(document, dict):
                continue
            documents += 1
            assert meshjson.is_mesh_form(entry.value), entry.value  # the runtime's own bytes
            assert all(CAMEL.match(name) for name in _property_names(document)), entry.value
    assert documents > SERVICES * KEYS * 0.8
    profile = next(k for k in report.live_keys["profiles"] if k.startswith("profile:"))
    document = json.loads(provider.get(f"profiles:{profile}").value)
    assert {"id", "displayName", "tags", "createdUtc"} <= set(document)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["createdUtc"])


def test_about_a_fifth_of_keys_carry_a_ttl(seeded):
    provider, report = seeded
    total = SERVICES * KEYS
    assert 0.1 * total < len(report.ttl_keys) < 0.3 * total
    assert min(report.ttl_keys.values()) >= 5 * 60_000
    assert max(report.ttl_keys.values()) <= 14 * 86_400_000
    if not provider.capabilities().ttl_visible:
        return
    for key in sorted(report.ttl_keys)[:20]:
        entry = provider.get(key)
        assert entry.ttl_ms is not None
        assert 0 < entry.ttl_ms <= report.ttl_keys[key]
    without = [f"profiles:{k}" for k in report.live_keys["profiles"]
               if f"profiles:{k}" not in report.ttl_keys][:20]
    for key in without:
        assert provider.get(key).ttl_ms is None


def _collect(**kwargs) -> tuple[SeedReport, list[tuple[str, str, int | None]]]:
    written: list[tuple[str, str, int | None]] = []
    report = seed(None, bulk_put=written.extend, **kwargs)  # type: ignore[arg-type]
    return report, written


def test_deterministic_for_a_seed_and_different_for_another():
    first, items = _collect(services=3, keys_per_service=40)
    again, items_again = _collect(services=3, keys_per_service=40)
    other, items_other = _collect(services=3, keys_per_service=40, seed=7)
    assert items == items_again and first == again
    assert items != items_other
    assert len(items) == first.keys_written == 3 * 40 + 2


def test_no_drift_at_zero_percent_and_names_cycle():
    report, items = _collect(services=12, keys_per_service=5, drift_pct=0)
    assert report.services[10:] == ["profiles2", "sessions2"]
    assert service_names(21)[-1] == "profiles3"
    assert all(not (d.stale or d.missing or d.duplicates) for d in report.drift.values())
    values = dict((k, v) for k, v, _ in items)
    for service in report.indexed_services:
        index = json.loads(values[f"{service}:__keys"])
        assert index == report.live_keys[service]
    assert len(report.unindexed_services) == 3


def test_rejects_nonsense_arguments():
    with pytest.raises(ValueError):
        seed(None, services=-1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        seed(None, drift_pct=101)  # type: ignore[arg-type]
