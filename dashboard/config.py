"""Settings in the mesh's own language: ``appsettings.json`` overlaid by ``__`` env vars.

The dashboard reads the same names ToskaMesh services use (``Mesh:KeyValue:*``) plus its
own ``Dashboard:*`` section, following .NET configuration rules: keys are case-insensitive
at every level, ``Mesh__KeyValue__Provider`` in the environment is the JSON path
``Mesh:KeyValue:Provider``, and arrays come from the environment as index segments
(``Dashboard__Services__0__Name``). Precedence: file < environment < ``overrides``.

Every invalid setting raises ``ConfigError`` with one line that names the setting in its
env-var spelling, where it came from, and the value with secrets masked.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

#: env var naming the appsettings.json file when no path is given
APPSETTINGS_ENV = "DASHBOARD_APPSETTINGS"
MASK = "***"
#: last segments whose values are never shown
SECRET_NAMES = frozenset({"authtoken", "password", "secretkey", "passwordhash"})
#: top-level sections read from the environment (others, like PATH, are ignored)
_SECTIONS = ("mesh", "dashboard")

Path = tuple[str, ...]


class ConfigError(Exception):
    """An invalid or unreadable setting; ``str()`` is one line for an operator."""

    def __init__(self, message: str) -> None:
        message = " ".join(message.split("\n"))
        super().__init__(message)
        self.message = message


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
class RedisSettings:
    """``Mesh:KeyValue:Redis``, with the connection string parsed into its parts."""

    host: str = "localhost"
    port: int = 6379
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    database: int = 0
    key_prefix: str | None = None
    #: as configured; may carry a password, so never display it unmasked
    connection_string: str = field(default="localhost:6379", repr=False)


@dataclass(frozen=True)
class ServiceSettings:
    """One mesh service the dashboard shows: a key prefix, ending with ``:``."""

    name: str
    key_prefix: str
    #: the service's ``__keys`` index key (without prefix); None: not configured
    key_index_key: str | None = None


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
    #: number of proxies in front (ingress) whose X-Forwarded-* headers are trusted; 0 = none
    forwarded_proxies: int = 0


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

    def masked(self) -> dict[str, Any]:
        """The settings in appsettings.json shape for display, every secret masked."""
        ts, rd, db = self.toskastore, self.redis, self.dashboard
        return {
            "Mesh": {
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
                    {"Name": s.name, "KeyPrefix": s.key_prefix, "KeyIndexKey": s.key_index_key}
                    for s in db.services
                ],
                "ReadOnly": db.read_only,
                "PathBase": db.path_base,
                "Demo": db.demo,
                "StoreTimeoutSeconds": db.store_timeout_seconds,
                "LegacyListCap": db.legacy_list_cap,
                "MgetBatchSize": db.mget_batch_size,
                "MgetMaxKeys": db.mget_max_keys,
                "ForwardedProxies": db.forwarded_proxies,
            },
        }


# --------------------------------------------------------------------------- masking


_CS_PASSWORD = re.compile(r"(?i)(^|,)(\s*password\s*=)[^,]*")


_URL_PASSWORD = re.compile(r"(?i)(://[^/?#@:]*:)[^/?#]*@")


def mask_url(url: str) -> str:
    """A URL with the password of its userinfo (if any) replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", url)


def mask_connection_string(value: str) -> str:
    """A Redis connection string (StackExchange or URL) with its password masked."""
    if value.strip().lower().startswith(("redis://", "rediss://")):
        return mask_url(value.strip())
    return _CS_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)


def _display(path: Path, value: Any) -> str:
    """The value as it may appear in an error message: quoted, one line, secrets masked."""
    last = path[-1].lower() if path else ""
    if value is None:
        return "null"
    if last in SECRET_NAMES:
        return MASK
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = "an object" if isinstance(value, dict) else "an array"
        return text
    else:
        text = str(value)
    if last == "connectionstring":
        text = mask_connection_string(text)
    elif "://" in text:
        text = mask_url(text)
    if len(text) > 200:
        text = text[:200] + "…"
    return json.dumps(text, ensure_ascii=False)


def env_name(path: Path) -> str:
    """``("Mesh","KeyValue","Provider")`` → ``Mesh__KeyValue__Provider``."""
    return "__".join(path)


# --------------------------------------------------------------------------- raw layers


@dataclass
class _Raw:
    """Flattened configuration: lower-cased key paths → (value, where it came from)."""

    values: dict[Path, tuple[Any, str]] = field(default_factory=dict)

    def set(self, path: Path, value: Any, source: str) -> None:
        self.values[tuple(p.lower() for p in path)] = (value, source)

    def drop_under(self, path: Path) -> None:
        low = tuple(p.lower() for p in path)
        for key in [k for k in self.values if k[: len(low)] == low]:
            del self.values[key]

    def get(self, path: Path) -> tuple[Any, str] | None:
        return self.values.get(tuple(p.lower() for p in path))

    def near(self, path: Path) -> tuple[Any, str] | None:
        """Any value set under ``path`` (to say where a missing sibling was expected)."""
        low = tuple(p.lower() for p in path)
        for key, found in self.values.items():
            if key[: len(low)] == low:
                return found
        return None

    def indices(self, path: Path) -> list[str]:
        """Array index segments under ``path``, in numeric order (as .NET binds arrays)."""
        low = tuple(p.lower() for p in path)
        found = {
            k[len(low)] for k in self.values if len(k) > len(low) and k[: len(low)] == low
        }
        return sorted((i for i in found if i.isdigit()), key=int)

    def add_tree(self, tree: Any, source: str, prefix: Path = (), *, replace_lists: bool) -> None:
        """Flatten a JSON-shaped tree; ``None`` leaves unset a key (overrides only)."""
        if isinstance(tree, Mapping):
            for key, sub in tree.items():
                self.add_tree(sub, source, (*prefix, str(key)), replace_lists=replace_lists)
        elif isinstance(tree, (list, tuple)):
            if replace_lists:
                self.drop_under(prefix)
            for index, sub in enumerate(tree):
                self.add_tree(sub, source, (*prefix, str(index)), replace_lists=replace_lists)
        elif tree is None and replace_lists:
            self.drop_under(prefix)
        elif prefix:
            self.set(prefix, tree, source)


def _strip_json_comments(text: str) -> str:
    """Blank out ``//`` and ``/* */`` comments and trailing commas, as .NET's JSON
    configuration allows them; line and column numbers stay where they were."""
    out = list(text)
    i, n = 0, len(text)
    in_string = False
    last_comma: int | None = None
    while i < n:
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
            i += 1
            continue
        if ch == '"':
            in_string = True
            last_comma = None
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            for j in range(i, end):
                out[j] = " "
            i = end
            continue
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        elif ch == ",":
            last_comma = i
        elif ch in "}]":
            if last_comma is not None:
                out[last_comma] = " "
            last_comma = None
        elif not ch.isspace():
            last_comma = None
        i += 1
    return "".join(out)


def _read_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file is a directory: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        tree = json.loads(_strip_json_comments(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON in {path} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(tree, dict):
        raise ConfigError(f"invalid configuration file {path}: the top level must be an object")
    return tree


def _env_layer(raw: _Raw, environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        segments = re.split(r"__|:", name)
        if len(segments) < 2 or segments[0].lower() not in _SECTIONS or "" in segments:
            continue
        raw.set(tuple(segments), value, "environment")


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Typed access to the flattened configuration, raising one-line ``ConfigError``s."""

    def __init__(self, raw: _Raw) -> None:
        self.raw = raw

    def fail(self, path: Path, value: Any, problem: str) -> ConfigError:
        found = self.raw.get(path) or self.raw.near(path[:-1])
        where = f" (from {found[1]})" if found else ""
        shown = "" if value is None else f"{_display(path, value)} "
        return ConfigError(f"invalid setting {env_name(path)}{where}: {shown}{problem}")

    def value(self, path: Path) -> Any:
        found = self.raw.get(path)
        return None if found is None else found[0]

    def string(self, path: Path, default: str | None = None) -> str | None:
        value = self.value(path)
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            raise self.fail(path, value, "must be a string")
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        return default if text.strip() == "" else text

    def boolean(self, path: Path, default: bool) -> bool:
        value = self.value(path)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text == "":
            return default
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise self.fail(path, value, "is not a boolean (use true/false, 1/0 or yes/no)")

    def integer(self, path: Path, default: int, *, minimum: int | None = None) -> int:
        value = self.value(path)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return default
        number = _as_int(value)
        if number is None:
            raise self.fail(path, value, "is not an integer")
        if minimum is not None and number < minimum:
            raise self.fail(path, value, f"must be at least {minimum}")
        return number

    def number(self, path: Path, default: float, *, positive: bool = True) -> float:
        value = self.value(path)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return default
        if isinstance(value, bool):
            raise self.fail(path, value, "is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(path, value, "is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self.fail(path, value, "is not a finite number")
        if positive and number <= 0:
            raise self.fail(path, value, "must be greater than 0")
        return number


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return None


def _bool_text(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    return None


KV: Path = ("Mesh", "KeyValue")
TS: Path = (*KV, "ToskaStore")
RD: Path = (*KV, "Redis")
DB: Path = ("Dashboard",)
_CS_PATH: Path = (*RD, "ConnectionString")


def _parse_endpoint(text: str, ssl: bool, setting: str, shown: str) -> tuple[str, int]:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"invalid setting {setting}: {shown} {problem}")

    text = text.strip()
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise bad(f"has an unclosed IPv6 address in endpoint {json.dumps(text)}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise bad(f"has a malformed endpoint {json.dumps(text)}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        # a bare IPv6 address; StackExchange.Redis accepts it without a port
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise bad(f"has a malformed endpoint {json.dumps(text)}") from None
    if not host:
        raise bad(f"has an endpoint without a host: {json.dumps(text)}")
    if port_text is None or port_text == "":
        return host, 6380 if ssl else 6379
    port = _as_int(port_text)
    if port is None or not 0 < port < 65536:
        raise bad(f"has an invalid port {json.dumps(port_text)} (expected 1-65535)")
    return host, port


def parse_redis_connection_string(
    value: str, *, setting: str = env_name(_CS_PATH)
) -> RedisSettings:
    """Parse a StackExchange.Redis configuration string or a ``redis://``/``rediss://`` URL.

    StackExchange form: ``host:port[,host2:port2],password=...,user=...,ssl=true,
    defaultDatabase=2`` with options case-insensitive and unknown ones ignored; only the
    first endpoint is used.
    """
    shown = _display(("ConnectionString",), value)
    text = (value or "").strip()

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"invalid setting {setting}: {shown} {problem}")

    if not text:
        raise bad("is empty")
    if "://" in text:
        return _parse_redis_url(text, value, bad)

    endpoints: list[str] = []
    options: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            name, _, opt = item.partition("=")
            options[name.strip().lower()] = opt.strip()
        else:
            endpoints.append(item)
    ssl = False
    if "ssl" in options:
        parsed = _bool_text(options["ssl"])
        if parsed is None:
            raise bad(f"has ssl={json.dumps(options['ssl'])}, which is not true or false")
        ssl = parsed
    database = 0
    if "defaultdatabase" in options:
        db = _as_int(options["defaultdatabase"])
        if db is None or db < 0:
            raise bad(
                f"has defaultDatabase={json.dumps(options['defaultdatabase'])}, "
                "which is not a non-negative integer"
            )
        database = db
    if not endpoints:
        raise bad("names no host:port endpoint")
    host, port = _parse_endpoint(endpoints[0], ssl, setting, shown)
    return RedisSettings(
        host=host,
        port=port,
        username=options.get("user") or None,
        password=options.get("password") or None,
        ssl=ssl,
        database=database,
        connection_string=value,
    )


def _parse_redis_url(text: str, original: str, bad: Any) -> RedisSettings:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise bad(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise bad("is not a redis:// or rediss:// URL or a host:port connection string")
    if not parts.hostname:
        raise bad("has no host")
    database = 0
    path = parts.path.strip("/")
    if path:
        db = _as_int(path)
        if db is None or db < 0:
            raise bad(f"has database {json.dumps(path)}, which is not a non-negative integer")
        database = db
    return RedisSettings(
        host=parts.hostname,
        port=port or 6379,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=scheme == "rediss",
        database=database,
        connection_string=original,
    )


def _base_url(reader: _Reader) -> str:
    path = (*TS, "BaseUrl")
    url = reader.string(path, ToskaStoreSettings.base_url)
    assert url is not None
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise reader.fail(path, url, "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise reader.fail(path, url, "must be an absolute http:// or https:// URL")
    return url.rstrip("/")


def _index_key(reader: _Reader, path: Path, default: str | None) -> str | None:
    key = reader.string(path, default)
    if key is not None and key.strip() != key:
        raise reader.fail(path, key, "must not start or end with spaces")
    return key


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
        index_key = _index_key(reader, (*base, "KeyIndexKey"), None)
        services.append(ServiceSettings(name=name, key_prefix=prefix, key_index_key=index_key))
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

    provider_text = reader.string((*KV, "Provider"))
    provider: Literal["redis", "toskastore"] = "redis"
    if provider_text is not None:
        low = provider_text.strip().lower()
        if low == "toskastore":
            provider = "toskastore"
        elif low != "redis":
            warnings.append(
                f"{env_name((*KV, 'Provider'))}={json.dumps(provider_text)} is unknown; "
                "using Redis, as the mesh does"
            )

    toskastore = ToskaStoreSettings(
        base_url=_base_url(reader),
        auth_token=reader.string((*TS, "AuthToken")),
        key_prefix=reader.string((*TS, "KeyPrefix")),
        enable_key_index=reader.boolean((*TS, "EnableKeyIndex"), False),
        key_index_key=_index_key(reader, (*TS, "KeyIndexKey"), "__keys") or "__keys",
    )

    connection_string = reader.string(_CS_PATH, RedisSettings.connection_string)
    assert connection_string is not None
    found = raw.get(_CS_PATH)
    setting = env_name(_CS_PATH) + (f" (from {found[1]})" if found else "")
    redis = parse_redis_connection_string(connection_string, setting=setting)
    database_path = (*RD, "Database")
    if reader.string(database_path) is not None:
        redis = replace(redis, database=reader.integer(database_path, 0, minimum=0))
    redis = replace(redis, key_prefix=reader.string((*RD, "KeyPrefix")))

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
        forwarded_proxies=reader.integer((*DB, "ForwardedProxies"), 0, minimum=0),
    )
    return Settings(
        provider=provider,
        toskastore=toskastore,
        redis=redis,
        dashboard=dashboard,
        config_path=path,
        warnings=tuple(warnings),
    )
