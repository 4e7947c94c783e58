"""``ConfigError`` and how a setting appears in one: its env-var name and its value, quoted
on one line with every secret masked (passwords in connection strings and URLs included).
"""

from __future__ import annotations

import json
import re
from typing import Any

MASK = "***"
#: last segments whose values are never shown
SECRET_NAMES = frozenset({"authtoken", "password", "secretkey", "passwordhash", "metricstoken"})

#: a setting's key path, e.g. ``("Mesh", "KeyValue", "Provider")``
Path = tuple[str, ...]


class ConfigError(Exception):
    """An invalid or unreadable setting; ``str()`` is one line for an operator."""

    def __init__(self, message: str) -> None:
        message = " ".join(message.split("\n"))
        super().__init__(message)
        self.message = message


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
