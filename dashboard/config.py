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
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import unicodedata
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


# --------------------------------------------------------------------------- .NET semantics


def is_dotnet_whitespace(ch: str) -> bool:
    """``char.IsWhiteSpace``: the Unicode White_Space characters (U+0009-U+000D, U+0085 and
    the Zs/Zl/Zp categories). Unlike ``str.isspace`` it excludes U+001C-U+001F."""
    return ch in "\t\n\v\f\r\x85" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_null_or_whitespace(value: str | None) -> bool:
    """``string.IsNullOrWhiteSpace``."""
    return value is None or all(is_dotnet_whitespace(ch) for ch in value)


def _dotnet_trim(text: str, *, end: bool = True) -> str:
    """``ReadOnlySpan<char>.Trim()`` (or ``TrimStart()`` with ``end=False``)."""
    start, stop = 0, len(text)
    while start < stop and is_dotnet_whitespace(text[start]):
        start += 1
    while end and stop > start and is_dotnet_whitespace(text[stop - 1]):
        stop -= 1
    return text[start:stop]


def service_prefix(key_prefix: str | None, service_name: str | None) -> str | None:
    """The runtime's ``BuildPrefix``: ``key_prefix`` unless null/whitespace, else
    ``service_name``; ``:`` appended unless it already ends with one (both used verbatim).
    None when neither is set (where the runtime would use its "mesh-service" default)."""
    prefix = service_name if is_null_or_whitespace(key_prefix) else key_prefix
    if prefix is None or is_null_or_whitespace(prefix):
        return None
    return prefix if prefix.endswith(":") else prefix + ":"


#: ``enum MeshKeyValueProvider { Redis, ToskaStore }``: declared names and values
PROVIDER_MEMBERS: dict[str, int] = {"Redis": 0, "ToskaStore": 1}
_PROVIDER_IDS: dict[int, Literal["redis", "toskastore"]] = {0: "redis", 1: "toskastore"}
#: what Number.TryParseBinaryIntegerStyle accepts with AllowLeadingSign | AllowTrailingWhite
#: (invariant culture) after the leading whitespace is gone; trailing NULs are tolerated
_DOTNET_INTEGER = re.compile(r"([+-]?[0-9]+)[\t\n\v\f\r ]*\x00*")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def dotnet_enum_try_parse(value: str | None, members: Mapping[str, int]) -> int | None:
    """``Enum.TryParse<TEnum>(value, ignoreCase: true, out result)`` for an ``int``-backed
    enum (.NET 8 ``Enum.TryParseByValueOrName``): the parsed value, None when it fails.

    Leading whitespace is skipped. A value starting with an ASCII digit, ``+`` or ``-`` is
    first read as an Int32 (sign, digits, trailing ASCII whitespace); any in-range number
    succeeds even when no member has it; out of range fails outright; otherwise it falls
    back to names. Names: split on ``,``, each piece trimmed and matched case-insensitively
    (ordinal; only ASCII letters fold here) against the declared names, their values
    OR-ed; an empty piece, a trailing comma, a number inside a list or an unknown name
    fails.
    """
    if value is None:
        return None
    text = _dotnet_trim(value, end=False)
    if not text:
        return None
    if text[0] in "0123456789+-":
        number = _DOTNET_INTEGER.fullmatch(text)
        if number is not None:
            parsed = int(number.group(1))
            return parsed if _INT32_MIN <= parsed <= _INT32_MAX else None
    result = 0
    rest = text
    while rest:
        comma = rest.find(",")
        if comma < 0:
            piece, rest = rest, ""
        elif comma != len(rest) - 1:
            piece, rest = rest[:comma], rest[comma + 1 :]
        else:
            return None  # a trailing separator
        piece = _dotnet_trim(piece)
        for name, member in members.items():
            if _ascii_casefold(piece) == _ascii_casefold(name):
                result |= member
                break
        else:
            return None
    return result


def _ascii_casefold(text: str) -> str:
    return "".join(ch.lower() if ch.isascii() else ch for ch in text)


def parse_provider(value: str | None) -> tuple[Literal["redis", "toskastore"], str | None]:
    """``Mesh:KeyValue:Provider`` as the runtime's ``GetProvider`` reads it: the provider and,
    when the value is set but names no provider (so the runtime falls back to Redis), why.
    Unset, empty or whitespace is Redis without a problem."""
    if is_null_or_whitespace(value):
        return "redis", None
    parsed = dotnet_enum_try_parse(value, PROVIDER_MEMBERS)
    if parsed is None:
        return "redis", "is not Redis, ToskaStore, 0 or 1"
    if parsed not in _PROVIDER_IDS:
        return "redis", f"is the number {parsed}, which is no provider (0 = Redis, 1 = ToskaStore)"
    return _PROVIDER_IDS[parsed], None


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

    def runtime_string(self, path: Path) -> str | None:
        """A string the mesh runtime reads itself (KeyPrefix, KeyIndexKey, ServiceName):
        verbatim, never stripped, as .NET configuration keeps it; None when unset or
        null/whitespace (``string.IsNullOrWhiteSpace``). JSON true/false read as .NET does
        (``True``/``False``)."""
        value = self.value(path)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise self.fail(path, value, "must be a string")
        if isinstance(value, bool):
            value = "True" if value else "False"
        text = str(value)
        return None if is_null_or_whitespace(text) else text

    def optional_boolean(self, path: Path) -> bool | None:
        """A boolean, or None when unset or empty."""
        value = self.value(path)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text == "":
            return None
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise self.fail(path, value, "is not a boolean (use true/false, 1/0 or yes/no)")

    def boolean(self, path: Path, default: bool) -> bool:
        parsed = self.optional_boolean(path)
        return default if parsed is None else parsed

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


def connection_string_names_database(value: str) -> bool:
    """Whether a Redis connection string carries its own database, so that the runtime's
    ``ApplyDatabase`` leaves ``Mesh:KeyValue:Redis:Database`` out: for the StackExchange form
    a case-insensitive substring check for ``defaultDatabase`` anywhere in the string (as
    the runtime does, even inside another option's value); for a ``redis://`` URL (which
    only the dashboard accepts) a database in the URL path."""
    text = value.strip()
    if "://" in text:
        try:
            return urlsplit(text).path.strip("/") != ""
        except ValueError:
            return False
    return re.search("defaultdatabase", value, re.IGNORECASE | re.ASCII) is not None


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
        forwarded_proxies=reader.integer((*DB, "ForwardedProxies"), 0, minimum=0),
    )
    return Settings(
        provider=provider,
        toskastore=toskastore,
        redis=redis,
        dashboard=dashboard,
        config_path=path,
        warnings=tuple(warnings),
        service_name=reader.runtime_string(("Mesh", "Service", "ServiceName")),
    )
