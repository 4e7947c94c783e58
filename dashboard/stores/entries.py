"""What a read returns and how it is compared: ``Entry``, ``Dumped`` and their tokens.

An ``Entry`` is one key as a provider read it (value or contents, TTL, metadata); its
``token`` is what a later conditional write compares against: the version, else the token
of the exact content (``content_token``, a digest Redis computes the same way on the
server). A token starting with ``UNVERIFIED`` matches nothing. ``Dumped`` is one key whole
and exact, as an export writes it and an import reads it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import Any

#: the prefix of a token that never matches: the content could not be read exactly (a Redis
#: collection too big to digest, or read as a preview), so no write may be based on it
UNVERIFIED = "u"


def _length_prefixed(part: bytes) -> bytes:
    return b"%d:" % len(part) + part


def _as_bytes(part: bytes | str) -> bytes:
    return part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")


def _score(score: float) -> bytes:
    return format(float(score), ".17g").encode("ascii")


def content_token(type_name: str, data: bytes | None = None, members: Any = None) -> str:
    """The token of exact stored content: ``x`` and a SHA-1 of a canonical serialisation.

    ``data`` is a string's bytes; ``members`` a collection in the ``Dumped.members`` shape.
    Redis computes the same digest server-side (``redis_digest.SCRIPT``, which this must
    match byte for byte), so a collection is compared without reading it here: every part
    is length-prefixed, a hash's field/value pairs, a set's members and a zset's
    member/score pairs are digested one by one and the digests sorted (an order that does
    not depend on the server's locale), lists and streams are taken in order.
    """
    sha1 = hashlib.sha1
    if type_name == "string":
        body = data or b""
    elif type_name == "hash":
        body = "".join(sorted(
            sha1(_length_prefixed(_as_bytes(f)) + _length_prefixed(_as_bytes(v))).hexdigest()
            for f, v in members.items())).encode("ascii")
    elif type_name == "set":
        body = "".join(sorted(sha1(_length_prefixed(_as_bytes(m))).hexdigest()
                              for m in members)).encode("ascii")
    elif type_name == "zset":
        body = "".join(sorted(sha1(_length_prefixed(_as_bytes(m)) + _score(s)).hexdigest()
                              for m, s in members)).encode("ascii")
    elif type_name == "list":
        body = b"".join(_length_prefixed(_as_bytes(e)) for e in members)
    elif type_name == "stream":
        body = b"".join(
            _length_prefixed(_as_bytes(entry_id)) + b"%d:" % len(fields)
            + b"".join(_length_prefixed(_as_bytes(f)) + _length_prefixed(_as_bytes(v))
                       for f, v in fields.items())
            for entry_id, fields in members)
    else:
        raise ValueError(f"no exact token for a {type_name}")
    return "x" + sha1(type_name.encode("ascii") + b"\n" + body).hexdigest()


def now_ms() -> int:
    """Now, in Unix epoch milliseconds (as ``Entry.expires_at_ms``)."""
    return int(time.time() * 1000)


class _computed_once:
    """``functools.cached_property`` without its lock (Python 3.11 takes a lock shared by
    every instance on each first read: a browse page reads ``size`` 500 times). The value
    goes into the instance ``__dict__``, which answers every later read; two threads
    reading at once both compute it, which is harmless for a pure function."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__
        self.name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


@dataclass(frozen=True)
class Entry:
    """One key as read from the store.

    TTL has three states: ``ttl_known`` False (the store cannot tell), ``ttl_ms`` None
    (no expiry), or ``ttl_ms`` milliseconds remaining when it was read.
    """

    key: str
    #: the string value; None for a non-string Redis type (see ``content``)
    value: str | None
    ttl_ms: int | None = None
    ttl_known: bool = True
    #: absolute expiry, Unix epoch milliseconds
    expires_at_ms: int | None = None
    version: int | None = None
    created_at_ms: int | None = None
    updated_at_ms: int | None = None
    lease_id: str | None = None
    #: Redis type name; "string" everywhere else
    type: str = "string"
    #: contents of a non-string type: dict (hash), list (list, zset pairs, stream), sorted list (set)
    content: Any = None
    #: length in elements for non-string types
    length: int | None = None
    #: the whole value's size in bytes when ``value`` holds only its start (a preview)
    stored_size: int | None = None
    #: milliseconds the read took (request to answer): a rewrite reaches the store about
    #: that much later, so a kept TTL is shortened by it (see ``ttl_to_keep_ms``)
    read_rtt_ms: int = 0
    #: the exact stored bytes where ``value`` cannot hold them (Redis bytes that are not
    #: UTF-8: ``value`` then shows U+FFFD in their place, for display only)
    data: bytes | None = None
    #: the token of the exact content, computed by the store (Redis: a server-side digest
    #: of a hash, list, set, zset or stream); None where the token comes from ``value``
    digest: str | None = None

    def ttl_to_keep_ms(self) -> int | None:
        """The TTL a rewrite must send so the key expires no later than it does now.

        None when the key has no expiry. A plain "remaining time" would be counted from
        when the store receives the rewrite, one trip later: the key would live that
        much longer each time it is edited.
        """
        if self.expires_at_ms is None:
            return None
        return self.expires_at_ms - now_ms() - self.read_rtt_ms

    @property
    def token(self) -> str:
        """What a later conditional write compares against: the version, else the token of
        the exact content (``content_token``: a string's bytes, a collection's digest).

        A leased key's version moves with every keepalive of its lease, so its token is
        the content's: an edit then fails only when the value itself changed. A preview
        (``partial``) has no token: it is never the base of a write. Content that was not
        read exactly (a collection shown as a preview, without ``digest``) has an
        ``UNVERIFIED`` token, which no write accepts.
        """
        if self.partial:
            raise ValueError(f"{self.key!r} was read as a preview: read it whole to write it")
        if self.version is not None and self.lease_id is None:
            return f"v{self.version}"
        return self.content_token

    @property
    def content_token(self) -> str:
        """The token of the exact content (never the version); ``UNVERIFIED...`` if unknown."""
        if self.digest is not None:
            return self.digest
        if self.type == "string" and self.value is not None and not self.partial:
            return content_token("string", self.exact_bytes)
        return f"{UNVERIFIED}:{self.type} not read exactly"

    @property
    def verifiable(self) -> bool:
        """A write can be compared exactly against what this entry shows."""
        if self.partial:
            return False
        return (self.version is not None and self.lease_id is None) or \
            not self.content_token.startswith(UNVERIFIED)

    @property
    def exact_bytes(self) -> bytes:
        """A string's stored bytes (``data``, else the text as UTF-8); a preview's start."""
        if self.data is not None:
            return self.data
        if self.value is None:
            raise ValueError(f"{self.key!r} holds a {self.type}, not bytes")
        return self.value.encode("utf-8", "surrogatepass")

    def matches(self, token: str) -> bool:
        """Whether this entry is still what a reader who got ``token`` saw.

        A content token compares the exact content; a version token compares the version
        (also for a leased key, whose own token is the content's). An ``UNVERIFIED``
        token matches nothing.
        """
        if token.startswith("v"):
            return self.version is not None and token == f"v{self.version}"
        if token.startswith(UNVERIFIED) or self.partial:
            return False
        return token == self.content_token

    @property
    def partial(self) -> bool:
        """``value`` is only the start of the stored value (read as a preview)."""
        return self.stored_size is not None

    @_computed_once
    def size(self) -> int:
        """Size of the value in UTF-8 bytes (0 for non-string types); encoded once."""
        if self.stored_size is not None:
            return self.stored_size
        if self.data is not None:
            return len(self.data)
        return len(self.value.encode("utf-8", "surrogatepass")) if self.value is not None else 0

    @property
    def editable(self) -> bool:
        return self.type == "string" and self.value is not None


def _fill_dict_init(cls: type) -> type:
    """Give a frozen dataclass an ``__init__`` that fills the instance ``__dict__`` at once.

    The generated one sets each field through ``object.__setattr__`` (frozen): ~1.7 µs
    for an ``Entry``, of which a browse page makes 500 and a bulk lookup 10,000. This one
    takes the same parameters with the same defaults (~0.8 µs). Classes with field
    options it does not handle (factories, keyword-only, ``init=False``, ``__post_init__``)
    keep the dataclass ``__init__``.
    """
    params = list(dataclasses.fields(cls))
    if hasattr(cls, "__post_init__") or any(
            not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING
            for f in params):
        return cls
    defaults = {f"_default_{f.name}": f.default for f in params
                if f.default is not dataclasses.MISSING}
    signature = ", ".join(
        f.name if f.default is dataclasses.MISSING else f"{f.name}=_default_{f.name}"
        for f in params)
    body = "\n".join(f"    d[{f.name!r}] = {f.name}" for f in params)
    source = f"def __init__(self, {signature}):\n    d = self.__dict__\n{body}\n"
    namespace: dict[str, Any] = {}
    exec(source, defaults, namespace)  # noqa: S102 - built from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls


_fill_dict_init(Entry)


@dataclass(frozen=True)
class Dumped:
    """One key whole and exact, as an export writes it and an import reads it back.

    A string is ``value`` (text) or, where the store holds bytes that are not UTF-8 (Redis),
    ``data``. A non-string Redis type is ``members``: whole, with every element as bytes
    (hash ``{field: value}``, list ``[value]``, set ``[member]`` sorted, zset
    ``[[member, score]]``, stream ``[[id, {field: value}]]``). TTL as on ``Entry``.
    """

    key: str
    type: str = "string"
    value: str | None = None
    data: bytes | None = None
    members: Any = None
    ttl_ms: int | None = None
    ttl_known: bool = True
    expires_at_ms: int | None = None
    version: int | None = None
    lease_id: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> Dumped:
        return cls(key=entry.key, type=entry.type, value=entry.value,
                   ttl_ms=entry.ttl_ms if entry.ttl_known else None, ttl_known=entry.ttl_known,
                   expires_at_ms=entry.expires_at_ms, version=entry.version,
                   lease_id=entry.lease_id)

    @property
    def text(self) -> str | None:
        """The string value as text; None for a non-string type or bytes that are not UTF-8."""
        if self.value is not None:
            return self.value
        if self.data is not None:
            try:
                return self.data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None

