"""Writing a key and its service's ``__keys`` index entry, as one change where the store can.

The runtime writes the key, then rewrites the whole index blindly: a crash or a
concurrent writer in between leaves one without the other. On a store with transactions
(ToskaStore main, ``POST /kv/txn``) the dashboard writes both in one transaction that
compares the key (absent, or the version the operator saw) and the index version read,
so either both change or neither does; when only the index moved, it re-reads and tries
again. Elsewhere the key is written conditionally and the index follows with its own
compare-and-swap (``mesh.update_index``), and the outcome says so.

Where the index applies follows the runtime (``mesh.Service.keeps_index``): an index
that exists is kept in step; one that is missing is created only for a service whose
runtime keeps one, holding just this key (as the runtime's first write does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from dashboard import mesh
from dashboard.mesh import audit
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.errors import Conflict, NotFound, ProviderError, WriteUnknown
from dashboard.stores.mutations import KEEP_TTL, Compare, TtlChange, TxnOp

#: how often a transaction is retried when only the index changed under it
ATTEMPTS = 8

#: "failed": the index was not changed; "unknown": its update went unanswered and reading
#: it back does not show it (the store may still apply it)
IndexStatus = Literal["not-kept", "unchanged", "updated", "created", "skipped", "failed",
                      "unknown"]


@dataclass(frozen=True)
class IndexOutcome:
    """What happened to the service's index: ``message`` is the sentence for the operator."""

    status: IndexStatus
    message: str = ""
    #: written in the same transaction as the key
    atomic: bool = False


@dataclass(frozen=True)
class WriteResult:
    """A write that happened: the key as stored now (None after a delete) and the index."""

    key: str
    entry: Entry | None
    index: IndexOutcome
    #: for deletes: whether the key existed
    existed: bool = True
    #: set when the store's answer was lost but reading back showed the write landed
    note: str = ""


def _target(settings, key: str) -> mesh.Service | None:
    service = mesh.service_for_key(settings, key)
    if service is None or key == service.index_full_key:
        return None
    return service


def index_applies(provider: KeyValueProvider, settings, key: str) -> tuple[mesh.Service | None, bool]:
    """The key's service and whether a write to the key should keep its index in step."""
    service = _target(settings, key)
    if service is None or service.keeps_index is False:
        return service, False
    return service, bool(service.keeps_index) or mesh.has_index(provider, service)


def create(
    provider: KeyValueProvider, settings, key: str, value: str, *, ttl: TtlChange,
    update_index: bool = True,
) -> WriteResult:
    """Create ``key`` (never overwrites: ``Conflict`` when it exists) and list it in its index."""
    return _write(provider, settings, key, value, ttl=ttl, expected=None, create_only=True,
                  update_index=update_index)


def replace(
    provider: KeyValueProvider, settings, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
    expected: str, update_index: bool = True,
) -> WriteResult:
    """Replace ``key``'s value if it is still what the operator saw (``expected`` token)."""
    return _write(provider, settings, key, value, ttl=ttl, expected=expected, create_only=False,
                  update_index=update_index)


def delete(
    provider: KeyValueProvider, settings, key: str, *, expected: str | None,
    update_index: bool = True,
) -> WriteResult:
    """Delete ``key`` (if still as seen) and drop it from its index."""
    service = _target(settings, key) if update_index else None
    return _change(
        provider, service,
        in_txn=lambda: _delete_in_txn(provider, service, key, expected),
        alone=lambda: provider.delete(key, expected=expected),
        settle=lambda error, together: _settle(provider, service, key, None, error,
                                               together=together),
        done=lambda existed: WriteResult(
            key, None, _follow_index(provider, service, key, add=False), existed))


# --------------------------------------------------------------------------- internals


def _transactional(provider: KeyValueProvider) -> bool:
    return provider.capabilities().transactions


def _write(
    provider: KeyValueProvider, settings, key: str, value: str, *, ttl: TtlChange,
    expected: str | None, create_only: bool, update_index: bool,
) -> WriteResult:
    service = _target(settings, key) if update_index else None
    return _change(
        provider, service,
        in_txn=lambda: _put_in_txn(provider, service, key, value, ttl, expected, create_only),
        alone=lambda: provider.put(key, value, ttl=ttl, expected=expected,
                                   create_only=create_only),
        settle=lambda error, together: _settle(provider, service, key, value, error, ttl=ttl,
                                               expected=expected, together=together),
        done=lambda entry: WriteResult(
            key, entry, _follow_index(provider, service, key, add=True)))


def _change(provider: KeyValueProvider, service: mesh.Service | None, *,
            in_txn: Callable[[], WriteResult | None], alone: Callable[[], Any],
            settle: Callable[[ProviderError, bool], WriteResult],
            done: Callable[[Any], WriteResult]) -> WriteResult:
    """The one shape of every key change: with its index in one transaction where the store
    can (``in_txn``; None when it falls back), else the key ``alone`` and the index after it
    (``done``); an answer that was lost is read back (``settle``: was the index in the same
    transaction?) instead of being reported as a failure."""
    audit.before_write()  # a write whose audit entry could not be kept is not made
    together = False
    try:
        if service is not None and service.keeps_index is not False and _transactional(provider):
            together = True
            result = in_txn()
            if result is not None:
                return result
            together = False
        outcome = alone()
    except ProviderError as error:
        if not error.maybe_written:
            raise
        return settle(error, together)
    return done(outcome)


def _landed(now: Entry | None, value: str | None, ttl: TtlChange | None,
            expected: str | None) -> bool:
    """Whether ``now``, read back, shows the write (one request carries value and TTL).

    A value other than the one written: not landed. The very entry the operator saw
    (``expected`` still matches): a version that did not move means nothing landed; the same
    content (a rewrite of the value, e.g. a TTL change) counts only when the TTL shows it.
    """
    if value is None:
        return now is None
    if now is None or now.value != value:
        return False
    if expected is None or not now.matches(expected):
        return True
    if expected.startswith("v"):
        return False  # still the version the operator saw: this write did not land (yet)
    if ttl is None or ttl.mode == "keep":
        return True
    if not now.ttl_known:
        return False  # the store cannot show a TTL: it cannot show this write either
    return (now.expires_at_ms is not None) == (ttl.mode == "set")


def _settle(
    provider: KeyValueProvider, service: mesh.Service | None, key: str, value: str | None,
    error: ProviderError, *, ttl: TtlChange | None = None, expected: str | None = None,
    together: bool = False,
) -> WriteResult:
    """What happened to a write whose answer was lost (timeout, cut connection, 5xx).

    A busy server applies such writes anyway, sometimes later. Reading the key back tells
    "written" (then the index update is finished here); anything else is unknown, never
    "not written": the write may still land.
    """
    verb = "deleting" if value is None else "writing"
    reread = ""
    now: Entry | None = None
    try:
        now = provider.get(key)
    except NotFound:
        pass
    except ProviderError as again:
        reread = f"reading the key back failed too ({again.message})"
    landed = not reread and _landed(now, value, ttl, expected)
    if landed:
        index = _follow_index(provider, service, key, add=value is not None)
        return WriteResult(key, now, index, note=(
            f"The store did not confirm {verb} the key ({error.message}), but reading it back "
            "shows it happened."))
    index_note = ""
    if together and service is not None:
        index_note = (f"The index {service.index_full_key!r} was written in the same transaction "
                      "as the key: it changes if and only if the key does.")
    elif service is not None and service.keeps_index is not False:
        index_note = (f"The index {service.index_full_key!r} was not updated: check it once the "
                      "key has settled.")
    raise WriteUnknown(
        f"The store did not confirm {verb} {key!r} ({error.message}), and "
        f"{reread or 'reading the key back does not show the change'}: the store may still "
        "apply it (a busy server applies queued writes later), or may not. Nothing else was "
        "changed.", store=provider.name, key=key, index_note=index_note) from error


def _follow_index(
    provider: KeyValueProvider, service: mesh.Service | None, key: str, *, add: bool,
) -> IndexOutcome:
    """The index after the key was written on its own: a compare-and-swap of its own."""
    if service is None or service.keeps_index is False:
        return IndexOutcome("not-kept")
    inner = key[len(service.prefix):]
    try:
        status = mesh.update_index(provider, service, add=[inner] if add else [],
                                   remove=[] if add else [inner],
                                   create_missing=bool(service.keeps_index))
    except mesh.MalformedIndex as error:
        return IndexOutcome("failed", f"The key was written, but the index is malformed and was "
                            f"left as it is: {error.message}")
    except WriteUnknown as error:
        return IndexOutcome("unknown", f"The key was written, but its index was not confirmed: "
                            f"{error.message}")
    except ProviderError as error:
        return IndexOutcome("failed", f"The key was written, but its index "
                            f"{service.index_full_key!r} could not be updated: {error}")
    return _outcome(status, service, inner, add=add, atomic=False)


def _outcome(status: str, service: mesh.Service, inner: str, *, add: bool,
             atomic: bool) -> IndexOutcome:
    where = service.index_full_key
    if status == "missing":
        return IndexOutcome("skipped", f"The service has no index {where!r}; none was created "
                            "(nothing says its runtime keeps one).")
    if status == "unchanged":
        return IndexOutcome("unchanged", "", atomic)
    verb = "added to" if add else "removed from"
    if status == "created":
        return IndexOutcome("created", f"Created the index {where!r}" + (
            f" holding {inner!r}, as the runtime's first write does." if add else
            " empty, as the runtime's delete does."), atomic)
    together = " in the same transaction" if atomic else ""
    return IndexOutcome("updated", f"{inner!r} {verb} the index {where!r}{together}.", atomic)


def _index_state(provider: KeyValueProvider, service: mesh.Service) -> tuple[Entry | None, list[str]] | None:
    """The index entry and its keys; None when it is malformed (then it is left alone)."""
    entry = mesh.read_index_entry(provider, service)
    if entry is None:
        return None, []
    try:
        return entry, mesh.parse_index(entry)
    except mesh.MalformedIndex:
        return None


def _index_compare(service: mesh.Service, entry: Entry | None) -> Compare:
    if entry is None:
        return Compare(service.index_full_key, exists=False)
    return Compare(entry.key, version=entry.version)


def _ttl_ms(ttl: TtlChange, current: Entry | None) -> int | None:
    if ttl.mode == "set":
        return ttl.ms
    if ttl.mode == "none" or current is None:
        return None
    remaining = current.ttl_to_keep_ms()
    if remaining is None:
        return None
    if remaining <= 0:  # a ttl_ms <= 0 would delete the key
        raise NotFound(f"key {current.key!r} expired before it could be written", key=current.key)
    return remaining


def _put_in_txn(
    provider: KeyValueProvider, service: mesh.Service, key: str, value: str, ttl: TtlChange,
    expected: str | None, create_only: bool,
) -> WriteResult | None:
    """Key and index in one transaction; None when this write cannot go through one."""
    inner = key[len(service.prefix):]
    for _ in range(ATTEMPTS):
        current: Entry | None = None
        if create_only:
            key_compare = Compare(key, exists=False)
        else:
            current = provider.get(key)  # NotFound: nothing to replace
            if expected is not None and not current.matches(expected):
                raise Conflict(f"key {key!r} changed since it was read", store=provider.name,
                               key=key, current=current)
            if current.lease_id is not None and ttl.mode == "keep":
                return None  # a transaction's put would detach it from its lease
            if current.version is None:
                return None
            key_compare = Compare(key, version=current.version)
        state = _index_state(provider, service)
        if state is None:
            return None  # malformed: write the key alone and say the index was left
        index_entry, keys = state
        if index_entry is None and not service.keeps_index:
            return None  # no index, and none to create: a plain conditional write
        ttl_ms = None if create_only and ttl.mode != "set" else _ttl_ms(ttl, current)
        ops = [TxnOp("put", key, value, ttl_ms)]
        status = "unchanged"
        if inner not in keys or index_entry is None:
            ops.append(TxnOp("put", service.index_full_key,
                             mesh.serialise_index([*keys, inner] if inner not in keys else keys)))
            status = "created" if index_entry is None else "updated"
        result = provider.transact([key_compare, _index_compare(service, index_entry)], ops,
                                   [TxnOp("get", key)])
        if result.succeeded:
            return WriteResult(key, _entry_from(result.responses[0], key, value),
                               _outcome(status, service, inner, add=True, atomic=True))
        now = _found(result.responses[0] if result.responses else {}, provider, key)
        if create_only and now is not None:
            raise Conflict(f"key {key!r} already exists", store=provider.name, key=key, current=now)
        if not create_only and (now is None or (expected is not None and not now.matches(expected))):
            gone = "was deleted" if now is None else "changed"
            raise Conflict(f"key {key!r} {gone} since it was read", store=provider.name, key=key,
                           current=now)
        # only the index (or the key's version, not its value) moved: read again
    raise Conflict(f"the index {service.index_full_key!r} kept changing; nothing was written",
                   store=provider.name, key=key)


def _delete_in_txn(
    provider: KeyValueProvider, service: mesh.Service, key: str, expected: str | None,
) -> WriteResult | None:
    inner = key[len(service.prefix):]
    for _ in range(ATTEMPTS):
        try:
            current = provider.get(key)
        except NotFound:
            if expected is not None:
                raise Conflict(f"key {key!r} was deleted since it was read", store=provider.name,
                               key=key, current=None) from None
            current = None
        if current is not None and expected is not None and not current.matches(expected):
            raise Conflict(f"key {key!r} changed since it was read", store=provider.name, key=key,
                           current=current)
        state = _index_state(provider, service)
        if state is None or current is None or current.version is None:
            return None
        index_entry, keys = state
        if index_entry is None and not service.keeps_index:
            return None
        ops = [TxnOp("delete", key)]
        status = "unchanged"
        if inner in keys or index_entry is None:
            ops.append(TxnOp("put", service.index_full_key,
                             mesh.serialise_index([k for k in keys if k != inner])))
            status = "created" if index_entry is None else "updated"
        result = provider.transact(
            [Compare(key, version=current.version), _index_compare(service, index_entry)], ops,
            [TxnOp("get", key)])
        if result.succeeded:
            return WriteResult(key, None, _outcome(status, service, inner, add=False, atomic=True))
        now = _found(result.responses[0] if result.responses else {}, provider, key)
        if now is None and expected is not None:
            raise Conflict(f"key {key!r} was deleted since it was read", store=provider.name,
                           key=key, current=None)
        if now is not None and expected is not None and not now.matches(expected):
            raise Conflict(f"key {key!r} changed since it was read", store=provider.name, key=key,
                           current=now)
    raise Conflict(f"the index {service.index_full_key!r} kept changing; nothing was deleted",
                   store=provider.name, key=key)


def _found(response: dict, provider: KeyValueProvider, key: str) -> Entry | None:
    """The key as the failed transaction's ``get`` saw it (read again for full metadata)."""
    if not response.get("found"):
        return None
    try:
        return provider.get(key)
    except NotFound:
        return None


def _entry_from(response: dict, key: str, value: str) -> Entry:
    meta = response.get("metadata") if isinstance(response.get("metadata"), dict) else {}
    expires_at = meta.get("expires_at")
    return Entry(
        key=key, value=value, version=meta.get("version"),
        expires_at_ms=expires_at, ttl_ms=None if expires_at is None else max(0, expires_at - now_ms()),
        created_at_ms=meta.get("created_at"), updated_at_ms=meta.get("updated_at"),
    )
