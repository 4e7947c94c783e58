"""Access per prefix: the rules' decisions and masking, as pure functions of the settings."""

from __future__ import annotations

import json

import pytest

from dashboard.mesh.access.policy import MASK, AccessPolicy, Identity, mask_json
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings


def policy_of(env: dict[str, str]) -> AccessPolicy:
    return AccessPolicy.from_settings(load_settings(environ=env).dashboard)


RULES = {
    "Dashboard__Access__0__Prefixes": "payments:,billing",
    "Dashboard__Access__0__Role": "editor",
    "Dashboard__Access__0__Groups": "Pay-Team",
    "Dashboard__Access__1__Prefixes": "payments:",
    "Dashboard__Access__1__Role": "viewer",
    "Dashboard__Access__1__Users": "auditor",
    "Dashboard__Access__2__Prefixes": "identity:",
    "Dashboard__Access__2__Role": "viewer",
    "Dashboard__Access__2__Groups": "security",
    "Dashboard__Masking__0__Prefixes": "identity:",
    "Dashboard__Masking__0__JsonFields": "email,token",
}


def test_a_restricted_prefix_is_reached_only_by_the_operators_its_rules_name():
    policy = policy_of(RULES)
    payer = Identity("pat", "viewer", frozenset({"pay-team"}))
    auditor = Identity("auditor", "editor")
    stranger = Identity("sam", "editor")
    assert policy.role_for(payer, "payments:card:1") == "editor"
    assert policy.role_for(payer, "billing:x") == "editor"  # "billing" read as "billing:"
    assert policy.role_for(auditor, "payments:card:1") == "viewer"  # the rule's role, not global
    assert policy.role_for(stranger, "payments:card:1") == "none"  # a global editor, not named
    assert not policy.may_read(stranger, "payments:x") and policy.may_read(stranger, "orders:1")
    assert policy.role_for(payer, "identity:u1") == "none"


def test_a_prefix_ends_at_its_delimiter_and_unrestricted_keys_follow_the_global_role():
    policy = policy_of(RULES)
    viewer = Identity("vi", "viewer")
    assert policy.role_for(viewer, "payments2:x") == "viewer"  # not under payments:
    assert policy.role_for(viewer, "paymentsx") == "viewer"
    assert policy.role_for(viewer, "no-prefix-at-all") == "viewer"


def test_the_highest_role_of_the_matching_rules_wins():
    policy = policy_of(RULES)
    both = Identity("auditor", "viewer", frozenset({"pay-team"}))
    assert policy.role_for(both, "payments:1") == "editor"


def test_nested_restricted_prefixes_the_longest_decides():
    policy = policy_of({
        "Dashboard__Access__0__Prefixes": "pay:", "Dashboard__Access__0__Role": "editor",
        "Dashboard__Access__0__Users": "pat",
        "Dashboard__Access__1__Prefixes": "pay:card:", "Dashboard__Access__1__Role": "viewer",
        "Dashboard__Access__1__Users": "pat,cara"})
    pat, cara = Identity("pat", "viewer"), Identity("cara", "viewer")
    assert policy.role_for(pat, "pay:other") == "editor"
    assert policy.role_for(pat, "pay:card:1") == "viewer"
    assert policy.role_for(cara, "pay:card:1") == "viewer" and policy.role_for(cara, "pay:x") == "none"
    assert policy.hidden_under(cara, "pay:") == ("pay:",)
    assert policy.hidden_under(cara, "") == ("pay:",)


def test_writing_needs_an_elevation_where_it_is_required():
    policy = policy_of({**RULES, "Dashboard__Elevation__Required": "true"})
    payer = Identity("pat", "viewer", frozenset({"pay-team"}))
    assert policy.may_edit(payer, "payments:1") and not policy.may_write(payer, "payments:1")
    elevated = Identity("pat", "viewer", frozenset({"pay-team"}), elevation_reason="INC-1 outage")
    assert policy.may_write(elevated, "payments:1")
    assert not policy.may_write(elevated, "orders:1")  # a global viewer stays one


def test_masking_applies_to_those_who_may_not_write():
    policy = policy_of({**RULES, "Dashboard__Elevation__Required": "true"})
    reader = Identity("sec", "viewer", frozenset({"security"}))
    assert policy.masked_fields(reader, "identity:u1") == frozenset({"email", "token"})
    assert policy.masked_fields(reader, "orders:1") == frozenset()
    policy = policy_of({"Dashboard__Masking__0__Prefixes": "identity:",
                        "Dashboard__Masking__0__JsonFields": "email",
                        "Dashboard__Elevation__Required": "true"})
    editor = Identity("ed", "editor")
    assert policy.masked_fields(editor, "identity:u1") == frozenset({"email"})  # not elevated
    assert policy.masked_fields(Identity("ed", "editor", elevation_reason="INC-2 fix it"),
                                "identity:u1") == frozenset()


def test_mask_json_hides_named_properties_at_any_depth():
    text = json.dumps({"email": "a@b.c", "profile": {"token": "t0k", "name": "A"},
                       "list": [{"email": "x@y.z"}, 3]})
    masked, changed = mask_json(text, {"email", "token"})
    assert changed and "a@b.c" not in masked and "t0k" not in masked and "x@y.z" not in masked
    assert json.loads(masked)["profile"] == {"token": MASK, "name": "A"}
    assert mask_json('{"name": "A"}', {"email"}) == ('{"name": "A"}', False)  # untouched bytes
    assert mask_json("not json email", {"email"}) == ("not json email", False)
    deep = "[" * 5000 + "]" * 5000
    assert mask_json(deep, {"email"}) == (deep, False)  # too deep to parse: left as it is


def test_rules_naming_other_stores_do_not_apply():
    dashboard = load_settings(environ={
        "Dashboard__Access__0__Prefixes": "pay:", "Dashboard__Access__0__Role": "editor",
        "Dashboard__Access__0__Users": "pat", "Dashboard__Access__0__Stores": "eu"}).dashboard
    assert AccessPolicy.from_settings(dashboard, store="eu").restricted == ("pay:",)
    assert AccessPolicy.from_settings(dashboard, store="us").restricted == ()


@pytest.mark.parametrize(("env", "said"), [
    ({"Dashboard__Access__0__Prefixes": "pay:", "Dashboard__Access__0__Role": "admin",
      "Dashboard__Access__0__Users": "a"}, "Dashboard__Access__0__Role"),
    ({"Dashboard__Access__0__Prefixes": "pay:", "Dashboard__Access__0__Role": "viewer"},
     "Dashboard__Access__0__Users"),
    ({"Dashboard__Access__0__Role": "viewer", "Dashboard__Access__0__Users": "a"},
     "Dashboard__Access__0__Prefixes"),
    ({"Dashboard__Access__0__Prefixes": "pay*", "Dashboard__Access__0__Role": "viewer",
      "Dashboard__Access__0__Users": "a"}, "no patterns"),
    ({"Dashboard__Masking__0__Prefixes": "id:"}, "Dashboard__Masking__0__JsonFields"),
    ({"Dashboard__Elevation__MaxMinutes": "0"}, "Dashboard__Elevation__MaxMinutes"),
    ({"Dashboard__Environment__Name": "prod", "Dashboard__Environment__Color": "red;x"},
     "Dashboard__Environment__Color"),
])
def test_a_malformed_rule_stops_start_up_naming_the_setting(env, said):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert said in str(caught.value)


def test_users_carry_groups_and_the_environment_a_colour():
    settings = load_settings(environ={
        "Dashboard__Users__0__Name": "pat", "Dashboard__Users__0__PasswordHash": "h",
        "Dashboard__Users__0__Groups": "Pay-Team, ops",
        "Dashboard__Environment__Name": "production", "Dashboard__Environment__Color": "#F00"})
    assert settings.dashboard.users[0].groups == ("pay-team", "ops")
    assert settings.dashboard.environment_color == "#f00"
    shown = settings.masked()["Dashboard"]
    assert shown["Environment"] == {"Name": "production", "Color": "#f00"}
    assert shown["Users"][0]["Groups"] == "pay-team,ops"
