"""How values, TTLs, sizes and times read on screen, and how TTLs are typed in."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from .providers.base import Entry

_TTL_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TTL_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
MAX_TTL_MS = 10 * 365 * 86_400_000


def has_surrogates(text: str) -> bool:
    """Keys that are not UTF-8 (Redis allows any bytes) arrive surrogate-escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_ttl(text: str) -> int:
    """``90s``, ``15m``, ``2h``, ``1d`` or plain milliseconds -> milliseconds (> 0)."""
    match = _TTL_RE.match(text or "")
    if not match:
        raise ValueError(
            f"TTL {text!r} is not understood: use 90s, 15m, 2h, 1d or a number of milliseconds"
        )
    ms = int(match.group(1)) * _TTL_UNITS_MS[(match.group(2) or "ms").lower()]
    if ms <= 0:
        raise ValueError("TTL must be greater than zero (use 'no expiry' to remove the TTL)")
    if ms > MAX_TTL_MS:
        raise ValueError("TTL is longer than ten years; use 'no expiry' instead")
    return ms


def human_duration(ms: int) -> str:
    """1d 2h, 3m 4s, 850ms: the two largest units."""
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def ttl_attr(entry: Entry) -> str:
    """The ``data-ttl-ms`` attribute: remaining ms, ``none`` or ``unknown``."""
    if not entry.ttl_known:
        return "unknown"
    return "none" if entry.ttl_ms is None else str(entry.ttl_ms)


def ttl_label(entry: Entry) -> str:
    if not entry.ttl_known:
        return "unknown"
    return "no expiry" if entry.ttl_ms is None else human_duration(entry.ttl_ms)


def utc_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def preview(entry: Entry, limit: int = 120) -> str:
    """A one-line excerpt of the value (escaped by Jinja where shown)."""
    if entry.value is None:
        length = f" ({entry.length} items)" if entry.length is not None else ""
        return f"[{entry.type}{length}]"
    flat = " ".join(entry.value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def pretty_content(content) -> str:
    """A Redis collection's contents as indented JSON (HTML-escaped later by Jinja)."""
    return json.dumps(content, indent=2, ensure_ascii=False, default=str)


def register(app) -> None:
    app.jinja_env.filters.update(
        ttl_attr=ttl_attr, ttl_label=ttl_label, utc_time=utc_time, human_size=human_size,
        preview=preview, human_duration=human_duration, pretty_content=pretty_content,
    )
