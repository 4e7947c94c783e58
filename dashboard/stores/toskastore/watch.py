"""ToskaStore's change feed, ``GET /kv/watch`` (main-branch servers only).

The feed is Server-Sent Events: ``: connected``, then ``id: <revision>`` / ``event: <op>``
/ ``data: <json>`` frames. A ``WatchStream`` reads it in a thread of its own and hands
events out through a queue, so the caller can wait with a timeout (and send keepalives).

Each connection asks ``timeout_ms``: upstream never writes to an idle stream, so without
it a dead connection or a closed stream would go unnoticed for ever. When the server ends
an idle stream (or the connection drops), the reader reconnects with ``since_revision`` set
to the last revision it saw: the store replays what happened meanwhile, and an event at
or below that revision is dropped, so nothing is lost or doubled across a reconnect. A
409 means the store no longer holds that history: ``HistoryGone``.

Release detection asks the feed once (``probe``): ``GET /kv/watch?once=true&timeout_ms=0``
answers an event stream with ``x-toska-revision`` on main, and 404 (or a key named
"watch") on 0.9.1 and 0.8.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from dashboard.stores import errors
from dashboard.stores.changes import ChangeEvent, QueuedStream, bounded
from dashboard.stores.toskastore.wire import is_int, query, status_error

if TYPE_CHECKING:
    from dashboard.stores.toskastore.provider import ToskaStoreProvider

#: an idle upstream stream ends after this; the reader then reconnects (and so notices
#: a dead connection, and a closed stream, within about this long)
IDLE_MS = 5000
#: reconnect attempts after a dropped connection before the stream reports a failure
RECONNECTS = 3
_OPS = ("put", "delete", "expire")


def probe(provider: ToskaStoreProvider) -> tuple[bool, str]:
    """(whether the server streams changes, why not): one request that ends at once."""
    try:
        response = provider._request("GET", "/kv/watch?" + query(once=True, timeout_ms=0),
                                     allow=(404, 405))
    except (errors.Unauthorized, errors.Forbidden) as exc:
        return False, f"the store refused its change feed (GET /kv/watch): {exc.message}"
    except (errors.InvalidRequest, errors.BadResponse) as exc:
        return False, f"the store's GET /kv/watch failed: {exc.message}"
    kind = response.headers.get("content-type", "")
    if response.status_code == 200 and kind.startswith("text/event-stream") and \
            "x-toska-revision" in response.headers:
        return True, ""
    return False, (f"this ToskaStore server has no change feed (GET /kv/watch answered "
                   f"{response.status_code}{'' if response.status_code != 200 else ' ' + kind}): "
                   "releases 0.8 and v0.9.1 have none; the live view needs a main-branch server")


def parse_event(data: dict[str, Any], now_ms: int) -> ChangeEvent | None:
    """A ``WatchEvent`` JSON object as a ``ChangeEvent``; None when it is not one."""
    op, key, revision = data.get("op"), data.get("key"), data.get("revision")
    if op not in _OPS or not isinstance(key, str) or not is_int(revision):
        return None
    raw_value = data.get("value")
    value, size = bounded(raw_value if isinstance(raw_value, str) else None)
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    expires = meta.get("expires_at")
    expires = expires if is_int(expires) else None
    version = meta.get("version")
    lease = meta.get("lease_id")
    stamp = data.get("timestamp")
    return ChangeEvent(
        op=op, key=key, revision=revision, timestamp_ms=stamp if is_int(stamp) else now_ms,
        value=value if op == "put" else None, value_size=size if op == "put" else None,
        version=version if is_int(version) else None, expires_at_ms=expires,
        ttl_ms=None if expires is None else max(expires - now_ms, 0),
        ttl_known=op == "put" and bool(meta), lease_id=lease if isinstance(lease, str) else None,
    )


class WatchStream(QueuedStream):
    """One prefix's changes from ``GET /kv/watch``, reconnecting with the last revision."""

    def __init__(self, provider: ToskaStoreProvider, prefix: str, since_revision: int | None,
                 *, idle_ms: int = IDLE_MS) -> None:
        super().__init__(since_revision)
        self._name = provider.name
        self._has_token = provider._has_token
        self._prefix = prefix
        self._idle_ms = idle_ms
        timeout = provider._timeout
        # a client of its own: the stream holds its connection for as long as it is open
        self._client = httpx.Client(
            base_url=provider.base_url, headers=dict(provider._client.headers),
            timeout=httpx.Timeout(timeout, read=idle_ms / 1000 + timeout))
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        #: the last revision the reader saw: where a reconnect replays from
        self._last = since_revision
        #: connections made (the first included), for tests and logs
        self.connections = 0
        try:
            response = self._connect()  # the first answer's failure is the caller's (409, 401)
        except BaseException:
            self._client.close()
            raise
        self._thread = threading.Thread(target=self._run, args=(response,), daemon=True,
                                        name=f"toska-watch {prefix!r}")
        self._thread.start()

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> httpx.Response:
        url = "/kv/watch?" + query(prefix=self._prefix, since_revision=self._last,
                                   timeout_ms=self._idle_ms)
        try:
            request = self._client.build_request("GET", url)
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(
                f"cannot reach the store's change feed (GET /kv/watch): "
                f"{exc or type(exc).__name__}", store=self._name) from exc
        if response.status_code != 200:
            with contextlib.suppress(httpx.HTTPError):
                response.read()
            response.close()
            if response.status_code == 409:
                raise errors.HistoryGone(
                    f"the store no longer holds the changes after revision {self._last} "
                    "(409 Watch history unavailable): events were missed", store=self._name)
            raise status_error(response, "GET", store=self._name, key=None, write=False,
                               has_token=self._has_token)
        header = response.headers.get("x-toska-revision", "")
        if self._last is None and header.isdigit():
            self._last = int(header)
            if self.revision is None:
                self.revision = self._last
        self.connections += 1
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._socket = sock
        if self.closed:  # closed while connecting: close() found no socket to stop
            self._shutdown()
        return response

    def _shutdown(self) -> None:
        """Wake the reader blocked on the socket (closing a socket does not, on Linux)."""
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop the reader now: its blocked read ends at once, and it makes no new request."""
        if self.closed:
            return
        super().close()
        self._shutdown()

    # -- the reader thread ---------------------------------------------------------------

    def _run(self, response: httpx.Response) -> None:
        try:
            while True:
                started = time.monotonic()
                dropped = False
                try:
                    self._read(response)  # returns when the server ends an idle stream
                except httpx.HTTPError:
                    dropped = True
                finally:
                    response.close()
                if self.closed:
                    return
                # a stream that ends at once, again and again, must not spin
                quick = time.monotonic() - started < 0.05
                next_response = self._reconnect(pause_first=dropped or quick)
                if next_response is None:
                    return
                response = next_response
        except errors.ProviderError as error:
            if not self.closed:
                self._emit(error)
        except Exception as exc:  # noqa: BLE001 - a reader thread must report, never die silently
            if not self.closed:
                self._emit(errors.BadResponse(f"change feed: {exc!r}", store=self._name))
        finally:
            self._client.close()

    def _reconnect(self, *, pause_first: bool) -> httpx.Response | None:
        """Open the feed again from the last revision seen; None once closed."""
        failure: errors.ProviderError | None = None
        for attempt in range(RECONNECTS + 1):
            if (attempt or pause_first) and self._closed.wait(0.2 * max(attempt, 1)):
                return None
            try:
                return self._connect()
            except errors.Unavailable as exc:
                failure = exc
        assert failure is not None
        raise failure

    def _read(self, response: httpx.Response) -> None:
        event_name = ""
        data: list[str] = []
        for line in response.iter_lines():
            if self.closed:
                return
            if line == "":
                if data:
                    self._dispatch(event_name, "\n".join(data))
                event_name, data = "", []
            elif line.startswith(":"):
                continue  # ": connected" and other comments
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event_name = value
                elif field == "data":
                    data.append(value)

    def _dispatch(self, event_name: str, data: str) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        event = parse_event(body, int(time.time() * 1000))
        if event is None:
            return
        if self._last is not None and event.revision <= self._last:
            return  # replayed again after a reconnect: already handed out
        self._last = event.revision
        self._emit(event)


def _sse_events(text: str) -> list[dict[str, Any]]:
    """The ``data:`` objects of a whole Server-Sent Events body, in order."""
    found: list[dict[str, Any]] = []
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line == "":
            if data:
                with contextlib.suppress(ValueError):
                    body = json.loads("\n".join(data))
                    if isinstance(body, dict):
                        found.append(body)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return found


#: attempts at finding how far back the store's retained history reaches
HISTORY_ATTEMPTS = 4


def key_history(provider: ToskaStoreProvider, key: str, *, limit: int) -> list[ChangeEvent]:
    """The store's retained changes of exactly ``key``, newest first, at most ``limit``:
    ``GET /kv/watch?once=true`` replays them and ends. When the history no longer reaches
    revision 0 (409), it starts where ``/stats`` says the retained history begins."""
    since = 0
    for _ in range(HISTORY_ATTEMPTS):
        response = provider._request("GET", "/kv/watch?" + query(
            prefix=key, since_revision=since, once=True, timeout_ms=0), allow=(409,))
        if response.status_code != 409:
            now = int(time.time() * 1000)
            events = [event for body in _sse_events(response.text)
                      if (event := parse_event(body, now)) is not None and event.key == key]
            return events[::-1][:limit]
        stats = provider._request("GET", "/stats").json()
        revision, size = stats.get("revision"), stats.get("watch_history_size")
        if not (is_int(revision) and is_int(size)):
            break
        # lease and lock operations take revisions without an event: step closer each time
        since = max(since + 1, revision - size, (since + revision) // 2)
    raise errors.HistoryGone("the store no longer holds this key's change history",
                             store=provider.name, key=key)


def watch(provider: ToskaStoreProvider, prefix: str, since_revision: int | None) -> WatchStream:
    """Open the change feed of ``prefix``; see ``ToskaStoreProvider.watch``."""
    if since_revision is not None and since_revision < 0:
        raise errors.InvalidRequest("since_revision must not be negative", store=provider.name)
    return WatchStream(provider, prefix, since_revision)
