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

This module holds the settings dataclasses and ``load_settings`` with the checks of each
section. The rest lives beside it: ``config_sources`` (appsettings.json, the environment,
typed reading), ``config_sso`` (the ``Dashboard:TrustedAuth*`` single sign-on settings),
``config_errors`` (``ConfigError``, masking), ``redis_connection``
(connection strings) and ``dotnet`` (how the .NET runtime parses its settings).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from dashboard.settings.dotnet import (  # noqa: F401
    PROVIDER_MEMBERS,
    dotnet_enum_try_parse,
    is_dotnet_whitespace,
    is_null_or_whitespace,
    parse_provider,
    service_prefix,
)

# Names imported here but unused are re-exported: ``dashboard.settings`` offers them all, as it
# did when it held everything.
from dashboard.settings.errors import (  # noqa: F401
    MASK,
    SECRET_NAMES,
    ConfigError,
    Path,
    _display,
    env_name,
    mask_connection_string,
    mask_url,
)
from dashboard.settings.redis_connection import (  # noqa: F401
    _CS_PATH,
    RedisSettings,
    connection_string_names_database,
    parse_redis_connection_string,
)
from dashboard.settings.sources import (  # noqa: F401
    APPSETTINGS_ENV,
    DB,
    _env_layer,
    _Raw,
    _read_file,
    _Reader,
)
from dashboard.settings.sso import trusted_auth_settings

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ToskaStoreSettings:
    """``Mesh:KeyValue:ToskaStore``."""

    base_url: str = "http://localhost:4000"
    auth_token: str | None = field(default=None, repr=False)
    key_prefix: str | None = None
    enable_key_index: bool = False
    key_index_key: str = "__keys"


@dataclass(frozen=True)
class ServiceSettings:
    """One mesh service the dashboard shows: a key prefix, ending with ``:``."""

    name: str
    key_prefix: str
    #: the service's ``__keys`` index key (without prefix), verbatim as configured;
    #: None: unset or whitespace, i.e. inherit ``Mesh:KeyValue:ToskaStore:KeyIndexKey``
    key_index_key: str | None = None
    #: ``Dashboard:Services:N:EnableKeyIndex``; None: not said
    enable_key_index: bool | None = None


@dataclass(frozen=True)
class UserSettings:
    """An operator who may log in; ``role`` is ``viewer`` or ``editor``."""

    name: str
    password_hash: str = field(repr=False)
    role: Literal["viewer", "editor"] = "viewer"


@dataclass(frozen=True)
class DashboardSettings:
    """The dashboard's own section, ``Dashboard``."""

    secret_key: str | None = field(default=None, repr=False)
    users: tuple[UserSettings, ...] = ()
    users_file: str | None = None
    services: tuple[ServiceSettings, ...] = ()
    read_only: bool = False
    path_base: str = ""
    demo: bool = False
    store_timeout_seconds: float = 5.0
    legacy_list_cap: int = 10000
    mget_batch_size: int = 500
    mget_max_keys: int = 10000
    #: the most of a value a page renders (and the largest value edited in the browser)
    max_render_bytes: int = 1024 * 1024
    #: seconds a discovered service list is reused by every page (0: walk on every page)
    discovery_cache_seconds: float = 30.0
    #: number of proxies in front (ingress) whose X-Forwarded-* headers are trusted; 0 = none
    forwarded_proxies: int = 0
    #: where sessions live: None = files in a private temp directory (every worker process
    #: of one host), ``memory://`` (this process only), ``file:///dir``, or a
    #: ``redis://``/``rediss://`` URL (shared by replicas)
    session_storage: str | None = field(default=None, repr=False)
    #: a session unused this long ends
    session_idle_minutes: float = 60.0
    #: a session ends this long after its login, used or not
    session_max_hours: float = 12.0
    #: failed-login counters: None = the session storage's Redis if it is one, else this
    #: process's memory; ``memory://`` or a ``redis://``/``rediss://`` URL (flask-limiter)
    rate_limit_storage: str | None = field(default=None, repr=False)

    # --- single sign-on through an authenticating proxy (Dashboard:TrustedAuth*) ------------
    #: request header the proxy sets to the operator's name (``X-Forwarded-User``);
    #: None = no single sign-on. Honoured only from ``trusted_auth_proxies`` and only when
    #: ``forwarded_proxies`` > 0 (see ``sso.proxy_identity``)
    trusted_auth_header: str | None = None
    #: request header the proxy sets to the operator's groups, comma-separated; None = none
    trusted_auth_groups_header: str | None = None
    #: (group, role) pairs, groups lower-cased (matched case-insensitively); the highest role
    #: of an operator's mapped groups wins
    trusted_auth_roles: tuple[tuple[str, str], ...] = ()
    #: role of an operator in no mapped group: "viewer", "editor" or "none" (refused)
    trusted_auth_default_role: str = "viewer"
    #: networks the connection carrying the header must come from: the original peer, before
    #: ProxyFix rewrote it (the proxy itself, e.g. an oauth2-proxy sidecar on loopback). No
    #: default: ``load_settings`` refuses a header without it (port-forwards come from loopback)
    trusted_auth_proxies: tuple[str, ...] = ()

    # --- observability: metrics, structured logs, audit trail (Dashboard:MetricsToken,
    # --- LogFormat, AuditValues, AuditMaxEntries; see metrics.py, logs.py, audit.py) ----
    #: when set, ``/metrics`` answers only ``Authorization: Bearer <this token>``
    metrics_token: str | None = field(default=None, repr=False)
    #: ``text`` (readable lines, for the CLI and development) or ``json`` (one JSON object a line)
    log_format: Literal["text", "json"] = "text"
    #: the audit trail keeps the values written (else only their sizes)
    audit_values: bool = False
    #: the audit trail keeps this many newest entries
    audit_max_entries: int = 10000

    # --- export and import (Dashboard:MaxImportBytes; see transfer/) ---------------------
    #: the largest file an import takes (it is kept whole between the plan and the confirm)
    max_import_bytes: int = 16 * 1024 * 1024

    # --- live view (Dashboard:MaxLiveStreams; see live.py) --------------------------------
    #: live pages (SSE streams) one process serves at once; each holds a worker thread, so
    #: keep it below gunicorn's --threads (0 turns the live view off)
    max_live_streams: int = 20


@dataclass(frozen=True)
class Settings:
    """Everything the dashboard is configured with."""

    provider: Literal["redis", "toskastore"] = "redis"
    toskastore: ToskaStoreSettings = field(default_factory=ToskaStoreSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    #: the appsettings.json file read, if any
    config_path: str | None = None
    #: notes for the operator that are not errors (e.g. an unknown provider name)
    warnings: tuple[str, ...] = ()
    #: ``Mesh:Service:ServiceName`` as configured (verbatim), None when unset or whitespace.
    #: The runtime's class default "mesh-service" is deliberately NOT applied: the dashboard
    #: is not itself a mesh service, so only an explicitly configured ServiceName counts.
    service_name: str | None = None

    @property
    def own_service_prefix(self) -> str | None:
        """The active provider's service prefix, built as the runtime's ``BuildPrefix`` does:
        that provider's ``KeyPrefix`` unless null/whitespace, else ``Mesh:Service:ServiceName``,
        with ``:`` appended unless it already ends with one; None when neither is set."""
        if self.provider == "toskastore":
            return service_prefix(self.toskastore.key_prefix, self.service_name)
        return service_prefix(self.redis.key_prefix, self.service_name)

    @property
    def own_index_key(self) -> str | None:
        """The full key of the ``__keys`` index the ToskaStore runtime keeps (when its
        ``EnableKeyIndex`` is true) for the configured service:
        ``<own_service_prefix><KeyIndexKey>``. None on Redis (that runtime keeps no index)
        or when no service prefix is configured."""
        prefix = self.own_service_prefix
        if self.provider != "toskastore" or prefix is None:
            return None
        return prefix + self.toskastore.key_index_key

    def masked(self) -> dict[str, Any]:
        """The settings in appsettings.json shape for display, every secret masked."""
        ts, rd, db = self.toskastore, self.redis, self.dashboard
        return {
            "Mesh": {
                "Service": {"ServiceName": self.service_name},
                "KeyValue": {
                    "Provider": "ToskaStore" if self.provider == "toskastore" else "Redis",
                    "ToskaStore": {
                        "BaseUrl": mask_url(ts.base_url),
                        "AuthToken": MASK if ts.auth_token else None,
                        "KeyPrefix": ts.key_prefix,
                        "EnableKeyIndex": ts.enable_key_index,
                        "KeyIndexKey": ts.key_index_key,
                    },
                    "Redis": {
                        "ConnectionString": mask_connection_string(rd.connection_string),
                        "Host": rd.host,
                        "Port": rd.port,
                        "User": rd.username,
                        "Password": MASK if rd.password else None,
                        "Ssl": rd.ssl,
                        "Database": rd.database,
                        "KeyPrefix": rd.key_prefix,
                    },
                }
            },
            "Dashboard": {
                "SecretKey": MASK if db.secret_key else None,
                "Users": [
                    {"Name": u.name, "PasswordHash": MASK, "Role": u.role} for u in db.users
                ],
                "UsersFile": db.users_file,
                "Services": [
                    {
                        "Name": s.name,
                        "KeyPrefix": s.key_prefix,
                        "KeyIndexKey": s.key_index_key,
                        "EnableKeyIndex": s.enable_key_index,
                    }
                    for s in db.services
                ],
                "ReadOnly": db.read_only,
                "PathBase": db.path_base,
                "Demo": db.demo,
                "StoreTimeoutSeconds": db.store_timeout_seconds,
                "LegacyListCap": db.legacy_list_cap,
                "MgetBatchSize": db.mget_batch_size,
                "MgetMaxKeys": db.mget_max_keys,
                "MaxRenderBytes": db.max_render_bytes,
                "DiscoveryCacheSeconds": db.discovery_cache_seconds,
                "ForwardedProxies": db.forwarded_proxies,
                "SessionStorage": mask_url(db.session_storage) if db.session_storage else None,
                "SessionIdleMinutes": db.session_idle_minutes,
                "SessionMaxHours": db.session_max_hours,
                "RateLimitStorage": (mask_url(db.rate_limit_storage)
                                     if db.rate_limit_storage else None),
                "TrustedAuthHeader": db.trusted_auth_header,
                "TrustedAuthGroupsHeader": db.trusted_auth_groups_header,
                "TrustedAuthRoles": dict(db.trusted_auth_roles),
                "TrustedAuthDefaultRole": db.trusted_auth_default_role,
                "TrustedAuthProxies": list(db.trusted_auth_proxies),
                "MetricsToken": MASK if db.metrics_token else None,
                "LogFormat": db.log_format,
                "AuditValues": db.audit_values,
                "AuditMaxEntries": db.audit_max_entries,
                "MaxImportBytes": db.max_import_bytes,
                "MaxLiveStreams": db.max_live_streams,
            },
        }


# --------------------------------------------------------------------------- loading


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
        users.append(UserSettings(name=name.strip(), password_hash=password_hash, role=role))
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
    if scheme == "memory" and (parts.netloc or parts.path):
        raise reader.fail(path, mask_url(url), "must be exactly memory://")
    return url


# --- observability: Dashboard:MetricsToken, LogFormat, AuditValues, AuditMaxEntries ----

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
        "audit_values": reader.boolean((*DB, "AuditValues"), False),
        "audit_max_entries": reader.integer((*DB, "AuditMaxEntries"), 10000, minimum=1),
    }


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
    dashboard = replace(dashboard, **_observability(reader))
    # --- export and import --------------------------------------------------------------
    dashboard = replace(dashboard, max_import_bytes=reader.integer(
        (*DB, "MaxImportBytes"), DashboardSettings.max_import_bytes, minimum=1024))
    # --- live view ----------------------------------------------------------------------
    dashboard = replace(dashboard, max_live_streams=reader.integer(
        (*DB, "MaxLiveStreams"), DashboardSettings.max_live_streams, minimum=0))
    return Settings(
        provider=provider,
        toskastore=toskastore,
        redis=redis,
        dashboard=dashboard,
        config_path=path,
        warnings=tuple(warnings),
        service_name=reader.runtime_string(("Mesh", "Service", "ServiceName")),
    )
