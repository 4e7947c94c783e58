"""The key page's views of a value: a JSON tree, numbered lines, a hex dump, collection tables.

Pure functions from a value to escaped markup, each bounded: the tree by nodes and depth,
the lines by how many are numbered, the hex dump by bytes, a collection's cells by
characters. Every piece of text from the store goes through ``show_value`` (or ``show_key``
for a hash field or a set member), so hidden, bidi and control characters show as escapes
exactly as on the rest of the page; nothing from the store is marked safe as it is.

Paths in the tree are JSONPath as RedisJSON and RedisInsight write them: ``$`` for the
root, ``.name`` for a member whose name is an identifier, ``["odd name"]`` (a JSON string)
for any other, ``[2]`` for an array item: ``$.items[2].name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from dashboard.mesh import meshjson
from dashboard.stores.entries import Entry
from dashboard.web.formatting import element_count, has_hidden_characters, show_key, show_value

#: levels of nesting the tree lays out; a deeper array or object shows as one line of JSON
MAX_TREE_DEPTH = 32
#: the most nodes (values, at any depth) a tree lays out; a bigger document is shown as text
MAX_TREE_NODES = 5_000
#: a tree of at most this many nodes opens fully; a bigger one opens its first OPEN_DEPTH levels
OPEN_ALL_NODES = 500
OPEN_DEPTH = 2
#: lines numbered in a text view (the rest is shown, unnumbered): a value of line breaks
#: alone would otherwise be a million elements
MAX_NUMBERED_LINES = 50_000
#: bytes a hex dump shows (each takes ~5 bytes of page), and bytes per row
HEX_MAX_BYTES = 64 * 1024
HEX_WIDTH = 16
#: characters shown of one cell of a collection table
CELL_CHARS = 2_000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE_BREAK = re.compile(r"(\r?\n)")
# C0 controls but TAB, LF and CR, and DEL: text does not hold them, binary data does
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_COLUMN = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))  # "." elsewhere


# --- JSON: literals, paths, compact text -----------------------------------------------

def json_literal(text: str) -> str:
    """A string as the JSON view writes it: quoted, controls, quotes, backslashes and lone
    surrogates escaped, every other character as it is (``meshjson.pretty``'s rules)."""
    return meshjson.pretty(meshjson.dumps(text)) or ""


def path_segment(step: str | int) -> str:
    """One step of a JSONPath: ``[2]``, ``.name``, or ``["odd name"]``."""
    if isinstance(step, int):
        return f"[{step}]"
    if _IDENTIFIER.fullmatch(step):
        return "." + step
    return "[" + json_literal(step) + "]"


def json_path(steps: list[str | int]) -> str:
    """The JSONPath of a node from the steps to it (member names and array indexes)."""
    return "$" + "".join(path_segment(step) for step in steps)


class _Text(str):
    """Punctuation already written, as opposed to a JSON string value still to quote."""

    __slots__ = ()


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return json_literal(value)
    if isinstance(value, meshjson.Number):
        return value.text
    return {None: "null", True: "true", False: "false"}[value]  # type: ignore[index]


def compact_json(value: object) -> str:
    """``value`` (as ``meshjson.loads`` returns it) as one line of JSON, strings as the JSON
    view writes them; without recursion, so any depth ``loads`` accepts is written."""
    out: list[str] = []
    work: list[object] = [value]
    while work:
        item = work.pop()
        if isinstance(item, _Text):
            out.append(item)
        elif isinstance(item, meshjson.JsonObject):
            work.append(_Text("}"))
            for i in range(len(item) - 1, -1, -1):
                name, member = item[i]
                work.append(member)
                work.append(_Text(("," if i else "") + json_literal(name) + ":"))
            work.append(_Text("{"))
        elif isinstance(item, list):
            work.append(_Text("]"))
            for i in range(len(item) - 1, -1, -1):
                work.append(item[i])
                if i:
                    work.append(_Text(","))
            work.append(_Text("["))
        else:
            out.append(_scalar(item))
    return "".join(out)


# --- JSON: the tree ----------------------------------------------------------------------

def count_nodes(value: object, most: int) -> int | None:
    """Nodes the tree of ``value`` lays out (containers below ``MAX_TREE_DEPTH`` count as
    one); None as soon as there are more than ``most``."""
    total = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        total += 1
        if total > most:
            return None
        if isinstance(item, list) and depth < MAX_TREE_DEPTH:
            children = (member for _, member in item) if isinstance(
                item, meshjson.JsonObject) else item
            stack.extend((child, depth + 1) for child in children)
    return total


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _leaf_value(value: object) -> str:
    """The ``<span class="jt-v">`` of a leaf: its JSON text, escaped, and where the shown
    text is not the JSON (escapes of hidden characters) the JSON in ``data-json``."""
    if isinstance(value, list):  # an empty container, or one nested too deep to lay out
        literal = compact_json(value)
        kind = "jt-deep" if value else "jt-empty"
    elif isinstance(value, str):
        literal, kind = json_literal(value), "jt-str"
    elif isinstance(value, meshjson.Number):
        literal, kind = value.text, "jt-num"
    else:
        literal = _scalar(value)
        kind = "jt-null" if value is None else "jt-bool"
    exact = (' data-json="' + str.__str__(escape(literal)) + '"'
             if has_hidden_characters(literal) else "")
    title = ' title="nested deeper than the tree shows: its JSON"' if kind == "jt-deep" else ""
    return ('<span class="jt-v ' + kind + '"' + exact + title + ">"
            + str.__str__(show_value(literal)) + "</span>")


def _label(step: str | int | None) -> str:
    """What precedes a node: its member name, or its index in an array (muted)."""
    if step is None:
        return ""
    if isinstance(step, int):
        return '<span class="jt-i">' + str(step) + '</span><span class="jt-colon">: </span>'
    return ('<span class="jt-k">' + str.__str__(show_value(json_literal(step)))
            + '</span><span class="jt-colon">: </span>')


def _node(out: list[str], value: object, step: str | int | None, depth: int,
          open_depth: int) -> None:
    seg = "" if step is None else str.__str__(escape(path_segment(step)))
    if not isinstance(value, list) or not value or depth >= MAX_TREE_DEPTH:
        out.append('<div class="jt-node jt-leaf" data-seg="' + seg + '">' + _label(step)
                   + _leaf_value(value) + "</div>")
        return
    is_object = isinstance(value, meshjson.JsonObject)
    brackets = "{}" if is_object else "[]"
    count = (_plural(len(value), "key", "keys") if is_object
             else _plural(len(value), "item", "items"))
    out.append('<div class="jt-node ' + ("jt-obj" if is_object else "jt-arr")
               + '" data-seg="' + seg + '"><details' + (" open" if depth < open_depth else "")
               + "><summary>" + _label(step) + '<span class="jt-b">' + brackets[0]
               + '</span><span class="jt-fold">…' + brackets[1] + '</span><span class="jt-n">'
               + count + '</span></summary><div class="jt-kids">')
    if is_object:
        for name, member in value:
            _node(out, member, name, depth + 1, open_depth)
    else:
        for index, item in enumerate(value):
            _node(out, item, index, depth + 1, open_depth)
    out.append('</div><span class="jt-b jt-end">' + brackets[1] + "</span></details></div>")


def json_tree(value: object) -> Markup | None:
    """A parsed JSON array or object (``meshjson.loads``) as nested ``<details>``: folding
    works without JavaScript. None for a scalar, or more than ``MAX_TREE_NODES`` nodes.

    Each node is a ``<div class="jt-node">`` (``jt-obj``, ``jt-arr`` around a
    ``<details>``, or ``jt-leaf``) with ``data-seg``, its step in the JSONPath (the
    root's is empty); each leaf holds its JSON (its text, or ``data-json`` where escapes
    were shown instead). So static/value.js builds a node's path and its value as JSON
    from the page alone, and puts its buttons beside (not inside) the ``<summary>``.
    Recursion stops at ``MAX_TREE_DEPTH``.
    """
    if not isinstance(value, list):  # arrays, and objects (JsonObject is a list)
        return None
    total = count_nodes(value, MAX_TREE_NODES)
    if total is None:
        return None
    out: list[str] = []
    _node(out, value, None, 0, MAX_TREE_DEPTH if total <= OPEN_ALL_NODES else OPEN_DEPTH)
    return Markup("".join(out))


# --- text: numbered lines ---------------------------------------------------------------

@dataclass(frozen=True)
class Lines:
    """A text value as numbered lines: ``html`` for a ``<pre>``, ``numbered`` lines of
    ``count`` carry a number (CSS counters, so copying the text never copies them)."""

    html: Markup
    count: int
    numbered: int

    @property
    def digits(self) -> int:
        return len(str(self.numbered)) if self.numbered else 1


def numbered_lines(text: str, most: int = MAX_NUMBERED_LINES) -> Lines:
    """``show_value(text)`` with each line in ``<span class="ln">``; line breaks (LF, CRLF)
    stay between the spans, so the text of the ``<pre>`` is still the value's. Lines after
    the first ``most`` follow unnumbered in one ``<span class="ln-rest">``."""
    if not text:
        return Lines(Markup(""), 0, 0)
    pieces = _LINE_BREAK.split(text)
    count = (len(pieces) + 1) // 2 - (1 if len(pieces) > 1 and pieces[-1] == "" else 0)
    out: list[str] = []
    numbered = min(count, most)
    for i in range(numbered):
        line = pieces[2 * i]
        end = pieces[2 * i + 1] if 2 * i + 1 < len(pieces) else ""
        out.append('<span class="ln">' + str.__str__(show_value(line)) + "</span>" + end)
    if count > numbered:
        out.append('<span class="ln-rest">' + str.__str__(show_value(
            "".join(pieces[2 * numbered:]))) + "</span>")
    return Lines(Markup("".join(out)), count, numbered)


# --- bytes: hex ------------------------------------------------------------------------

def looks_binary(entry: Entry) -> bool:
    """A string value that is not UTF-8 text (Redis holds any bytes) or holds control
    characters text does not (NUL, ESC ...): shown as hex first."""
    if entry.value is None:
        return False
    return entry.data is not None or _CONTROL.search(entry.value) is not None


@dataclass(frozen=True)
class HexDump:
    """The first ``shown`` of ``total`` bytes: offset, hex bytes and ASCII, 16 a row."""

    html: Markup
    shown: int
    total: int


def hex_dump(data: bytes, most: int = HEX_MAX_BYTES) -> HexDump:
    """``data`` as ``xxd`` lays it out, bounded: one line per 16 bytes, with its offset
    (``<span class="hx-off">``), the bytes in hex (a gap after eight) and the printable
    ASCII characters (``.`` for any other byte, ``<span class="hx-asc">``)."""
    shown = data[:most]
    width = HEX_WIDTH * 3 + 1
    rows: list[str] = []
    for offset in range(0, len(shown), HEX_WIDTH):
        chunk = shown[offset:offset + HEX_WIDTH]
        hexes = chunk[:8].hex(" ") + ("  " + chunk[8:].hex(" ") if len(chunk) > 8 else "")
        rows.append('<span class="hx-off">' + f"{offset:08x}" + "</span>  "
                    + hexes.ljust(width) + ' <span class="hx-asc">'
                    + str.__str__(escape(chunk.translate(_ASCII_COLUMN).decode("ascii")))
                    + "</span>\n")
    return HexDump(Markup("".join(rows)), len(shown), len(data))


# --- Redis collections: tables -----------------------------------------------------------

#: per type: the table's column headings
_COLUMNS = {"hash": ("Field", "Value"), "list": ("Index", "Value"), "set": ("Member",),
            "zset": ("Member", "Score"), "stream": ("ID", "Fields")}


def _cell(text: str, *, name: bool = False) -> Markup:
    """One cell's text, escaped like the rest of the page, cut at ``CELL_CHARS``."""
    cut = text[:CELL_CHARS]
    shown = show_key(cut) if name else show_value(cut)
    if len(text) > CELL_CHARS:
        more = f"… {len(text) - CELL_CHARS:,} more characters"
        shown += Markup('<span class="cell-cut">{}</span>').format(more)
    return shown


def score_text(score: object) -> str:
    """A sorted set score as Redis writes it: ``1``, ``2.5``, ``inf``."""
    if isinstance(score, float):
        if score != score or score in (float("inf"), float("-inf")):
            return str(score)
        return str(int(score)) if score.is_integer() and abs(score) < 1e17 else repr(score)
    return str(score)


@dataclass(frozen=True)
class CollectionTable:
    """What the key page shows of a Redis hash, list, set, sorted set or stream."""

    columns: tuple[str, ...]
    rows: list[tuple[Markup, ...]]
    #: what the table holds, in words: "all 3 fields", "first 100 of 1,204 items"
    extent: str


def collection_table(entry: Entry) -> CollectionTable | None:
    """The elements the read brought (``Entry.content``: at most the first 100) as rows;
    None for a type whose contents were not read (a module type)."""
    columns = _COLUMNS.get(entry.type)
    content = entry.content
    if columns is None or content is None:
        return None
    if entry.type == "hash":
        rows = [(_cell(field, name=True), _cell(value)) for field, value in content.items()]
    elif entry.type == "list":
        rows = [(Markup(str(index)), _cell(item)) for index, item in enumerate(content)]
    elif entry.type == "set":
        rows = [(_cell(member, name=True),) for member in content]
    elif entry.type == "zset":
        rows = [(_cell(member, name=True), Markup(escape(score_text(score))))
                for member, score in content]
    else:  # stream: [id, {field: value}]
        rows = [(_cell(entry_id), Markup("\n").join(
            _cell(field, name=True) + Markup(": ") + _cell(value)
            for field, value in fields.items())) for entry_id, fields in content]
    total = entry.length if entry.length is not None else len(rows)
    counted = element_count(entry) or f"{total:,}"
    if len(rows) >= total:
        extent = f"all {counted}"
    else:
        extent = f"first {len(rows):,} of {counted}"
        if entry.type in ("hash", "set"):  # a hash or a set has no order of its own
            extent += " (the first the store returned, sorted)"
        elif entry.type == "zset":
            extent += " (lowest scores first)"
    return CollectionTable(columns, rows, extent)
