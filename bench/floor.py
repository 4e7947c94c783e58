"""The raw floor: the store calls a page made, made again directly with httpx / redis-py.

Same requests, same order, one at a time, on a plain pooled client: what the store and the
wire cost without the dashboard (no provider, no Flask, no templates). Answers are read
whole and decoded (JSON for ToskaStore, RESP by redis-py), as any client must.

On a Redis Cluster the raw client is redis-py's ``RedisCluster``: a routed call (the
provider's cluster pipeline) goes through a cluster pipeline again, which splits it by
node and overlaps the nodes as the provider's did; a call the provider sent to one node
(SCAN of a primary, INFO, ...) goes to that node's plain client.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence

import httpx
import redis
from redis.cluster import ClusterNode, RedisCluster

from .meter import Call, HttpCall, RedisCall


class RawClients:
    """One plain httpx client and one plain redis-py client (or cluster client), for replaying."""

    def __init__(self, *, redis_host: str | None = None, redis_port: int | None = None,
                 redis_cluster: list[tuple[str, int]] | None = None,
                 timeout: float = 300.0) -> None:
        self.http = httpx.Client(timeout=timeout)
        self.timeout = timeout
        self.cluster: RedisCluster | None = None
        self._nodes: dict[tuple[str, int], redis.Redis] = {}
        self.redis: redis.Redis | RedisCluster | None = None
        if redis_cluster:
            self.cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in redis_cluster],
                socket_timeout=timeout)
            self.redis = self.cluster
        elif redis_host:
            self.redis = redis.Redis(host=redis_host, port=redis_port, socket_timeout=timeout)

    def node(self, address: tuple[str, int]) -> redis.Redis:
        """A plain client of one cluster node (made on first use, then kept)."""
        client = self._nodes.get(address)
        if client is None:
            client = self._nodes[address] = redis.Redis(host=address[0], port=address[1],
                                                        socket_timeout=self.timeout)
        return client

    def close(self) -> None:
        self.http.close()
        if self.redis is not None:
            self.redis.close()
        for client in self._nodes.values():
            client.close()


def replay(clients: RawClients, calls: Sequence[Call]) -> None:
    """Send ``calls`` again, in order."""
    for call in calls:
        if isinstance(call, HttpCall):
            answer = clients.http.request(call.method, call.url, headers=dict(call.headers),
                                          content=call.body or None)
            if answer.headers.get("content-type", "").startswith("application/json"):
                json.loads(answer.content)
        elif isinstance(call, RedisCall):
            assert clients.redis is not None, "a Redis call without a Redis client"
            client: redis.Redis | RedisCluster = clients.redis
            if call.node is not None and clients.cluster is not None:
                client = clients.node(call.node)
            if call.pipeline:
                pipe = client.pipeline(transaction=False)
                for command in call.commands:
                    pipe.execute_command(*command)
                pipe.execute(raise_on_error=False)
            else:
                with contextlib.suppress(redis.ResponseError):  # as the provider got it
                    client.execute_command(*call.commands[0])
        else:  # pragma: no cover - a new kind of call
            raise TypeError(call)


def timed_replay(clients: RawClients, calls: Sequence[Call]) -> float:
    """Seconds to replay ``calls``."""
    started = time.perf_counter()
    replay(clients, calls)
    return time.perf_counter() - started
