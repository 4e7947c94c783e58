"""How values, TTLs, sizes and times read on screen, and how TTLs are typed in."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote_plus

from flask import g, url_for
from jinja2 import pass_environment
from markupsafe import Markup, escape

from dashboard.mesh.text import has_surrogates, human_duration, human_size, utc_time
from dashboard.stores.entries import Entry

_TTL_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TTL_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
MAX_TTL_MS = 10 * 365 * 86_400_000



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



#: what every page and download says of a TTL the store cannot report (0.8, v0.9.1)
TTL_UNKNOWN = "unknown: this store does not report TTLs"


def ttl_attr(entry: Entry) -> str:
    """The ``data-ttl-ms`` attribute: remaining ms, ``none`` or ``unknown``."""
    if not entry.ttl_known:
        return "unknown"
    return "none" if entry.ttl_ms is None else str(entry.ttl_ms)


def ttl_text(ttl_ms: int | None, *, known: bool = True) -> str:
    """A TTL in the one wording every page and download uses: ``no expiry``, ``expires in
    1d 2h``, ``unknown: this store does not report TTLs`` or ``expired``."""
    if not known:
        return TTL_UNKNOWN
    if ttl_ms is None:
        return "no expiry"
    if ttl_ms <= 0:
        return "expired"
    return "expires in " + human_duration(ttl_ms)


def ttl_label(entry: Entry) -> str:
    """``entry``'s TTL in words (``ttl_text``)."""
    return ttl_text(entry.ttl_ms, known=entry.ttl_known)


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


#: how far back from the limit a preview looks for a word or punctuation boundary
BOUNDARY_REACH = 20


def _joins(before: str, after: str) -> bool:
    """Whether a cut between these two characters would split what reads as one: a word
    (letters, digits and their accents), a base and its accent, or an emoji sequence."""
    # marks (accents, variation selectors) belong to the character before them, and a
    # zero-width joiner holds an emoji sequence together
    if unicodedata.category(after)[0] == "M" or "\u200d" in (before, after):
        return True
    return after.isalnum() and (before.isalnum() or unicodedata.category(before)[0] == "M")


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: whole when it fits, else cut at the last
    word or punctuation boundary before the limit, and ending with an ellipsis.

    The cut keeps punctuation before it (``"name":…``) and drops spaces; one long token
    (no boundary in the last ``BOUNDARY_REACH`` characters) is cut where the limit falls.
    Characters are cut, not their escapes: ``_visible`` turns each hidden character that
    is kept into its whole escape afterwards.
    """
    if len(text) <= limit:
        return text
    end = limit - 1  # the ellipsis takes the last place
    for cut in range(end, max(end - BOUNDARY_REACH, 0), -1):
        if not _joins(text[cut - 1], text[cut]):
            kept = text[:cut].rstrip(" ")
            if kept:
                return kept + "…"
    return text[:end] + "…"


def preview(entry: Entry, limit: int = 120) -> Markup:
    """A one-line excerpt of the value, escaped, with hidden characters shown as escapes;
    a long value is cut at a word or punctuation boundary (``shorten``)."""
    if entry.value is None:
        length = f" ({entry.length} items)" if entry.length is not None else ""
        return escape(f"[{entry.type}{length}]")
    # only the start of a big value is looked at: a preview never walks a whole value
    text = _text(entry.value)
    head = text[: limit * 2]
    if head.isascii() and head.isprintable() and "  " not in head:
        # the common value: printable ASCII (no TAB/LF/CR/FF/VT, no control or invisible
        # character) with single spaces: nothing to collapse, nothing to show as an escape
        flat = head.strip(" ")
        if len(flat) > limit:
            return escape(shorten(flat, limit))
        if len(text) <= limit * 2:
            return escape(flat)
    flat = _PREVIEW_SPACE.sub(" ", head).strip(" ")
    if len(flat) <= limit and len(text) > limit * 2:
        # whitespace shrank the first part to a preview or less: look further. Otherwise
        # this is what the longer look gives: collapsing a longer start only adds text
        # after the part already enough for a preview.
        flat = _PREVIEW_SPACE.sub(" ", text[: limit * 8]).strip(" ")
    return _visible(shorten(flat, limit), _VALUE_SPECIAL)


def pretty_content(content) -> str:
    """A Redis collection's contents as indented JSON (HTML-escaped later by Jinja)."""
    try:
        return json.dumps(content, indent=2, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return repr(content)


# --- table rows in one call ------------------------------------------------------------
#
# A browse page has up to 500 rows and a bulk lookup 10,000: the filters above, called from
# a Jinja loop, cost ~40 µs a row in lookups, Markup objects and escapes. These render the
# same rows in one Python call per table, byte for byte what the loops in
# ``keys/_rows.html`` and ``mget/_results.html`` rendered (tests/web/test_escaping_matrix.py,
# test_display_*.py): every piece from the store is HTML-escaped (a key once, shared by its
# ``data-key`` and its shown form when it holds nothing ``show_key`` marks), text that
# Jinja's ``finalize`` would change (surrogate-escaped keys) goes through ``finalize``, and
# only what this module computed itself from numbers (TTLs, sizes) is left unescaped.

_QUERY_SAFE = "!$'()*,/:;?@"


def key_url(key: str) -> str:
    """``url_for("keys.detail", key=key)``, built once per request: a browse page has 500.

    The query is encoded exactly as ``url_for`` encodes it (the same safe characters).
    """
    base = g.get("key_url_base")
    if base is None:
        base = g.key_url_base = url_for("keys.detail")
    value: str | bytes = key.encode("utf-8", "surrogateescape") if has_surrogates(key) else key
    return f"{base}?key={quote_plus(value, safe=_QUERY_SAFE)}"


#: keys made only of characters ``key_url`` leaves as they are (``quote_plus`` never quotes
#: letters, digits, ``_.-~`` and ``_QUERY_SAFE``): such a key's link is the link of
#: the key "" followed by the key itself. Built on first use from ``_QUERY_SAFE``.
_url_plain: re.Pattern[str] | None = None


def _key_links() -> tuple[Callable[[str], str], str, re.Pattern[str]]:
    """``key_url``, its link for the key "" and the pattern of keys it leaves alone."""
    global _url_plain
    if _url_plain is None:
        _url_plain = re.compile("[A-Za-z0-9_.~" + re.escape(_QUERY_SAFE) + "-]+")
    return key_url, key_url(""), _url_plain


def _key_cells(key: str, finalize: Callable[[Any], Any] | None,
               url_of: Callable[[str], str], url_plain: re.Pattern[str], url_prefix_html: str,
               ) -> tuple[str, str, str]:
    """(escaped ``data-key`` value, escaped link, ``show_key_wrap`` markup) of one key."""
    if type(key) is str and _KEY_SPECIAL.search(key) is None:
        # the common key: nothing to mark, no surrogates, so finalize leaves it alone and
        # its escaped text serves the attribute, the link and the shown form alike (a
        # Markup key, which Jinja would not escape in the attribute, takes the long way)
        text = str.__str__(escape(key))
        # a plain key's link is the prefix and the key (escaping goes character by character)
        link = (url_prefix_html + text if url_plain.fullmatch(key)
                else str.__str__(escape(url_of(key))))
        # a long key wraps after its ``:`` and ``/`` (escaping leaves both as they are)
        wrapped = text.replace(":", ":<wbr>").replace("/", "/<wbr>")
        return text, link, '<bdi class="show-key" dir="ltr">' + wrapped + "</bdi>"
    shown = key if finalize is None else finalize(key)
    return (str.__str__(escape(shown)), str.__str__(escape(url_of(key))),
            str.__str__(show_key_wrap(key)))


#: what the elements of each Redis collection are called: (one, many)
_ELEMENT_NAMES = {"hash": ("field", "fields"), "list": ("item", "items"),
                  "set": ("member", "members"), "zset": ("member", "members"),
                  "stream": ("entry", "entries")}


def element_count(entry: Entry) -> str | None:
    """A Redis collection's size in its own elements ("1,204 fields"); None for a string,
    and for a type whose length was not read (a module type)."""
    if entry.value is not None or entry.length is None:
        return None
    one, many = _ELEMENT_NAMES.get(entry.type, ("element", "elements"))
    return f"{entry.length:,} {one if entry.length == 1 else many}"


def _size_cell(entry: Entry, finalize: Callable[[Any], Any] | None) -> str:
    if entry.value is not None:
        return human_size(entry.size)
    count = element_count(entry)
    if count is not None:  # digits and fixed words: nothing to escape
        return count
    return str.__str__(escape(entry.type if finalize is None else finalize(entry.type)))


def size_attr(entry: Entry) -> str:
    """The ``data-size`` attribute a browse row sorts by: a string's bytes, a collection's
    elements, ``""`` for a type whose length was not read (sorted last)."""
    if entry.value is not None:
        return str(entry.size)
    return "" if entry.length is None else str(entry.length)


@pass_environment
def key_rows(env, entries: Iterable[Entry]) -> Markup:
    """The ``<tr data-testid="key-row">`` rows of a browse page (``keys/_rows.html``).

    Each row carries what ``static/browse.js`` sorts by: ``data-key``, ``data-size``
    (``size_attr``) and the TTL cell's ``data-ttl-ms``.
    """
    url_of, url_prefix, url_plain = _key_links()
    url_prefix_html = str.__str__(escape(url_prefix))
    finalize = env.finalize
    parts: list[str] = []
    append = parts.append
    for entry in entries:
        data_key, link, shown = _key_cells(entry.key, finalize, url_of, url_plain,
                                           url_prefix_html)
        append('\n<tr data-testid="key-row" data-key="' + data_key + '" data-size="'
               + size_attr(entry) + '">\n'
               '  <td class="key"><a href="' + link + '">' + shown + "</a></td>\n"
               '  <td class="preview"><code>' + str.__str__(preview(entry)) + "</code></td>\n"
               '  <td class="ttl" data-ttl-ms="' + ttl_attr(entry) + '">' + ttl_label(entry)
               + "</td>\n"
               '  <td class="size">' + _size_cell(entry, finalize) + "</td>\n</tr>\n")
    return Markup("".join(parts))


@pass_environment
def mget_rows(env, rows: Iterable[tuple[str, Entry | None]]) -> Markup:
    """The ``<tr data-testid="mget-row">`` rows of a bulk lookup (``mget/_results.html``)."""
    url_of, url_prefix, url_plain = _key_links()
    url_prefix_html = str.__str__(escape(url_prefix))
    finalize = env.finalize
    parts: list[str] = []
    append = parts.append
    for key, entry in rows:
        data_key, link, shown = _key_cells(key, finalize, url_of, url_plain, url_prefix_html)
        if entry is None:
            append('\n    <tr data-testid="mget-row" data-key="' + data_key
                   + '" data-found="false">\n'
                   '      <td class="key"><a href="' + link + '">' + shown + "</a></td>\n"
                   '      <td class="found"><span class="badge warn">missing</span></td>\n'
                   '      <td class="preview"></td><td class="ttl">—</td><td class="size"></td>\n'
                   "    </tr>")
            continue
        if entry.type == "denied":  # mesh.access.guarded.DENIED: not in the operator's access
            append('\n    <tr data-testid="mget-row" data-key="' + data_key
                   + '" data-found="denied">\n'
                   '      <td class="key">' + shown + "</td>\n"
                   '      <td class="found"><span class="badge warn">no access</span></td>\n'
                   '      <td class="preview muted" colspan="3">not in your access '
                   "(Dashboard__Access rules)</td>\n    </tr>")
            continue
        ttl = '<td class="ttl" data-ttl-ms="' + ttl_attr(entry) + '">' + ttl_label(entry) + "</td>"
        append('\n    <tr data-testid="mget-row" data-key="' + data_key + '" data-found="true">\n'
               '      <td class="key"><a href="' + link + '">' + shown + "</a></td>\n"
               '      <td class="found"><span class="badge">found</span></td>\n'
               '      <td class="preview"><code>' + str.__str__(preview(entry)) + "</code></td>\n"
               "      " + ttl + "\n"
               '      <td class="size">' + _size_cell(entry, finalize) + "</td>\n    </tr>")
    return Markup("".join(parts))


# --- links in templates -----------------------------------------------------------------
#
# Every page builds a dozen links that never change (the navigation, static files) and
# some twice (a key page's download link): werkzeug's URL building costs ~10 µs each.

#: links without values remembered across requests, per URL adapter binding; bounded
_STATIC_LINKS_MAX = 512


def _template_url_for(app) -> Callable[..., str]:
    """``url_for`` for templates: ``app.url_for``, with what cannot change remembered.

    A link without values (``url_for('services.index')``, and ``static`` with only a
    ``filename``) depends only on the endpoint and on how the request's URL adapter is
    bound (script root, server name, subdomain, scheme): it is remembered across requests
    under exactly those. Any other link is remembered for the rest of its request only
    (same endpoint and values, in the same order). Relative endpoints (``.x``), URL
    defaults and anything unhashable take ``app.url_for`` every time.
    """
    build = app.url_for
    try:
        from flask.globals import _cv_request
    except ImportError:  # pragma: no cover - another Flask: no shortcut
        return build
    lasting: dict[tuple, str] = {}

    def url_for(endpoint: str, /, **values: Any) -> str:
        ctx = _cv_request.get(None)
        if ctx is None or ctx.url_adapter is None or endpoint[:1] == "." or (
                app.url_default_functions):
            return build(endpoint, **values)
        if not values or (endpoint == "static" and len(values) == 1
                          and type(values.get("filename")) is str):
            adapter = ctx.url_adapter
            key = (endpoint, values.get("filename"), adapter.script_name, adapter.server_name,
                   adapter.subdomain, adapter.url_scheme)
            url = lasting.get(key)
            if url is None:
                url = build(endpoint, **values)
                if len(lasting) >= _STATIC_LINKS_MAX:
                    lasting.clear()
                lasting[key] = url
            return url
        try:
            key = (endpoint, tuple(values.items()))
            memo = ctx.__dict__.setdefault("_kv_links", {})
            url = memo.get(key)
        except TypeError:  # an unhashable value
            return build(endpoint, **values)
        if url is None:
            url = memo[key] = build(endpoint, **values)
        return url

    return url_for


def register(app) -> None:
    app.jinja_env.globals["url_for"] = _template_url_for(app)
    app.jinja_env.filters.update(
        ttl_attr=ttl_attr, ttl_label=ttl_label, utc_time=utc_time, human_size=human_size,
        preview=preview, human_duration=human_duration, pretty_content=pretty_content,
        show_key=show_key, show_value=show_value, key_rows=key_rows, mget_rows=mget_rows,
    )
    app.jinja_env.tests["hiding_characters"] = has_hidden_characters


# --- search results and long keys --------------------------------------------------------

_WRAP_AFTER = re.compile(r"(?<=[:/])")


def show_key_wrap(value: object) -> Markup:
    """``show_key`` with a line-break opportunity (``<wbr>``) after every ``:`` and ``/``.

    A long key then wraps at its segment boundaries, not mid-word; each part is escaped
    and shown exactly as ``show_key`` shows it.
    """
    parts = _WRAP_AFTER.split(_text(value))
    inner = "<wbr>".join(str.__str__(_visible(part, _KEY_SPECIAL)) for part in parts)
    return Markup('<bdi class="show-key" dir="ltr">' + inner + "</bdi>")


def hit_excerpt(hit) -> Markup:
    """A value search hit on one line: the text around the match, the match in ``<mark>``.

    Every part is escaped with hidden characters shown as escapes, as in ``preview``.
    """
    before, match, after = (
        _visible(_PREVIEW_SPACE.sub(" ", _text(part)), _VALUE_SPECIAL)
        for part in (hit.before, hit.match, hit.after))
    return Markup("").join([before, Markup('<mark data-testid="hit-mark">'), match,
                            Markup("</mark>"), after])
