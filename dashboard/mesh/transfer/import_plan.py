"""Planning an import (step 2, after ``import_file.parse``; ``import_apply`` writes the plan).

``make_plan``: each key is compared with the store (bulk reads) and classified: ``new``,
``changed`` (with a short summary of the difference), ``unchanged``, ``skipped`` (with the
reason) or ``blocked`` (``create-only`` and the key exists with another value: the import
is refused). The plan keeps what each key held when planned (its ``Entry.token``, None for
absent); ``restore_plan`` rebuilds it from those tokens between the plan and its
confirmation, without reading the store.

The plan also refuses, by line, what no store can be given: a key or value holding a lone
surrogate (not text), a TTL or expiry past the year 9999, a key longer than the store
takes (ToskaStore: one URL path segment, ``MAX_URL_KEY_CHARS`` percent-encoded).

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

A service's index key (``__keys``) found in the file is skipped, not planned as a value:
``import_apply`` adds the imported keys to the store's own index instead (and creates it
when the file had one and the store has none).

Apart from reading the file (no store there) and from the writes (which change the
store): a plan only reads, so it can be shown and confirmed before anything is written.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dashboard import mesh
from dashboard.mesh.text import human_duration, human_size
from dashboard.mesh.transfer.import_file import BadLine, ParsedFile
from dashboard.mesh.transfer.jsonl import MAX_EXPIRES_AT_MS, Incomplete
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import UNVERIFIED, Dumped, Entry, content_token, now_ms
from dashboard.stores.errors import ProviderError

MODES = ("create-only", "skip-existing", "overwrite")
TTL_POLICIES = ("expiry", "restart")
#: keys compared per bulk read
BATCH = 500
#: a TTL differing by less than this is the same TTL (time passes between export and plan)
TTL_SLACK_MS = 2000
#: the longest key, percent-encoded, sent to a store that takes keys in a URL path
#: (ToskaStore): its servers refuse request lines of about 8,000 characters
MAX_URL_KEY_CHARS = 6000

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
    #: the version and size in bytes (a string's) the key had when planned, for its audit
    #: entry's "before" (None: absent or not reported)
    current_version: int | None = None
    current_size: int | None = None
    #: the string it replaces and that string's expiry, for the audit entry's "before" (an
    #: undo puts it back); None when not kept (not a string, or past ``BEFORE_BYTES``)
    current_value: str | None = None
    current_expires_at_ms: int | None = None

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
    #: bytes of replaced values kept so far (``_keep_before``)
    before_bytes: int = 0

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
        return {k.key: [k.action, k.token, k.current_type, k.note, k.current_version,
                        k.current_size, k.current_value, k.current_expires_at_ms]
                for k in self.keys}

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
               if (why := _refusal(item, ttl_policy, now, url_keys=url_keys)
                   or _access_refusal(provider, item.key))]
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


def _access_refusal(provider: KeyValueProvider, key: str) -> str:
    """Why the operator may not write this line's key ("" when they may): access rules."""
    if provider.may_write(key):
        return ""
    return "outside what you may change (the dashboard's access rules for this prefix)"


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
    kept = _keep_before(plan, current)
    return PlannedKey(line, item, "changed", "; ".join(filter(None, [summary, ttl_note])),
                      token, current.type, _version(provider, caps, current),
                      len(current.exact_bytes) if current.type == "string" else None,
                      kept, current.expires_at_ms if kept is not None else None)


#: the most of the replaced values one plan keeps for its audit entries (an undo of the
#: import puts them back); past it, the rest are kept as their version and size only
BEFORE_BYTES = 16 * 1024 * 1024
#: the largest one value kept (the audit trail's default AuditValueBytes)
BEFORE_VALUE_BYTES = 64 * 1024


def _keep_before(plan: Plan, current: Entry) -> str | None:
    """The value ``current`` holds, if the plan can keep it for the audit trail."""
    if current.type != "string" or current.value is None or current.partial or \
            current.data is not None:
        return None
    size = len(current.exact_bytes)
    if size > BEFORE_VALUE_BYTES or plan.before_bytes + size > BEFORE_BYTES:
        return None
    plan.before_bytes += size
    return current.value


def _version(provider, caps, current: Entry) -> int | None:
    """The version of a key about to be replaced, for its audit entry: a bulk read that
    reports none (ToskaStore) is followed by one read of the key; None unless it still
    holds what the plan compared."""
    if current.version is not None or not caps.versions:
        return current.version
    try:
        read = provider.get(current.key)
    except ProviderError:
        return None
    return read.version if read.type == current.type and read.matches(current.content_token) \
        else None


def restore_plan(parsed: ParsedFile, mode: str, ttl_policy: str,
                 tokens: dict[str, Any]) -> Plan:
    """The plan made earlier (``Plan.tokens``) for the same file, without reading the store."""
    plan = Plan(mode, ttl_policy, [], list(parsed.invalid), incomplete=parsed.incomplete)
    for line, item in parsed.records:
        action, token, current_type, note, *before = tokens.get(
            item.key, ["skipped", None, None, "not in the plan"])
        plan.keys.append(PlannedKey(line, item, action, note, token, current_type, *before[:4]))
    return plan
