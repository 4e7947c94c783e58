"""Exact reads and writes of any Redis type, for export and import (``dashboard.mesh.transfer``).

The browsing path (``redis_reads``) decodes values for display and reads only a preview
of a hash, list, set, zset or stream. An export needs the opposite: every byte of a string
and every element of a collection. ``dump_page`` reads a SCAN page that way (one pipeline
for TYPE + PTTL, one for the whole values); ``restore`` writes one key back: compared
(absent, or still the entry the plan read) while WATCHed, then DEL + write + PEXPIRE in
MULTI/EXEC, so a key is replaced whole or not at all.

A whole collection is read in one command: a key of millions of elements costs that much
memory once, while it is exported (streams lose their consumer groups: only entries are
exported).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard.stores import errors
from dashboard.stores.entries import Dumped, Entry, content_token, now_ms
from dashboard.stores.pages import DumpPage
from dashboard.stores.redis.reads import _is_wrongtype, _raise_if_error, _text, key_text, string_value

#: how often a key that changes type under the read is read again
ATTEMPTS = 3
#: Redis types an export reads and an import writes
TYPES = ("string", "hash", "list", "set", "zset", "stream")

_READS = {
    "string": lambda p, k: p.get(k),
    "hash": lambda p, k: p.hgetall(k),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "set": lambda p, k: p.smembers(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
    "stream": lambda p, k: p.xrange(k, "-", "+"),
}


def _members(type_name: str, reply: Any) -> Any:
    """The whole contents of a collection, in the ``Dumped.members`` shape (bytes)."""
    if type_name == "hash":
        return dict(sorted(reply.items()))
    if type_name == "list":
        return list(reply)
    if type_name == "set":
        return sorted(reply)
    if type_name == "zset":
        return [[member, score] for member, score in reply]
    return [[entry_id, dict(fields)] for entry_id, fields in reply]  # stream


def read_exact(provider: Any, keys: Sequence[bytes]) -> list[Dumped | None]:
    """Whole, exact entries for ``keys`` (None where missing), retrying type changes."""
    result: list[Dumped | None] = [None] * len(keys)
    pending = list(range(len(keys)))
    for _ in range(ATTEMPTS):
        if not pending:
            return result
        still = []
        for index, item in zip(pending, _read_pass(provider, [keys[i] for i in pending]),
                               strict=True):
            if item is _RACED:
                still.append(index)
            else:
                result[index] = item  # type: ignore[assignment]
        pending = still
    if pending:
        raise errors.BadResponse(
            f"key {key_text(keys[pending[0]])!r} kept changing type while being exported; "
            "try again", store=provider.name, key=key_text(keys[pending[0]]))
    return result


class _Raced:
    """The key changed type between TYPE and its read."""


_RACED = _Raced()


def _read_pass(provider: Any, keys: Sequence[bytes]) -> list[Dumped | None | _Raced]:
    if not keys:
        return []
    pipe = provider._redis.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
    replies = pipe.execute(raise_on_error=False)
    now = now_ms()
    kinds: list[tuple[str, int]] = []
    for i in range(len(keys)):
        type_reply, pttl = replies[2 * i], replies[2 * i + 1]
        _raise_if_error(type_reply)
        _raise_if_error(pttl)
        kinds.append((_text(type_reply), int(pttl)))
    pipe = provider._redis.pipeline(transaction=False)
    for key, (type_name, _) in zip(keys, kinds, strict=True):
        read = _READS.get(type_name)
        if read is not None:
            read(pipe, key)
    reads = iter(pipe.execute(raise_on_error=False))
    out: list[Dumped | None | _Raced] = []
    for key, (type_name, pttl) in zip(keys, kinds, strict=True):
        if type_name == "none":
            out.append(None)
            continue
        ttl_ms = pttl if pttl >= 0 else None
        common = {"key": key_text(key), "type": type_name, "ttl_ms": ttl_ms,
                  "expires_at_ms": now + ttl_ms if ttl_ms is not None else None}
        if type_name not in _READS:
            raise errors.Unsupported(
                f"key {key_text(key)!r} is a Redis {type_name} (a module type): an export "
                "cannot read it", store=provider.name, key=key_text(key))
        reply = next(reads)
        if _is_wrongtype(reply):
            out.append(_RACED)
            continue
        _raise_if_error(reply)
        if type_name == "string":
            out.append(None if reply is None else Dumped(data=bytes(reply), **common))
        elif not reply:
            out.append(None)  # emptied (deleted) between TYPE and the read
        else:
            out.append(Dumped(members=_members(type_name, reply), **common))
    return out


def dump_page(provider: Any, prefix: str, cursor: str | None, limit: int) -> DumpPage:
    """One SCAN page of whole, exact entries (keys gone before the read are left out)."""
    with provider._translate():
        keys, next_cursor = provider._scan_keys(prefix, cursor, limit)
        items = [item for item in read_exact(provider, keys) if item is not None]
    return DumpPage(items, next_cursor)


def _queue_write(pipe: Any, raw_key: bytes, item: Dumped, ttl_ms: int | None) -> None:
    if item.type == "string":
        data = item.data if item.data is not None else (item.value or "").encode("utf-8")
        pipe.set(raw_key, data, px=ttl_ms)
        return
    pipe.delete(raw_key)
    members = item.members
    if item.type == "hash":
        pipe.hset(raw_key, mapping=members)
    elif item.type == "list":
        pipe.rpush(raw_key, *members)
    elif item.type == "set":
        pipe.sadd(raw_key, *members)
    elif item.type == "zset":
        pipe.zadd(raw_key, {member: score for member, score in members})
    elif item.type == "stream":
        for entry_id, fields in members:
            pipe.xadd(raw_key, fields, id=entry_id)
    if ttl_ms is not None:
        pipe.pexpire(raw_key, ttl_ms)


def restore(
    provider: Any, item: Dumped, *, ttl_ms: int | None, create_only: bool,
    expected: str | None,
) -> Entry:
    """Write ``item`` whole (any type, exact bytes), compared while WATCHed."""
    if item.type not in TYPES:
        raise errors.Unsupported(f"a Redis {item.type} cannot be imported", store=provider.name,
                                 key=item.key)
    if item.type != "string" and not item.members:
        raise errors.InvalidRequest(f"an empty {item.type} cannot exist in Redis",
                                    store=provider.name, key=item.key)
    raw_key = provider._encode_key(item.key)

    def attempt() -> Entry:
        with provider._watch_client(raw_key).pipeline(transaction=True) as pipe:
            pipe.watch(raw_key)
            current = provider._read_one(raw_key)
            if create_only and current is not None:
                raise errors.Conflict(f"key {item.key!r} already exists; nothing was written",
                                      store=provider.name, key=item.key, current=current)
            if expected is not None:
                if current is None:
                    raise errors.Conflict(f"key {item.key!r} no longer exists; nothing was "
                                          "written", store=provider.name, key=item.key,
                                          current=None)
                provider._check_expected(item.key, expected, current)
            pipe.multi()
            _queue_write(pipe, raw_key, item, ttl_ms)
            pipe.execute()
        value = data = None
        if item.type == "string":
            if item.data is not None:
                value, data = string_value(item.data)
            else:
                value = item.value
        return Entry(key=item.key, value=value, type=item.type, ttl_ms=ttl_ms,
                     expires_at_ms=now_ms() + ttl_ms if ttl_ms is not None else None,
                     data=data, digest=None if item.type == "string" else
                     content_token(item.type, members=item.members))

    with provider._translate(item.key, write=True):
        return provider._conditional(item.key, raw_key, attempt, doing="imported",
                                     undone="written")


__all__ = ["TYPES", "dump_page", "read_exact", "restore"]
