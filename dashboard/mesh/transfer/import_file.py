"""Reading an import file (step 1 of an import; ``import_plan`` then ``import_apply``).

``parse``: every line is checked (``jsonl.read_line``); any invalid line, or a key given
twice, refuses the whole file (nothing is written) and lists the line numbers. An export's
end marker (its last line, ``{"incomplete": true, ...}``) is not a key: the plan and the
result say the file is a partial backup (the keys in it can be imported). A file over
``Dashboard__MaxImportBytes`` is refused whole (``TooBig``).

Apart from the plan and the writes because reading needs neither the store nor the
settings: only the bytes of the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.mesh.text import human_size
from dashboard.mesh.transfer.jsonl import Incomplete, InvalidLine, read_line
from dashboard.stores.entries import Dumped

#: invalid lines listed (the count is always complete)
INVALID_SHOWN = 200


class TooBig(ValueError):
    """The file is over ``Dashboard__MaxImportBytes``."""


def size_words(size: int) -> str:
    """A size for a refusal: rounded, and exact (bytes) where the rounding would hide it."""
    return f"{human_size(size)} ({size:,} bytes)" if size >= 1024 else human_size(size)


def too_big(size: int | None, limit: int) -> TooBig:
    """The refusal of a file of ``size`` bytes (None: more than ``limit``, not read whole)."""
    if size is None or size == limit + 1:  # read up to limit + 1: only "more" is known
        what = "the file is larger than"
    elif human_size(size) == human_size(limit):
        what = f"the file is {size:,} bytes, more than"
    else:
        what = f"the file is {human_size(size)}, more than"
    return TooBig(f"{what} the {size_words(limit)} an import takes (Dashboard__MaxImportBytes); "
                  "split it by prefix")


@dataclass(frozen=True)
class BadLine:
    """An invalid line of the file, 1-based."""

    line: int
    message: str


@dataclass
class ParsedFile:
    """The records of a file (line number, key) in file order, and its invalid lines."""

    records: list[tuple[int, Dumped]]
    invalid: list[BadLine]
    size: int
    #: the export's end marker: the file is a partial backup
    incomplete: Incomplete | None = None

    @property
    def valid(self) -> bool:
        return not self.invalid


def parse(data: bytes, *, max_bytes: int) -> ParsedFile:
    """Read an export file; ``TooBig`` over ``max_bytes``. Blank lines are ignored."""
    if len(data) > max_bytes:
        raise too_big(len(data), max_bytes)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    records: list[tuple[int, Dumped]] = []
    invalid: list[BadLine] = []
    first_line: dict[str, int] = {}
    marker: tuple[int, Incomplete] | None = None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if marker is not None:
            invalid.append(BadLine(marker[0], "the end marker of an incomplete export is not "
                                              "the last line (files joined?)"))
            marker = None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            invalid.append(BadLine(number, f"not UTF-8 (byte {error.start + 1})"))
            continue
        try:
            item = read_line(text)
        except InvalidLine as error:
            invalid.append(BadLine(number, str(error)))
            continue
        if isinstance(item, Incomplete):
            marker = (number, item)
            continue
        if item.key in first_line:
            invalid.append(BadLine(number, f"key {item.key!r} is already on line "
                                           f"{first_line[item.key]}"))
            continue
        first_line[item.key] = number
        records.append((number, item))
    if not records and not invalid:
        invalid.append(BadLine(1, "the file holds no keys"))
    invalid.sort(key=lambda bad: bad.line)
    return ParsedFile(records, invalid, len(data), marker[1] if marker else None)
