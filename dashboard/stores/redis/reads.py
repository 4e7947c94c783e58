"""Reading Redis keys into ``Entry`` objects: the one path every read takes.

A batch of keys is one pipeline (PTTL + GET per key, or PTTL + STRLEN + GETRANGE for a
bounded preview), with no TYPE: a string answers there, PTTL -2 means the key is gone, and
a non-string answers WRONGTYPE. Only when the batch holds such keys do two more pipelines
follow, for those keys alone: their TYPE, then the length and preview commands of each
type (with TYPE again, to notice a change). On a Redis
Cluster the pipeline is redis-py's cluster pipeline: it groups the commands by the node
serving each key's slot, sends every node its share at once and returns the replies in
the order the commands were queued, so nothing here depends on the mode.

Values (and the members shown in previews) are decoded with ``errors="replace"``; keys
with ``errors="surrogateescape"`` so any key round-trips exactly (see ``redis.py``). A
string read whole that is not UTF-8 keeps its bytes in ``Entry.data`` (its token, size
and download are exact). An exact read (``get``, ``mget(exact=True)``, the reads of a
write) adds one EVAL per hash, list, set, zset or stream to the third pipeline: the
server's digest of its whole content (``redis_digest``), which is its token; strings need
no extra command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import exceptions as rx

from dashboard.stores import errors
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.redis import digest as redis_digest

#: elements shown for a hash, list, set, zset or stream
PREVIEW_ELEMENTS = 100
#: how often a read is retried when a key changes type under it
ATTEMPTS = 3


def key_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def string_value(raw: bytes) -> tuple[str, bytes | None]:
    """(text shown, exact bytes where the text cannot hold them) of a string read whole.

    Valid UTF-8 is its text (its bytes are the text's); other bytes show U+FFFD in the
    text and are kept as ``Entry.data``, so tokens, sizes and downloads stay exact.
    """
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), bytes(raw)


class _Raced(Exception):
    """A key changed type between the commands that read it; read it again."""


class RedisReads:
    """Mixin for ``RedisProvider``: needs ``self._redis`` (the client) and ``self.name``."""

    _redis: Any
    name: str

    def memory_usage(self, key: str) -> int | None:
        """The bytes Redis takes for ``key`` (``MEMORY USAGE``: one call, sampled for a big
        collection); None when the key is gone or the server refuses the command (an ACL
        without ``MEMORY``, a proxy that does not offer it). Not part of the contract."""
        raw_key = self._encode_key(key)  # type: ignore[attr-defined]
        try:
            reply = self._redis.memory_usage(raw_key)
        except rx.ResponseError:  # NOPERM, unknown command
            return None
        return int(reply) if reply is not None else None

    def _read_one(self, raw_key: bytes) -> Entry | None:
        """One key read exactly (its token can be compared), as a write compares it."""
        return self._read_entries([raw_key], exact=True)[0]

    def _read_entries(
        self, keys: Sequence[bytes], *, preview_bytes: int | None = None, exact: bool = False,
    ) -> list[Entry | None]:
        """Entries for ``keys`` (None where missing); retries keys that change type mid-read.

        With ``preview_bytes``, strings longer than that are read partially (``partial``).
        With ``exact``, each hash, list, set, zset or stream is also digested on the server
        (``redis_digest``), so its ``token`` is exact; strings always are (their bytes).
        """
        result: list[Entry | None] = [None] * len(keys)
        pending = list(range(len(keys)))
        for _ in range(ATTEMPTS):
            raced = self._read_pass([keys[i] for i in pending], preview_bytes, exact)
            still: list[int] = []
            for index, entry in zip(pending, raced, strict=True):
                if isinstance(entry, _Raced):
                    still.append(index)
                else:
                    result[index] = entry
            pending = still
            if not pending:
                return result
        raise errors.BadResponse(
            f"key {key_text(keys[pending[0]])!r} kept changing type while being read; "
            "try again", store=self.name, key=key_text(keys[pending[0]]),
        )

    def _read_pass(
        self, keys: Sequence[bytes], preview_bytes: int | None = None, exact: bool = False,
    ) -> list[Entry | None | _Raced]:
        """Pipeline 1: PTTL + GET per key (PTTL + STRLEN + GETRANGE for a preview).

        No TYPE: a string (the common case) is read in that one pipeline. A key whose
        read answers WRONGTYPE is not a string: pipeline 2 asks those keys' TYPE, and
        pipeline 3 (``_read_collections``) reads their length and preview.
        """
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        if preview_bytes is None:
            for key in keys:
                pipe.pttl(key)
                pipe.get(key)
            width = 2
        else:
            last = preview_bytes - 1
            for key in keys:
                pipe.pttl(key)
                pipe.strlen(key)
                pipe.getrange(key, 0, last)
            width = 3
        # GET on a hash answers WRONGTYPE: collect errors per command instead of raising
        replies = pipe.execute(raise_on_error=False)
        now = now_ms()
        out: list[Entry | None | _Raced] = []
        others: list[tuple[int, int]] = []  # (index, pttl) of keys that are not strings
        for i, key in enumerate(keys):
            base = width * i
            pttl = replies[base]
            value = replies[base + width - 1]
            stored = replies[base + 1] if width == 3 else None
            if isinstance(pttl, Exception):
                raise pttl
            if pttl == -2:
                out.append(None)  # no such key (or it vanished after SCAN listed it)
            elif type(value) is bytes and (width == 2 or type(stored) is int):
                ttl_ms = pttl if pttl >= 0 else None
                if stored is not None and stored > len(value):
                    # a preview: the cut may split a character, drop its bytes
                    out.append(Entry(
                        key=key.decode("utf-8", "surrogateescape"),
                        value=value.decode("utf-8", "ignore"), ttl_ms=ttl_ms,
                        expires_at_ms=None if ttl_ms is None else now + ttl_ms,
                        stored_size=stored))
                else:
                    text, data = string_value(value)
                    out.append(Entry(
                        key=key.decode("utf-8", "surrogateescape"),
                        value=text, ttl_ms=ttl_ms,
                        expires_at_ms=None if ttl_ms is None else now + ttl_ms, data=data))
            elif value is None:
                out.append(None)  # deleted between PTTL and GET
            elif _is_wrongtype(value) or _is_wrongtype(stored):
                out.append(None)
                others.append((i, pttl))
            else:
                _raise_if_error(stored)
                raise value
        if others:
            for (i, _pttl), entry in zip(
                others, self._read_others(keys, others, now, exact), strict=True,
            ):
                out[i] = entry
        return out

    def _read_others(
        self, keys: Sequence[bytes], others: list[tuple[int, int]], now: int,
        exact: bool = False,
    ) -> list[Entry | None | _Raced]:
        """Keys whose string read answered WRONGTYPE: TYPE, then their type's reads."""
        pipe = self._redis.pipeline(transaction=False)
        for i, _pttl in others:
            pipe.type(keys[i])
        replies = pipe.execute(raise_on_error=False)
        out: list[Entry | None | _Raced] = [None] * len(others)
        collections: list[tuple[int, str, int]] = []
        places: list[int] = []
        for place, ((i, pttl), type_reply) in enumerate(zip(others, replies, strict=True)):
            _raise_if_error(type_reply)
            type_name = _text(type_reply)
            if type_name == "none":
                continue  # deleted after the read
            if type_name == "string":
                out[place] = _Raced()  # it became a string after the read: read it again
                continue
            collections.append((i, type_name, pttl))
            places.append(place)
        if collections:
            for place, entry in zip(
                places, self._read_collections(keys, collections, now, exact), strict=True,
            ):
                out[place] = entry
        return out

    def _read_collections(
        self, keys: Sequence[bytes], others: list[tuple[int, str, int]], now: int,
        exact: bool = False,
    ) -> list[Entry | None | _Raced]:
        """One pipeline: TYPE again (to notice a change), length and preview per key.

        With ``exact``, the server's digest of each (``redis_digest``) too; for one key
        the pipeline is a MULTI/EXEC on the key's node, so the preview shown and the
        token a write compares are of the same content.
        """
        if exact and len(others) == 1:
            pipe = self._watch_client(keys[others[0][0]]).pipeline(  # type: ignore[attr-defined]
                transaction=True)
        else:
            pipe = self._redis.pipeline(transaction=False)
        counts: list[int] = []
        for i, type_name, _pttl in others:
            pipe.type(keys[i])
            commands = _COLLECTION_READS.get(type_name)
            if commands:
                commands[0](pipe, keys[i])
                commands[1](pipe, keys[i])
                if exact:
                    redis_digest.queue(pipe, keys[i])
            counts.append(1 + ((3 if exact else 2) if commands else 0))
        replies = pipe.execute(raise_on_error=False)
        out: list[Entry | None | _Raced] = []
        offset = 0
        for (i, type_name, pttl), count in zip(others, counts, strict=True):
            type_reply, *reads = replies[offset:offset + count]
            offset += count
            _raise_if_error(type_reply)
            now_type = _text(type_reply)
            if now_type == "none":
                out.append(None)
                continue
            if now_type != type_name or any(_is_wrongtype(r) for r in reads):
                out.append(_Raced())
                continue
            digest = None
            if exact and reads:
                *reads, digest_reply = reads
                if isinstance(digest_reply, rx.ResponseError):
                    digest_reply = None  # scripting denied (ACL) or refused: not verifiable
                else:
                    _raise_if_error(digest_reply)
                if digest_reply is not None:
                    kind, _count, digest = redis_digest.parse(digest_reply)
                    if kind != type_name:
                        out.append(_Raced())
                        continue
            for reply in reads:
                _raise_if_error(reply)
            if not reads:
                # a module type (JSON, vector set...): name it, show no contents
                out.append(self._entry(keys[i], pttl, now, type_name=type_name))
                continue
            length, preview = reads
            out.append(self._entry(
                keys[i], pttl, now, type_name=type_name, length=int(length),
                content=_PREVIEWS[type_name](preview), digest=digest,
            ))
        return out

    def _entry(
        self, key: bytes, pttl: int, now: int, *, value: str | None = None,
        type_name: str = "string", content: Any = None, length: int | None = None,
        stored_size: int | None = None, digest: str | None = None, data: bytes | None = None,
    ) -> Entry:
        """Build an Entry from pipelined replies; PTTL -1 means no expiry."""
        # PTTL is -1 without expiry and -2 if the key vanished after TYPE: no TTL either way
        ttl_ms = pttl if pttl >= 0 else None
        return Entry(
            key=key_text(key), value=value, ttl_ms=ttl_ms,
            expires_at_ms=now + ttl_ms if ttl_ms is not None else None,
            type=type_name, content=content, length=length, stored_size=stored_size,
            digest=digest, data=data,
        )


def _raise_if_error(reply: Any) -> None:
    if isinstance(reply, Exception):
        raise reply


def _is_wrongtype(reply: Any) -> bool:
    return isinstance(reply, rx.ResponseError) and str(reply).startswith("WRONGTYPE")


# Per type: (length command, preview command). HSCAN/SSCAN return everything in one call
# for small collections and roughly COUNT elements for big ones, without HGETALL/SMEMBERS'
# risk of pulling a million members.
_COLLECTION_READS = {
    "hash": (lambda p, k: p.hlen(k), lambda p, k: p.hscan(k, 0, count=PREVIEW_ELEMENTS)),
    "list": (lambda p, k: p.llen(k), lambda p, k: p.lrange(k, 0, PREVIEW_ELEMENTS - 1)),
    "set": (lambda p, k: p.scard(k), lambda p, k: p.sscan(k, 0, count=PREVIEW_ELEMENTS)),
    "zset": (lambda p, k: p.zcard(k),
             lambda p, k: p.zrange(k, 0, PREVIEW_ELEMENTS - 1, withscores=True)),
    "stream": (lambda p, k: p.xlen(k),
               lambda p, k: p.xrange(k, "-", "+", count=PREVIEW_ELEMENTS)),
}

# Per type: the reply of the preview command -> the Entry.content shown to operators.
# Hash fields and set members are sorted so a preview (and its token) is stable.
_PREVIEWS = {
    "hash": lambda reply: dict(sorted(
        (_text(f), _text(v)) for f, v in reply[1].items())[:PREVIEW_ELEMENTS]),
    "list": lambda reply: [_text(v) for v in reply],
    "set": lambda reply: sorted(_text(m) for m in reply[1])[:PREVIEW_ELEMENTS],
    "zset": lambda reply: [[_text(m), score] for m, score in reply],
    "stream": lambda reply: [
        [_text(entry_id), {_text(f): _text(v) for f, v in fields.items()}]
        for entry_id, fields in reply
    ],
}
