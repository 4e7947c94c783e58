"""The typed settings: what ``load_settings`` (``load.py``) returns.

Frozen dataclasses, one per section: ``Settings`` (everything, with the active provider's
service prefix and index key, and ``masked`` for display), ``ToskaStoreSettings``
(``Mesh:KeyValue:ToskaStore``), ``DashboardSettings`` (``Dashboard``) with its
``ServiceSettings`` and ``UserSettings``. ``RedisSettings`` (``Mesh:KeyValue:Redis``) lives
with the connection strings it is parsed from, in ``redis_connection``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dashboard.settings.dotnet import service_prefix
from dashboard.settings.errors import MASK, mask_connection_string, mask_url
from dashboard.settings.redis_connection import RedisSettings


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
    #: ``Dashboard:Users:N:Groups``, lower-cased: the groups access rules may name
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessRule:
    """``Dashboard:Access:N``: the role some operators have on some service prefixes.

    A prefix any rule names is restricted: only the operators its rules name reach it.
    """

    prefixes: tuple[str, ...]
    role: Literal["none", "viewer", "editor"]
    #: operator names, exact
    users: frozenset[str] = frozenset()
    #: group names, lower-cased (SSO groups and ``Dashboard:Users:N:Groups``)
    groups: frozenset[str] = frozenset()
    #: store names the rule is limited to (empty: every store)
    stores: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaskingRule:
    """``Dashboard:Masking:N``: JSON properties hidden from those who may not write there."""

    prefixes: tuple[str, ...]
    json_fields: frozenset[str]


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
    #: the audit trail keeps the values before and after each write (else only their sizes;
    #: then an undo cannot put a value back)
    audit_values: bool = True
    #: the audit trail keeps this many newest entries
    audit_max_entries: int = 100_000
    #: the most of one value an entry keeps (a longer value is kept as its size and digest)
    audit_value_bytes: int = 64 * 1024
    #: entries older than this many days are dropped
    audit_retention_days: float = 90.0
    #: ``sqlite:///file`` (None: ``audit.sqlite3`` in ``data_directory``, unless the session
    #: storage is a Redis: then that Redis), ``redis://``/``rediss://`` or ``memory://``
    audit_storage: str | None = field(default=None, repr=False)
    #: where the dashboard keeps its own files (``Dashboard:DataDirectory``)
    data_directory: str = ""

    # --- export and import (Dashboard:MaxImportBytes; see transfer/) ---------------------
    #: the largest file an import takes (it is kept whole between the plan and the confirm)
    max_import_bytes: int = 16 * 1024 * 1024

    # --- live view (Dashboard:MaxLiveStreams; see live.py) --------------------------------
    #: live pages (SSE streams) one process serves at once; each holds a worker thread, so
    #: keep it below gunicorn's --threads (0 turns the live view off)
    max_live_streams: int = 20

    # --- access per prefix, masking, elevation, environment (settings/access.py) ---------
    access_rules: tuple[AccessRule, ...] = ()
    masking_rules: tuple[MaskingRule, ...] = ()
    #: editors browse read-only until they elevate (POST /elevate with a reason)
    elevation_required: bool = False
    elevation_max_minutes: int = 60
    #: a band on every page and the name in the title (e.g. "production")
    environment_name: str | None = None
    #: the band's colour, ``#rrggbb``/``#rgb``
    environment_color: str | None = None


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
                    {"Name": u.name, "PasswordHash": MASK, "Role": u.role,
                     "Groups": ",".join(u.groups)} for u in db.users
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
                "AuditValueBytes": db.audit_value_bytes,
                "AuditRetentionDays": db.audit_retention_days,
                "AuditStorage": mask_url(db.audit_storage) if db.audit_storage else None,
                "DataDirectory": db.data_directory,
                "MaxImportBytes": db.max_import_bytes,
                "MaxLiveStreams": db.max_live_streams,
                "Access": [
                    {"Prefixes": ",".join(r.prefixes), "Role": r.role,
                     "Users": ",".join(sorted(r.users)), "Groups": ",".join(sorted(r.groups)),
                     "Stores": ",".join(r.stores)}
                    for r in db.access_rules
                ],
                "Masking": [
                    {"Prefixes": ",".join(r.prefixes), "JsonFields": ",".join(sorted(r.json_fields))}
                    for r in db.masking_rules
                ],
                "Elevation": {"Required": db.elevation_required,
                              "MaxMinutes": db.elevation_max_minutes},
                "Environment": {"Name": db.environment_name, "Color": db.environment_color},
            },
        }
