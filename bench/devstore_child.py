"""A dev store (ToskaStore main) in its own process, seeded with the benchmark's data set.

Started by ``targets``: it builds the same deterministic data set, writes it straight into
its ``DevStore`` (no HTTP: the fast path), serves on a free 127.0.0.1 port, prints
``{"url": ...}`` on one line and serves until its standard input closes.

    python -m bench.devstore_child --keys 100000 [--big-bytes 52428800]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data  # noqa: E402
from dashboard.devstore import start_devstore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--big-bytes", type=int, default=50 * 2**20)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset = data.build(args.keys, big_bytes=args.big_bytes)
    running = start_devstore(port=0, host="127.0.0.1")
    store = running.store
    written = 0
    for key, value, ttl in dataset.items():
        store.put(key, value, ttl_ms=ttl)
        written += 1
    del dataset
    print(json.dumps({"url": running.url, "written": written,
                      "seed_seconds": time.perf_counter() - started}), flush=True)
    try:
        sys.stdin.read()  # the parent closes it to stop us
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
