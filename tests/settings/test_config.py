"""Settings: appsettings.json + ``__`` env vars, the mesh's names, one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dashboard.mesh import index_key_resolver
from dashboard.settings.dotnet import PROVIDER_MEMBERS, dotnet_enum_try_parse, service_prefix
from dashboard.settings.errors import ConfigError, mask_connection_string
from dashboard.settings.load import load_settings
from dashboard.settings.model import ServiceSettings
from dashboard.settings.redis_connection import RedisSettings, parse_redis_connection_string


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


def test_connection_string_database_wins_over_database_setting():
    # the runtime's ApplyDatabase appends ",defaultDatabase=N" only when the connection
    # string does not already contain "defaultDatabase": the string wins
    settings = load_settings(environ={
        "Mesh__KeyValue__Redis__ConnectionString": "cache:6379,defaultDatabase=2",
        "Mesh__KeyValue__Redis__Database": "5",
        "Mesh__KeyValue__Redis__KeyPrefix": "profiles",
    })
    assert (settings.redis.host, settings.redis.database) == ("cache", 2)
    assert settings.redis.key_prefix == "profiles"
    unset = load_settings(
        environ={"Mesh__KeyValue__Redis__ConnectionString": "c,defaultDatabase=2"}
    )
    assert unset.redis.database == 2


@pytest.mark.parametrize(("connection_string", "database", "expected"), [
    ("cache:6379", "5", 5),
    ("cache:6379,DEFAULTDATABASE=3", "5", 3),
    ("cache:6379, defaultdatabase = 0 ", "5", 0),
    ("cache:6379,defaultDatabase=2", None, 2),
    ("cache:6379,defaultDatabase=2", "", 2),
    # the runtime's check is a plain case-insensitive substring test: a password holding
    # "defaultdatabase" also stops the append, so StackExchange.Redis uses database 0
    ("cache:6379,password=my-defaultdatabase", "5", 0),
    ("redis://cache/3", "5", 3),
    ("redis://cache/0", "5", 0),
    ("redis://cache", "5", 5),
    ("redis://cache/", "5", 5),
    ("rediss://ops:pw@cache:6380", "7", 7),
])
def test_redis_database_precedence(connection_string, database, expected):
    environ = {"Mesh__KeyValue__Redis__ConnectionString": connection_string}
    if database is not None:
        environ["Mesh__KeyValue__Redis__Database"] = database
    assert load_settings(environ=environ).redis.database == expected


@pytest.mark.parametrize(("env", "setting", "fragment"), [
    # the Database setting is validated even when the connection string's database wins
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache,defaultDatabase=2",
      "Mesh__KeyValue__Redis__Database": "two"}, "Mesh__KeyValue__Redis__Database", '"two"'),
    ({"Mesh__KeyValue__Redis__ConnectionString": "redis://cache/2",
      "Mesh__KeyValue__Redis__Database": "-3"}, "Mesh__KeyValue__Redis__Database", '"-3"'),
    ({"Mesh__KeyValue__Redis__ConnectionString": "cache,defaultDatabase=-1",
      "Mesh__KeyValue__Redis__Database": "1"},
     "Mesh__KeyValue__Redis__ConnectionString", "defaultDatabase"),
    ({"Mesh__KeyValue__Redis__ConnectionString": "redis://cache/x",
      "Mesh__KeyValue__Redis__Database": "1"},
     "Mesh__KeyValue__Redis__ConnectionString", '"x"'),
])
def test_both_redis_databases_are_validated(env, setting, fragment):
    message = error_of(environ=env)
    assert setting in message
    assert fragment in message


@pytest.mark.parametrize("value", [None, "", "   ", "Redis", "REDIS", " redis ", "0", "-0"])
def test_provider_unset_or_redis_is_redis_without_warning(value):
    environ = {} if value is None else {"Mesh__KeyValue__Provider": value}
    settings = load_settings(environ=environ)
    assert settings.provider == "redis"
    assert settings.warnings == ()


@pytest.mark.parametrize("value", [
    "ToskaStore", "toskastore", "TOSKASTORE", " ToskaStore ", "\tToskaStore\n",
    "\u00a0ToskaStore\u3000",  # char.IsWhiteSpace covers Unicode spaces
    "1", "+1", " 01", "1 ", "1\t\r\n", "0001",
    # flags semantics: names in a comma-separated list are OR-ed (Redis=0 | ToskaStore=1)
    "Redis, ToskaStore", "ToskaStore,Redis", " redis ,TOSKASTORE ", "ToskaStore,ToskaStore",
])
def test_provider_toskastore_like_enum_try_parse(value):
    settings = load_settings(environ={"Mesh__KeyValue__Provider": value})
    assert settings.provider == "toskastore"
    assert settings.warnings == ()


@pytest.mark.parametrize("value", [
    "memcached", "Toska Store", "ToskaStore!", "ToskaStore.", "Redis;ToskaStore",
    # numbers that parse but are no member: the runtime's switch falls back to Redis
    "2", "-1", "+7", "2147483647", "-2147483648",
    # out of Int32 range: TryParse fails
    "2147483648", "99999999999999999999",
    # not an integer: no decimal point, exponent, hex, inner or non-ASCII trailing space
    "1.0", "1e0", "0x1", "+ 1", "1 2", "1\u00a0", "\u0661",
    # lists: a trailing or empty piece fails, and a list holds names only
    "Redis,", "ToskaStore, ", ",ToskaStore", "Redis,,ToskaStore", "0,1", "1,ToskaStore",
    "ToskaStore,1",
    "\x1cToskaStore",  # U+001C is not whitespace to .NET (it is to Python)
])
def test_provider_unknown_means_redis_with_a_warning(value):
    settings = load_settings(environ={"Mesh__KeyValue__Provider": value})
    assert settings.provider == "redis"
    assert len(settings.warnings) == 1
    warning = settings.warnings[0]
    assert "Mesh__KeyValue__Provider" in warning
    assert json.dumps(value, ensure_ascii=False) in warning
    assert "Redis" in warning
    assert "\n" not in warning


def test_provider_warning_names_setting_value_and_source(tmp_path):
    path = write(tmp_path, {"Mesh": {"KeyValue": {"Provider": "Toska\nStore"}}})
    (warning,) = load_settings(path, environ={}).warnings
    assert warning.startswith('Mesh__KeyValue__Provider="Toska\\nStore"')
    assert f"(from {path})" in warning
    assert "using Redis" in warning
    (number,) = load_settings(environ={"Mesh__KeyValue__Provider": "2"}).warnings
    assert '"2" (from environment)' in number
    assert "number 2" in number


def test_provider_json_values_read_as_dotnet_strings(tmp_path):
    as_number = write(tmp_path, {"Mesh": {"KeyValue": {"Provider": 1}}}, "a.json")
    assert load_settings(as_number, environ={}).provider == "toskastore"
    as_bool = write(tmp_path, {"Mesh": {"KeyValue": {"Provider": True}}}, "b.json")
    settings = load_settings(as_bool, environ={})
    assert settings.provider == "redis"
    assert '"True"' in settings.warnings[0]
    as_null = write(tmp_path, {"Mesh": {"KeyValue": {"Provider": None}}}, "c.json")
    assert load_settings(as_null, environ={}).warnings == ()


def test_dotnet_enum_try_parse_values():
    members = PROVIDER_MEMBERS
    assert dotnet_enum_try_parse(None, members) is None
    assert dotnet_enum_try_parse("", members) is None
    assert dotnet_enum_try_parse(" -5 ", members) == -5
    assert dotnet_enum_try_parse("1\x00\x00", members) == 1  # trailing NULs are tolerated
    assert dotnet_enum_try_parse("1\x00 ", members) is None
    assert dotnet_enum_try_parse("Redis,ToskaStore", members) == 1
    assert dotnet_enum_try_parse("redis", members) == 0
    # ordinal ignore-case folds only ASCII here: the Kelvin sign is not a "k"
    assert dotnet_enum_try_parse("Tos\u212aaStore", members) is None


@pytest.mark.parametrize(("env", "own_prefix"), [
    ({}, None),  # no "mesh-service" default: the dashboard is not a mesh service
    ({"Mesh__Service__ServiceName": "billing"}, "billing:"),
    ({"Mesh__Service__ServiceName": "billing:"}, "billing:"),
    ({"Mesh__Service__ServiceName": "   "}, None),
    ({"Mesh__KeyValue__Redis__KeyPrefix": "profiles"}, "profiles:"),
    ({"Mesh__KeyValue__Redis__KeyPrefix": "team:profiles:",
      "Mesh__Service__ServiceName": "billing"}, "team:profiles:"),
    # null/whitespace KeyPrefix: the service name
    ({"Mesh__KeyValue__Redis__KeyPrefix": " \t", "Mesh__Service__ServiceName": "billing"},
     "billing:"),
    # a KeyPrefix is used verbatim, spaces included
    ({"Mesh__KeyValue__Redis__KeyPrefix": " profiles "}, " profiles :"),
    # the other provider's KeyPrefix does not count
    ({"Mesh__KeyValue__ToskaStore__KeyPrefix": "orders",
      "Mesh__Service__ServiceName": "billing"}, "billing:"),
    ({"Mesh__KeyValue__Provider": "ToskaStore",
      "Mesh__KeyValue__ToskaStore__KeyPrefix": "orders"}, "orders:"),
    ({"Mesh__KeyValue__Provider": "ToskaStore",
      "Mesh__KeyValue__Redis__KeyPrefix": "profiles",
      "Mesh__Service__ServiceName": "billing"}, "billing:"),
    ({"Mesh__KeyValue__Provider": "1", "Mesh__KeyValue__Redis__KeyPrefix": "profiles"}, None),
])
def test_own_service_prefix_follows_the_active_provider(env, own_prefix):
    assert load_settings(environ=env).own_service_prefix == own_prefix


def test_service_name_and_key_prefixes_are_kept_as_configured(tmp_path):
    path = write(tmp_path, {"mesh": {"service": {"serviceName": "billing"}, "KeyValue": {
        "Redis": {"KeyPrefix": "   "}, "ToskaStore": {"KeyPrefix": True},
    }}})
    settings = load_settings(path, environ={})
    assert settings.service_name == "billing"
    assert settings.redis.key_prefix is None
    assert settings.toskastore.key_prefix == "True"  # a JSON true reads as .NET's "True"
    assert settings.masked()["Mesh"]["Service"] == {"ServiceName": "billing"}
    assert load_settings(environ={}).masked()["Mesh"]["Service"] == {"ServiceName": None}


@pytest.mark.parametrize(("key_prefix", "service_name", "expected"), [
    ("profiles", None, "profiles:"),
    ("profiles:", "svc", "profiles:"),
    (None, "svc", "svc:"),
    ("", "svc", "svc:"),
    ("\u3000", "svc", "svc:"),
    ("\x1c", "svc", "\x1c:"),  # not whitespace to .NET
    (None, None, None),
    (" ", " ", None),
])
def test_service_prefix_is_build_prefix(key_prefix, service_name, expected):
    assert service_prefix(key_prefix, service_name) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "__keys"),
    ("", "__keys"),
    ("   ", "__keys"),
    ("__index", "__index"),
    (" __index ", " __index "),  # used verbatim, as the runtime does
    ("meta:keys", "meta:keys"),
])
def test_key_index_key_as_the_runtime_reads_it(value, expected):
    environ = {
        "Mesh__KeyValue__Provider": "ToskaStore",
        "Mesh__KeyValue__ToskaStore__KeyPrefix": "profiles",
    }
    if value is not None:
        environ["Mesh__KeyValue__ToskaStore__KeyIndexKey"] = value
    settings = load_settings(environ=environ)
    assert settings.toskastore.key_index_key == expected
    assert settings.own_index_key == "profiles:" + expected


def test_own_index_key_only_for_toskastore_with_a_prefix():
    redis = load_settings(environ={"Mesh__Service__ServiceName": "svc"})
    assert redis.own_service_prefix == "svc:"
    assert redis.own_index_key is None
    no_prefix = load_settings(environ={"Mesh__KeyValue__Provider": "ToskaStore"})
    assert no_prefix.own_index_key is None
    named = load_settings(environ={
        "Mesh__KeyValue__Provider": "ToskaStore", "Mesh__Service__ServiceName": "svc",
    })
    assert named.own_index_key == "svc:__keys"


def test_service_key_index_key_and_enable_key_index():
    settings = load_settings(environ={
        "Dashboard__Services__0__Name": "a",
        "Dashboard__Services__0__KeyIndexKey": " __p ",
        "Dashboard__Services__0__EnableKeyIndex": "TRUE",
        "Dashboard__Services__1__Name": "b",
        "Dashboard__Services__1__KeyIndexKey": "   ",
        "Dashboard__Services__1__EnableKeyIndex": "0",
        "Dashboard__Services__2__Name": "c",
        "Dashboard__Services__2__KeyIndexKey": "meta:keys",
        "Dashboard__Services__2__EnableKeyIndex": "",
        "Dashboard__Services__3__Name": "d",
    })
    services = settings.dashboard.services
    assert [(s.key_index_key, s.enable_key_index) for s in services] == [
        (" __p ", True), (None, False), ("meta:keys", None), (None, None),
    ]
    assert [s["EnableKeyIndex"] for s in settings.masked()["Dashboard"]["Services"]] == [
        True, False, None, None,
    ]
    assert settings.masked()["Dashboard"]["Services"][0]["KeyIndexKey"] == " __p "


def test_service_enable_key_index_from_json(tmp_path):
    path = write(tmp_path, {"Dashboard": {"Services": [
        {"Name": "a", "EnableKeyIndex": False}, {"Name": "b", "EnableKeyIndex": "yes"},
    ]}})
    services = load_settings(path, environ={}).dashboard.services
    assert [s.enable_key_index for s in services] == [False, True]


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
    ({"Dashboard__Services__0__Name": "a", "Dashboard__Services__0__EnableKeyIndex": "maybe"},
     "Dashboard__Services__0__EnableKeyIndex", '"maybe"'),
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


@pytest.mark.parametrize("url", [
    "http://ops:hunter2@kv:4000",
    "http://hunter2@kv:4000/",  # a token pasted in as a user name
    "https://ops:hunter2@kv",
    "http://:hunter2@kv:4000",
    "http://ops:hunter2@kv:99999",  # refused for its userinfo before its port
    "kv://hunter2@kv",  # refused for its userinfo before its scheme, never shown
])
def test_a_base_url_with_userinfo_is_refused_with_it_masked(url):
    # httpx would send the userinfo as Basic auth instead of the Bearer AuthToken
    message = error_of(environ={"Mesh__KeyValue__ToskaStore__BaseUrl": url,
                                "Mesh__KeyValue__ToskaStore__AuthToken": "tok"})
    assert message.startswith("invalid setting Mesh__KeyValue__ToskaStore__BaseUrl "
                              "(from environment): ")
    assert "hunter2" not in message and "ops" not in message
    assert "***@kv" in message
    assert "user name or password" in message and "Mesh__KeyValue__ToskaStore__AuthToken" in message


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
    assert resolve("team:billing:invoice:") == ("team:billing:", "team:billing:__billing_keys")
    assert resolve("team:other:") == ("team:", "team:__idx")
    assert resolve("profiles:profile:") == ("profiles:", "profiles:__idx")
    assert resolve("profiles") is None
