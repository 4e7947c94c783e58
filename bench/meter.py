"""Store round trips, counted and recorded on the provider's own client (no app changes).

- ToskaStore: an httpx ``request`` event hook on the provider's pooled ``httpx.Client``;
  every request is one round trip.
- Redis: the provider's connection pool makes ``MeteredConnection``s, a ``redis.Connection``
  that notes every ``send_packed_command``: one command, or a whole pipeline, is one round
  trip (``commands`` counts the commands inside).

The recorded calls are what ``floor`` sends again directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

#: request headers the raw floor does not copy (its own client sets them)
_CLIENT_HEADERS = {"host", "content-length", "user-agent", "accept", "accept-encoding", "connection"}


@dataclass(frozen=True)
class HttpCall:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class RedisCall:
    #: one command (False) or a pipeline (True)
    pipeline: bool
    commands: tuple[tuple[Any, ...], ...]


Call = HttpCall | RedisCall


@dataclass
class Recording:
    round_trips: int = 0
    commands: int = 0
    calls: list[Call] = field(default_factory=list)


class Meter:
    """Counts every store round trip of one provider; records them while ``recording``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = Recording()
        self.recording = True

    def start(self) -> None:
        with self._lock:
            self._current = Recording()

    def stop(self) -> Recording:
        with self._lock:
            done, self._current = self._current, Recording()
        return done

    def note(self, call: Call, commands: int = 1) -> None:
        with self._lock:
            self._current.round_trips += 1
            self._current.commands += commands
            if self.recording:
                self._current.calls.append(call)


def instrument(provider: Any, meter: Meter) -> None:
    """Attach ``meter`` to a ``ToskaStoreProvider`` or a ``RedisProvider`` before first use."""
    kind = getattr(provider, "kind", None)
    if kind == "toskastore":
        client: httpx.Client = provider._client

        def on_request(request: httpx.Request) -> None:
            headers = tuple((k, v) for k, v in request.headers.items()
                            if k.lower() not in _CLIENT_HEADERS)
            meter.note(HttpCall(request.method, str(request.url), headers, request.read()))

        client.event_hooks = {**client.event_hooks,
                              "request": [*client.event_hooks.get("request", []), on_request]}
        return
    if kind == "redis":
        pool: redis.ConnectionPool = provider._pool
        pool.disconnect()
        pool.connection_class = metered_connection_class(meter)
        return
    # HOOK (Redis Cluster): a cluster provider keeps one pool per node; set
    # ``connection_class`` on each node's pool (redis.cluster.RedisCluster.nodes_manager)
    # the same way, then a pipeline is one round trip per node it touches.
    raise NotImplementedError(f"no round-trip meter for a {kind!r} provider yet")


def metered_connection_class(meter: Meter) -> type[redis.Connection]:
    class MeteredConnection(redis.Connection):
        """A ``redis.Connection`` that reports each write to the socket as a round trip."""

        _pending: tuple[bool, tuple[tuple[Any, ...], ...]] | None = None

        def send_command(self, *args: Any, **kwargs: Any) -> None:
            self._pending = (False, (args,))
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> list[bytes]:
            commands = [tuple(c) for c in commands]
            self._pending = (True, tuple(commands))
            return super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            pending, self._pending = self._pending, None
            if pending is not None:
                meter.note(RedisCall(*pending), len(pending[1]))
            super().send_packed_command(command, check_health)

    return MeteredConnection
