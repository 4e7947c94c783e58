"""50 concurrent clients against a dashboard on 127.0.0.1, bounded in time and count.

Run by ``load`` in its own process (asyncio + httpx: the clients do not share a GIL with
anything measured). Each client logs in (its own session), then asks, until the time or
the request budget is up, a mix of pages: key pages (40%), first browse pages of a random
service (40%), the services page (10%) and an htmx mget of 100 keys (10%). Prints one
JSON object: requests, req/s, p50/p95/p99 latency, errors (non-200 or transport).

    python -m bench.loadgen --url http://127.0.0.1:PORT --plan plan.json
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import random
import re
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
MIX = (("key", 40), ("browse", 40), ("services", 10), ("mget_100", 10))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``values`` sorted)."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(pct / 100 * len(values) + 0.5)))
    return values[rank - 1]


class Budget:
    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.left = max_requests

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def _login(client: httpx.AsyncClient, user: str, password: str) -> str:
    page = await client.get("/login")
    token = html.unescape(_CSRF_INPUT.search(page.text).group(1))
    answer = await client.post("/login", data={"username": user, "password": password,
                                               "csrf_token": token})
    if answer.status_code != 302:
        raise RuntimeError(f"login failed: {answer.status_code}")
    form = await client.get("/mget")
    return html.unescape(_CSRF_INPUT.search(form.text).group(1))


async def _client(number: int, url: str, plan: dict[str, Any], budget: Budget,
                  started: asyncio.Event, ready: list[int],
                  samples: list[tuple[str, float, bool]], errors: list[str]) -> None:
    rng = random.Random(number)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    async with httpx.AsyncClient(base_url=url, timeout=plan.get("timeout_s", 30)) as client:
        csrf = await _login(client, plan["user"], plan["password"])
        ready.append(number)
        await started.wait()
        while budget.take():
            kind = rng.choice(kinds)
            began = time.perf_counter()
            try:
                if kind == "key":
                    answer = await client.get("/key", params={"key": rng.choice(plan["keys"])})
                elif kind == "browse":
                    answer = await client.get("/browse", params={"prefix": rng.choice(plan["prefixes"])})
                elif kind == "services":
                    answer = await client.get("/services")
                else:
                    answer = await client.post("/mget", data={"keys": plan["mget_100"]}, headers={
                        "HX-Request": "true", "X-CSRFToken": csrf, "Origin": origin})
                await answer.aread()
                ok = answer.status_code == 200
                if not ok:
                    errors.append(f"{kind}: HTTP {answer.status_code}")
            except httpx.HTTPError as error:
                ok = False
                errors.append(f"{kind}: {type(error).__name__}: {error}")
            samples.append((kind, time.perf_counter() - began, ok))


async def run(url: str, plan: dict[str, Any]) -> dict[str, Any]:
    clients = plan["clients"]
    samples: list[tuple[str, float, bool]] = []
    errors: list[str] = []
    ready: list[int] = []
    started = asyncio.Event()
    budget = Budget(plan["seconds"], plan["max_requests"])
    tasks = [asyncio.create_task(_client(n, url, plan, budget, started, ready, samples, errors))
             for n in range(clients)]
    # every client logged in before the clock starts (logins are not what is measured)
    give_up = time.monotonic() + 120
    while len(ready) < clients and time.monotonic() < give_up:
        if any(t.done() and t.exception() for t in tasks):
            break
        await asyncio.sleep(0.05)
    budget.deadline = time.monotonic() + plan["seconds"]
    cpu_before = time.process_time()
    began = time.perf_counter()
    started.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time() - cpu_before
    failed_clients = [repr(r) for r in results if isinstance(r, BaseException)]
    latencies = sorted(s[1] for s in samples if s[2])
    by_kind = {}
    for kind, _ in MIX:
        times = sorted(s[1] for s in samples if s[0] == kind and s[2])
        by_kind[kind] = {"requests": sum(1 for s in samples if s[0] == kind),
                         "p50_ms": percentile(times, 50) * 1000 if times else None}
    return {
        "clients": clients, "clients_logged_in": len(ready), "seconds": elapsed,
        "requests": len(samples), "req_per_s": len(samples) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000, "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else None,
        "client_cpu_s": client_cpu,
        "errors": len(errors) + len(failed_clients), "error_samples": (errors + failed_clients)[:5],
        "by_kind": by_kind,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--plan", required=True, help="JSON file: clients, seconds, keys, ...")
    args = parser.parse_args()
    if urlsplit(args.url).hostname != "127.0.0.1":
        raise SystemExit("the load only targets 127.0.0.1")
    with open(args.plan) as source:
        plan = json.load(source)
    print(json.dumps(asyncio.run(run(args.url, plan))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
