"""Settings: appsettings.json + ``__`` env vars, the mesh's names, one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dashboard.config import (
    ConfigError,
    RedisSettings,
    ServiceSettings,
    load_settings,
    mask_connection_string,
    parse_redis_connection_string,
)
from dashboard.providers import index_key_resolver


def write(tmp_path, data, name="appsettings.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_without_file_or_env():
    settings = load_settings(environ={})
    assert settings.provider == "redis"
    assert settings.toskastore.base_url == "http://localhost:4000"
    assert settings.toskastore.key_index_key == "__keys"
    assert settings.toskastore.enable_key_index is False
    assert settings.redis == RedisSettings()
    assert settings.dashboard.store_timeout_seconds == 5.0
    assert settings.dashboard.mget_batch_size == 500
    assert settings.dashboard.services == ()
    assert settings.config_path is None


def test_env_overlay_with_double_underscore_any_case():
    settings = load_settings(environ={
        "MESH__KEYVALUE__PROVIDER": "toskastore",
        "mesh__keyvalue__toskastore__baseurl": "https://kv.internal:8443/",
        "Mesh__KeyValue__ToskaStore__AuthToken": "s3cret",
        "Mesh__keyValue__ToskaStore__EnableKeyIndex": "TRUE",
        "Mesh__KeyValue__ToskaStore__KeyIndexKey": "__index",
        "Dashboard__ReadOnly": "yes",
        "DASHBOARD__PATHBASE": "/kv/",
        "Dashboard__StoreTimeoutSeconds": "2.5",
        "PATH": "/usr/bin",
    })
    assert settings.provider == "toskastore"
    assert settings.toskastore.base_url == "https://kv.internal:8443"
    assert settings.toskastore.auth_token == "s3cret"
    assert settings.toskastore.enable_key_index is True
    assert settings.toskastore.key_index_key == "__index"
    assert settings.dashboard.read_only is True
    assert settings.dashboard.path_base == "/kv"
    assert settings.dashboard.store_timeout_seconds == 2.5


def test_json_keys_are_case_insensitive_and_env_wins_over_file(tmp_path):
    path = write(tmp_path, {
        "mesh": {"KEYVALUE": {"provider": "ToskaStore", "toskaStore": {
            "baseURL": "http://file:4000", "AuthToken": "from-file", "KeyPrefix": "profiles",
        }}},
        "Dashboard": {"ReadOnly": True, "MgetBatchSize": 50},
    })
    settings = load_settings(path, environ={
        "Mesh__KeyValue__ToskaStore__BaseUrl": "http://env:4000",
        "Dashboard__MgetBatchSize": "75",
    })
    assert settings.config_path == path
    assert settings.provider == "toskastore"
    assert settings.toskastore.base_url == "http://env:4000"
    assert settings.toskastore.auth_token == "from-file"
    assert settings.toskastore.key_prefix == "profiles"
    assert settings.dashboard.read_only is True
    assert settings.dashboard.mget_batch_size == 75


def test_path_from_environment_and_overrides_apply_last(tmp_path):
    path = write(tmp_path, {"Dashboard": {"LegacyListCap": 10, "Demo": "true"}})
    settings = load_settings(
        environ={"DASHBOARD_APPSETTINGS": path, "Dashboard__LegacyListCap": "20"},
        overrides={"dashboard": {"legacyListCap": 30}},
    )
    assert settings.dashboard.legacy_list_cap == 30
    assert settings.dashboard.demo is True


def test_appsettings_comments_and_trailing_commas_like_dotnet(tmp_path):
    path = write(tmp_path, """{
      // the mesh's own file
      "Mesh": { "KeyValue": { "Provider": "ToskaStore", /* inline */ } },
      "Dashboard": { "PathBase": "/a//b-not-a-comment" , },
    }""")
    with pytest.raises(ConfigError, match="Dashboard__PathBase"):
        load_settings(path, environ={})
    path = write(tmp_path, '{"Mesh": {"KeyValue": {"Provider": "ToskaStore",},}, // x\n}')
    assert load_settings(path, environ={}).provider == "toskastore"


def test_arrays_from_file_and_env_merge_by_index(tmp_path):
    path = write(tmp_path, {"Dashboard": {"Services": [
        {"Name": "profiles"},
        {"Name": "orders", "KeyPrefix": "orders-v2:", "KeyIndexKey": "__idx"},
    ]}})
    settings = load_settings(path, environ={
        "Dashboard__Services__1__KeyPrefix": "orders",
        "Dashboard__Services__2__Name": "sessions",
        "dashboard__services__10__keyprefix": "team:billing",
        "Dashboard__Users__0__Name": "ops",
        "Dashboard__Users__0__PasswordHash": "scrypt:abc",
        "Dashboard__Users__0__Role": "Editor",
        "Dashboard__Users__1__Name": "auditor",
        "Dashboard__Users__1__PasswordHash": "scrypt:def",
    })
    assert settings.dashboard.services == (
        ServiceSettings("profiles", "profiles:", None),
        ServiceSettings("orders", "orders:", "__idx"),
        ServiceSettings("sessions", "sessions:", None),
        ServiceSettings("team:billing", "team:billing:", None),
    )
    users = settings.dashboard.users
    assert [(u.name, u.role) for u in users] == [("ops", "editor"), ("auditor", "viewer")]
    assert users[0].password_hash == "scrypt:abc"
    assert "scrypt:abc" not in repr(settings)


def test_override_list_replaces_the_whole_array(tmp_path):
    path = write(tmp_path, {"Dashboard": {"Services": [{"Name": "a"}, {"Name": "b"}]}})
    settings = load_settings(
        path, environ={}, overrides={"Dashboard": {"Services": [{"Name": "c"}]}}
    )
    assert [s.name for s in settings.dashboard.services] == ["c"]


@pytest.mark.parametrize(("text", "expected"), [
    ("localhost:6379", RedisSettings()),
    ("cache:6380,password=p@ss=word,ssl=True,defaultDatabase=2,abortConnect=false",
     RedisSettings(host="cache", port=6380, password="p@ss=word", ssl=True, database=2)),
    ("Cache.Example , PASSWORD=pw , USER=ops , SSL=yes , connectTimeout=5000",
     RedisSettings(host="Cache.Example", port=6380, username="ops", password="pw", ssl=True)),
    ("[::1]:7000,[::1]:7001,allowAdmin=true,name=mesh,$CLIENT=,unknownOption=1",
     RedisSettings(host="::1", port=7000)),
    ("[fe80::1]", RedisSettings(host="fe80::1", port=6379)),
    ("a:1,b:2", RedisSettings(host="a", port=1)),
    ("redis://localhost", RedisSettings()),
    ("redis://ops:p%40ss@cache:6390/3",
     RedisSettings(host="cache", port=6390, username="ops", password="p@ss", database=3)),
    ("rediss://:token@[::1]:6380",
     RedisSettings(host="::1", port=6380, password="token", ssl=True)),
    ("REDISS://cache/0", RedisSettings(host="cache", port=6379, ssl=True)),
])
def test_redis_connection_strings(text, expected):
    parsed = parse_redis_connection_string(text)
    assert parsed.connection_string == text
    assert parsed == replace(expected, connection_string=text)


def test_redis_database_setting_overrides_connection_string():
    settings = load_settings(environ={
        "Mesh__KeyValue__Redis__ConnectionString": "cache:6379,defaultDatabase=2",
        "Mesh__KeyValue__Redis__Database": "5",
        "Mesh__KeyValue__Redis__KeyPrefix": "profiles",
    })
    assert (settings.redis.host, settings.redis.database) == ("cache", 5)
    assert settings.redis.key_prefix == "profiles"
    unset = load_settings(
        environ={"Mesh__KeyValue__Redis__ConnectionString": "c,defaultDatabase=2"}
    )
    assert unset.redis.database == 2


@pytest.mark.parametrize("value", [None, "", "Redis", "REDIS", "memcached"])
def test_provider_default_and_unknown_mean_redis(value):
    environ = {} if value is None else {"Mesh__KeyValue__Provider": value}
    settings = load_settings(environ=environ)
    assert settings.provider == "redis"
    assert bool(settings.warnings) == (value == "memcached")


@pytest.mark.parametrize("value", ["ToskaStore", "toskastore", "TOSKASTORE", " ToskaStore "])
def test_provider_toskastore_any_case(value):
    assert load_settings(environ={"Mesh__KeyValue__Provider": value}).provider == "toskastore"


@pytest.mark.parametrize(("env", "setting", "fragment"), [
    ({"Mesh__KeyValue__ToskaStore__BaseUrl": "kv:4000"},
     "Mesh__KeyValue__ToskaStore__BaseUrl", '"kv:4000"'),
    ({"Mesh__KeyValue__ToskaStore__BaseUrl": "ftp://kv"},
     "Mesh__KeyValue__ToskaStore__BaseUrl", '"ftp://kv"'),
    ({"Mesh__KeyValue__ToskaStore__BaseUrl": "http://kv:99999"},
     "Mesh__KeyValue__ToskaStore__BaseUrl", "kv:99999"),
    ({"Mesh__KeyValue__ToskaStore__EnableKeyIndex": "maybe"},
     "Mesh__KeyValue__ToskaStore__EnableKeyIndex", '"maybe"'),
    ({"Mesh__KeyValue__Redis__Database": "two"}, "Mesh__KeyValue__Redis__Database", '"two"'),
    ({"Mesh__KeyValue__Redis__Database": "-1"}, "Mesh__KeyValue__Redis__Database", '"-1"'),
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache:port"},
     "Mesh__KeyValue__Redis__ConnectionString", "port"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache,ssl=sometimes"},
     "Mesh__KeyValue__Redis__ConnectionString", "sometimes"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache,defaultDatabase=x"},
     "Mesh__KeyValue__Redis__ConnectionString", "defaultDatabase"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "memcached://cache"},
     "Mesh__KeyValue__Redis__ConnectionString", "memcached://cache"),
    ({"Dashboard__StoreTimeoutSeconds": "soon"}, "Dashboard__StoreTimeoutSeconds", '"soon"'),
    ({"Dashboard__StoreTimeoutSeconds": "0"}, "Dashboard__StoreTimeoutSeconds", '"0"'),
    ({"Dashboard__LegacyListCap": "1e3"}, "Dashboard__LegacyListCap", '"1e3"'),
    ({"Dashboard__MgetBatchSize": "0"}, "Dashboard__MgetBatchSize", '"0"'),
    ({"Dashboard__MgetMaxKeys": "lots"}, "Dashboard__MgetMaxKeys", '"lots"'),
    ({"Dashboard__ReadOnly": "2"}, "Dashboard__ReadOnly", '"2"'),
    ({"Dashboard__PathBase": "kv"}, "Dashboard__PathBase", '"kv"'),
    ({"Dashboard__Users__0__Name": "ops", "Dashboard__Users__0__PasswordHash": "h",
      "Dashboard__Users__0__Role": "admin"}, "Dashboard__Users__0__Role", '"admin"'),
    ({"Dashboard__Users__0__Name": "ops"}, "Dashboard__Users__0__PasswordHash", "missing"),
    ({"Dashboard__Services__0__KeyIndexKey": "__keys"}, "Dashboard__Services__0__Name",
     "missing"),
])
def test_invalid_settings_name_the_setting_in_one_line(env, setting, fragment):
    message = error_of(environ=env)
    assert setting in message
    assert fragment in message
    assert "(from environment)" in message


@pytest.mark.parametrize(("env", "setting", "secret"), [
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache:nope,password=hunter2"},
     "Mesh__KeyValue__Redis__ConnectionString", "hunter2"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache,Password=hunter2,ssl=perhaps"},
     "Mesh__KeyValue__Redis__ConnectionString", "hunter2"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "redis://ops:hunter2@cache:70000/0"},
     "Mesh__KeyValue__Redis__ConnectionString", "hunter2"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "redis://ops:hunter2@cache/x"},
     "Mesh__KeyValue__Redis__ConnectionString", "hunter2"),
    ({"Mesh__KeyValue__ToskaStore__BaseUrl": "kv://user:hunter2@kv"},
     "Mesh__KeyValue__ToskaStore__BaseUrl", "hunter2"),
    ({"Dashboard__Users__0__Name": "ops", "Dashboard__Users__0__PasswordHash": "hunter2",
      "Dashboard__Users__0__Role": "root"}, "Dashboard__Users__0__Role", "hunter2"),
])
def test_errors_mask_secrets(env, setting, secret):
    message = error_of(environ=env)
    assert setting in message
    assert secret not in message
    assert "***" in message or "Role" in setting


def test_invalid_setting_in_file_names_the_file(tmp_path):
    path = write(tmp_path, {"Mesh": {"KeyValue": {"Redis": {"Database": "x"}}}})
    message = error_of(path=path, environ={})
    assert "Mesh__KeyValue__Redis__Database" in message
    assert path in message


def test_invalid_json_names_file_and_line(tmp_path):
    path = write(tmp_path, '{\n  "Mesh": {\n    "KeyValue": {"Provider": "Redis" "x": 1}\n  }\n}')
    message = error_of(path=path, environ={})
    assert path in message
    assert "line 3" in message


def test_missing_file_and_non_object_file(tmp_path):
    missing = str(tmp_path / "nope.json")
    assert missing in error_of(path=missing, environ={})
    assert "not found" in error_of(environ={"DASHBOARD_APPSETTINGS": missing})
    assert "object" in error_of(path=write(tmp_path, "[1, 2]"), environ={})


def test_masked_view_hides_every_secret():
    settings = load_settings(environ={
        "Mesh__KeyValue__ToskaStore__AuthToken": "tok-hunter2",
        "Mesh__KeyValue__Redis__ConnectionString": "cache:6379,password=hunter2,ssl=true",
        "Dashboard__SecretKey": "sk-hunter2",
        "Dashboard__Users__0__Name": "ops",
        "Dashboard__Users__0__PasswordHash": "scrypt:hunter2",
    })
    shown = json.dumps(settings.masked())
    assert "hunter2" not in shown
    masked = settings.masked()
    assert masked["Mesh"]["KeyValue"]["Redis"]["ConnectionString"] == (
        "cache:6379,password=***,ssl=true"
    )
    assert masked["Dashboard"]["SecretKey"] == "***"
    assert "hunter2" not in repr(settings)
    assert mask_connection_string("redis://u:hunter2@h:1/0") == "redis://u:***@h:1/0"


def test_index_key_resolver_prefers_longest_configured_prefix():
    settings = load_settings(environ={
        "Mesh__KeyValue__ToskaStore__KeyIndexKey": "__idx",
        "Dashboard__Services__0__Name": "team",
        "Dashboard__Services__1__KeyPrefix": "team:billing",
        "Dashboard__Services__1__KeyIndexKey": "__billing_keys",
    })
    resolve = index_key_resolver(settings)
    assert resolve("team:billing:invoice:") == "team:billing:__billing_keys"
    assert resolve("team:other:") == "team:__idx"
    assert resolve("profiles:profile:") == "profiles:__idx"
    assert resolve("profiles") is None
