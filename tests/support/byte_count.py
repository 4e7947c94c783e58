"""Counting the bytes a ToskaStore provider's HTTP client actually receives.

The provider's own pooled ``httpx.Client`` keeps its transport; a wrapper under it counts
each answer's body bytes as they are pulled from the socket (what is never read, because
the reader stopped, is never counted). Measurement only: the store answers as it does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx


class _Counted(httpx.SyncByteStream):
    def __init__(self, inner: Any, counter: ByteCounter) -> None:
        self._inner = inner
        self._counter = counter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._counter.add(len(chunk))
            yield chunk

    def close(self) -> None:
        self._inner.close()


class ByteCounter(httpx.BaseTransport):
    """A transport that forwards to the client's own and counts the bytes received."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.received = 0
        self.requests = 0

    def add(self, count: int) -> None:
        with self._lock:
            self.received += count

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        with self._lock:
            self.requests += 1
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_Counted(response.stream, self),
                              extensions=response.extensions)

    def close(self) -> None:
        self._inner.close()


def count_bytes(provider: Any) -> ByteCounter:
    """Count what ``provider`` (a ``ToskaStoreProvider``) receives from now on."""
    client: httpx.Client = provider._client
    counter = ByteCounter(client._transport)
    client._transport = counter
    return counter
