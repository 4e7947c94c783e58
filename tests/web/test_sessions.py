"""Server-side sessions: logout ends them everywhere, they expire, and replicas share them."""

from __future__ import annotations

import re
import tempfile

import pytest
from werkzeug.security import generate_password_hash

from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.web.app import create_app
from tests.support.clock import Clock
from tests.support.redis_server import RedisServer
from tests.support.webapp import csrf_token, login, make_app, post_form

COOKIE = "kvdash_session"
_FAST = "pbkdf2:sha256:1000"


@pytest.fixture(scope="module")
def store(devstore_provider):
    return devstore_provider


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return None if cookie is None else cookie.value


def browser_with(app, cookie: str):
    """Another browser (or an attacker) holding a copy of the cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie)
    return other


def logged_in(client) -> bool:
    return client.get("/services").status_code == 200


def logout(client):
    return post_form(client, "/logout", {})


ED = {"Name": "ed", "PasswordHash": generate_password_hash("ed-pass", method=_FAST),
      "Role": "editor"}
VI = {"Name": "vi", "PasswordHash": generate_password_hash("vi-pass", method=_FAST),
      "Role": "viewer"}


# --- logout ends the session -----------------------------------------------------------

def test_a_copied_cookie_is_refused_after_logout(store):
    app = make_app(store)
    client = app.test_client()
    login(client)
    copy = browser_with(app, session_cookie(client))
    assert logged_in(copy)
    assert logout(client).status_code == 302
    assert not logged_in(copy)
    assert not logged_in(client)


def test_the_cookie_is_a_random_id_renewed_at_login(store):
    app = make_app(store)
    client = app.test_client()
    csrf_token(client)  # an anonymous session (it holds the CSRF token)
    before = session_cookie(client)
    assert before and re.fullmatch(r"[A-Za-z0-9_-]{43}", before)
    response = login(client)
    after = session_cookie(client)
    assert after != before  # no session fixation: the pre-login id is dead
    assert not logged_in(browser_with(app, before))
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}={after};")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP (port-forward)


def test_the_cookie_is_secure_behind_a_tls_ingress(store):
    app = make_app(store, dashboard={"ForwardedProxies": 1})
    client = app.test_client()
    # Flask-WTF wants a same-site Referer over HTTPS
    response = login(client, **{"X-Forwarded-Proto": "https", "Referer": "https://localhost/"})
    assert "Secure" in response.headers["Set-Cookie"]


# --- a changed operator needs a new login ------------------------------------------------

@pytest.mark.parametrize(("changed", "refused"), [
    ([ED, VI], False),                                   # unchanged: still in
    ([{**ED, "PasswordHash": generate_password_hash("new", method=_FAST)}, VI], True),
    ([{**ED, "Role": "viewer"}, VI], True),
    ([VI], True),                                        # ed removed
    ([{**VI, "Role": "editor"}, ED], False),             # someone else's change
])
def test_a_new_password_or_role_ends_the_operators_sessions(store, tmp_path, changed, refused):
    shared = {"SessionStorage": (tmp_path / "sessions").as_uri()}
    before = make_app(store, dashboard={**shared, "Users": [ED, VI]})
    client = before.test_client()
    login(client)
    # the same storage, restarted with another users configuration
    after = make_app(store, dashboard={**shared, "Users": changed})
    assert logged_in(browser_with(after, session_cookie(client))) is not refused


# --- idle and absolute timeouts ------------------------------------------------------------

def test_an_unused_session_ends_after_the_idle_time(store):
    clock = Clock()
    app = make_app(store, dashboard={"SessionIdleMinutes": 30}, KV_CLOCK=clock)
    client = app.test_client()
    login(client)
    for _ in range(3):  # used every 29 minutes: stays (1.5 h in all)
        clock.advance(29)
        assert logged_in(client)
    clock.advance(31)
    assert not logged_in(client)


def test_a_session_ends_after_its_maximum_age_even_when_used(store):
    clock = Clock()
    app = make_app(store, dashboard={"SessionIdleMinutes": 45, "SessionMaxHours": 2},
                   KV_CLOCK=clock)
    client = app.test_client()
    login(client)
    for _ in range(5):  # 40 min apart: never idle, but 2 h pass
        clock.advance(24)
        assert logged_in(client)
    clock.advance(1)
    assert not logged_in(client)
    login(client)  # a new login starts a new session
    assert logged_in(client)


# --- shared storage: replicas and gunicorn workers ----------------------------------------

def test_replicas_share_sessions_in_redis(store, redis_server):
    shared = {"SessionStorage": f"redis://127.0.0.1:{redis_server.port}/3"}
    one, two = make_app(store, dashboard=shared), make_app(store, dashboard=shared)
    client = one.test_client()
    login(client)
    other = browser_with(two, session_cookie(client))
    assert logged_in(other)
    # a form rendered by one replica is accepted by the other (CSRF token in the session)
    assert post_form(other, "/logout", {}, token_from="/services").status_code == 302
    assert not logged_in(client)  # logged out on two: refused on one
    assert not logged_in(browser_with(one, session_cookie(client)))


def test_redis_holds_json_under_a_hash_of_the_id(store, redis_server):
    app = make_app(store, dashboard={"SessionStorage": f"redis://127.0.0.1:{redis_server.port}/4"})
    client = app.test_client()
    login(client)
    sid = session_cookie(client)
    with redis_server.client(db=4) as raw:
        keys = [key.decode() for key in raw.keys("*")]
        assert keys and all(key.startswith("kvdash:session:") for key in keys)
        assert not any(sid in key for key in keys)  # reading Redis gives no usable cookie
        values = [raw.get(key) for key in keys]
        assert all(value.startswith(b"{") for value in values)  # JSON, never pickle
        assert any(b"_user_id" in value for value in values)
        assert all(0 < raw.ttl(key) <= 3600 for key in keys)  # idle time: 60 min


def test_a_session_storage_outage_is_a_clear_503(store):
    server = RedisServer()
    server.start()
    app = make_app(store, dashboard={"SessionStorage": f"redis://127.0.0.1:{server.port}/0",
                                     "StoreTimeoutSeconds": 1})
    client = app.test_client()
    login(client)
    server.stop()
    response = client.get("/services")
    assert response.status_code == 503
    assert "Session storage unavailable" in response.get_data(as_text=True)
    assert "Dashboard__SessionStorage" in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200


def test_demo_workers_without_a_key_share_the_secret_and_the_sessions(store, monkeypatch, tmp_path):
    # two gunicorn workers: two app instances on one host, no key, no SessionStorage
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings = load_settings(None, environ={}, overrides={"Dashboard": {"Demo": True}})
    one = create_app({"KV_SETTINGS": settings, "KV_PROVIDER": store, "TESTING": True})
    two = create_app({"KV_SETTINGS": settings, "KV_PROVIDER": store, "TESTING": True})
    assert one.secret_key == two.secret_key and len(one.secret_key) >= 32
    client = one.test_client()
    response = client.post("/login", data={"username": "demo", "password": "demo",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    other = browser_with(two, session_cookie(client))
    assert logged_in(other)
    assert post_form(other, "/logout", {}).status_code == 302
    assert not logged_in(client)
    # the session files are private to this user
    (directory,) = tmp_path.glob("toska-kv-sessions-*")
    assert directory.stat().st_mode & 0o077 == 0


def test_a_session_directory_others_can_write_is_refused(store, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    make_app(store, dashboard={"SessionStorage": None})
    (directory,) = tmp_path.glob("toska-kv-sessions-*")
    directory.chmod(0o777)
    with pytest.raises(ConfigError, match="Dashboard__SessionStorage.*not private"):
        make_app(store, dashboard={"SessionStorage": None})


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "words"), [
    ("SessionStorage", "http://cache:6379", "must be a redis:// or rediss:// or memory:// or file://"),
    ("SessionStorage", "redis://", "names no Redis host"),
    ("SessionStorage", "redis://cache:6379/x", "database number"),
    ("SessionStorage", "file://relative/dir", "absolute directory"),
    ("SessionStorage", "redis://cache:port", "not a valid URL"),
    ("SessionIdleMinutes", "0", "must be greater than 0"),
    ("SessionIdleMinutes", "soon", "is not a number"),
    ("SessionMaxHours", "-1", "must be greater than 0"),
    ("RateLimitStorage", "file:///tmp/x", "must be a redis:// or rediss:// or memory://"),
])
def test_bad_session_settings_stop_start_up_with_one_line(name, value, words):
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={f"Dashboard__{name}": value})
    message = str(caught.value)
    assert f"Dashboard__{name}" in message and words in message and "\n" not in message


def test_session_settings_are_read_and_their_passwords_masked():
    settings = load_settings(None, environ={
        "Dashboard__SessionStorage": "redis://:hunter2@cache:6379/1",
        "Dashboard__SessionIdleMinutes": "15",
        "Dashboard__SessionMaxHours": "8",
        "Dashboard__RateLimitStorage": "rediss://ops:hunter2@limits:6380",
    })
    db = settings.dashboard
    assert (db.session_idle_minutes, db.session_max_hours) == (15, 8)
    assert db.session_storage == "redis://:hunter2@cache:6379/1"
    shown = settings.masked()["Dashboard"]
    assert shown["SessionStorage"] == "redis://:***@cache:6379/1"
    assert shown["RateLimitStorage"] == "rediss://ops:***@limits:6380"
    defaults = load_settings(None, environ={}).dashboard
    assert (defaults.session_storage, defaults.rate_limit_storage) == (None, None)
    assert (defaults.session_idle_minutes, defaults.session_max_hours) == (60, 12)

