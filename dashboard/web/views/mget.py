"""Bulk lookups: paste many keys, see which exist, download the result as CSV or JSON.

How the ``keys`` text is read (``parse_keys``):

- Line breaks (``\\n``, ``\\r\\n``, ``\\r``) separate lines; the break that ends the last
  line does not make an extra (blank) line.
- **One line** (at most one non-blank line): that line is split on commas and whitespace,
  so ``a, b c`` is three keys. This is what ``/mget?keys=a,b,c`` bookmarks use.
- **Two or more lines**: every line is one key, trimmed of surrounding whitespace; commas
  and inner spaces belong to the key. Paste keys that contain spaces or commas one per
  line (a single such key: open it with ``/key?key=`` instead).
- Blank lines and duplicates are dropped and counted. With a service selected, every key
  that does not already start with the service's prefix gets it, before duplicates are
  found (``profile:alice`` and ``profiles:profile:alice`` are the same key then).

The lookup itself is one ``provider.mget`` call: the provider batches it into bulk
requests (ToskaStore ``POST /kv/mget``, Redis pipelines), never one request per key.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask_login import current_user, login_required

from dashboard import mesh
from dashboard.mesh.access.guarded import DENIED
from dashboard.stores.entries import Entry
from dashboard.web.current import provider
from dashboard.web.discovery import discovered
from dashboard.web.formatting import ttl_label
from dashboard.web.htmx import is_htmx

bp = Blueprint("mget", __name__)

FORMATS = ("csv", "json")
#: inputs up to this many characters get a bookmarkable GET link
PERMALINK_MAX_CHARS = 2000
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class ParsedKeys:
    """The keys to look up (full keys, input order, each once) and what was dropped."""

    keys: list[str]
    blank_lines: int = 0
    duplicates: int = 0
    #: keys the service prefix was added to
    prefixed: int = 0
    #: the service prefix applied ("" for none)
    prefix: str = ""

    @property
    def dropped_message(self) -> str:
        """``3 blank lines and 2 duplicates dropped``; empty when nothing was dropped."""
        parts = []
        if self.blank_lines:
            parts.append(f"{self.blank_lines} blank line{'s' if self.blank_lines != 1 else ''}")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate{'s' if self.duplicates != 1 else ''}")
        return f"{' and '.join(parts)} dropped" if parts else ""


def parse_keys(text: str, service: str = "") -> ParsedKeys:
    """Read the textarea (see the module docstring for the rule) and apply the service prefix."""
    prefix = mesh.normalise_prefix(service.strip()) if service.strip() else ""
    if not text.strip():
        return ParsedKeys([], prefix=prefix)
    lines = _LINE_BREAK.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the line break that ends the last line
    filled = [line for line in lines if line.strip()]
    blank = len(lines) - len(filled)
    if len(filled) == 1:
        raw = [token for token in _SEPARATORS.split(filled[0]) if token]
    else:
        raw = [line.strip() for line in filled]
    keys: dict[str, None] = {}
    duplicates = prefixed = 0
    for key in raw:
        if prefix and not key.startswith(prefix):
            key = prefix + key
            prefixed += 1
        if key in keys:
            duplicates += 1
        else:
            keys[key] = None
    return ParsedKeys(list(keys), blank, duplicates, prefixed, prefix)


def service_choices(selected: str = "") -> list[tuple[str, str]]:
    """(prefix, label) for the service selector: configured services and discovered ones."""
    choices = {s.prefix: s.name for s in discovered().services}
    if selected:
        choices.setdefault(selected, selected)
    return sorted(choices.items())


def records(rows: Sequence[tuple[str, Entry | None]]) -> Iterator[dict[str, Any]]:
    """One plain record per row, as the downloads carry them; ``ttl`` is the TTL in the
    words every page uses (``formatting.ttl_label``), None for a missing key."""
    for key, entry in rows:
        if entry is None:
            yield {"key": key, "found": False, "value": None, "ttl_ms": None,
                   "ttl_known": False, "ttl": None, "type": None}
        elif entry.type == DENIED:
            # not in the operator's access: whether it exists is not said either
            yield {"key": key, "found": None, "value": None, "ttl_ms": None,
                   "ttl_known": False, "ttl": None, "type": None, "denied": True}
        else:
            yield {"key": key, "found": True, "value": entry.value,
                   "ttl_ms": entry.ttl_ms if entry.ttl_known else None,
                   "ttl_known": entry.ttl_known, "ttl": ttl_label(entry), "type": entry.type}


def _download(body: str, fmt: str) -> Response:
    # backslashreplace: a Redis value that is not UTF-8 (surrogate-escaped) still downloads;
    # in JSON the replacement is a valid \\udcXX escape.
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    return Response(
        body.encode("utf-8", "backslashreplace"),
        mimetype=mimetype, content_type=f"{mimetype}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="mget.{fmt}"',
                 "Cache-Control": "no-store"},
    )


# A spreadsheet reads a cell starting with one of these as a formula (OWASP's CSV
# injection list: = + - @ TAB CR; full-width forms too, which some locales accept), also
# after leading whitespace. A leading ' is added to them, and to cells that already start
# with ', so the escape can be told from data: spreadsheets hide one leading ' and show the
# rest as text, and a script drops one leading ' to get the exact value back.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(text: str) -> str:
    """``text`` safe to open in a spreadsheet: formula-like cells get a leading ``'``."""
    if not text:
        return text
    first = text.lstrip(" \n\x0b\x0c")[:1] or text[0]
    if text[0] in _FORMULA_START or first in _FORMULA_START or text[0] == "'":
        return "'" + text
    return text


def to_csv(rows: Sequence[tuple[str, Entry | None]]) -> str:
    """The table as CSV; keys and values neutralised with ``csv_cell`` (JSON keeps them exact).

    ``ttl_ms`` is empty both for "no expiry" and "unknown": the last column, ``ttl``, says
    which, in the words of the page."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["key", "found", "value", "ttl_ms", "type", "ttl"])
    for record in records(rows):
        writer.writerow([
            csv_cell(record["key"]),
            "denied" if record.get("denied") else "true" if record["found"] else "false",
            "" if record["value"] is None else csv_cell(record["value"]),
            "" if record["ttl_ms"] is None else record["ttl_ms"],
            csv_cell(record["type"] or ""),
            "not in your access" if record.get("denied") else record["ttl"] or "",
        ])
    return out.getvalue()


def to_json(rows: Sequence[tuple[str, Entry | None]], found: int, missing: int) -> str:
    return json.dumps({"results": list(records(rows)), "found": found, "missing": missing},
                      ensure_ascii=False)


@bp.route("/mget", methods=["GET", "POST"])
@login_required
def lookup():
    """The form; a POST (or a GET with ``keys``) runs the lookup; ``format`` downloads it."""
    source = request.form if request.method == "POST" else request.args
    text = source.get("keys", "").replace("\r\n", "\n")
    service = source.get("service", "").strip()
    fmt = source.get("format", "").strip().lower()
    run = request.method == "POST" or "keys" in request.args
    context: dict[str, Any] = {"text": text, "service": service, "parsed": None, "rows": None,
                               "error": None, "found": 0, "missing": 0, "permalink": None}
    status = 200
    if fmt and fmt not in FORMATS:
        context["error"] = f"Unknown download format {fmt!r}: use csv or json."
        status = 400
    elif run:
        parsed = parse_keys(text, service)
        context["parsed"] = parsed
        limit = current_app.config["KV_SETTINGS"].dashboard.mget_max_keys
        if not parsed.keys:
            context["error"] = "No keys to look up: paste keys one per line (or comma separated)."
            status = 400
        elif len(parsed.keys) > limit:
            context["error"] = (
                f"{len(parsed.keys):,} keys is more than the {limit:,} one lookup allows "
                f"(Dashboard__MgetMaxKeys); nothing was looked up. Split the list and look "
                f"up at most {limit:,} keys at a time."
            )
            status = 400
        else:
            found_by_key = provider().mget(parsed.keys)
            rows = [(key, found_by_key.get(key)) for key in parsed.keys]
            found = sum(1 for _, entry in rows if entry is not None and entry.type != DENIED)
            missing = sum(1 for _, entry in rows if entry is None)
            current_app.logger.info("mget by %s: %d keys, %d found, %d missing",
                                    current_user.name, len(rows), found, missing)
            if fmt == "csv":
                return _download(to_csv(rows), fmt)
            if fmt == "json":
                return _download(to_json(rows, found, missing), fmt)
            context.update(rows=rows, found=found, missing=missing)
            if len(text) <= PERMALINK_MAX_CHARS:
                context["permalink"] = url_for("mget.lookup", keys=text, service=service or None)
    headers = {"Vary": "HX-Request"}
    if is_htmx():
        # htmx swaps no 4xx answer; like the app's error banners, the partial carries the error.
        return render_template("mget/_results.html", **context), 200, headers
    context["services"] = service_choices(service)
    return render_template("mget/lookup.html", **context), status, headers
