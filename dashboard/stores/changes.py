"""Key changes as a provider streams them: ``ChangeEvent`` and the ``ChangeStream`` contract.

``KeyValueProvider.watch(prefix, since_revision)`` returns a ``ChangeStream``; the live
pages (``dashboard.web.live``) read it with ``next_event(timeout_s)``. A stream is fed by a
reader thread of its own, so a caller can wait with a timeout and send keepalives.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from dashboard.stores.errors import ProviderError

#: what happened to a key: written, deleted (or evicted, renamed away), or expired
ChangeOp = Literal["put", "delete", "expire"]
#: characters of a written value an event carries (a preview, never a whole value)
PREVIEW_CHARS = 4096


@dataclass(frozen=True)
class ChangeEvent:
    """One change of one key.

    ``revision`` orders events: the store's revision on ToskaStore; on Redis, which has
    none, this stream's own sequence number. ``value`` is the start of the written value
    (at most ``PREVIEW_CHARS``; ``value_size`` is the whole value's UTF-8 size), None for a
    delete or expiry, or when it could not be read. ``ttl_ms`` None means no expiry, and
    ``ttl_known`` False that the store did not say.
    """

    op: ChangeOp
    key: str
    revision: int
    timestamp_ms: int
    value: str | None = None
    value_size: int | None = None
    version: int | None = None
    expires_at_ms: int | None = None
    ttl_ms: int | None = None
    ttl_known: bool = False
    lease_id: str | None = None
    #: Redis type of the key after a put ("string" elsewhere)
    type: str = "string"
    #: a store-specific note ("evicted", "renamed")
    note: str = ""

    @property
    def partial(self) -> bool:
        """``value`` holds only the start of the written value."""
        return self.value is not None and self.value_size is not None and \
            self.value_size > len(self.value.encode("utf-8", "surrogatepass"))


def bounded(value: str | None) -> tuple[str | None, int | None]:
    """(the first ``PREVIEW_CHARS`` of ``value``, its whole UTF-8 size)."""
    if value is None:
        return None, None
    return value[:PREVIEW_CHARS], len(value.encode("utf-8", "surrogatepass"))


class ChangeStream(ABC):
    """Changes under one prefix, oldest first, each at most once; close it when done."""

    #: the revision of the last event handed out (or where the stream started); passing
    #: it to ``watch(prefix, since_revision=...)`` continues without gap or double
    revision: int | None = None

    @abstractmethod
    def next_event(self, timeout_s: float) -> ChangeEvent | None:
        """The next change, or None when none came within ``timeout_s``.

        Raises ``HistoryGone`` when events may have been missed, or another
        ``ProviderError`` when the store stream failed; the stream is then finished.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop reading and release the connection; safe to call twice, from any thread."""

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueuedStream(ChangeStream):
    """A ``ChangeStream`` fed by reader threads through a queue (events or a final error)."""

    def __init__(self, revision: int | None = None) -> None:
        self.revision = revision
        self._queue: queue.SimpleQueue[ChangeEvent | ProviderError] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._failed: ProviderError | None = None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _emit(self, item: ChangeEvent | ProviderError) -> None:
        self._queue.put(item)

    def next_event(self, timeout_s: float) -> ChangeEvent | None:
        """See ``ChangeStream.next_event``."""
        if self._failed is not None:
            raise self._failed
        try:
            item = self._queue.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None
        if isinstance(item, ProviderError):
            self._failed = item
            raise item
        if self.revision is None or item.revision > self.revision:
            self.revision = item.revision
        return item

    def close(self) -> None:
        self._closed.set()
