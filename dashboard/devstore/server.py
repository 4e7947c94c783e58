"""Running the dev store: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

from dashboard.devstore.config import (
    DEFAULT_TTL_CHECK_INTERVAL_MS,
    DEFAULT_WATCH_HISTORY_LIMIT,
    DevStoreConfig,
    resolve_release,
)
from dashboard.devstore.handler import DevStoreHandler
from dashboard.devstore.store import DevStore


class DevStoreHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop its open connections when it stops.

    Clients keep connections alive, so without that, ``server_close`` (which joins the
    handler threads) would wait for every client to hang up.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: DevStore,
        config: DevStoreConfig,
        ttl_check_interval_ms: int = DEFAULT_TTL_CHECK_INTERVAL_MS,
    ) -> None:
        self.store = store
        self.config = config
        self.ttl_check_interval_ms = ttl_check_interval_ms
        #: set by stop(): open watch streams end at their next poll
        self.stopping = threading.Event()
        self._streams = 0
        self._streams_done = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, DevStoreHandler)
        self._reaper: threading.Thread | None = None
        if ttl_check_interval_ms > 0:
            # upstream's periodic TTL sweep: expired keys and leases go with "expire" events
            self._reaper = threading.Thread(target=self._reap, name="devstore-ttl-cleanup", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self.stopping.wait(self.ttl_check_interval_ms / 1000):
            self.store.cleanup_expired()

    def stream_started(self) -> None:
        """A watch stream opened (``wait_for_streams`` waits for it to end)."""
        with self._streams_done:
            self._streams += 1

    def stream_ended(self) -> None:
        with self._streams_done:
            self._streams -= 1
            self._streams_done.notify_all()

    def wait_for_streams(self, timeout: float = 5.0) -> None:
        """Wait until every watch stream has ended (they poll ``stopping`` often)."""
        with self._streams_done:
            self._streams_done.wait_for(lambda: self._streams == 0, timeout)

    def stop_background(self) -> None:
        """End watch streams and the TTL sweep (before the socket closes)."""
        self.stopping.set()
        if self._reaper is not None:
            self._reaper.join()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on a client so its thread can end."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # OSError: already closed by the client or the handler
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client hanging up (or stop() cutting it off) is not worth a traceback
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _DevStoreHTTPServer6(DevStoreHTTPServer):
    address_family = socket.AF_INET6


class RunningDevStore:
    """A dev store serving in a daemon thread; ``stop()`` it (or use it as a context manager)."""

    def __init__(self, server: DevStoreHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self._stopped = False
        host, port = server.server_address[:2]
        self.host = host
        self.port = port
        self.url = f"http://{_url_host(host)}:{port}"

    @property
    def store(self) -> DevStore:
        """The data behind the server; seed it directly for fast tests."""
        return self._server.store

    @property
    def config(self) -> DevStoreConfig:
        return self._server.config

    @property
    def release(self) -> str:
        """The upstream release this server imitates: "main", "0.9.1" or "0.8"."""
        assert self._server.config.release is not None
        return self._server.config.release

    @property
    def delay_ms(self) -> int:
        """Milliseconds every /kv request sleeps before it is answered; settable at run time."""
        return self._server.config.delay_ms

    @delay_ms.setter
    def delay_ms(self, value: int) -> None:
        self._server.config.delay_ms = int(value)

    @contextlib.contextmanager
    def faults(self, **modes: Any) -> Iterator[None]:
        """Switch run-time modes of ``config`` for a block, then put them back as they were:
        ``delay_ms``, ``unavailable``, ``write_answer_delay_ms``, ``write_fails_after_apply``,
        ``write_applies_late_ms``, ``write_refused_status``, ``write_fault_match``.

        Writes applied late are held until the block ends (and their delay has passed), so
        what the client reads back inside the block never depends on the machine's speed."""
        config = self._server.config
        gate = None
        if modes.get("write_applies_late_ms"):
            gate = threading.Event()
            modes = {**modes, "late_write_gate": gate}
        for name in modes:
            if not hasattr(config, name):
                raise ValueError(f"the dev store has no mode {name!r}")
        before = {name: getattr(config, name) for name in modes}
        for name, value in modes.items():
            setattr(config, name, value)
        try:
            yield
        finally:
            for name, value in before.items():
                setattr(config, name, value)
            if gate is not None:
                gate.set()

    def set_unavailable(self, flag: bool) -> None:
        """Make /kv* and /stats answer 503 store_unavailable and /health 503 unhealthy."""
        self._server.config.unavailable = bool(flag)

    def stop(self) -> None:
        """Stop serving, cut open connections and close the socket; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stop_background()
        self._server.shutdown()
        self._server.close_connections()
        self._server.wait_for_streams()
        self._server.server_close()  # also joins the handler threads
        self._thread.join()

    def __enter__(self) -> RunningDevStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningDevStore {self.url} ({self.config.mode()})>"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _make_server(host: str, port: int, store: DevStore | None, options: dict[str, Any]) -> DevStoreHTTPServer:
    options = dict(options)
    history = options.pop("watch_history_limit", None)
    interval = options.pop("ttl_check_interval_ms", None)
    release = options.pop("release", None)
    legacy = bool(options.pop("legacy", False))
    if store is not None and release is None and not legacy:
        # a mode is on when this call or the store asks for it
        release = store.release
        legacy = store.legacy
    release = resolve_release(release, legacy)
    if store is None:
        store = DevStore(
            legacy=release == "0.8",
            no_key_listing=options.get("no_key_listing", False),
            release=release,
            watch_history_limit=DEFAULT_WATCH_HISTORY_LIMIT if history is None else history,
        )
    elif history is not None:
        raise ValueError("watch_history_limit belongs to the store: DevStore(watch_history_limit=...)")
    options["no_key_listing"] = bool(options.get("no_key_listing")) or store.no_key_listing
    config = DevStoreConfig(release=release, **options)
    server_class = _DevStoreHTTPServer6 if ":" in host else DevStoreHTTPServer
    return server_class(
        (host, port),
        store,
        config,
        DEFAULT_TTL_CHECK_INTERVAL_MS if interval is None else interval,
    )


def start_devstore(
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    read_token: str | None = None,
    write_token: str | None = None,
    legacy: bool = False,
    no_key_listing: bool = False,
    read_only: bool = False,
    delay_ms: int = 0,
    rate_limit_per_s: float | None = None,
    max_body_bytes: int | None = None,
    store: DevStore | None = None,
    *,
    release: str | None = None,
    watch_history_limit: int | None = None,
    ttl_check_interval_ms: int | None = None,
) -> RunningDevStore:
    """Start a ToskaStore-compatible dev store in a daemon thread and return at once.

    ``port=0`` picks a free port (see ``.url``). ``release``: the upstream release to
    imitate, "main" (default), "0.9.1" or "0.8"; ``legacy=True`` is "0.8".
    Options: ``token`` (upstream's auth_token), ``read_token``/``write_token`` (main's
    scoped tokens; each replaces ``token`` for its scope); ``no_key_listing`` (404 on
    /kv/keys and /kv); ``read_only`` (403 on writes, like a follower); ``delay_ms``
    before each /kv answer; ``rate_limit_per_s`` (429 beyond it); ``max_body_bytes``
    (413 beyond it; default the release's); ``watch_history_limit`` (events kept for
    ``since_revision`` replay, default 10,000); ``ttl_check_interval_ms`` (the
    expiry sweep, default 1000; 0 turns it off, then call ``store.cleanup_expired()``).
    ``store`` shares existing data; a mode is on when this call or the store asks for it.
    """
    server = _make_server(
        host,
        port,
        store,
        {
            "token": token,
            "read_token": read_token,
            "write_token": write_token,
            "legacy": legacy,
            "release": release,
            "no_key_listing": no_key_listing,
            "read_only": read_only,
            "delay_ms": delay_ms,
            "rate_limit_per_s": rate_limit_per_s,
            "max_body_bytes": max_body_bytes,
            "watch_history_limit": watch_history_limit,
            "ttl_check_interval_ms": ttl_check_interval_ms,
        },
    )
    # a short poll interval keeps stop() quick; tests start and stop many servers
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.02},
        name=f"devstore-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return RunningDevStore(server, thread)


def serve(host: str = "127.0.0.1", port: int = 4000, *, verbose: bool = False, **options: Any) -> None:
    """Serve a dev store in the foreground until Ctrl-C (for ``toska-kv devstore``).

    Takes the same options as ``start_devstore`` (``release=`` included); ``verbose``
    logs each request.
    Prints one line with the URL and mode when it is ready.
    """
    store = options.pop("store", None)
    server = _make_server(host, port, store, {**options, "verbose": verbose})
    bound_host, bound_port = server.server_address[:2]
    print(
        f"ToskaStore-compatible dev store on http://{_url_host(bound_host)}:{bound_port} "
        f"(mode {server.config.mode()})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop_background()
        server.close_connections()
        server.server_close()
