"""Where settings come from, and typed reading of them.

``appsettings.json`` (with the ``//``/``/* */`` comments and trailing commas .NET allows),
overlaid by ``Mesh__*``/``Dashboard__*`` environment variables, flattened into ``_Raw``:
case-insensitive key paths, each with the value and where it came from. ``_Reader`` reads
typed values from it and raises one-line ``ConfigError``s naming the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.settings.dotnet import is_null_or_whitespace
from dashboard.settings.errors import ConfigError, Path, _display, env_name

#: env var naming the appsettings.json file when no path is given
APPSETTINGS_ENV = "DASHBOARD_APPSETTINGS"
#: top-level sections read from the environment (others, like PATH, are ignored)
_SECTIONS = ("mesh", "dashboard")
#: the dashboard's own section
DB: Path = ("Dashboard",)


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
