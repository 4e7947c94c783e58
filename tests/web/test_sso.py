"""Single sign-on through an authenticating proxy (oauth2-proxy style): the proxy's header
logs operators in, with roles from their groups, and only when it comes through the proxy."""

from __future__ import annotations

import html
import logging
import re

import pytest

from dashboard.devstore import start_devstore
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import login, make_app

KEY = "sso:doc"
EDIT = f"/key/edit?key={KEY}"
SSO = {
    "ForwardedProxies": 1,
    "TrustedAuthHeader": "X-Forwarded-User",
    # a sidecar proxy in the pod: the test client's peer is 127.0.0.1
    "TrustedAuthProxies": "127.0.0.1",
    "TrustedAuthGroupsHeader": "X-Forwarded-Groups",
    "TrustedAuthRoles": {"platform-admins": "editor", "kv-readers": "viewer"},
}


@pytest.fixture(scope="module")
def store():
    with start_devstore(port=0) as running:
        running.store.put(KEY, '{"a":1}')
        provider = ToskaStoreProvider(running.url, timeout=5.0)
        try:
            yield provider
        finally:
            provider.close()


def sso_client(store, **settings):
    return make_app(store, dashboard={**SSO, **settings}).test_client()


def via_proxy(user: str | None = "alice", groups: str | None = None, **extra: str):
    headers = dict(extra)
    if user is not None:
        headers["X-Forwarded-User"] = user
    if groups is not None:
        headers["X-Forwarded-Groups"] = groups
    return headers


def who(response) -> str | None:
    match = re.search(r'<span class="who">([^<]*)</span>', response.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


def session_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("kvdash_session=")]


# --- logging in through the proxy ----------------------------------------------------------

def test_the_header_logs_in_without_a_password_and_keeps_one_session(store):
    client = sso_client(store)
    first = client.get("/services", headers=via_proxy("alice", "platform-admins"))
    assert first.status_code == 200
    assert who(first) == "alice (editor)"
    assert len(session_cookies(first)) == 1  # a session, as for a password login
    again = client.get("/services", headers=via_proxy("alice", "platform-admins"))
    assert who(again) == "alice (editor)"
    assert session_cookies(again) == []  # the same session: no new login per request


@pytest.mark.parametrize(("groups", "role"), [
    ("platform-admins", "editor"),
    ("kv-readers", "viewer"),
    ("kv-readers, platform-admins", "editor"),  # the highest mapped role wins
    ("Platform-Admins", "editor"),  # groups match case-insensitively, as settings keys do
    ("other-team", "viewer"),  # no mapped group: the default role
    (None, "viewer"),
])
def test_roles_come_from_the_groups(store, groups, role):
    client = sso_client(store)
    page = client.get("/services", headers=via_proxy("alice", groups))
    assert who(page) == f"alice ({role})"
    edit = client.get(EDIT, headers=via_proxy("alice", groups))
    assert edit.status_code == (200 if role == "editor" else 403)


def test_a_role_change_takes_effect_on_the_next_request(store):
    client = sso_client(store)
    assert client.get(EDIT, headers=via_proxy("alice", "platform-admins")).status_code == 200
    # the identity provider dropped alice from platform-admins: the very next page knows it
    demoted = client.get(EDIT, headers=via_proxy("alice", "kv-readers"))
    assert demoted.status_code == 403
    assert who(client.get("/services", headers=via_proxy("alice", "kv-readers"))) == \
        "alice (viewer)"
    assert client.get(EDIT, headers=via_proxy("alice", "platform-admins")).status_code == 200


def test_default_role_none_refuses_operators_without_a_mapped_group(store):
    client = sso_client(store, TrustedAuthDefaultRole="none")
    refused = client.get("/services", headers=via_proxy("mallory", "other-team"))
    assert refused.status_code == 403
    body = html.unescape(refused.get_data(as_text=True))
    assert "No dashboard role" in body and "other-team" in body
    assert who(refused) is None
    allowed = client.get("/services", headers=via_proxy("alice", "kv-readers"))
    assert who(allowed) == "alice (viewer)"
    # a session that loses its last mapped group is ended, not kept with the old role
    assert client.get("/services", headers=via_proxy("alice", "other-team")).status_code == 403
    assert is_login_redirect(client.get("/services"))


def test_a_utf8_name_is_read_as_utf8(store):
    client = sso_client(store)
    # HTTP headers travel as bytes; the proxy writes UTF-8, WSGI hands them over as Latin-1
    name = "zoë".encode().decode("latin-1")
    assert who(client.get("/services", headers=via_proxy(name))) == "zoë (viewer)"


def test_another_name_in_the_same_browser_replaces_the_session(store):
    client = sso_client(store)
    assert who(client.get("/services", headers=via_proxy("alice", "platform-admins"))) == \
        "alice (editor)"
    assert who(client.get("/services", headers=via_proxy("bob"))) == "bob (viewer)"


def test_the_login_page_sends_an_sso_operator_on(store):
    client = sso_client(store)
    response = client.get("/login?next=/mget", headers=via_proxy("alice"))
    assert response.status_code == 302
    assert response.headers["Location"] == "/mget"


def test_logout_explains_it_happens_at_the_proxy(store):
    client = sso_client(store)
    page = client.get("/services", headers=via_proxy("alice")).get_data(as_text=True)
    token = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    response = client.post("/logout", data={"csrf_token": token}, headers=via_proxy("alice"))
    assert response.status_code == 302
    back = client.get("/services", headers=via_proxy("alice"))
    body = html.unescape(back.get_data(as_text=True))
    assert "log out at the proxy" in body
    assert who(back) == "alice (viewer)"  # the proxy still vouches for alice


def test_password_logins_still_work_beside_sso(store):
    client = sso_client(store)
    login(client, "ed")  # break-glass access without the proxy (port-forward)
    assert who(client.get("/services")) == "ed (editor)"


# --- spoofing: the header counts only through the trusted proxy ---------------------------

def test_without_forwarded_proxies_the_header_is_ignored_and_a_warning_logged(store, caplog):
    with caplog.at_level(logging.WARNING):
        client = sso_client(store, ForwardedProxies=0)
    assert any("Dashboard__TrustedAuthHeader=X-Forwarded-User is ignored" in r.getMessage()
               and "ForwardedProxies is 0" in r.getMessage() for r in caplog.records)
    assert is_login_redirect(client.get("/services", headers=via_proxy("alice",
                                                                       "platform-admins")))


def test_without_the_sso_setting_the_header_is_ignored(store):
    client = make_app(store, dashboard={"ForwardedProxies": 1}).test_client()
    assert is_login_redirect(client.get("/services", headers=via_proxy("alice",
                                                                       "platform-admins")))


def test_an_untrusted_peer_cannot_name_itself(store, caplog):
    client = sso_client(store)
    client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    # X-Forwarded-For makes ProxyFix report a loopback client: the original peer still counts
    headers = via_proxy("alice", "platform-admins", **{"X-Forwarded-For": "127.0.0.1"})
    with caplog.at_level(logging.WARNING):
        assert is_login_redirect(client.get("/services", headers=headers))
        assert is_login_redirect(client.get(EDIT, headers=headers))
    ignored = [r for r in caplog.records if "ignored X-Forwarded-User from 203.0.113.9" in
               r.getMessage()]
    assert len(ignored) == 1  # named once, not once per request


@pytest.mark.parametrize(("peer", "trusted"), [
    ("10.1.2.3", True),
    ("::ffff:10.1.200.4", True),  # an IPv4 peer on a dual-stack socket
    ("10.2.0.1", False),
    ("127.0.0.1", False),  # a kubectl port-forward: loopback is trusted only when listed
])
def test_trusted_proxies_are_matched_against_the_original_peer(store, peer, trusted):
    client = sso_client(store, TrustedAuthProxies="10.1.0.0/16, fd00::/8")
    client.environ_base["REMOTE_ADDR"] = peer
    response = client.get("/services", headers=via_proxy("alice", "platform-admins"))
    if trusted:
        assert who(response) == "alice (editor)"
    else:
        assert is_login_redirect(response)


def test_an_sso_session_needs_the_header_on_every_request(store):
    client = sso_client(store)
    assert who(client.get("/services", headers=via_proxy("ed"))) == "ed (viewer)"
    # the same cookie without the proxy's header (a request that bypassed it): logged out,
    # and never mistaken for the configured password operator of the same name (an editor)
    assert is_login_redirect(client.get("/services"))
    assert is_login_redirect(client.get(EDIT))


@pytest.mark.parametrize("name", ["alice, mallory", "alice\x7f", "a" * 257])
def test_a_malformed_name_is_ignored(store, name):
    client = sso_client(store)
    assert is_login_redirect(client.get("/services", headers=via_proxy(name)))


# --- settings ------------------------------------------------------------------------------

def test_settings_from_the_environment():
    settings = load_settings(environ={
        "Dashboard__ForwardedProxies": "1",
        "Dashboard__TrustedAuthHeader": "X-Forwarded-User",
        "Dashboard__TrustedAuthGroupsHeader": "X-Forwarded-Groups",
        "Dashboard__TrustedAuthRoles__platform-admins": "editor",
        "Dashboard__TrustedAuthRoles__myorg__ops": "Viewer",  # GitHub's org:team
        "Dashboard__TrustedAuthRoles__0__Group": "Team With Spaces",
        "Dashboard__TrustedAuthRoles__0__Role": "editor",
        "Dashboard__TrustedAuthDefaultRole": "None",
        "Dashboard__TrustedAuthProxies": "10.0.0.0/8,::1",
    }).dashboard
    assert settings.trusted_auth_header == "X-Forwarded-User"
    assert settings.trusted_auth_groups_header == "X-Forwarded-Groups"
    assert dict(settings.trusted_auth_roles) == {
        "platform-admins": "editor", "myorg:ops": "viewer", "team with spaces": "editor"}
    assert settings.trusted_auth_default_role == "none"
    assert settings.trusted_auth_proxies == ("10.0.0.0/8", "::1/128")


def test_defaults():
    settings = load_settings(environ={}).dashboard
    assert settings.trusted_auth_header is None
    assert settings.trusted_auth_default_role == "viewer"
    assert settings.trusted_auth_proxies == ()  # no default: loopback is port-forward's too


@pytest.mark.parametrize("forwarded", ["1", "0"])
def test_the_header_without_a_proxy_list_stops_start_up(forwarded):
    # a loopback default trusted every `kubectl port-forward` to the pod as the proxy
    with pytest.raises(ConfigError) as failure:
        load_settings(environ={"Dashboard__ForwardedProxies": forwarded,
                               "Dashboard__TrustedAuthHeader": "X-Forwarded-User"})
    message = str(failure.value)
    assert message.startswith("invalid setting Dashboard__TrustedAuthProxies ")
    assert "is not set" in message and "port-forward" in message and "\n" not in message
    # an empty list is not a list either
    with pytest.raises(ConfigError, match="Dashboard__TrustedAuthProxies"):
        load_settings(environ={"Dashboard__ForwardedProxies": forwarded,
                               "Dashboard__TrustedAuthHeader": "X-Forwarded-User",
                               "Dashboard__TrustedAuthProxies": " , "})


def test_settings_built_without_a_proxy_list_stop_the_app():
    from dataclasses import replace

    from dashboard.web.app import create_app

    settings = load_settings(environ={}, overrides={"Dashboard": {
        "SecretKey": "a-long-enough-secret-key-0123456789", "SessionStorage": "memory://"}})
    settings = replace(settings, dashboard=replace(
        settings.dashboard, trusted_auth_header="X-Forwarded-User", forwarded_proxies=1))
    with pytest.raises(ConfigError, match="Dashboard__TrustedAuthProxies"):
        create_app({"TESTING": True, "KV_SETTINGS": settings})


def test_a_port_forward_cannot_name_itself_behind_an_ingress(store):
    # the proxy list names the ingress; a port-forward arrives from loopback: ignored, and
    # a password login through the port-forward still works (README "Single sign-on")
    client = sso_client(store, TrustedAuthProxies="10.1.0.0/16")
    assert is_login_redirect(client.get("/services", headers=via_proxy("ed", "platform-admins")))
    login(client, "vi")
    assert who(client.get("/services", headers=via_proxy("ed", "platform-admins"))) == (
        "vi (viewer)")


def test_a_loopback_proxy_list_is_warned_about_port_forwards():
    environ = {"Dashboard__ForwardedProxies": "1",
               "Dashboard__TrustedAuthHeader": "X-Forwarded-User"}
    for proxies in ("127.0.0.1", "::1", "10.0.0.0/8,127.0.0.0/8"):
        warnings = load_settings(environ={**environ,
                                          "Dashboard__TrustedAuthProxies": proxies}).warnings
        assert any("trusts loopback" in w and "port-forward" in w for w in warnings), proxies
    warnings = load_settings(environ={**environ,
                                      "Dashboard__TrustedAuthProxies": "10.0.0.0/8"}).warnings
    assert not any("loopback" in w for w in warnings)


@pytest.mark.parametrize(("name", "value", "words"), [
    ("TrustedAuthHeader", "X_Forwarded_User", "must be a header name"),
    ("TrustedAuthDefaultRole", "admin", "must be viewer or editor or none"),
    ("TrustedAuthProxies", "10.0.0.0/33", "is not an IP address or CIDR network"),
    ("TrustedAuthRoles__admins", "owner", "must be viewer or editor"),
    ("TrustedAuthRoles", "admins=editor", "must map groups to roles"),
])
def test_invalid_settings_stop_start_up(name, value, words):
    with pytest.raises(ConfigError) as failure:
        load_settings(environ={"Dashboard__TrustedAuthHeader": "X-Forwarded-User",
                               f"Dashboard__{name}": value})
    assert words in str(failure.value)
    assert f"Dashboard__{name}" in str(failure.value)


def test_a_proxy_list_trusting_everyone_is_warned_about():
    settings = load_settings(environ={"Dashboard__ForwardedProxies": "1",
                                      "Dashboard__TrustedAuthHeader": "X-Forwarded-User",
                                      "Dashboard__TrustedAuthProxies": "0.0.0.0/0"})
    assert any("trusts every address" in warning for warning in settings.warnings)
