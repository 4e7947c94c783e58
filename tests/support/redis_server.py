"""A real ``redis-server`` process on a free loopback port, for tests.

Tests never assume a server someone else started: each ``RedisServer`` owns its process,
its temporary directory and its port, and stops them on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_FALLBACK_BINARY = "/usr/bin/redis-server"
#: how long a server may take to answer its first PING
_START_TIMEOUT_S = 15.0
#: attempts when another process grabs the free port between probing and binding
_PORT_ATTEMPTS = 5


def redis_server_binary() -> str:
    """Path of ``redis-server``; a clear error (never a skip) when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    raise RuntimeError(
        "redis-server is not installed; the Redis tests need a real server: "
        "run `apt-get install redis-server`"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate_all(processes: Iterable[subprocess.Popen]) -> None:
    """SIGTERM every process still running, then wait for each (SIGKILL after 10 s)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class RedisServer:
    """A ``redis-server`` subprocess on 127.0.0.1; use as a context manager."""

    host = "127.0.0.1"

    def __init__(self, *, password: str | None = None, extra_args: Sequence[str] = ()) -> None:
        self.password = password
        self.extra_args = list(extra_args)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        binary = redis_server_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        last_log = ""
        for _ in range(_PORT_ATTEMPTS):
            self.port = free_port()
            command = [
                binary, "--port", str(self.port), "--bind", self.host,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self._dir), "--logfile", "redis.log",
            ]
            if self.password is not None:
                command += ["--requirepass", self.password]
            command += self.extra_args
            self._process = subprocess.Popen(
                command, cwd=self._dir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            last_log = self.log()
            self._terminate()
            if "Address already in use" not in last_log:
                break
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        raise RuntimeError(f"redis-server did not start; its log:\n{last_log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with self.client(socket_timeout=1.0) as client:
                    if client.ping():
                        return True
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        if self._dir is None:
            return ""
        path = self._dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _terminate(self) -> None:
        process, self._process = self._process, None
        terminate_all([process] if process is not None else [])

    def stop(self) -> None:
        """Terminate the server, wait for it, and remove its directory."""
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @contextmanager
    def client(self, **kwargs: object) -> Iterator[redis.Redis]:
        """A redis-py client for arranging test data directly; closed on exit."""
        options: dict[str, object] = {
            "host": self.host, "port": self.port, "password": self.password,
            "socket_timeout": 5.0,
            # fail fast: redis-py's default retries would hide a dead server for seconds
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(kwargs)
        client = redis.Redis(**options)
        try:
            yield client
        finally:
            client.close()

    def flushall(self) -> None:
        """Remove every key in every database."""
        with self.client() as client:
            client.flushall()
