"""A provider seen through one operator's access: the one place access rules are enforced.

Every web request works on ``GuardedProvider(store, policy, identity)`` instead of the store
itself, so each page, download, search, export, import, repair and live stream is held to
the same rules without checking them itself:

- a key the operator may not read is never returned: listings, pages, searches, dumps and
  change streams leave it out; a direct read (``get``, ``read_bytes``) raises
  ``AccessDenied``; ``mget`` answers it as ``Denied`` (a row that says so, never a value);
- a write to a key the operator may not write (or not yet: elevation) raises
  ``AccessDenied`` before the store is asked;
- masked JSON properties (``policy.masked_fields``) read as ``policy.MASK`` in every value
  handed out, and a value search does not match inside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from dashboard.mesh.access.policy import AccessPolicy, Identity, mask_json, mask_structure
from dashboard.stores import errors
from dashboard.stores.base import Capabilities, KeyValueProvider, StoreInfo
from dashboard.stores.changes import ChangeEvent, ChangeStream
from dashboard.stores.entries import UNVERIFIED, Dumped, Entry
from dashboard.stores.mutations import KEEP_TTL, Compare, TtlChange, TxnOp, TxnResult
from dashboard.stores.pages import DumpPage, EntryPage, KeyPage, SegmentListing


class AccessDenied(errors.ProviderError):
    """The operator's access rules do not reach this key (or not for a write)."""

    kind = "access-denied"
    http_status = 403


def _masked_token(entry: Entry) -> str:
    return f"{UNVERIFIED}:masked ({entry.type})"


class GuardedProvider(KeyValueProvider):
    """``store`` as ``identity`` may see and change it (see the module's docstring)."""

    def __init__(self, store: KeyValueProvider, policy: AccessPolicy, identity: Identity) -> None:
        self.store = store
        self.policy = policy
        self.identity = identity
        self.kind = store.kind
        self.name = store.name

    # -- decisions -----------------------------------------------------------------------

    def may_read(self, key: str) -> bool:
        """Whether the operator may read ``key`` (or the keys under a prefix)."""
        return self.policy.may_read(self.identity, key)

    def may_write(self, key: str) -> bool:
        """Whether the operator may change ``key`` now (elevated where that is required)."""
        return self.policy.may_write(self.identity, key)

    def denial(self, key: str, *, write: bool = False) -> str:
        """Why the operator may not read (or write) ``key``, in words. The key itself is not
        repeated: a refusal says nothing about what is there."""
        who = self.identity
        restricted = self.policy.restricting_prefix(key)
        where = f"the prefix {restricted}" if restricted else "this key"
        if write and self.policy.may_edit(who, key):
            return (f"Writing to {where} needs an elevation: this dashboard asks editors to "
                    "elevate (with a reason, e.g. an incident link) before changing data. "
                    "Use “Elevate” in the header.")
        if write:
            role = self.policy.role_for(who, key)
            return (f"Your access to {where} is {role}: you may not change it. Ask for "
                    "editor access to it (Dashboard__Access rules).")
        return (f"Your access does not include {where}. Ask for access to it "
                "(Dashboard__Access rules).")

    def check_read(self, key: str) -> None:
        """Raise ``AccessDenied`` unless the operator may read ``key``."""
        if not self.may_read(key):
            raise AccessDenied(self.denial(key), store=self.name, key=key)

    def check_write(self, key: str) -> None:
        """Raise ``AccessDenied`` unless the operator may change ``key`` now."""
        if not self.may_write(key):
            raise AccessDenied(self.denial(key, write=True), store=self.name, key=key)

    def _readable(self, keys) -> list:
        return [key for key in keys if self.may_read(key)]

    # -- masking -------------------------------------------------------------------------

    def masked(self, entry: Entry) -> Entry:
        """``entry`` with the operator's masked JSON properties hidden (as it is if none)."""
        fields = self.policy.masked_fields(self.identity, entry.key)
        if not fields:
            return entry
        if entry.value is not None:
            value, changed = mask_json(entry.value, fields)
            if not changed:
                return entry
            # no version either: what is shown is not what is stored, so it can never be
            # the base of a conditional write
            return dataclasses.replace(entry, value=value, data=None, stored_size=None,
                                       digest=_masked_token(entry), version=None)
        if isinstance(entry.content, dict):
            content, changed = mask_structure(entry.content, fields)
            if changed:
                return dataclasses.replace(entry, content=content, digest=_masked_token(entry),
                                           version=None)
        return entry

    def _masked_dump(self, item: Dumped) -> Dumped:
        fields = self.policy.masked_fields(self.identity, item.key)
        if not fields:
            return item
        text = item.text
        if item.type == "string" and text is not None:
            value, changed = mask_json(text, fields)
            return dataclasses.replace(item, value=value, data=None) if changed else item
        if isinstance(item.members, dict):
            decoded = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
                       for k, v in item.members.items()}
            members, changed = mask_structure(decoded, fields)
            if changed:
                return dataclasses.replace(item, members={
                    k.encode() if isinstance(k, str) else k:
                    (v.encode() if isinstance(v, str) else v) for k, v in members.items()})
        return item

    def _page(self, page):
        entries = [self.masked(entry) for entry in page.entries if self.may_read(entry.key)]
        changes: dict[str, Any] = {"entries": entries}
        if hasattr(page, "unread"):
            changes["unread"] = [item for item in page.unread if self.may_read(item.key)]
        if hasattr(page, "hits"):
            changes["hits"] = [dataclasses.replace(hit, entry=self.masked(hit.entry))
                               for hit in page.hits if self.may_read(hit.entry.key)]
        return dataclasses.replace(page, **changes)

    # -- reads ---------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return self.store.capabilities()

    def info(self) -> StoreInfo:
        return self.store.info()

    def close(self) -> None:
        """The store belongs to the process: a request's view of it closes nothing."""

    def list_keys(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> KeyPage:
        page = self.store.list_keys(prefix, cursor=cursor, limit=limit)
        return dataclasses.replace(page, keys=self._readable(page.keys))

    def scan(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
             preview_bytes: int | None = None, work: Any = None) -> EntryPage:
        return self._page(self.store.scan(prefix, cursor=cursor, limit=limit,
                                          preview_bytes=preview_bytes, work=work))

    def get(self, key: str, *, max_bytes: int | None = None) -> Entry:
        self.check_read(key)
        return self.masked(self.store.get(key, max_bytes=max_bytes))

    def mget(self, keys: Sequence[str], *, exact: bool = False) -> dict[str, Entry | None]:
        readable = self._readable(keys)
        found = self.store.mget(readable, exact=exact) if readable else {}
        return self._mget_rows(keys, readable, found)

    def _mget_rows(self, keys, readable, found) -> dict[str, Entry | None]:
        allowed = set(readable)
        rows: dict[str, Entry | None] = {}
        for key in keys:
            if key not in allowed:
                rows[key] = denied(key)
            else:
                entry = found.get(key)
                rows[key] = self.masked(entry) if entry is not None else None
        return rows

    def read_bytes(self, key: str) -> bytes:
        self.check_read(key)
        data = self.store.read_bytes(key)
        fields = self.policy.masked_fields(self.identity, key)
        if fields:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return data
            masked, changed = mask_json(text, fields)
            if changed:
                return masked.encode("utf-8")
        return data

    def exists_many(self, keys: Sequence[str]) -> dict[str, bool]:
        for key in keys:
            self.check_read(key)
        return self.store.exists_many(keys)

    def iter_keys(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[str]:
        for key in self.store.iter_keys(prefix, page_size=page_size):
            if self.may_read(key):
                yield key

    def list_segments(self, prefix: str = "", *, sep: str = ":", limit: int = 500,
                      walk_cap: int = 20_000) -> SegmentListing:
        listing = self.store.list_segments(prefix, sep=sep, limit=limit, walk_cap=walk_cap)
        # a folder is shown if the operator may read something under it
        folders = [folder for folder in listing.folders if self.reads_under(folder)]
        return dataclasses.replace(listing, folders=folders, leaves=self._readable(listing.leaves))

    def reads_under(self, prefix: str) -> bool:
        """Whether the operator may read some key under ``prefix`` (a service, a folder)."""
        return self.may_read(prefix) or any(
            restricted.startswith(prefix) and self.may_read(restricted)
            for restricted in self.policy.restricted)

    def count_keys(self, prefix: str = "", *, cap: int = 1000) -> tuple[int, bool]:
        if not self.policy.hidden_under(self.identity, prefix):
            if not self.reads_under(prefix):
                return 0, True
            return self.store.count_keys(prefix, cap=cap)
        # keys the operator may not read lie inside: count the readable ones, one by one
        return KeyValueProvider.count_keys(self, prefix, cap=cap)

    def dump(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> DumpPage:
        page = self.store.dump(prefix, cursor=cursor, limit=limit)
        return dataclasses.replace(page, items=[self._masked_dump(item) for item in page.items
                                                if self.may_read(item.key)])

    def scan_matching(self, prefix: str = "", pattern: str = "*", *, cursor: str | None = None,
                      limit: int = 100, budget: int = 20_000, preview_bytes: int | None = None):
        return self._page(self.store.scan_matching(prefix, pattern, cursor=cursor, limit=limit,
                                                   budget=budget, preview_bytes=preview_bytes))

    def search_values(self, prefix: str = "", query: str = "", *, regex: bool = False,
                      icase: bool = False, cursor: str | None = None, limit: int = 50,
                      budget: int = 2_000, byte_budget: int = 16 * 1024 * 1024, work: Any = None):
        from dashboard.stores.search import excerpt, value_matcher

        page = self.store.search_values(prefix, query, regex=regex, icase=icase, cursor=cursor,
                                        limit=limit, budget=budget, byte_budget=byte_budget,
                                        work=work)
        find = value_matcher(query, regex=regex, icase=icase, store=self.name)
        hits = []
        for hit in page.hits:
            if not self.may_read(hit.entry.key):
                continue
            shown = self.masked(hit.entry)
            if shown is not hit.entry:
                # matched inside a masked property only: not a hit for this operator
                span = find(shown.value or "")
                if span is None:
                    continue
                hit = dataclasses.replace(hit, entry=shown, **dict(zip(
                    ("before", "match", "after"), excerpt(shown.value or "", *span),
                    strict=True)))
            hits.append(hit)
        return dataclasses.replace(page, hits=hits, entries=[hit.entry for hit in hits])

    def key_history(self, key: str, *, limit: int = 200) -> list:
        self.check_read(key)
        fields = self.policy.masked_fields(self.identity, key)
        events = self.store.key_history(key, limit=limit)
        if not fields:
            return events
        return [masked_event(event, fields) for event in events]

    def watch_unavailable_reason(self) -> str | None:
        return self.store.watch_unavailable_reason()

    def watch(self, prefix: str, since_revision: int | None = None) -> ChangeStream:
        return GuardedStream(self, self.store.watch(prefix, since_revision=since_revision))

    # -- writes --------------------------------------------------------------------------

    def put(self, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
            expected: str | None = None, create_only: bool = False) -> Entry:
        self.check_write(key)
        return self.store.put(key, value, ttl=ttl, expected=expected, create_only=create_only)

    def delete(self, key: str, *, expected: str | None = None) -> bool:
        self.check_write(key)
        return self.store.delete(key, expected=expected)

    def restore(self, item: Dumped, *, ttl_ms: int | None = None, create_only: bool = False,
                expected: str | None = None) -> Entry:
        self.check_write(item.key)
        return self.store.restore(item, ttl_ms=ttl_ms, create_only=create_only, expected=expected)

    def transact(self, compare: Sequence[Compare], success: Sequence[TxnOp],
                 failure: Sequence[TxnOp] = ()) -> TxnResult:
        for op in (*success, *failure):
            if op.op == "get":
                self.check_read(op.key)
            else:
                self.check_write(op.key)
        for condition in compare:
            self.check_read(condition.key)
        return self.store.transact(compare, success, failure)

    # -- beyond the contract ----------------------------------------------------------------

    def memory_usage(self, key: str) -> int | None:
        """The store's ``MEMORY USAGE`` of a key the operator may read; None where unknown."""
        self.check_read(key)
        usage = getattr(self.store, "memory_usage", None)
        return usage(key) if callable(usage) else None

    #: facts about the store itself (no key, no value) the store page shows
    _STORE_FACTS = frozenset({"release", "base_url"})

    def __getattr__(self, name: str):
        # anything else beyond the contract could read keys unchecked: refused, not passed on
        if name in GuardedProvider._STORE_FACTS:
            return getattr(self.store, name)
        raise AttributeError(f"{type(self).__name__} does not pass {name!r} through")


#: the ``type`` of a bulk lookup's row for a key the operator may not read
DENIED = "denied"


def denied(key: str) -> Entry:
    """A bulk lookup's row for a key the operator may not read: no value, only that."""
    return Entry(key=key, value=None, ttl_known=False, type=DENIED)


class GuardedStream(ChangeStream):
    """A change stream without the events of keys the operator may not read, values masked."""

    def __init__(self, guard: GuardedProvider, stream: ChangeStream) -> None:
        self._guard = guard
        self._stream = stream

    @property
    def revision(self) -> int | None:  # type: ignore[override]
        return self._stream.revision

    def next_event(self, timeout_s: float) -> ChangeEvent | None:
        import time

        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            event = self._stream.next_event(max(deadline - time.monotonic(), 0.0))
            if event is None:
                return None
            if self._guard.may_read(event.key):
                return self._masked(event)
            if time.monotonic() >= deadline:
                return None

    def _masked(self, event: ChangeEvent) -> ChangeEvent:
        return masked_event(event, self._guard.policy.masked_fields(self._guard.identity,
                                                                     event.key))

    def close(self) -> None:
        self._stream.close()


def masked_event(event: ChangeEvent, fields: frozenset[str]) -> ChangeEvent:
    """``event`` with the masked properties of its value hidden."""
    if not fields or event.value is None:
        return event
    value, changed = mask_json(event.value, fields)
    if not changed:
        # a value cut for the feed may hold a field it cannot parse: show none of it
        return dataclasses.replace(event, value=None) if not _parses(event.value) else event
    return dataclasses.replace(event, value=value)


def _parses(text: str) -> bool:
    import json

    try:
        json.loads(text)
    except ValueError:
        return False
    return True
