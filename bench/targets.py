"""The stores the benchmark runs on, each a real server on 127.0.0.1, seeded with ``data``.

- ``devstore``: ``dashboard.devstore`` (ToskaStore main: range listing, metadata, mget) in
  its own process (``devstore_child``), so its CPU is not this process's GIL;
- ``redis``: a real ``redis-server`` (``tests/support/redis_server.py``), seeded with
  pipelined ``SET ... PX``;
- ``redis-cluster``: a real 3-primary Redis Cluster (``tests/support/redis_cluster.py``,
  as the cluster tests start it), seeded through redis-py's cluster pipeline (each key
  routed to the primary of its slot); the dashboard names every node in its connection
  string, as an operator would.

Each ``Target`` builds the provider the dashboard would build from its settings
(``dashboard.mesh.open_store``: the same timeouts and batch sizes), the raw clients
of the floor, and the environment a gunicorn needs to serve on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.mesh import open_store
from dashboard.settings.load import load_settings
from dashboard.stores.base import KeyValueProvider

from . import data
from .floor import RawClients

ROOT = Path(__file__).resolve().parent.parent
#: how long a dev store child may take to seed itself and answer (1M keys: about a minute)
_DEVSTORE_START_S = 900


@dataclass
class Target:
    """One seeded store: how the dashboard reaches it, and how the floor does."""

    name: str
    label: str
    #: ``Mesh:KeyValue`` settings (appsettings shape) for the dashboard
    mesh: dict[str, Any]
    #: the same as environment variables, for gunicorn
    env: dict[str, str]
    seed_seconds: float
    redis_address: tuple[str, int] | None = None
    #: a Redis Cluster's nodes (the floor's cluster client starts from them)
    redis_cluster: list[tuple[str, int]] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def settings(self):
        return load_settings(None, overrides={"Mesh": {"KeyValue": self.mesh},
                                              "Dashboard": {"SecretKey": "x" * 32}})

    def make_provider(self) -> KeyValueProvider:
        """The provider the dashboard builds from these settings."""
        return open_store(self.settings())

    def raw_clients(self) -> RawClients:
        host, port = self.redis_address or (None, None)
        return RawClients(redis_host=host, redis_port=port, redis_cluster=self.redis_cluster)

    @property
    def store_pids(self) -> list[int]:
        """The store's processes (a cluster has one per node), for their CPU time."""
        return list(self.details.get("pids") or ([self.details["pid"]] if self.details.get("pid")
                                                 else []))


def start_devstore_target(stack: ExitStack, dataset_keys: int, big_bytes: int) -> Callable[[], Target]:
    """Start the dev store child now (it seeds itself); the returned call waits for it."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.devstore_child", "--keys", str(dataset_keys),
         "--big-bytes", str(big_bytes)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop() -> None:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    stack.callback(stop)

    def ready() -> Target:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded by the child: it seeds, then prints
        if not line:
            raise RuntimeError(f"the dev store child exited ({process.wait(_DEVSTORE_START_S)})")
        info = json.loads(line)
        url = info["url"]
        return Target(
            name="devstore", label="dev store (ToskaStore main)",
            mesh={"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url}},
            env={"Mesh__KeyValue__Provider": "ToskaStore",
                 "Mesh__KeyValue__ToskaStore__BaseUrl": url},
            seed_seconds=time.perf_counter() - started,
            details={"url": url, "keys_written": info["written"], "pid": process.pid},
        )

    return ready


def _seed_pipelined(raw, dataset: data.Dataset) -> int:
    """Write the dataset with pipelined ``SET ... PX`` (a cluster pipeline routes by slot)."""
    written = 0
    pipe = raw.pipeline(transaction=False)
    for key, value, ttl in dataset.items():
        pipe.set(key, value, px=ttl)
        written += 1
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    return written


def start_redis_target(stack: ExitStack, dataset: data.Dataset) -> Target:
    """A real redis-server on a free port, seeded with pipelined writes."""
    import redis

    from tests.support.redis_server import RedisServer

    started = time.perf_counter()
    server = stack.enter_context(RedisServer())
    raw = redis.Redis(host=server.host, port=server.port, socket_timeout=120)
    written = _seed_pipelined(raw, dataset)
    version = raw.info("server").get("redis_version")
    raw.close()
    address = f"{server.host}:{server.port}"
    return Target(
        name="redis", label=f"redis-server {version}",
        mesh={"Provider": "Redis", "Redis": {"ConnectionString": address}},
        env={"Mesh__KeyValue__Provider": "Redis",
             "Mesh__KeyValue__Redis__ConnectionString": address},
        seed_seconds=time.perf_counter() - started,
        redis_address=(server.host, server.port),
        details={"address": address, "keys_written": written, "version": version,
                 "pid": server._process.pid if server._process else None},
    )


def start_redis_cluster_target(stack: ExitStack, dataset: data.Dataset) -> Target:
    """A real 3-primary Redis Cluster on free ports, seeded through a cluster pipeline."""
    from redis.cluster import ClusterNode, RedisCluster

    from tests.support.redis_cluster import RedisClusterServers

    started = time.perf_counter()
    servers = stack.enter_context(RedisClusterServers())
    raw = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in servers.endpoints],
                       socket_timeout=120)
    written = _seed_pipelined(raw, dataset)
    version = raw.get_default_node().redis_connection.info("server").get("redis_version")
    per_node = {}
    for host, port in servers.endpoints:
        with servers.node_client(port) as node:
            per_node[f"{host}:{port}"] = node.dbsize()
    raw.close()
    address = servers.connection_string
    return Target(
        name="redis-cluster", label=f"Redis Cluster {version} (3 primaries)",
        mesh={"Provider": "Redis", "Redis": {"ConnectionString": address}},
        env={"Mesh__KeyValue__Provider": "Redis",
             "Mesh__KeyValue__Redis__ConnectionString": address},
        seed_seconds=time.perf_counter() - started,
        redis_cluster=list(servers.endpoints),
        details={"address": address, "keys_written": written, "version": version,
                 "keys_per_node": per_node,
                 "pids": [servers._processes[port].pid for port in servers.ports]},
    )


#: the default targets (``--targets``); ``redis-cluster`` is asked for by name
TARGETS = ("devstore", "redis")
ALL_TARGETS = ("devstore", "redis", "redis-cluster")


def start_targets(stack: ExitStack, names: tuple[str, ...], dataset: data.Dataset) -> list[Target]:
    """Start and seed the named targets (the dev store seeds itself meanwhile)."""
    for name in names:
        if name not in ALL_TARGETS:
            raise SystemExit(f"unknown target {name!r}; choose from {', '.join(ALL_TARGETS)}")
    devstore_ready = (start_devstore_target(stack, dataset.keys, dataset.big_bytes)
                      if "devstore" in names else None)
    targets: dict[str, Target] = {}
    if "redis" in names:
        targets["redis"] = start_redis_target(stack, dataset)
    if "redis-cluster" in names:
        targets["redis-cluster"] = start_redis_cluster_target(stack, dataset)
    if devstore_ready is not None:
        targets["devstore"] = devstore_ready()
    return [targets[name] for name in names]
