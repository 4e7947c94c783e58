"""``GET /kv/watch`` (main): key changes as Server-Sent Events.

As upstream: ``: connected`` first, then the replayed events, then live ones, each as
``id: <revision>\\nevent: <op>\\ndata: <json>\\n\\n``; ``once`` ends after the replay;
``timeout_ms`` ends a stream idle that long. Unlike upstream (which only notices a
gone client when a write fails), the stream also ends as soon as the client hangs up
or the server stops, so an idle watch never holds a thread or ``stop()``.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from dashboard.devstore.request import Reply, Request, store_unavailable
from dashboard.devstore.values import elixir_int
from dashboard.devstore.watch import HistoryUnavailable
from dashboard.devstore.wire import ApiError, dumps, parse_flag

#: how often an idle stream checks for a gone client or a stopping server
_POLL_S = 0.05


def _non_negative(raw: str | None) -> int | None:
    if raw is None:
        return None
    value = elixir_int(raw)
    if value is None or value < 0:
        raise ApiError(400, "Invalid watch parameters")
    return value


def sse_event(event: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event["revision"],
        event["op"].encode(),
        dumps(event),
    )


def watch(req: Request) -> Reply | None:
    prefix = req.query.get("prefix", "")
    since = _non_negative(req.query.get("since_revision"))
    once = parse_flag(req.query.get("once"), False)
    if once is None:
        raise ApiError(400, "Invalid watch parameters")
    timeout_ms = _non_negative(req.query.get("timeout_ms"))
    if req.config.unavailable:
        raise store_unavailable()
    try:
        watcher, replay, revision = req.store.watch(prefix, since)
    except HistoryUnavailable:
        raise ApiError(409, "Watch history unavailable") from None
    handler = req.handler
    handler.server.stream_started()
    try:
        handler.start_chunked(
            200,
            "text/event-stream; charset=utf-8",
            {"cache-control": "no-cache", "x-accel-buffering": "no", "x-toska-revision": str(revision)},
        )
        handler.write_chunk(b": connected\n\n")
        for event in replay:
            handler.write_chunk(sse_event(event))
        if not once:
            _stream_live(req, watcher, timeout_ms)
        handler.end_chunked()
    except OSError:
        handler.close_connection = True  # the client is gone; nothing more to send
    finally:
        req.store.unwatch(watcher)
        handler.server.stream_ended()
    return None


def _stream_live(req: Request, watcher: Any, timeout_ms: int | None) -> None:
    handler = req.handler
    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    while True:
        wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
        try:
            event = watcher.events.get(timeout=wait) if wait > 0 else watcher.events.get_nowait()
        except queue.Empty:
            if wait <= 0:
                return  # idle for timeout_ms: upstream's `after timeout_ms`
            if handler.server.stopping.is_set() or handler.client_gone():
                handler.close_connection = True
                return
            continue
        handler.write_chunk(sse_event(event))
        if deadline is not None:  # the idle timer restarts after every event
            deadline = time.monotonic() + timeout_ms / 1000
