"""Peak memory of one browse page, one pattern page and one value search step over big
ToskaStore values.

Figures, not a test (issue 15, item 13): a dev store in its own process holds ``--values``
values of ``--mb`` MB under one prefix; for each release mode (main, 0.9.1, 0.8) a fresh
dashboard process logs in, warms up, and then asks for one page: ``/browse`` of that
prefix (100 keys a page), ``/browse`` with the pattern ``*`` (every key a hit, its value
read for the row) and ``/search`` for a text no value holds (so every value is looked
at). Each line reports the dashboard process's resident memory before the request
and its peak (``ru_maxrss``), the bytes its HTTP client actually received from the store
(counted on the wire, under the client), and what the page says it read.

    python bench/big_values.py                       # 30 values of 8 MB, every release
    python bench/big_values.py --values 10 --mb 2 --releases main --json out.json

The Kubernetes manifests give the dashboard 512 Mi: a page must stay well under it.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RELEASES = ("main", "0.9.1", "0.8")
PREFIX = "big:"

_STORE = """
import sys
from dashboard.devstore import start_devstore
running = start_devstore(port=0, host="127.0.0.1", release={release!r})
value = "x" * ({mb} * 2**20)
for i in range({values}):
    running.store.put("{prefix}%03d" % i, value)
del value
print(running.url, flush=True)
sys.stdin.read()
running.stop()
"""


def _rss_mb() -> float:
    """The current resident set size, from /proc (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, what: str) -> dict[str, Any]:
    """In a fresh process: one request, its peak RSS and the bytes the client received."""
    from dashboard.stores.toskastore.provider import ToskaStoreProvider
    from tests.support.byte_count import count_bytes
    from tests.support.webapp import login, make_app

    provider = ToskaStoreProvider(url, timeout=60)
    counter = count_bytes(provider)
    client = make_app(provider).test_client()
    login(client)
    client.get("/browse?prefix=none:")  # warm: templates compiled, detection done
    client.get("/search?prefix=none:&q=warm")
    before = _rss_mb()
    counter.reset()
    started = time.perf_counter()
    if what == "browse":
        response = client.get(f"/browse?prefix={PREFIX}")
    elif what == "match":
        response = client.get(f"/browse?prefix={PREFIX}&match=*")
    else:
        response = client.get(f"/search?prefix={PREFIX}&q=needle")
    seconds = time.perf_counter() - started
    page = response.get_data(as_text=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    said = re.search(r"([0-9.]+ (?:B|KiB|MiB)) read from the store", page) or re.search(
        r"and read ([0-9.]+ (?:B|KiB|MiB))", page) or re.search(
        r"([0-9.]+ (?:B|KiB|MiB)) of values read", page)
    return {"status": response.status_code, "seconds": round(seconds, 2),
            "rss_before_mb": round(before), "rss_peak_mb": round(peak),
            "received_mb": round(counter.received / 2**20, 1),
            "page_says_read": said.group(1) if said else "",
            "unread_rows": page.count('data-unread="true"'),
            "rows": page.count('data-testid="key-row"') + page.count('data-testid="hit-row"')}


def run(values: int, mb: int, releases: list[str]) -> list[dict[str, Any]]:
    results = []
    root = Path(__file__).resolve().parent.parent
    for release in releases:
        code = _STORE.format(release=release, mb=mb, values=values, prefix=PREFIX)
        store = subprocess.Popen([sys.executable, "-c", code], cwd=root, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert store.stdout is not None
            url = store.stdout.readline().strip()
            for what in ("browse", "match", "search"):
                out = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--measure", url,
                     "--what", what], cwd=root, text=True, capture_output=True, timeout=600,
                    check=False)
                if out.returncode != 0:
                    print(out.stderr, file=sys.stderr)
                    continue
                line = {"release": release, "page": what, **json.loads(out.stdout)}
                results.append(line)
                print(json.dumps(line), flush=True)
        finally:
            assert store.stdin is not None
            store.stdin.close()
            store.wait(timeout=60)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=30)
    parser.add_argument("--mb", type=int, default=8)
    parser.add_argument("--releases", default=",".join(RELEASES))
    parser.add_argument("--json")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--what", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.what)))
        return 0
    results = run(args.values, args.mb, args.releases.split(","))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
