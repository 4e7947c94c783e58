"""How values, TTLs, sizes and times read on screen, and how TTLs are typed in."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime

from markupsafe import Markup, escape

from .providers.base import Entry

_TTL_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TTL_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
MAX_TTL_MS = 10 * 365 * 86_400_000


def has_surrogates(text: str) -> bool:
    """Keys that are not UTF-8 (Redis allows any bytes) arrive surrogate-escaped."""
    if text.isascii():  # every value a page shows passes here: skip the encode
        return False
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


# --- showing text that may hide or reorder characters ----------------------------------
#
# Keys and values are data anyone with write access chose. A right-to-left override makes
# ``rtl\u202egpj.exe`` read as ``rtlexe.jpg``; a zero-width space makes two different keys
# look alike; a line break or NUL disappears. So what is shown is HTML-escaped and these
# characters become visible escapes (``\u202E``) in their own style (class ``esc``), built
# from escaped parts: nothing from the store is ever marked safe as it is.

# Bidi controls (Trojan Source), C0/C1 controls and characters that render as nothing.
# Shown as escapes everywhere: keys, previews and whole values.
_ALWAYS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # controls but TAB, LF, CR
    "\u00ad\u061c\u115f\u1160\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U0001d173-\U0001d17a\U000e0001"
)
# Also shown as escapes in keys (identifiers: two keys must never look alike), but kept in
# values, where they are ordinary text: TAB/LF/CR, spaces other than U+0020 (NBSP ...),
# joiners and variation selectors (emoji sequences), other invisible format characters.
_KEY_ONLY = (
    "\t\n\r\u00a0\u034f\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u1680\u17b4\u17b5"
    "\u180b-\u180d\u180f\u2000-\u200a\u200c\u200d\u202f\u205f\u2800\u3000\ufe00-\ufe0f"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U000e0002-\U000e0fff"
)
_SURROGATES = "\ud800-\udfff"
_KEY_SPECIAL = re.compile(f"[{_ALWAYS}{_KEY_ONLY}{_SURROGATES}]")
# In whole values a CR is a line break only as part of CRLF.
_VALUE_SPECIAL = re.compile(f"[{_ALWAYS}{_SURROGATES}]|\r(?!\n)")
# A preview is one line: runs of ASCII whitespace (TAB, LF, CR, FF, VT too) read as one space.
_PREVIEW_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(char: str) -> Markup:
    """One special character as a visible, styled escape; non-UTF-8 bytes as U+FFFD."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        # A Redis key or value that is not UTF-8 arrives surrogate-escaped; the pages show
        # such bytes as U+FFFD (and say the key is not UTF-8), as Jinja's finalize does.
        return Markup("\ufffd")
    shown = _SHORT.get(char) or (f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
    name = unicodedata.name(char, "control character" if code < 0xA0 else "invisible character")
    return Markup('<span class="esc" title="{}">{}</span>').format(f"U+{code:04X} {name}", shown)


def _visible(text: str, special: re.Pattern[str]) -> Markup:
    if special.search(text) is None:  # the common case: one escape, no parts
        return escape(text)
    parts: list[str] = []
    start = 0
    for match in special.finditer(text):
        parts.append(escape(text[start:match.start()]))
        parts.append(_escape_char(match.group()))
        start = match.end()
    parts.append(escape(text[start:]))
    return Markup("").join(parts)


def _text(value: object) -> str:
    """Plain text of anything: Markup input is text too (a key is never markup)."""
    if value is None:
        return ""
    return str.__str__(value) if isinstance(value, str) else str(value)


def show_key(value: object) -> Markup:
    r"""A key (or service prefix) for display: ``<bdi class="show-key" dir="ltr">…</bdi>``.

    The wrapper isolates the key from the text around it and lays it out left to right;
    inside, everything is HTML-escaped, and control characters (C0/C1, TAB, CR, LF), bidi
    controls, zero-width and other invisible characters, and spaces other than U+0020 are
    shown as escapes (``\u202E``, ``\n``) in ``<span class="esc" title="U+202E ...">``.
    Bytes that are not UTF-8 (surrogate-escaped Redis keys) show as U+FFFD. Never raises;
    ``None`` shows as nothing. Only for display: links, hidden inputs and data attributes
    keep the exact key. For a plain-text context (``<title>``, ``<option>``, a file name)
    use ``key|show_key|striptags``: the escapes stay, the markup goes.
    """
    # concatenated, not Markup.format: a browse page shows hundreds of keys
    inner = str.__str__(_visible(_text(value), _KEY_SPECIAL))  # already escaped
    return Markup('<bdi class="show-key" dir="ltr">' + inner + "</bdi>")


def show_value(value: object) -> Markup:
    """A whole value for a ``<pre>``: HTML-escaped, with bidi controls, control characters
    (but TAB, LF and CRLF) and invisible characters shown as escapes, so no value can
    reorder or hide what is shown. Joiners, variation selectors and non-ASCII spaces stay
    (they are ordinary text in values). Never raises."""
    return _visible(_text(value), _VALUE_SPECIAL)


def has_hidden_characters(value: object) -> bool:
    """True when ``show_value`` shows ``value`` differently from its characters."""
    return bool(_VALUE_SPECIAL.search(_text(value)))


def preview(entry: Entry, limit: int = 120) -> Markup:
    """A one-line excerpt of the value, escaped, with hidden characters shown as escapes."""
    if entry.value is None:
        length = f" ({entry.length} items)" if entry.length is not None else ""
        return escape(f"[{entry.type}{length}]")
    # only the start of a big value is looked at: a preview never walks a whole value
    flat = _PREVIEW_SPACE.sub(" ", _text(entry.value)[: limit * 8]).strip(" ")
    cut = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return _visible(cut, _VALUE_SPECIAL)


def pretty_content(content) -> str:
    """A Redis collection's contents as indented JSON (HTML-escaped later by Jinja)."""
    try:
        return json.dumps(content, indent=2, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return repr(content)


def register(app) -> None:
    app.jinja_env.filters.update(
        ttl_attr=ttl_attr, ttl_label=ttl_label, utc_time=utc_time, human_size=human_size,
        preview=preview, human_duration=human_duration, pretty_content=pretty_content,
        show_key=show_key, show_value=show_value,
    )
    app.jinja_env.tests["hiding_characters"] = has_hidden_characters
