"""A real 3-primary Redis Cluster on loopback ports, for tests.

Three ``redis-server --cluster-enabled yes`` processes on free ports P whose cluster bus
port P+10000 is free too, joined by ``redis-cli --cluster create ... --cluster-replicas 0``;
``start`` returns once every node's ``CLUSTER INFO`` says ``cluster_state:ok`` and knows
all three nodes. Each ``RedisClusterServers`` owns its processes, directory and ports.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from tests.support.redis_server import redis_server_binary, terminate_all

#: generous for a loaded 2-core CI machine: start, join, and agree on the slots
_START_TIMEOUT_S = 60.0
_BUS_OFFSET = 10_000
#: data ports are drawn from here so that port + 10000 stays a valid port below the
#: usual ephemeral range (32768+), where the kernel hands out client ports
_PORT_RANGE = (12_000, 22_000)
_PORT_ATTEMPTS = 5


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct ports P, each free with its cluster bus port P+10000 free too."""
    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(10_000):
        port = rng.randrange(*_PORT_RANGE)
        if any(abs(port - other) < 2 for other in chosen):
            continue
        if _port_is_free(port) and _port_is_free(port + _BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports for a Redis Cluster (port and port + 10000)")


def redis_cli_binary() -> str:
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError(
            "redis-cli is not installed; the Redis Cluster tests need it: "
            "run `apt-get install redis-server` (it brings redis-tools)"
        )
    return found


class RedisClusterServers:
    """Three cluster-enabled ``redis-server`` processes joined into one cluster."""

    host = "127.0.0.1"

    def __init__(self, *, primaries: int = 3, node_timeout_ms: int = 5000) -> None:
        self.primaries = primaries
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._dir: Path | None = None

    def __enter__(self) -> RedisClusterServers:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(self.host, port) for port in self.ports]

    @property
    def connection_string(self) -> str:
        """The StackExchange form naming every node, as a mesh operator writes it."""
        return ",".join(f"{self.host}:{port}" for port in self.ports)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the nodes, create the cluster, wait (bounded) until it serves every slot."""
        binary = redis_server_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="redis-cluster-test-"))
        problem = ""
        try:
            for _ in range(_PORT_ATTEMPTS):
                self.ports = free_cluster_ports(self.primaries)
                problem = self._start_nodes(binary)
                if not problem:
                    break
                self._terminate_all()
            else:
                raise RuntimeError(f"Redis Cluster nodes did not start: {problem}")
            self._create_cluster()
            self._wait_cluster_ok()
        except BaseException:
            self.stop()
            raise

    def _start_nodes(self, binary: str) -> str:
        """Start every node; '' when all answer PING, else what went wrong."""
        assert self._dir is not None
        for port in self.ports:
            node_dir = self._dir / str(port)
            node_dir.mkdir(exist_ok=True)
            for stale in node_dir.iterdir():
                stale.unlink()
            command = [
                binary, "--port", str(port), "--bind", self.host,
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(node_dir), "--logfile", "redis.log",
            ]
            self._processes[port] = subprocess.Popen(
                command, cwd=node_dir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        for port in self.ports:
            while True:
                process = self._processes[port]
                if process.poll() is not None:
                    return f"node {port} exited; its log:\n{self.log(port)}"
                try:
                    with self.node_client(port, socket_timeout=1.0) as client:
                        if client.ping():
                            break
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    return f"node {port} did not answer PING; its log:\n{self.log(port)}"
                time.sleep(0.05)
        return ""

    def _create_cluster(self) -> None:
        command = [
            redis_cli_binary(), "--cluster", "create",
            *(f"{self.host}:{port}" for port in self.ports),
            "--cluster-replicas", "0", "--cluster-yes",
        ]
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=_START_TIMEOUT_S, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )

    def _wait_cluster_ok(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        last: dict[int, str] = {}
        while time.monotonic() < deadline:
            ready = True
            for port in self.ports:
                try:
                    with self.node_client(port, socket_timeout=2.0) as client:
                        info = client.cluster("info")
                except redis.exceptions.RedisError as exc:
                    last[port] = repr(exc)
                    ready = False
                    continue
                last[port] = f"{info.get('cluster_state')} known={info.get('cluster_known_nodes')}"
                if (info.get("cluster_state") != "ok"
                        or int(info.get("cluster_known_nodes", 0)) != self.primaries
                        or int(info.get("cluster_slots_ok", 0)) != 16384):
                    ready = False
            if ready:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Redis Cluster did not reach cluster_state:ok: {last}")

    def log(self, port: int) -> str:
        if self._dir is None:
            return ""
        path = self._dir / str(port) / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_node(self, port: int) -> None:
        """SIGKILL one node (as a crash would) and wait for it to be gone."""
        process = self._processes.pop(port, None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def _terminate_all(self) -> None:
        processes, self._processes = self._processes, {}
        terminate_all(processes.values())

    def stop(self) -> None:
        """Terminate every node, wait for them, and remove the directory."""
        self._terminate_all()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- clients for arranging test data ---------------------------------------------

    @contextmanager
    def node_client(self, port: int, **kwargs: object) -> Iterator[redis.Redis]:
        """A plain client to one node (sees only that node's keys)."""
        options: dict[str, object] = {
            "host": self.host, "port": port, "socket_timeout": 5.0,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(kwargs)
        client = redis.Redis(**options)
        try:
            yield client
        finally:
            client.close()

    @contextmanager
    def client(self) -> Iterator[RedisCluster]:
        """A redis-py cluster client, routing each key to its node; closed on exit."""
        client = RedisCluster(
            startup_nodes=[ClusterNode(self.host, port) for port in self.ports],
            socket_timeout=5.0,
        )
        try:
            yield client
        finally:
            client.close()

    def node_for_key(self, key: bytes | str) -> int:
        """The port of the primary serving ``key``'s slot."""
        with self.node_client(self.ports[0]) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, primary in _slot_ranges(client):
                if start <= slot <= end:
                    return primary
        raise RuntimeError(f"no node serves slot {slot}")

    def move_slot_of(self, key: str, target_port: int) -> None:
        """Migrate ``key``'s slot (and its keys) to ``target_port``, as a reshard would."""
        source_port = self.node_for_key(key)
        with self.node_client(source_port) as source, self.node_client(target_port) as target:
            slot = int(source.execute_command("CLUSTER KEYSLOT", key))
            source_id = source.execute_command("CLUSTER MYID").decode()
            target_id = target.execute_command("CLUSTER MYID").decode()
            target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                source.execute_command(
                    "MIGRATE", self.host, target_port, "", 0, 5000, "KEYS", *keys)
        # the target first, then every other node: all agree at once
        for port in [target_port, *(p for p in self.ports if p != target_port)]:
            with self.node_client(port) as node:
                node.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)

    def flushall(self) -> None:
        """Remove every key on every node."""
        for port in self.ports:
            with self.node_client(port) as client:
                client.flushall()


def _slot_ranges(client: redis.Redis) -> list[tuple[int, int, int]]:
    """(first slot, last slot, primary port) for every range, from ``CLUSTER SLOTS``."""
    raw = client.execute_command("CLUSTER SLOTS")
    ranges = []
    for entry in raw:
        start, end, primary = entry[0], entry[1], entry[2]
        ranges.append((int(start), int(end), int(primary[1])))
    return ranges
