"""The store seen through one operator's access (``GuardedProvider``), on real stores: what a
rule hides is never returned, what it forbids is never written, masked fields never leave."""

from __future__ import annotations

import json
import uuid

import pytest

from dashboard.mesh.access.guarded import DENIED, AccessDenied, GuardedProvider
from dashboard.mesh.access.policy import MASK, AccessPolicy, Identity
from dashboard.settings.load import load_settings
from dashboard.stores.entries import Dumped
from dashboard.stores.errors import ProviderError
from dashboard.stores.mutations import NO_TTL
from tests.support.backends import start_backend


@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def world(store):
    """Three services under a fresh run id: ``pay`` (restricted to pay-team), ``id``
    (security reads it, emails and tokens masked) and ``open`` (no rule)."""
    run = uuid.uuid4().hex[:6]
    pay, ident, public = f"pay{run}:", f"id{run}:", f"open{run}:"
    store.seed({f"{pay}card:1": '{"amount": 5, "secret": "s3"}', f"{pay}card:2": '{"amount": 7}',
                f"{ident}u1": json.dumps({"name": "Ann", "email": "ann@x.io",
                                          "nested": {"token": "tok-123"}}),
                f"{public}a": '{"n": 1}'})
    dashboard = load_settings(environ={
        "Dashboard__Access__0__Prefixes": pay, "Dashboard__Access__0__Role": "editor",
        "Dashboard__Access__0__Groups": "pay-team",
        "Dashboard__Access__1__Prefixes": ident, "Dashboard__Access__1__Role": "viewer",
        "Dashboard__Access__1__Groups": "security,pay-team",
        "Dashboard__Masking__0__Prefixes": ident,
        "Dashboard__Masking__0__JsonFields": "email,token",
    }).dashboard
    policy = AccessPolicy.from_settings(dashboard)
    return store, policy, {"pay": pay, "id": ident, "open": public, "run": run}


def guard(store, policy, name, role="viewer", groups=()):
    return GuardedProvider(store.provider, policy, Identity(name, role, frozenset(groups)))


def everything_said(value) -> str:
    return repr(value)


def test_listings_leave_out_what_the_operator_may_not_read(world):
    store, policy, p = world
    outsider = guard(store, policy, "sam", "editor")
    keys = [key for key in outsider.iter_keys("") if p["run"] in key]
    assert keys == [f"{p['open']}a"]
    page = outsider.scan("", limit=1000)
    assert all(p["pay"] not in e.key and p["id"] not in e.key for e in page.entries)
    assert outsider.list_keys(p["pay"], limit=100).keys == []
    assert outsider.dump(p["pay"], limit=100).items == []
    assert outsider.count_keys(p["pay"]) == (0, True)
    matched, cursor = [], None
    while True:
        found = outsider.scan_matching("", f"*{p['run']}*", cursor=cursor, budget=100_000)
        matched += [e.key for e in found.entries]
        if not (cursor := found.next_cursor):
            break
    assert matched == [f"{p['open']}a"]
    listing = outsider.list_segments("")
    assert p["pay"] not in listing.folders and p["open"] in listing.folders
    assert not outsider.reads_under(p["pay"]) and outsider.reads_under("")


def test_a_direct_read_of_a_hidden_key_is_refused_and_says_why(world):
    store, policy, p = world
    outsider = guard(store, policy, "sam", "editor")
    for read in (lambda k: outsider.get(k), lambda k: outsider.read_bytes(k),
                 lambda k: outsider.exists_many([k])):
        with pytest.raises(AccessDenied) as caught:
            read(f"{p['pay']}card:1")
        assert p["pay"] in caught.value.message and caught.value.http_status == 403
        assert "s3" not in caught.value.message


def test_a_bulk_lookup_answers_a_hidden_key_with_a_row_that_says_so(world):
    store, policy, p = world
    outsider = guard(store, policy, "sam", "editor")
    rows = outsider.mget([f"{p['open']}a", f"{p['pay']}card:1", f"{p['open']}missing"])
    assert rows[f"{p['open']}a"].value == '{"n": 1}'
    assert rows[f"{p['pay']}card:1"].type == DENIED and rows[f"{p['pay']}card:1"].value is None
    assert rows[f"{p['open']}missing"] is None
    assert "s3" not in everything_said(rows)


def test_writes_outside_the_operators_rules_are_refused_before_the_store_is_asked(world):
    store, policy, p = world
    outsider = guard(store, policy, "sam", "editor")
    reader = guard(store, policy, "sec", "editor", ["security"])
    key = f"{p['pay']}card:1"
    token = store.provider.get(key).token
    for attempt in (lambda g: g.put(key, "x", ttl=NO_TTL, expected=token),
                    lambda g: g.delete(key, expected=token),
                    lambda g: g.restore(Dumped(key=key, value="x"), expected=token),
                    lambda g: g.put(f"{p['id']}u1", "x", ttl=NO_TTL)):
        for who in (outsider, reader):
            with pytest.raises(AccessDenied):
                attempt(who)
    assert store.provider.get(key).value == '{"amount": 5, "secret": "s3"}'
    payer = guard(store, policy, "pat", "viewer", ["pay-team"])
    payer.put(key, '{"amount": 6}', ttl=NO_TTL, expected=token)
    assert store.provider.get(key).value == '{"amount": 6}'
    with pytest.raises(AccessDenied):  # a global viewer elsewhere
        payer.put(f"{p['open']}a", "x", ttl=NO_TTL)


def test_masked_fields_never_leave_for_an_operator_who_may_not_write(world):
    store, policy, p = world
    reader = guard(store, policy, "sec", "viewer", ["security"])
    key = f"{p['id']}u1"
    secrets = ("ann@x.io", "tok-123")
    shown = reader.get(key)
    assert json.loads(shown.value) == {"name": "Ann", "email": MASK, "nested": {"token": MASK}}
    assert not shown.verifiable  # a masked value is never the base of a write
    answers = [shown, reader.read_bytes(key), reader.mget([key]), reader.scan(p["id"]),
               reader.dump(p["id"]), reader.scan_matching(p["id"], "*")]
    for answer in answers:
        said = everything_said(answer)
        assert not any(secret in said for secret in secrets), said
    assert json.loads(reader.read_bytes(key))["email"] == MASK


def test_a_value_search_does_not_match_inside_a_masked_field(world):
    store, policy, p = world
    reader = guard(store, policy, "sec", "viewer", ["security"])
    inside = reader.search_values(p["id"], "ann@x", budget=1000)
    assert inside.hits == [] and inside.entries == []
    outside = reader.search_values(p["id"], "Ann", budget=1000)
    assert [hit.entry.key for hit in outside.hits] == [f"{p['id']}u1"]
    assert "ann@x.io" not in everything_said(outside)
    # an operator who may write there sees (and finds) the value
    with pytest.raises(AccessDenied):
        guard(store, policy, "sam", "editor").get(f"{p['id']}u1")
    unmasked = GuardedProvider(store.provider, policy, Identity("root", "editor", unrestricted=True))
    assert unmasked.search_values(p["id"], "ann@x", budget=1000).hits


def test_an_unrestricted_identity_reaches_everything(world):
    store, policy, p = world
    root = GuardedProvider(store.provider, policy, Identity("cli", "editor", unrestricted=True))
    assert "ann@x.io" in root.get(f"{p['id']}u1").value
    assert root.may_write(f"{p['pay']}card:1")


def test_store_facts_pass_and_key_reading_extras_do_not(world):
    store, policy, p = world
    outsider = guard(store, policy, "sam", "editor")
    with pytest.raises(AttributeError):
        outsider.client  # noqa: B018 - a raw client would bypass every rule
    if store.name == "redis":
        with pytest.raises(AccessDenied):
            outsider.memory_usage(f"{p['pay']}card:1")
    try:
        outsider.info()
    except ProviderError:
        pytest.fail("the store's health is not a key: anyone logged in may see it")


def test_a_redis_hash_field_named_like_a_masked_property_is_masked(world):
    store, policy, p = world
    if "raw" not in store.extra:
        pytest.skip("hashes are Redis's")
    key = f"{p['id']}h1"
    store.extra["raw"].hset(key, mapping={"email": "ann@x.io", "name": "Ann"})
    reader = guard(store, policy, "sec", "viewer", ["security"])
    for answer in (reader.get(key), reader.mget([key], exact=True)[key], reader.dump(p["id"])):
        assert "ann@x.io" not in everything_said(answer), answer
    assert reader.get(key).content["email"] == MASK


def test_the_guarded_provider_answers_every_contract_method_itself():
    """A contract method with a default implementation the guard did not override would
    read or write through the base class, unchecked: every one is the guard's own."""
    from dashboard.stores.base import KeyValueProvider

    public = {name for name in vars(KeyValueProvider) if not name.startswith("_")
              and callable(getattr(KeyValueProvider, name))}
    assert public - set(vars(GuardedProvider)) == set()
