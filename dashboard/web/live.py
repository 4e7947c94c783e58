"""Live changes for the browser: stream slots and the Server-Sent Events response.

A live page holds one SSE stream (``GET /live/stream``), and under gunicorn's threaded
workers a stream holds a worker thread for as long as the page is open. So each process
serves at most ``Dashboard:MaxLiveStreams`` streams (``LiveSlots``); past that, a clear
503. The stream sends a keepalive comment every ``KEEPALIVE_S`` seconds even when nothing
changes: writing to a browser that went away fails at once, so its slot and its store
stream are freed within seconds (``finally``), never left to a TCP timeout. The stream is a
``lifecycle.long_lived`` response: its slot is given back when the response closes, whatever
the method (HEAD takes none), and before each event and keepalive its session is checked
again in the session storage: logged out, timed out, or an operator removed or changed, the
stream ends with its ``end`` event.

What the browser receives are server-rendered, escaped HTML fragments (the token and the
store never reach it). The store stream is the provider's ``watch``; when it ends or fails,
this reconnects from the last revision seen (no gap, no double), and when the store cannot
replay (``HistoryGone``) the page is told that events were missed and to reload its state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Flask, Response, current_app, render_template

from dashboard.stores.base import KeyValueProvider
from dashboard.stores.changes import ChangeEvent, ChangeStream
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.errors import HistoryGone, NotFound, ProviderError
from dashboard.stores.pages import EntryPage
from dashboard.web import lifecycle

#: a keepalive comment at least this often: a gone browser is noticed this fast
KEEPALIVE_S = 2.0
#: what an EventSource waits before reconnecting on its own (ms)
RETRY_MS = 2000
#: pauses between attempts to reopen a failed store stream (seconds, then the last again)
REOPEN_PAUSES = (0.5, 1.0, 2.0, 5.0)
_EXTENSION = "kv_live"
_CREATE = threading.Lock()
#: set when the process is stopping: open streams end at once (see ``end_streams``)
_STOPPING = threading.Event()


def end_streams() -> None:
    """End every open stream of this process within a keepalive (the process is stopping).

    Without it a rolling restart waits out gunicorn's graceful timeout for the open live
    pages. A stream ends without its ``end`` event, so each browser reconnects by itself
    (to another replica), from its last event.
    """
    _STOPPING.set()


class LiveSlots:
    """How many live streams this process serves, at most ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def full(self) -> bool:
        return self._open >= self.cap

    def acquire(self) -> bool:
        """Take a slot; False when all ``cap`` are in use."""
        with self._lock:
            if self._open >= self.cap:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open = max(self._open - 1, 0)


def slots(app: Flask | None = None) -> LiveSlots:
    """This process's stream slots (made on first use from ``Dashboard:MaxLiveStreams``)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get(_EXTENSION)
    if found is None:
        with _CREATE:
            found = app.extensions.get(_EXTENSION)
            if found is None:
                cap = app.config["KV_SETTINGS"].dashboard.max_live_streams
                found = app.extensions[_EXTENSION] = LiveSlots(cap)
    return found


def unavailable_reason(store: KeyValueProvider) -> str | None:
    """Why the live view cannot run here (the store, or the setting); None when it can."""
    if slots().cap == 0:
        return "Dashboard__MaxLiveStreams is 0 on this dashboard (the live view is turned off)"
    try:
        return store.watch_unavailable_reason()
    except ProviderError as error:
        return f"the store could not be asked ({error})"


def full_message() -> str:
    cap = slots().cap
    return (f"This dashboard process already serves its limit of {cap} live "
            f"stream{'s' if cap != 1 else ''} (Dashboard__MaxLiveStreams): each open live page "
            "holds one, so close another live page (live feed, followed browse, open key or "
            "edit page) or try again in a moment. Ordinary pages keep working.")


# --- what a change looks like in the browser ------------------------------------------------

def entry_of(event: ChangeEvent) -> Entry:
    """The ``Entry`` a browse row shows for a written key (its value is a preview)."""
    return Entry(key=event.key, value=event.value, ttl_ms=event.ttl_ms, ttl_known=event.ttl_known,
                 expires_at_ms=event.expires_at_ms, version=event.version, lease_id=event.lease_id,
                 type=event.type, stored_size=event.value_size if event.partial else None)


@dataclass(frozen=True)
class Sse:
    """One SSE message: ``event`` name and an HTML fragment."""

    event: str
    html: str
    id: int | None = None

    def encode(self) -> str:
        lines = [f"event: {self.event}"]
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines += [f"data: {line}" for line in (self.html.splitlines() or [""])]
        return "\n".join(lines) + "\n\n"


def render_event(mode: str, event: ChangeEvent, key: str | None) -> Sse | None:
    """The message for ``event`` on a page in ``mode``; None when that page ignores it.

    ``feed``: a feed line. ``key``/``edit``: only ``key``'s own changes, as a notice
    (``changed`` for a write, ``gone`` for a delete or expiry). ``follow``: a browse row
    for a write, the key alone for a delete or expiry.
    """
    if mode in ("key", "edit"):
        if event.key != key:
            return None
        name = "changed" if event.op == "put" else "gone"
        html = render_template("live/_notice.html", event=event, mode=mode)
        return Sse(name, html, event.revision)
    if mode == "follow":
        if event.op == "put":
            html = render_template("keys/_rows.html", page=EntryPage([entry_of(event)], None),
                                   prefix="", limit=0, cursor=None)
            return Sse("row", html, event.revision)
        return Sse("gone", render_template("live/_gone.html", event=event), event.revision)
    html = render_template("live/_event.html", event=event, entry=entry_of(event))
    return Sse("change", html, event.revision)


def _notice(name: str, template: str, **context: object) -> str:
    return Sse(name, render_template(template, **context)).encode()


def seen_token(entry: Entry) -> str:
    """What a key page saw of its key, to tell on connecting whether it changed since.

    The version where the store keeps one (a leased key's moves with keepalives: its value
    digest instead), else the digest of a value read whole; "" when neither is known.
    """
    if entry.version is not None and entry.lease_id is None:
        return f"v{entry.version}"
    return entry.token if entry.verifiable else ""  # a preview, or too big to digest


def change_before_connect(store: KeyValueProvider, key: str, seen: str,
                          max_bytes: int) -> ChangeEvent | None:
    """The change a key page missed between being rendered and its stream opening.

    Read once the store stream is open, so nothing falls between the two. None when the
    key is still what the page showed (or that cannot be told).
    """
    try:
        entry = store.get(key, max_bytes=max_bytes)
    except NotFound:
        return ChangeEvent(op="delete", key=key, revision=0, timestamp_ms=now_ms(),
                           note="before this page connected")
    if seen.startswith("v"):
        unchanged = entry.version is not None and f"v{entry.version}" == seen
    elif entry.partial:
        return None  # a digest needs the whole value; the page was not a preview
    else:
        unchanged = entry.matches(seen)
    if unchanged:
        return None
    return ChangeEvent(op="put", key=key, revision=0,
                       timestamp_ms=entry.updated_at_ms or now_ms(), version=entry.version)


# --- the stream ----------------------------------------------------------------------------

def stream(store: KeyValueProvider, prefix: str, *, mode: str, key: str | None,
           since: int | None, once: bool = False, seen: str = "",
           seen_max_bytes: int = 0,
           on_end: Callable[[], None] | None = None) -> Response:
    """The SSE response for one live page, through ``lifecycle.long_lived``.

    It takes one of this process's slots (a 503 when none is free) and gives it back when
    the response closes, whatever the method (HEAD takes none); it ends with its ``end``
    event once its session is gone or its operator may no longer see it (checked before
    every event and keepalive). ``once``: send what the store replays (or what arrives
    within a moment) and end, for scripts and tests; a page stays connected. ``seen``: for
    a key or edit page, the ``seen_token`` of what it shows, so a change made before it
    connected is said too.
    """

    def events() -> Iterator[str]:
        current: ChangeStream | None = None
        last = since
        pauses = iter(REOPEN_PAUSES)
        failing = False
        try:
            # the store stream opens before the browser hears "connected": a change made
            # once the page is connected is never missed
            first = f"retry: {RETRY_MS}\n: connected\n\n"
            try:
                current = store.watch(prefix, since_revision=last)
            except ProviderError:
                current = None  # said, and retried, below
            yield first
            if seen and key is not None and current is not None:
                missed = change_before_connect(store, key, seen, seen_max_bytes)
                if missed is not None:
                    yield render_event(mode, missed, key).encode()
            while not _STOPPING.is_set():
                if current is None:
                    try:
                        current = store.watch(prefix, since_revision=last)
                    except HistoryGone as gone:
                        last = None
                        yield _notice("missed", "live/_missed.html", error=gone, mode=mode)
                        continue
                    except ProviderError as error:
                        failing = True
                        yield _notice("status", "live/_status.html", error=error)
                        if once:
                            break
                        pause = next(pauses, REOPEN_PAUSES[-1])
                        yield from _wait(pause)
                        continue
                    if failing:
                        failing = False
                        yield _notice("status", "live/_status.html", error=None)
                    pauses = iter(REOPEN_PAUSES)
                try:
                    event = current.next_event(0.3 if once else KEEPALIVE_S)
                except HistoryGone as gone:
                    current.close()
                    current, last = None, None
                    yield _notice("missed", "live/_missed.html", error=gone, mode=mode)
                    continue
                except ProviderError as error:
                    # reopen from where this stream got to: the store replays the rest
                    last = current.revision if current.revision is not None else last
                    current.close()
                    current = None
                    failing = True
                    yield _notice("status", "live/_status.html", error=error)
                    continue
                if event is None:
                    if once:
                        break
                    # the session is checked again before it is sent; and writing it fails
                    # at once when the browser has gone
                    yield ": keepalive\n\n"
                    continue
                last = event.revision
                message = render_event(mode, event, key)
                if message is not None:
                    yield message.encode()
            if not _STOPPING.is_set():
                yield END
        finally:
            if current is not None:
                current.close()

    return lifecycle.long_lived(events, mimetype="text/event-stream", headers=STREAM_HEADERS,
                                ended=ended, slots=slots(), refused=refused, on_close=on_end)


#: the last event of a stream: the page's EventSource closes (``sse-close="end"``)
END = "event: end\ndata: \n\n"
STREAM_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx ingress: pass each event at once
}


def ended(reason: str) -> str:
    """The last message of a stream whose session is gone: why, then ``end``."""
    return Sse("unavailable", render_template("live/_unavailable.html", reason=reason)).encode() + END


def refused() -> Response:
    """Every slot of this process is taken: a clear 503 (ordinary pages keep working)."""
    return Response(full_message() + "\n", 503, mimetype="text/plain",
                    headers={"Retry-After": "10", "Cache-Control": "no-store"})


def _wait(seconds: float) -> Iterator[str]:
    """Pause ``seconds`` while still sending keepalives (so a gone browser ends it)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not _STOPPING.is_set():
        time.sleep(min(left, KEEPALIVE_S))
        yield ": keepalive\n\n"
