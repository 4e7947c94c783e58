"""The raw floor: the store calls a page made, made again directly with httpx / redis-py.

Same requests, same order, one at a time, on a plain pooled client: what the store and the
wire cost without the dashboard (no provider, no Flask, no templates). Answers are read
whole and decoded (JSON for ToskaStore, RESP by redis-py), as any client must.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence

import httpx
import redis

from .meter import Call, HttpCall, RedisCall


class RawClients:
    """One plain httpx client and one plain redis-py client, for replaying calls."""

    def __init__(self, *, redis_host: str | None = None, redis_port: int | None = None,
                 timeout: float = 300.0) -> None:
        self.http = httpx.Client(timeout=timeout)
        self.redis = (redis.Redis(host=redis_host, port=redis_port, socket_timeout=timeout)
                      if redis_host else None)

    def close(self) -> None:
        self.http.close()
        if self.redis is not None:
            self.redis.close()


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
            if call.pipeline:
                pipe = clients.redis.pipeline(transaction=False)
                for command in call.commands:
                    pipe.execute_command(*command)
                pipe.execute(raise_on_error=False)
            else:
                with contextlib.suppress(redis.ResponseError):  # as the provider got it
                    clients.redis.execute_command(*call.commands[0])
        else:  # pragma: no cover - a new kind of call
            raise TypeError(call)


def timed_replay(clients: RawClients, calls: Sequence[Call]) -> float:
    """Seconds to replay ``calls``."""
    started = time.perf_counter()
    replay(clients, calls)
    return time.perf_counter() - started
