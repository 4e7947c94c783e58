"""Store round trips, counted and recorded on the provider's own client (no app changes).

- ToskaStore: an httpx ``request`` event hook on the provider's pooled ``httpx.Client``;
  every request is one round trip.
- Redis: the provider's connection pool makes ``MeteredConnection``s, a ``redis.Connection``
  that notes every ``send_packed_command``: one command, or a whole pipeline, is one round
  trip (``commands`` counts the commands inside).
- Redis Cluster: every node's pool (and any node the cluster client discovers later) makes
  ``MeteredConnection``s too. A command sent to one node is one round trip, recorded with
  that node; redis-py's cluster pipeline sends each node its share of the commands, so one
  pipeline is one round trip per node it touches, recorded as one routed call (the floor
  sends it again through a cluster pipeline, which routes and overlaps it the same way).

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
    #: Redis Cluster: the node (host, port) it was sent to; None on a standalone server
    node: tuple[str, int] | None = None
    #: Redis Cluster: a cluster pipeline, routed by key to the nodes (``node`` is None)
    routed: bool = False


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

    def note(self, call: Call | None, commands: int = 1) -> None:
        """One round trip (``call`` None: counted, recorded later as part of a routed call)."""
        with self._lock:
            self._current.round_trips += 1
            self._current.commands += commands
            if self.recording and call is not None:
                self._current.calls.append(call)

    def record(self, call: Call) -> None:
        """Record a call whose round trips were already counted."""
        with self._lock:
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
        # detection first (as on a dashboard that already served a page): a cluster's
        # client and its node pools exist only afterwards
        provider._ensure_mode()
        if provider._cluster is not None:
            _instrument_cluster(provider._cluster, meter)
            return
        _meter_pool(provider._pool, metered_connection_class(meter))
        return
    raise NotImplementedError(f"no round-trip meter for a {kind!r} provider yet")


def _instrument_cluster(cluster: Any, meter: Meter) -> None:
    """Meter every node pool of a ``redis.cluster.RedisCluster``, and its pipelines."""
    metered = metered_connection_class(meter, per_node=True)
    manager = cluster.nodes_manager
    # nodes found later (a topology refresh) get metered pools too
    manager.connection_kwargs["connection_class"] = metered
    for node in cluster.get_nodes():
        if node.redis_connection is not None:
            _meter_pool(node.redis_connection.connection_pool, metered)
    make_pipeline = cluster.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        def metered_execute(raise_on_error: bool = True) -> Any:
            group = _GROUPS.__dict__.setdefault("stack", [])
            group.append([])
            try:
                return execute(raise_on_error)
            finally:
                commands = group.pop()
                if commands:
                    meter.record(RedisCall(True, tuple(commands), routed=True))

        pipe.execute = metered_execute
        return pipe

    cluster.pipeline = pipeline


def _meter_pool(pool: redis.ConnectionPool, metered: type[redis.Connection]) -> None:
    """Make ``pool`` hand out metered connections only (detection may have used it)."""
    pool.disconnect()
    pool.reset()  # drop the unmetered connections it keeps for reuse
    pool.connection_class = metered


#: per thread: the commands of the cluster pipelines being executed (innermost last)
_GROUPS = threading.local()


def metered_connection_class(meter: Meter, *, per_node: bool = False) -> type[redis.Connection]:
    class MeteredConnection(redis.Connection):
        """A ``redis.Connection`` that reports each write to the socket as a round trip."""

        _pending: tuple[bool, tuple[tuple[Any, ...], ...]] | None = None
        #: inside the connection handshake (HELLO, CLIENT SETINFO...): not the page's calls
        _handshake = 0

        def on_connect(self, *args: Any, **kwargs: Any) -> None:
            self._handshake += 1
            try:
                super().on_connect(*args, **kwargs)
            finally:
                self._handshake -= 1

        def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            self._handshake += 1
            try:
                super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]
            finally:
                self._handshake -= 1

        def send_command(self, *args: Any, **kwargs: Any) -> None:
            self._pending = (False, (args,))
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> list[bytes]:
            commands = [tuple(c) for c in commands]
            self._pending = (True, tuple(commands))
            return super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            pending, self._pending = self._pending, None
            if pending is not None and not self._handshake:
                pipeline, commands = pending
                group = getattr(_GROUPS, "stack", None)
                if per_node and pipeline and group:
                    # one node's share of a cluster pipeline: a round trip of its own,
                    # recorded with the whole pipeline when it is done
                    group[-1].extend(commands)
                    meter.note(None, len(commands))
                else:
                    node = (self.host, int(self.port)) if per_node else None
                    meter.note(RedisCall(pipeline, commands, node=node), len(commands))
            super().send_packed_command(command, check_health)

    return MeteredConnection
