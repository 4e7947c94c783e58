"""Connecting to Redis: standalone or Redis Cluster, detected; redis-py errors translated.

Detection: on the first call the provider asks the first configured endpoint for
``INFO cluster``. ``cluster_enabled:1`` switches the provider to redis-py's
``RedisCluster``, started from every endpoint of the connection string; anything else
keeps the standalone client on the first endpoint, as before. When the first endpoint
does not answer, the others are asked in turn (a cluster needs only one live node to be
found). The answer is kept for the life of the process: a server cannot change mode
without a restart. A server that refuses ``INFO`` (renamed or denied by ACL) is taken to
be standalone; if it then answers MOVED, the error says so.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis import exceptions as rx
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from dashboard.stores import errors
from dashboard.stores.base import StoreInfo


def show_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RedisConnection:
    """Mixin for ``RedisProvider``: mode detection, the cluster client, error translation."""

    name: str
    db: int
    timeout: float
    _client: redis.Redis
    _cluster: RedisCluster | None
    _endpoints: Sequence[tuple[str, int]]
    _connect_kwargs: dict[str, Any]

    def _init_connection(self) -> None:
        self._cluster = None
        self._mode: str | None = None
        self._mode_lock = threading.Lock()
        #: why detection could not ask the server (INFO refused), for error messages
        self._detect_note = ""

    @property
    def _redis(self) -> Any:
        """The client every keyed command goes through: the cluster's, or the server's."""
        return self._cluster if self._cluster is not None else self._client

    @property
    def cluster_mode(self) -> bool | None:
        """True on a Redis Cluster, False on a standalone server, None before the first call."""
        return None if self._mode is None else self._mode == "cluster"

    def _ensure_mode(self) -> None:
        if self._mode is not None:
            return
        with self._mode_lock:
            if self._mode is not None:
                return
            if not self._detect_cluster():
                self._mode = "standalone"
                return
            if self.db != 0:
                raise errors.Unsupported(
                    f"the Redis server at {self._shown_endpoints()} is a Redis Cluster, which "
                    f"has only database 0, but database {self.db} is configured: set "
                    "defaultDatabase=0 (or remove it) in Mesh__KeyValue__Redis__ConnectionString "
                    "and Mesh__KeyValue__Redis__Database to 0", store=self.name,
                )
            self._cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self._endpoints],
                # one quick retry after a refused node (the topology is refreshed first),
                # then a clear error: operators wait on these pages
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
                require_full_coverage=False,
                **self._connect_kwargs,
            )
            self.name = f"Redis Cluster {self._shown_endpoints()}"
            self._mode = "cluster"

    def _detect_cluster(self) -> bool:
        """``INFO cluster`` on the first endpoint that answers; True when it is a cluster."""
        first_error: rx.RedisError | None = None
        for index, (host, port) in enumerate(self._endpoints):
            # a client of its own, without the configured database: a cluster node
            # refuses SELECT, and the configured database is checked after detection
            client = redis.Redis(host=host, port=port, **self._connect_kwargs,
                                 retry=Retry(NoBackoff(), 0))
            try:
                enabled = client.info("cluster").get("cluster_enabled")
            except (rx.AuthenticationError, rx.AuthorizationError, rx.BusyLoadingError):
                raise
            except (rx.ConnectionError, rx.TimeoutError) as exc:
                first_error = first_error or exc
                continue
            except rx.ResponseError as exc:
                enabled = _cluster_info_fallback(client)
                if enabled is None:
                    if index > 0:
                        continue
                    self._detect_note = f" (INFO and CLUSTER INFO were refused: {exc})"
                    return False
            finally:
                client.close()
            if index > 0 and not enabled:
                break  # a standalone server is read on the first endpoint only
            return bool(enabled)
        assert first_error is not None
        raise first_error

    def _refresh_topology(self) -> None:
        """Re-read the slot map (after a node failed or a slot moved); best effort."""
        if self._cluster is None:
            return
        # best effort: if no node answers, the next command reports what is wrong
        with contextlib.suppress(Exception):
            self._cluster.nodes_manager.initialize()

    def _shown_endpoints(self) -> str:
        return ",".join(show_endpoint(host, port) for host, port in self._endpoints)

    # -- Redis Cluster info ---------------------------------------------------------

    def _cluster_info(self) -> StoreInfo:
        """CLUSTER INFO, then INFO and DBSIZE on every node; a node down is Unavailable."""
        assert self._cluster is not None
        primaries = self._primaries()  # type: ignore[attr-defined]
        state = self._on_node(primaries[0], lambda c: c.cluster("info"))  # type: ignore[attr-defined]
        if state.get("cluster_state") != "ok":
            raise errors.Unavailable(
                f"the Redis Cluster reports cluster_state:{state.get('cluster_state')} "
                f"({state.get('cluster_slots_ok')} of 16384 slots served): some keys cannot "
                "be read or written", store=self.name)
        ranges = _slot_ranges(self._cluster.nodes_manager.slots_cache)
        nodes: list[str] = []
        totals = {"dbsize": 0, "expires": 0}
        first: dict[str, Any] = {}
        for node in [*primaries, *self._cluster.get_replicas()]:
            server, memory, keyspace, dbsize = self._on_node(  # type: ignore[attr-defined]
                node, _node_stats)
            first = first or {**server, **memory}
            db_stats = keyspace.get("db0", {}) if isinstance(keyspace, dict) else {}
            if node in primaries:
                totals["dbsize"] += dbsize if isinstance(dbsize, int) else 0
                totals["expires"] += db_stats.get("expires", 0) if isinstance(db_stats, dict) else 0
                role = f"primary, slots {ranges.get(node.name, '-')}"
            else:
                role = "replica"
            nodes.append(f"{node.name} {role}, {dbsize} keys, "
                         f"{memory.get('used_memory_human', '?')} used")
        version = first.get("redis_version")
        stats: dict[str, Any] = {
            "version": version, "mode": "cluster", "cluster_state": state.get("cluster_state"),
            "primaries": len(primaries), "replicas": len(self._cluster.get_replicas()),
            "nodes": nodes, "db": 0, "dbsize": totals["dbsize"],
            "keys_with_expiry": totals["expires"],
            "maxmemory_policy": first.get("maxmemory_policy"),
            "uptime_in_seconds": first.get("uptime_in_seconds"),
        }
        return StoreInfo(
            kind="redis", name=self.name, healthy=True,
            generation=f"redis {version} (cluster)" if version else "redis cluster (version hidden)",
            detail=f"Redis Cluster: {len(primaries)} primaries; listings scan every primary",
            stats={k: v for k, v in stats.items() if v is not None},
        )

    # -- errors ---------------------------------------------------------------------

    @contextmanager
    def _translate(self, key: str | None = None, *, write: bool = False) -> Iterator[None]:
        """Detect the mode, then turn every redis-py exception into a ``ProviderError``.

        In a write, a timeout does not mean the server did not run the command.
        """
        try:
            self._ensure_mode()
            yield
        except rx.RedisError as exc:
            error = self._provider_error(exc, key)
            error.maybe_written = write and isinstance(exc, rx.TimeoutError)
            raise error from exc
        except rx.RedisClusterException as exc:
            # raised by redis-py's cluster client itself: no node reachable, slots uncovered
            raise errors.Unavailable(
                f"the Redis Cluster at {self._shown_endpoints()} is not usable: {exc}",
                store=self.name, key=key) from exc

    def _provider_error(self, exc: rx.RedisError, key: str | None) -> errors.ProviderError:
        kw: dict[str, Any] = {"store": self.name, "key": key}
        code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
        where = (f"a node of the Redis Cluster {self._shown_endpoints()}"
                 if self._cluster is not None else f"Redis at {self._shown_endpoints()}")
        if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
            if code == "NOAUTH":
                return errors.Unauthorized(
                    "Redis requires a password and none is configured", **kw)
            return errors.Unauthorized(
                f"Redis refused the configured username/password ({exc})", **kw)
        if isinstance(exc, rx.NoPermissionError):
            return errors.Forbidden(f"the Redis user may not do this ({exc})", **kw)
        if isinstance(exc, rx.ReadOnlyError):
            return errors.Forbidden(
                "this Redis server is a read-only replica; writes must go to the primary", **kw)
        if isinstance(exc, rx.BusyLoadingError):
            return errors.Unavailable("Redis is still loading its data set into memory", **kw)
        if isinstance(exc, rx.TimeoutError):
            return errors.Unavailable(
                f"{where} did not answer within {self.timeout:g} s", **kw)
        if isinstance(exc, rx.ConnectionError):
            return errors.Unavailable(f"cannot reach {where}: {exc}", **kw)
        if isinstance(exc, rx.OutOfMemoryError):
            return errors.Unavailable(
                "Redis is out of memory (maxmemory reached) and refuses writes", **kw)
        if isinstance(exc, rx.ClusterDownError):
            return errors.Unavailable(
                f"the Redis Cluster is down ({exc}): a primary is unreachable or slots are "
                "not served", **kw)
        if isinstance(exc, rx.TryAgainError):
            return errors.Unavailable(f"Redis is not serving requests ({exc})", **kw)
        if isinstance(exc, rx.AskError | rx.ClusterCrossSlotError):
            if self._cluster is not None:
                return errors.Unavailable(
                    f"the Redis Cluster's slots are moving ({exc}); try again", **kw)
            return errors.Unsupported(
                "this Redis server is part of a Redis Cluster, but it could not be detected "
                f"as one{self._detect_note}", **kw)
        if isinstance(exc, rx.DataError):
            return errors.InvalidRequest(f"invalid request for Redis: {exc}", **kw)
        if isinstance(exc, rx.ResponseError):
            message = str(exc)
            if code in ("BUSY", "MISCONF"):
                return errors.Unavailable(f"Redis is not accepting commands ({message})", **kw)
            if code == "WRONGTYPE":
                return errors.InvalidRequest(
                    f"wrong Redis type for this operation ({message})", **kw)
            if "unknown command" in message or "syntax error" in message:
                return errors.Unsupported(
                    f"this Redis server does not support a command the dashboard needs "
                    f"(Redis 6.2 or later is required, and commands must not be renamed): "
                    f"{message}", **kw)
            if code == "ERR":
                return errors.InvalidRequest(f"Redis rejected the request: {message}", **kw)
            return errors.BadResponse(f"Redis answered with an error: {message}", **kw)
        return errors.BadResponse(f"unexpected answer from Redis: {exc}", **kw)


def _cluster_info_fallback(client: redis.Redis) -> bool | None:
    """``CLUSTER INFO`` where ``INFO`` is refused: True/False, None when refused too."""
    try:
        client.execute_command("CLUSTER INFO")
    except rx.NoPermissionError:
        return None
    except rx.ResponseError as exc:
        # "ERR This instance has cluster support disabled"; else a renamed command
        return False if "cluster support disabled" in str(exc) else None
    return True


def _node_stats(client: redis.Redis) -> list[Any]:
    """INFO server, memory, keyspace and DBSIZE of one node in one round trip."""
    pipe = client.pipeline(transaction=False)
    for section in ("server", "memory", "keyspace"):
        pipe.info(section)
    pipe.dbsize()
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, rx.ConnectionError | rx.TimeoutError):
            raise reply
    # INFO may be renamed or denied by ACL on managed servers: show what we got
    return [r if not isinstance(r, Exception) else ({} if i < 3 else None)
            for i, r in enumerate(replies)]


def _slot_ranges(slots_cache: dict[int, list[Any]]) -> dict[str, str]:
    """Each primary's slot ranges, e.g. ``{"10.0.0.1:7000": "0-5460"}``."""
    ranges: dict[str, list[list[int]]] = {}
    for slot in range(16384):
        nodes = slots_cache.get(slot)
        if not nodes:
            continue
        spans = ranges.setdefault(nodes[0].name, [])
        if spans and spans[-1][1] == slot - 1:
            spans[-1][1] = slot
        else:
            spans.append([slot, slot])
    return {name: ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
            for name, spans in ranges.items()}
