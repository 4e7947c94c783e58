"""One budget for the work a request may do: time, store calls, bytes read and items.

docs/design.md, "Bounded work per request": a request creates one ``WorkBudget`` and
passes it down to every loop that reads the store on its behalf (browse, key and value
search, and later bulk and compare). Each loop checks it per item, not per page: a page
of 8 MB values or a regular expression that takes 0.2 s on each value stops at the
budget, and the page says what was done (items, bytes actually read, why it stopped)
rather than what was planned.

Stores that cannot read part of a value (ToskaStore) read values through the byte
budget: the answer is read as it arrives and no further once the budget is spent; the
keys whose values were not read are ``Unread`` (their start, when some of it arrived).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

from dashboard.stores.pages import EntryPage

#: why a step stopped before its end
Reason = Literal["time", "calls", "bytes", "items"]

#: what one browse page may read of values (the preview shows ~120 characters of each)
BROWSE_BYTES = 4 * 1024 * 1024
#: seconds one browse page may spend reading
BROWSE_SECONDS = 10.0
#: a step that has done nothing yet still reads this much of its first value, so a value
#: bigger than the whole budget is looked at (its start) rather than never reached
FIRST_ITEM_BYTES = 256 * 1024

_WORDS = {"time": "its time budget", "calls": "its budget of store calls",
          "bytes": "its budget of bytes read", "items": "its budget of keys"}


@dataclass
class WorkBudget:
    """Limits for one request, and what it has done so far (None: no limit)."""

    seconds: float | None = None
    calls: int | None = None
    bytes: int | None = None
    items: int | None = None
    started: float = field(default_factory=time.monotonic)
    calls_made: int = 0
    bytes_read: int = 0
    items_done: int = 0
    #: the first budget found spent by ``exhausted`` (None while every one holds)
    stopped: Reason | None = None
    #: where a walk resumes inside a page: reads skip the page's keys up to this one
    #: (a step that stopped mid-page re-lists it; values it examined are not read again)
    after: str | None = None

    def wanted(self, key: str) -> bool:
        """Whether the value of ``key`` is still to be read (it comes after ``after``)."""
        return self.after is None or key > self.after

    def time_left(self) -> float:
        if self.seconds is None:
            return math.inf
        return self.started + self.seconds - time.monotonic()

    def bytes_left(self) -> int | None:
        return None if self.bytes is None else max(0, self.bytes - self.bytes_read)

    def exhausted(self) -> Reason | None:
        """Which budget is spent, remembered in ``stopped``; None while all hold."""
        reason: Reason | None = None
        if self.items is not None and self.items_done >= self.items:
            reason = "items"
        elif self.bytes is not None and self.bytes_read >= self.bytes:
            reason = "bytes"
        elif self.calls is not None and self.calls_made >= self.calls:
            reason = "calls"
        elif self.seconds is not None and self.time_left() <= 0:
            reason = "time"
        if reason is not None and self.stopped is None:
            self.stopped = reason
        return reason

    def call(self, count: int = 1) -> None:
        self.calls_made += count

    def read(self, count: int) -> None:
        self.bytes_read += count

    def item(self, count: int = 1) -> None:
        self.items_done += count

    def read_limit(self, *, first: bool = False) -> int | None:
        """How many bytes the next read may take; a ``first`` read of a step that has
        examined nothing yet takes at least ``FIRST_ITEM_BYTES`` (the start of a value)."""
        left = self.bytes_left()
        if left is None:
            return None
        return max(left, FIRST_ITEM_BYTES) if first and self.items_done == 0 else left

    def note(self) -> str:
        """Why the work stopped, in words ("" when it did not stop early)."""
        return _WORDS.get(self.stopped or "", "")


def browse_budget() -> WorkBudget:
    """The budget of one browse page."""
    return WorkBudget(seconds=BROWSE_SECONDS, bytes=BROWSE_BYTES)


@dataclass(frozen=True)
class Unread:
    """A key whose value a budgeted page did not read (whole).

    ``start`` is the beginning of the value when part of it arrived before the budget ran
    out (a store without partial reads streams values whole): ``start_bytes`` long, of a
    value whose size is unknown (at least that).
    """

    key: str
    start: str | None = None
    start_bytes: int = 0


@dataclass(frozen=True)
class BudgetedPage(EntryPage):
    """A browse page read through a ``WorkBudget``.

    ``entries`` were read (whole, or as the store's own previews); ``unread`` are the keys
    of the page after them whose values were not read, in key order; ``bytes_read`` is what
    the page's reads actually took from the store (answers as they arrived).
    """

    unread: list[Unread] = field(default_factory=list)
    bytes_read: int = 0
    byte_budget: int | None = None
