"""Settings in the mesh's own language: ``appsettings.json`` overlaid by ``__`` env vars.

The dashboard reads the same names ToskaMesh services use (``Mesh:KeyValue:*``) plus its
own ``Dashboard:*`` section, following .NET configuration rules: keys are case-insensitive
at every level, ``Mesh__KeyValue__Provider`` in the environment is the JSON path
``Mesh:KeyValue:Provider``, and arrays come from the environment as index segments
(``Dashboard__Services__0__Name``). Precedence: file < environment < ``overrides``.

Every invalid setting raises ``ConfigError`` with one line that names the setting in its
env-var spelling, where it came from, and the value with secrets masked.

The settings the ToskaMesh runtime reads itself (``Mesh:KeyValue:*``, ``Mesh:Service:ServiceName``)
are read the way the runtime reads them (``RedisKeyValueStore.cs``,
``ToskaStoreKeyValueStore.cs``, ``MeshServiceOptions.cs``): strings verbatim, "not set" meaning
null or .NET-whitespace, the provider parsed like ``Enum.TryParse(value, ignoreCase: true)``,
and ``Mesh:KeyValue:Redis:Database`` appended only when the connection string names no
``defaultDatabase``.

This module holds ``load_settings`` with the checks of each section. The rest lives beside
it, and each name is imported from its home: ``model`` (the typed settings: ``Settings``,
``DashboardSettings``, ...), ``sources`` (appsettings.json, the environment, typed reading),
``sso`` (the ``Dashboard:TrustedAuth*`` single sign-on settings), ``errors`` (``ConfigError``,
masking), ``redis_connection`` (connection strings, ``RedisSettings``) and ``dotnet`` (how
the .NET runtime parses its settings).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from dashboard.settings.access import access_settings, text_list
from dashboard.settings.dotnet import parse_provider
from dashboard.settings.errors import MASK, Path, _display, env_name, mask_url
from dashboard.settings.model import (
    DashboardSettings,
    ServiceSettings,
    Settings,
    ToskaStoreSettings,
    UserSettings,
)
from dashboard.settings.redis_connection import (
    _CS_PATH,
    RedisSettings,
    connection_string_names_database,
    parse_redis_connection_string,
)
from dashboard.settings.sources import APPSETTINGS_ENV, DB, _env_layer, _Raw, _read_file, _Reader
from dashboard.settings.sso import trusted_auth_settings

KV: Path = ("Mesh", "KeyValue")
TS: Path = (*KV, "ToskaStore")
RD: Path = (*KV, "Redis")


def _base_url(reader: _Reader) -> str:
    path = (*TS, "BaseUrl")
    url = reader.string(path, ToskaStoreSettings.base_url)
    assert url is not None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise reader.fail(path, _without_userinfo(url), "is not a valid URL") from None
    if "@" in parts.netloc:
        # httpx would send user:password as Basic auth, replacing the Bearer AuthToken (the
        # store then refuses a token it never saw); the whole userinfo may be a secret
        raise reader.fail(path, _without_userinfo(url),
                          "must not carry a user name or password: it would be sent as "
                          "Basic authentication instead of the token (set the token in "
                          "Mesh__KeyValue__ToskaStore__AuthToken)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise reader.fail(path, url, "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise reader.fail(path, url, "must be an absolute http:// or https:// URL")
    return url.rstrip("/")


def _without_userinfo(url: str) -> str:
    """``url`` with everything before the last ``@`` of its authority shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}://{MASK}@{authority.rpartition('@')[2]}{rest[end:]}"


def _services(reader: _Reader) -> tuple[ServiceSettings, ...]:
    services: list[ServiceSettings] = []
    seen: dict[str, str] = {}
    for index in reader.raw.indices((*DB, "Services")):
        base: Path = (*DB, "Services", index)
        name = reader.string((*base, "Name"))
        prefix = reader.string((*base, "KeyPrefix"))
        if name is None and prefix is None:
            raise reader.fail((*base, "Name"), None, "is missing (set Name or KeyPrefix)")
        if prefix is None:
            prefix = name
        assert prefix is not None
        if not prefix.endswith(":"):
            prefix += ":"
        if prefix == ":":
            raise reader.fail((*base, "KeyPrefix"), prefix, "is not a usable key prefix")
        if name is None:
            name = prefix[:-1]
        if name.lower() in seen:
            raise reader.fail((*base, "Name"), name, "is configured twice")
        seen[name.lower()] = name
        services.append(ServiceSettings(
            name=name,
            key_prefix=prefix,
            # verbatim, as the runtime uses a KeyIndexKey; None (unset/whitespace): inherit
            key_index_key=reader.runtime_string((*base, "KeyIndexKey")),
            enable_key_index=reader.optional_boolean((*base, "EnableKeyIndex")),
        ))
    return tuple(services)


def _users(reader: _Reader) -> tuple[UserSettings, ...]:
    users: list[UserSettings] = []
    for index in reader.raw.indices((*DB, "Users")):
        base: Path = (*DB, "Users", index)
        name = reader.string((*base, "Name"))
        if name is None:
            raise reader.fail((*base, "Name"), None, "is missing")
        password_hash = reader.string((*base, "PasswordHash"))
        if password_hash is None:
            raise reader.fail((*base, "PasswordHash"), None, "is missing")
        role = (reader.string((*base, "Role"), "viewer") or "viewer").strip().lower()
        if role not in ("viewer", "editor"):
            raise reader.fail(
                (*base, "Role"), reader.value((*base, "Role")), "must be viewer or editor"
            )
        groups = tuple(group.lower() for group in text_list(reader, (*base, "Groups")))
        users.append(UserSettings(name=name.strip(), password_hash=password_hash, role=role,
                                  groups=groups))
    return tuple(users)


def _path_base(reader: _Reader) -> str:
    path = (*DB, "PathBase")
    value = (reader.string(path, "") or "").strip()
    if value and not value.startswith("/"):
        raise reader.fail(path, value, 'must start with "/" (or be empty)')
    if any(ch in value for ch in "?#") or "//" in value:
        raise reader.fail(path, value, "must be a plain URL path")
    return value.rstrip("/")


_REDIS_SCHEMES = ("redis", "rediss")


def _storage_url(reader: _Reader, name: str, schemes: tuple[str, ...]) -> str | None:
    """``Dashboard:SessionStorage`` / ``RateLimitStorage``: unset, or a URL of one of ``schemes``."""
    path = (*DB, name)
    value = reader.string(path)
    if value is None:
        return None
    url = value.strip()
    allowed = " or ".join(f"{scheme}://" for scheme in schemes)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise reader.fail(path, mask_url(url), f"is not a valid URL (use {allowed})") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise reader.fail(path, mask_url(url), f"must be a {allowed} URL")
    if scheme in _REDIS_SCHEMES and not parts.hostname:
        raise reader.fail(path, mask_url(url), "names no Redis host")
    if scheme in _REDIS_SCHEMES and parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise reader.fail(path, mask_url(url), "must name a database number, if any (redis://host:6379/0)")
    if scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path.startswith("/")):
        raise reader.fail(path, mask_url(url), "must name an absolute directory (file:///var/lib/kv)")
    if scheme == "sqlite" and (parts.netloc or not parts.path.startswith("/")):
        raise reader.fail(path, mask_url(url), "must name an absolute file (sqlite:///var/lib/toska-kv/audit.sqlite3)")
    if scheme == "memory" and (parts.netloc or parts.path):
        raise reader.fail(path, mask_url(url), "must be exactly memory://")
    return url


# --- observability: Dashboard:MetricsToken, LogFormat, Audit* ---------------------------

LOG_FORMATS = ("text", "json")


def _observability(reader: _Reader) -> dict[str, Any]:
    """The ``DashboardSettings`` fields of metrics, structured logs and the audit trail."""
    log_path: Path = (*DB, "LogFormat")
    log_format = (reader.string(log_path, "text") or "text").strip().lower()
    if log_format not in LOG_FORMATS:
        raise reader.fail(log_path, reader.value(log_path), "must be text or json")
    token = (reader.string((*DB, "MetricsToken")) or "").strip()
    return {
        "metrics_token": token or None,
        "log_format": log_format,
        "audit_values": reader.boolean((*DB, "AuditValues"), True),
        "audit_max_entries": reader.integer((*DB, "AuditMaxEntries"), 100_000, minimum=1),
        "audit_value_bytes": reader.integer((*DB, "AuditValueBytes"), 64 * 1024, minimum=0),
        "audit_retention_days": reader.number((*DB, "AuditRetentionDays"), 90.0),
        "audit_storage": _storage_url(reader, "AuditStorage",
                                      ("sqlite", *_REDIS_SCHEMES, "memory")),
    }


def _data_directory(reader: _Reader, environ: Mapping[str, str]) -> str:
    """``Dashboard:DataDirectory``: where the dashboard keeps its own files (the audit trail's
    SQLite file); default ``$XDG_STATE_HOME/toska-kv`` (``~/.local/state/toska-kv``)."""
    path = (*DB, "DataDirectory")
    value = (reader.string(path) or "").strip()
    if value:
        if not os.path.isabs(value):
            raise reader.fail(path, value, "must be an absolute directory")
        return value
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "toska-kv")


def load_settings(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read appsettings.json (``path``, else ``$DASHBOARD_APPSETTINGS``), overlay the
    environment's ``Mesh__*``/``Dashboard__*`` variables, then ``overrides``.

    ``overrides`` is a nested dict shaped like appsettings.json; a list in it replaces
    the whole array and ``None`` unsets a key.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(APPSETTINGS_ENV) or None
    raw = _Raw()
    if path:
        raw.add_tree(_read_file(path), path, replace_lists=False)
    _env_layer(raw, environ)
    if overrides:
        raw.add_tree(overrides, "overrides", replace_lists=True)
    reader = _Reader(raw)
    warnings: list[str] = []

    provider_path: Path = (*KV, "Provider")
    provider_text = reader.runtime_string(provider_path)
    provider, problem = parse_provider(provider_text)
    if problem is not None:
        found = raw.get(provider_path)
        where = f" (from {found[1]})" if found else ""
        warnings.append(
            f"{env_name(provider_path)}={_display(provider_path, provider_text)}{where} "
            f"{problem}; using Redis, as the mesh does"
        )

    toskastore = ToskaStoreSettings(
        base_url=_base_url(reader),
        auth_token=reader.string((*TS, "AuthToken")),
        key_prefix=reader.runtime_string((*TS, "KeyPrefix")),
        enable_key_index=reader.boolean((*TS, "EnableKeyIndex"), False),
        # the runtime: IsNullOrWhiteSpace(KeyIndexKey) ? "__keys" : KeyIndexKey (verbatim)
        key_index_key=reader.runtime_string((*TS, "KeyIndexKey")) or "__keys",
    )

    connection_string = reader.string(_CS_PATH, RedisSettings.connection_string)
    assert connection_string is not None
    found = raw.get(_CS_PATH)
    setting = env_name(_CS_PATH) + (f" (from {found[1]})" if found else "")
    redis = parse_redis_connection_string(connection_string, setting=setting)
    database_path = (*RD, "Database")
    if reader.string(database_path) is not None:
        # validated even when the connection string's own database wins over it
        database = reader.integer(database_path, 0, minimum=0)
        if not connection_string_names_database(connection_string):
            redis = replace(redis, database=database)
    redis = replace(redis, key_prefix=reader.runtime_string((*RD, "KeyPrefix")))

    dashboard = DashboardSettings(
        secret_key=reader.string((*DB, "SecretKey")),
        users=_users(reader),
        users_file=reader.string((*DB, "UsersFile")),
        services=_services(reader),
        read_only=reader.boolean((*DB, "ReadOnly"), False),
        path_base=_path_base(reader),
        demo=reader.boolean((*DB, "Demo"), False),
        store_timeout_seconds=reader.number((*DB, "StoreTimeoutSeconds"), 5.0),
        legacy_list_cap=reader.integer((*DB, "LegacyListCap"), 10000, minimum=1),
        mget_batch_size=reader.integer((*DB, "MgetBatchSize"), 500, minimum=1),
        mget_max_keys=reader.integer((*DB, "MgetMaxKeys"), 10000, minimum=1),
        max_render_bytes=reader.integer((*DB, "MaxRenderBytes"), 1024 * 1024, minimum=1024),
        discovery_cache_seconds=reader.number((*DB, "DiscoveryCacheSeconds"), 30.0,
                                              positive=False),
        forwarded_proxies=reader.integer((*DB, "ForwardedProxies"), 0, minimum=0),
        session_storage=_storage_url(reader, "SessionStorage", (*_REDIS_SCHEMES, "memory", "file")),
        session_idle_minutes=reader.number((*DB, "SessionIdleMinutes"), 60.0),
        session_max_hours=reader.number((*DB, "SessionMaxHours"), 12.0),
        rate_limit_storage=_storage_url(reader, "RateLimitStorage", (*_REDIS_SCHEMES, "memory")),
    )
    # --- single sign-on through an authenticating proxy (Dashboard:TrustedAuth*) --------
    dashboard = replace(dashboard, **trusted_auth_settings(reader, dashboard.forwarded_proxies, warnings))
    # --- observability: metrics, structured logs, audit trail ---------------------------
    dashboard = replace(dashboard, **_observability(reader),
                        data_directory=_data_directory(reader, environ))
    # --- export and import --------------------------------------------------------------
    dashboard = replace(dashboard, max_import_bytes=reader.integer(
        (*DB, "MaxImportBytes"), DashboardSettings.max_import_bytes, minimum=1024))
    # --- live view ----------------------------------------------------------------------
    dashboard = replace(dashboard, max_live_streams=reader.integer(
        (*DB, "MaxLiveStreams"), DashboardSettings.max_live_streams, minimum=0))
    # --- access per prefix, masking, elevation, environment ----------------------------
    dashboard = replace(dashboard, **access_settings(reader, warnings))
    return Settings(
        provider=provider,
        toskastore=toskastore,
        redis=redis,
        dashboard=dashboard,
        config_path=path,
        warnings=tuple(warnings),
        service_name=reader.runtime_string(("Mesh", "Service", "ServiceName")),
    )
