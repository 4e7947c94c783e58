"""Redis connection strings: the StackExchange.Redis form (``host:port,password=...,
defaultDatabase=2``) and ``redis://``/``rediss://`` URLs, parsed into ``RedisSettings``, and
whether a string names its own database (which then wins over ``Mesh:KeyValue:Redis:Database``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from dashboard.settings.errors import ConfigError, Path, _display, env_name
from dashboard.settings.sources import _as_int

_CS_PATH: Path = ("Mesh", "KeyValue", "Redis", "ConnectionString")


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
    #: every ``host:port`` the connection string names, in its order (``host``/``port``
    #: are the first); a Redis Cluster is started from all of them
    endpoints: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    @property
    def all_endpoints(self) -> tuple[tuple[str, int], ...]:
        """The endpoints to connect to; just ``host``/``port`` if they were changed since."""
        if self.endpoints and self.endpoints[0] == (self.host, self.port):
            return self.endpoints
        return ((self.host, self.port),)


def _bool_text(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    return None


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
    defaultDatabase=2`` with options case-insensitive and unknown ones ignored; every
    endpoint is kept (a Redis Cluster starts from all of them; a standalone server is the
    first).
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
    parsed = tuple(_parse_endpoint(e, ssl, setting, shown) for e in endpoints)
    host, port = parsed[0]
    return RedisSettings(
        host=host,
        port=port,
        endpoints=tuple(dict.fromkeys(parsed)),
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
