"""Benchmark: ``mesh.check_index`` on one service with 100,000 keys (not a test).

Seeds the keys (plus a drifted ``__keys`` index) into an in-process dev store (straight
into its ``DevStore``, the fast path) and into a real ``redis-server`` (pipelined
writes), then times the check through the real providers and measures its peak Python
memory with ``tracemalloc`` in a second run (tracing slows the code down, so the timed
run is untraced). The dev store serves from this process, so its peak includes the
server side of each listing page too.

    python bench/check_index.py [--keys 100000] [--nolisting]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import mesh  # noqa: E402
from dashboard.devstore import start_devstore  # noqa: E402
from dashboard.stores.base import KeyValueProvider  # noqa: E402
from dashboard.stores.redis.provider import RedisProvider  # noqa: E402
from dashboard.stores.toskastore.provider import ToskaStoreProvider  # noqa: E402

PREFIX = "bench:"
SERVICE = mesh.Service("bench", PREFIX)


def dataset(count: int) -> tuple[list[str], list[str]]:
    """Live inner keys and an index drifted by 1% stale, 1% missing, 1% duplicated."""
    live = [f"item:{n:07d}" for n in range(count)]
    drift = max(1, count // 100)
    index = live[drift:] + [f"gone:{n}" for n in range(drift)] + live[drift:2 * drift]
    return live, index


def measure(provider: KeyValueProvider, count: int) -> dict:
    pages = 0

    def progress(_: int) -> None:
        nonlocal pages
        pages += 1

    gc.collect()
    started = time.perf_counter()
    report = mesh.check_index(provider, SERVICE, on_progress=progress)
    seconds = time.perf_counter() - started
    drift = max(1, count // 100)
    assert report.live == count or not report.unindexed_detectable, report.live
    assert len(report.stale) == drift and len(report.duplicates) == drift
    assert len(report.unindexed) == (drift if report.unindexed_detectable else 0)
    del report
    gc.collect()
    tracemalloc.start()
    mesh.check_index(provider, SERVICE)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "keys_per_s": count / seconds, "peak_mib": peak / 2**20,
            "progress_calls": pages}


def run_devstore(count: int, **mode) -> dict:
    live, index = dataset(count)
    with start_devstore(port=0, **mode) as running:
        for key in live:
            running.store.put(PREFIX + key, '{"v":1}')
        running.store.put(SERVICE.index_full_key, json.dumps(index, separators=(",", ":")))
        provider = ToskaStoreProvider(running.url, timeout=60.0)
        try:
            return measure(provider, count)
        finally:
            provider.close()


def run_redis(count: int) -> dict:
    import redis

    from tests.support.redis_server import RedisServer

    live, index = dataset(count)
    with RedisServer() as server:
        raw = redis.Redis(host=server.host, port=server.port)
        for start in range(0, count, 10_000):
            pipe = raw.pipeline(transaction=False)
            for key in live[start:start + 10_000]:
                pipe.set(PREFIX + key, '{"v":1}')
            pipe.execute()
        raw.set(SERVICE.index_full_key, json.dumps(index, separators=(",", ":")))
        raw.close()
        provider = RedisProvider(host=server.host, port=server.port, timeout=60.0)
        try:
            return measure(provider, count)
        finally:
            provider.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the service (100000)")
    parser.add_argument("--nolisting", action="store_true",
                        help="also a dev store without key listing (bulk reads of the index)")
    args = parser.parse_args()
    runs: list[tuple[str, Callable[[], dict]]] = [
        ("devstore (current, range listing)", lambda: run_devstore(args.keys)),
        ("redis-server (SCAN)", lambda: run_redis(args.keys)),
    ]
    if args.nolisting:
        runs.append(("devstore (no key listing: mget)",
                     lambda: run_devstore(args.keys, no_key_listing=True)))
    print(f"check_index on one service of {args.keys:,} keys (1% stale, 1% unindexed, "
          "1% duplicated)")
    for name, run in runs:
        result = run()
        print(f"{name:36} {result['seconds']:7.2f} s  {result['keys_per_s']:>10,.0f} keys/s  "
              f"peak {result['peak_mib']:6.1f} MiB  ({result['progress_calls']} progress calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
