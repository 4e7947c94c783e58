"""Importing an export file: read it, plan against the store, then write what the plan says.

1. ``parse``: every line is checked (``jsonl.read_line``); any invalid line, or a key
   given twice, refuses the whole file (nothing is written) and lists the line numbers.
   An export's end marker (its last line, ``{"incomplete": true, ...}``) is not a key: the
   plan and the result say the file is a partial backup (the keys in it can be imported).
   The plan also refuses, by line, what no store can be given: a key or value holding a
   lone surrogate (not text), a TTL or expiry past the year 9999, a key longer than the
   store takes (ToskaStore: one URL path segment, ``MAX_URL_KEY_CHARS`` percent-encoded).
2. ``make_plan``: each key is compared with the store (bulk reads) and classified:
   ``new``, ``changed`` (with a short summary of the difference), ``unchanged``,
   ``skipped`` (with the reason) or ``blocked`` (``create-only`` and the key exists with
   another value: the import is refused). The plan keeps what each key held when planned
   (its ``Entry.token``, None for absent).
3. ``apply``: new keys are created create-only and changed keys replaced only if they
   still hold what the plan saw, so a key changed between plan and confirm is never
   clobbered: it is reported. A store error stops the import there: the result lists the
   keys written, the key that failed and the keys not attempted; an error the dashboard did
   not expect is reported the same way ("unknown" for that key), never as a crash.

Modes: ``create-only`` (refuse if any key exists with another value), ``skip-existing``
(create the missing keys, leave existing ones alone), ``overwrite`` (create and replace).

TTLs: a line carries the time left at the export (``ttl_ms``) and its moment
(``expires_at_ms``). ``expiry`` (the default) keeps the expiry: the key gets what is left
of it now, and a key whose expiry has passed since the export is skipped ("expired
since the export"), as the store would have dropped it. ``restart`` gives each key its
exported ``ttl_ms`` counted from the import (copying data to another environment days
later). A key the store could not report a TTL for (``ttl_known`` false) is written
without expiry, and the plan says so. Leases are not re-attached (they belong to the
source store): a leased key gets the TTL it had.

The service index (``__keys``): keys of a service whose index applies
(``writes.index_applies``: configured as kept, or existing) are added to it the way the
runtime adds them (read, add, write back; here with compare-and-swap), once per service
after its keys are written instead of once per key. A service's index key found in the
file is not written as a value: the store's index receives the imported keys (and is
created when the file had one and the store has none).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dashboard import mesh
from dashboard.mesh import writes
from dashboard.mesh.text import human_duration, human_size
from dashboard.mesh.transfer.jsonl import MAX_EXPIRES_AT_MS, Incomplete, InvalidLine, read_line
from dashboard.stores.base import (
    NO_TTL,
    UNVERIFIED,
    Dumped,
    Entry,
    KeyValueProvider,
    TtlChange,
    content_token,
    now_ms,
)
from dashboard.stores.errors import Conflict, ProviderError, WriteUnknown

MODES = ("create-only", "skip-existing", "overwrite")
TTL_POLICIES = ("expiry", "restart")
#: keys compared per bulk read
BATCH = 500
#: a TTL differing by less than this is the same TTL (time passes between export and plan)
TTL_SLACK_MS = 2000
#: invalid lines listed (the count is always complete)
INVALID_SHOWN = 200
_log = logging.getLogger(__name__)
#: the longest key, percent-encoded, sent to a store that takes keys in a URL path
#: (ToskaStore): its servers refuse request lines of about 8,000 characters
MAX_URL_KEY_CHARS = 6000


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


# --------------------------------------------------------------------------- plan


@dataclass
class PlannedKey:
    """One key of the file and what the import does with it."""

    line: int
    item: Dumped
    #: new, changed, unchanged, skipped or blocked
    action: str
    #: why skipped/blocked, or a short summary of the change
    note: str = ""
    #: ``Entry.token`` of the key when planned, exact (its version, or the digest of its
    #: exact content); None when it did not exist or could not be verified (never written)
    token: str | None = None
    #: the type the key held when planned (None: absent)
    current_type: str | None = None

    @property
    def key(self) -> str:
        return self.item.key


@dataclass
class Plan:
    """What an import of one file does, key by key, in file order."""

    mode: str
    ttl_policy: str
    keys: list[PlannedKey]
    invalid: list[BadLine] = field(default_factory=list)
    #: service prefixes whose index key was in the file (that index is created if missing)
    file_indexes: set[str] = field(default_factory=set)
    #: the file's end marker: a partial backup (the plan says so; its keys can be imported)
    incomplete: Incomplete | None = None

    def of(self, action: str) -> list[PlannedKey]:
        return [k for k in self.keys if k.action == action]

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("new", "changed", "unchanged", "skipped", "blocked"), 0)
        for k in self.keys:
            counts[k.action] += 1
        counts["invalid"] = len(self.invalid)
        return counts

    @property
    def refused(self) -> str:
        """Why nothing may be written; empty when the import can go ahead."""
        if self.invalid:
            return (f"{len(self.invalid)} invalid line(s) (each listed with its reason): nothing "
                    "is written from a file with invalid lines; fix them and upload it again")
        blocked = self.of("blocked")
        if blocked:
            return (f"create-only: {len(blocked)} key(s) already exist with other values; "
                    "nothing is written. Choose skip-existing or overwrite to import anyway")
        return ""

    @property
    def writes(self) -> list[PlannedKey]:
        return [k for k in self.keys if k.action in ("new", "changed")]

    def tokens(self) -> dict[str, Any]:
        """What the plan saw per key, kept between the plan and its confirmation."""
        return {k.key: [k.action, k.token, k.current_type, k.note] for k in self.keys}

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "ttl_policy": self.ttl_policy, "counts": self.counts,
            "refused": self.refused or None,
            "incomplete": None if self.incomplete is None else self.incomplete.sentence(),
            "keys": [{"line": k.line, "key": k.key, "action": k.action, "note": k.note}
                     for k in self.keys],
            "invalid": [{"line": b.line, "message": b.message} for b in self.invalid],
        }


def ttl_for(item: Dumped, policy: str, now: int) -> tuple[int | None, str]:
    """(TTL to write in ms, None: no expiry; "" or why the key is not written).

    See the module docstring for ``expiry`` and ``restart``.
    """
    if not item.ttl_known or item.ttl_ms is None:
        return None, ""
    restart = policy == "restart" or item.expires_at_ms is None
    remaining = item.ttl_ms if restart else item.expires_at_ms - now  # type: ignore[operator]
    if remaining <= 0:
        from dashboard.mesh.text import utc_time

        when = utc_time(item.expires_at_ms) if item.expires_at_ms else "at the export"
        return None, f"expired since the export (expiry {when})"
    return remaining, ""


def _index_keys(settings, items: Iterable[Dumped]) -> set[str]:
    """The full keys in the file that are their service's index."""
    found = set()
    for item in items:
        service = mesh.service_for_key(settings, item.key)
        if service is not None and item.key == service.index_full_key:
            found.add(item.key)
    return found


def _same_ttl(current: Entry, ttl_ms: int | None) -> bool | None:
    """Whether the key's TTL is the one the import would write (None: cannot tell)."""
    if not current.ttl_known:
        return None
    if ttl_ms is None or current.ttl_ms is None:
        return ttl_ms is None and current.ttl_ms is None
    return abs(current.ttl_ms - ttl_ms) <= TTL_SLACK_MS


def _ttl_words(ms: int | None) -> str:
    return "no expiry" if ms is None else human_duration(ms)


def _value_summary(old: bytes, new: bytes) -> str:
    """A short summary of two stored values (exact bytes): top-level JSON members
    added/removed/changed, else their sizes in bytes."""
    try:
        before, after = json.loads(old), json.loads(new)
    except (ValueError, RecursionError):  # UnicodeDecodeError too: bytes that are not text
        before = after = None
    if isinstance(before, dict) and isinstance(after, dict):
        added = [k for k in after if k not in before]
        removed = [k for k in before if k not in after]
        changed = [k for k in after if k in before and before[k] != after[k]]
        parts = []
        for sign, names in (("+", added), ("-", removed), ("~", changed)):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more"
                                                 if len(names) > 5 else "")
                parts.append(f"{sign}{shown}")
        if parts:
            return "JSON members " + "; ".join(parts)
        return "same JSON, other bytes (spacing, order or escapes)"
    return f"value {human_size(len(old))} → {human_size(len(new))}"


def _item_bytes(item: Dumped) -> bytes:
    """A string line's exact bytes (``value_b64``, else the text as UTF-8)."""
    if item.data is not None:
        return item.data
    return (item.value or "").encode("utf-8", "surrogatepass")


def _compare(item: Dumped, current: Entry, ttl_ms: int | None) -> tuple[bool, str]:
    """(equal, summary of the difference) of the file's key and the stored one.

    Exact: a string's bytes against the stored bytes, a collection whole (its
    ``content_token`` against the digest of the stored one, computed by the store);
    where the stored content could not be read exactly, it is not equal.
    """
    notes = []
    if item.type != current.type:
        return False, f"{current.type} → {item.type}"
    if item.type == "string":
        stored, new = current.exact_bytes, _item_bytes(item)
        same_value = stored == new
        if not same_value:
            notes.append(_value_summary(stored, new))
    else:
        stored_count = current.length if current.length is not None else "?"
        stored_token = current.content_token
        if stored_token.startswith(UNVERIFIED):
            same_value = False
            notes.append(f"{item.type} of {len(item.members)} element(s), stored "
                         f"{stored_count}: could not be compared exactly")
        else:
            same_value = content_token(item.type, members=item.members) == stored_token
            if not same_value:
                notes.append(f"{item.type} of {len(item.members)} element(s), stored "
                             f"{stored_count} (rewritten whole)")
    same_ttl = _same_ttl(current, ttl_ms)
    if same_ttl is False:
        notes.append(f"TTL {_ttl_words(current.ttl_ms)} → {_ttl_words(ttl_ms)}")
    return same_value and same_ttl is not False, "; ".join(notes)


def make_plan(
    provider: KeyValueProvider, settings, parsed: ParsedFile, *, mode: str,
    ttl_policy: str = "expiry", now: int | None = None,
) -> Plan:
    """Classify every key of ``parsed`` against the store (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown import mode {mode!r}: use {', '.join(MODES)}")
    if ttl_policy not in TTL_POLICIES:
        raise ValueError(f"unknown TTL choice {ttl_policy!r}: use {', '.join(TTL_POLICIES)}")
    plan = Plan(mode, ttl_policy, [], list(parsed.invalid), incomplete=parsed.incomplete)
    now = now_ms() if now is None else now
    caps = provider.capabilities()
    url_keys = provider.kind == "toskastore"
    refused = [BadLine(line, why) for line, item in parsed.records
               if (why := _refusal(item, ttl_policy, now, url_keys=url_keys))]
    if plan.invalid or refused:  # nothing is read: the file is refused, every line listed
        plan.invalid = sorted([*plan.invalid, *refused], key=lambda bad: bad.line)
        return plan
    index_keys = _index_keys(settings, (item for _, item in parsed.records))
    for start in range(0, len(parsed.records), BATCH):
        batch = parsed.records[start:start + BATCH]
        cannot = {item.key: why for _, item in batch
                  if (why := _store_cannot_hold(item, caps.non_string_types))}
        wanted = [item.key for _, item in batch
                  if item.key not in index_keys and item.key not in cannot]
        found = provider.mget(wanted, exact=True) if wanted else {}
        for line, item in batch:
            if item.key in cannot:
                plan.keys.append(PlannedKey(line, item, "skipped", cannot[item.key]))
                continue
            plan.keys.append(_classify(provider, caps, plan, line, item, found, index_keys, now))
    return plan


def _lone_surrogate(text: str) -> str:
    """"" or the first lone surrogate of ``text`` as U+XXXX (a ``\\uD800`` escape in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"U+{ord(text[error.start]):04X} at character {error.start + 1}"
    return ""


def _refusal(item: Dumped, ttl_policy: str, now: int, *, url_keys: bool) -> str:
    """Why no store can be given this line ("" when it can): see the module docstring."""
    try:
        key_bytes = item.key.encode("utf-8", "surrogateescape")  # raw bytes (key_b64) pass
    except UnicodeEncodeError:
        return (f"the key holds a lone surrogate ({_lone_surrogate(item.key)}), which is not "
                'text: a key of raw bytes is written as "key_b64"')
    if item.value is not None and (where := _lone_surrogate(item.value)):
        return (f"the value holds a lone surrogate ({where}), which is not text: no store "
                'takes it; bytes are written as "value_b64"')
    if url_keys:
        encoded = len(quote(key_bytes, safe=""))
        if encoded > MAX_URL_KEY_CHARS:
            return (f"the key is {len(key_bytes):,} bytes ({encoded:,} characters in a URL): "
                    f"longer than this store takes (a key goes in one URL path segment; at "
                    f"most {MAX_URL_KEY_CHARS:,} characters encoded)")
    ttl_ms, expired = ttl_for(item, ttl_policy, now)
    if not expired and ttl_ms is not None and now + ttl_ms > MAX_EXPIRES_AT_MS:
        return (f"TTL {ttl_ms:,} ms counted from now expires after the year 9999: longer "
                "than any store keeps a key; use no expiry (ttl_ms null)")
    return ""


def _store_cannot_hold(item: Dumped, keeps_bytes: bool) -> str:
    """Why this store cannot hold the line's key ("" when it can): text keys only."""
    if not keeps_bytes and _lone_surrogate(item.key):
        return "a key that is not UTF-8 (raw bytes, key_b64): this store keeps text keys only"
    return ""


def _classify(provider, caps, plan: Plan, line: int, item: Dumped,
              found: dict[str, Entry | None], index_keys: set[str], now: int) -> PlannedKey:
    if item.key in index_keys:
        plan.file_indexes.add(item.key)
        return PlannedKey(line, item, "skipped", "the service's index: the imported keys are "
                          "added to the store's own index instead")
    if item.type != "string" and not caps.non_string_types:
        return PlannedKey(line, item, "skipped",
                          f"a Redis {item.type}: this store keeps strings only")
    if item.type == "string" and item.text is None and not caps.non_string_types:
        return PlannedKey(line, item, "skipped",
                          "bytes that are not UTF-8: this store keeps text only")
    ttl_ms, expired = ttl_for(item, plan.ttl_policy, now)
    if expired:
        return PlannedKey(line, item, "skipped", expired)
    current = found.get(item.key)
    ttl_note = "" if item.ttl_known else "TTL unknown in the file: written without expiry"
    if current is None:
        return PlannedKey(line, item, "new", ttl_note)
    if (not caps.mget_ttl and current.type == item.type == "string"
            and current.exact_bytes == _item_bytes(item)):
        # bulk reads carry no TTL here: the TTL of an equal value is read key by key
        with contextlib.suppress(ProviderError):
            current = provider.get(item.key)
    equal, summary = _compare(item, current, ttl_ms)
    # what a replace compares: exact, or nothing (such a key is never written blind)
    token = current.token if current.verifiable else None
    if equal:
        return PlannedKey(line, item, "unchanged", ttl_note, token, current.type)
    if plan.mode == "skip-existing":
        return PlannedKey(line, item, "skipped", f"exists ({summary})", token, current.type)
    if plan.mode == "create-only":
        return PlannedKey(line, item, "blocked", f"exists ({summary})", token, current.type)
    if token is None:
        return PlannedKey(line, item, "skipped", f"exists ({summary}); it could not be verified "
                          "exactly, so it is not replaced (a change made after this plan "
                          "would be lost)", None, current.type)
    return PlannedKey(line, item, "changed", "; ".join(filter(None, [summary, ttl_note])),
                      token, current.type)


def restore_plan(parsed: ParsedFile, mode: str, ttl_policy: str,
                 tokens: dict[str, Any]) -> Plan:
    """The plan made earlier (``Plan.tokens``) for the same file, without reading the store."""
    plan = Plan(mode, ttl_policy, [], list(parsed.invalid), incomplete=parsed.incomplete)
    for line, item in parsed.records:
        action, token, current_type, note = tokens.get(item.key, ["skipped", None, None,
                                                                  "not in the plan"])
        plan.keys.append(PlannedKey(line, item, action, note, token, current_type))
    return plan


# --------------------------------------------------------------------------- apply


@dataclass
class ImportResult:
    """What an import did: exactly which keys were written and which were not."""

    written: list[str] = field(default_factory=list)
    #: (key, why): changed or created meanwhile, so not written
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    #: (key, why): skipped when writing (exists in skip-existing, expired meanwhile)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: (key, store error): the write that stopped the import
    failed: tuple[str, str] | None = None
    #: the store did not confirm this write (it may still land)
    unconfirmed: tuple[str, str] | None = None
    #: keys after the failure, never attempted (so not written)
    not_attempted: list[str] = field(default_factory=list)
    #: one sentence per service index updated (or not)
    index: list[str] = field(default_factory=list)
    index_failed: bool = False

    @property
    def complete(self) -> bool:
        """Everything planned was written (or had become unnecessary)."""
        return (self.failed is None and self.unconfirmed is None and not self.conflicts
                and not self.index_failed)

    @property
    def not_written(self) -> list[str]:
        """Every planned key that is certainly not written: conflicts, the failed key and
        the keys not attempted (skipped keys are listed apart)."""
        return [*(k for k, _ in self.conflicts), *([self.failed[0]] if self.failed else []),
                *self.not_attempted]

    @property
    def unknown(self) -> list[str]:
        """Keys whose write the store did not confirm: they may or may not be written."""
        return [self.unconfirmed[0]] if self.unconfirmed else []

    def summary(self) -> str:
        """One sentence stating exactly what was written, not written and unknown."""
        parts = [f"Wrote {len(self.written)} key(s)"]
        if self.unknown:
            parts.append(f"unknown whether {len(self.unknown)} key(s) were written (the store "
                         "did not confirm)")
        if self.not_written:
            parts.append(f"{len(self.not_written)} key(s) not written")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "; ".join(parts) + "."

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete, "written": self.written,
            "conflicts": [{"key": k, "reason": r} for k, r in self.conflicts],
            "skipped": [{"key": k, "reason": r} for k, r in self.skipped],
            "failed": None if self.failed is None else {"key": self.failed[0],
                                                         "error": self.failed[1]},
            "unconfirmed": None if self.unconfirmed is None else {
                "key": self.unconfirmed[0], "error": self.unconfirmed[1]},
            "not_attempted": self.not_attempted, "not_written": self.not_written,
            "unknown": self.unknown, "index": self.index,
        }


#: called after each write that happened: (key, its WriteResult, its plan)
Audit = Callable[[str, writes.WriteResult, PlannedKey], None]


def apply(
    provider: KeyValueProvider, settings, plan: Plan, *, audit: Audit | None = None,
    unconfirmed: Callable[[str, str, PlannedKey], None] | None = None,
) -> ImportResult:
    """Write the plan's new and changed keys (see the module docstring)."""
    if plan.refused:
        raise ValueError(plan.refused)
    result = ImportResult()
    pending = plan.writes
    indexes: dict[str, tuple[mesh.Service, list[str]]] = {}
    applies: dict[str, bool] = {}
    try:
        for position, planned in enumerate(pending):
            try:
                outcome = _write_one(provider, settings, plan, planned)
            except Conflict as conflict:
                reason = _conflict_reason(planned, conflict)
                if plan.mode == "skip-existing" and planned.action == "new":
                    result.skipped.append((planned.key, reason))
                else:
                    result.conflicts.append((planned.key, reason))
                continue
            except WriteUnknown as unknown:
                result.unconfirmed = (planned.key, _unconfirmed_reason(unknown))
                result.not_attempted = [k.key for k in pending[position + 1:]]
                if unconfirmed is not None:
                    unconfirmed(planned.key, unknown.message, planned)
                break
            except ProviderError as error:
                if error.maybe_written:  # a timeout mid-write: it may have landed
                    result.unconfirmed = (planned.key, error.message)
                    if unconfirmed is not None:
                        unconfirmed(planned.key, error.message, planned)
                else:
                    result.failed = (planned.key, error.message)
                result.not_attempted = [k.key for k in pending[position + 1:]]
                break
            except Exception as error:  # noqa: BLE001 - reported as what it is, never a crash
                # a defect the plan did not catch: whether the store got the write is unknown
                _log.exception("import: unexpected error writing %r", planned.key)
                message = (f"an unexpected error in the dashboard ({type(error).__name__}: "
                           f"{error}); read the key to know whether it was written")
                result.unconfirmed = (planned.key, message)
                result.not_attempted = [k.key for k in pending[position + 1:]]
                if unconfirmed is not None:
                    unconfirmed(planned.key, message, planned)
                break
            if isinstance(outcome, str):
                result.skipped.append((planned.key, outcome))
                continue
            result.written.append(planned.key)
            if audit is not None:
                audit(planned.key, outcome, planned)
            _note_index(provider, settings, planned.key, indexes, applies, plan)
    finally:
        _update_indexes(provider, plan, indexes, result)
    return result


def _unconfirmed_reason(unknown: WriteUnknown) -> str:
    """What the store answered for an unconfirmed write, without the sentence of a single
    edit's page ("Nothing else was changed."), which an import's result must not repeat."""
    cause = unknown.__cause__
    if isinstance(cause, ProviderError):
        return (f"the store did not confirm the write ({cause.message}) and reading the key "
                "back does not show it: it may still land, or may not")
    return unknown.message.replace(" Nothing else was changed.", "")


def _conflict_reason(planned: PlannedKey, conflict: Conflict) -> str:
    if planned.action == "new":
        return "created by someone else after the plan; left as it is"
    if conflict.current is None:
        return "deleted after the plan; not recreated"
    return "changed after the plan; left as it is"


def _write_one(provider: KeyValueProvider, settings, plan: Plan,
               planned: PlannedKey) -> writes.WriteResult | str:
    """Write one key; a string when it was not written after all (expired meanwhile)."""
    item = planned.item
    ttl_ms, expired = ttl_for(item, plan.ttl_policy, now_ms())
    if expired:
        return expired
    create = planned.action == "new"
    text = item.text
    as_text = item.type == "string" and text is not None and planned.current_type in (
        None, "string")
    if as_text and item.data is None:
        ttl = TtlChange.set(ttl_ms) if ttl_ms is not None else NO_TTL
        assert text is not None
        if create:
            return writes.create(provider, settings, item.key, text, ttl=ttl,
                                 update_index=False)
        return writes.replace(provider, settings, item.key, text, ttl=ttl,
                              expected=planned.token or "", update_index=False)
    entry = provider.restore(item, ttl_ms=ttl_ms, create_only=create,
                             expected=None if create else planned.token)
    return writes.WriteResult(item.key, entry, writes.IndexOutcome("not-kept"))


def _note_index(provider, settings, key: str, indexes, applies, plan: Plan) -> None:
    service = mesh.service_for_key(settings, key)
    if service is None or key == service.index_full_key:
        return
    if service.prefix not in applies:
        keeps = writes.index_applies(provider, settings, key)[1]
        applies[service.prefix] = keeps or (
            service.keeps_index is not False and service.index_full_key in plan.file_indexes)
    if applies[service.prefix]:
        indexes.setdefault(service.prefix, (service, []))[1].append(key[len(service.prefix):])


def _update_indexes(provider, plan: Plan, indexes, result: ImportResult) -> None:
    """Add the written keys to their services' indexes: one compare-and-swap per service."""
    for service, inner in indexes.values():
        create = bool(service.keeps_index) or service.index_full_key in plan.file_indexes
        where = service.index_full_key
        try:
            status = mesh.update_index(provider, service, add=inner, create_missing=create)
        except mesh.MalformedIndex as error:
            result.index_failed = True
            result.index.append(f"The index {where!r} is malformed and was left as it is: "
                                f"{error.message}")
            continue
        except WriteUnknown as error:  # the update went unanswered: it may be there, or not
            result.index_failed = True
            result.index.append(f"{error.message} It should list the {len(inner)} written "
                                "key(s); if it does not, repair it from the index page "
                                "(add-unindexed).")
            continue
        except ProviderError as error:
            result.index_failed = True
            result.index.append(f"The index {where!r} could not be updated ({error.message}): "
                                f"{len(inner)} written key(s) are not in it; repair it from "
                                "the index page (add-unindexed)")
            continue
        if status == "created":
            result.index.append(f"Created the index {where!r} with the {len(inner)} imported "
                                "key(s).")
        elif status == "updated":
            result.index.append(f"Added the imported keys to the index {where!r} "
                                f"({len(inner)} written).")
        elif status == "missing":
            result.index.append(f"The service has no index {where!r}; none was created.")


def audit_hooks(operator: str) -> tuple[Audit, Callable[[str, str, PlannedKey], None]]:
    """``apply``'s ``audit`` and ``unconfirmed`` callbacks: one audit entry per write."""
    from dashboard.mesh import audit as audit_trail

    def written(key: str, result: writes.WriteResult, planned: PlannedKey) -> None:
        audit_trail.key_write("import", operator, key, result=result, value=planned.item.text,
                              expected=planned.token)

    def unconfirmed(key: str, message: str, planned: PlannedKey) -> None:
        audit_trail.unconfirmed("import", operator, key, message, value=planned.item.text)

    return written, unconfirmed
