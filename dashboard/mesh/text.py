"""Words and checks for text every layer shows or validates: sizes, durations, UTC times,
and whether a string holds surrogate escapes (bytes that are not UTF-8)."""

from __future__ import annotations

from datetime import UTC, datetime


def has_surrogates(text: str) -> bool:
    """Keys that are not UTF-8 (Redis allows any bytes) arrive surrogate-escaped."""
    if text.isascii():  # every value a page shows passes here: skip the encode
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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


def utc_time(ms: int | None) -> str:
    if ms is None:
        return "—"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a store may hold any number: never a 500
        return f"{'after the year 9999' if ms > 0 else 'before the year 1'} ({ms} ms since 1970)"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"
