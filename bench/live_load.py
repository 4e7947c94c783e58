"""Live pages under load: do 20 open live streams starve ordinary requests?

Starts a dev store (ToskaStore main) in a child process and the dashboard exactly as the
image runs it (the Dockerfile's CMD: gunicorn, gthread workers; only ``--bind`` moved to a
free local port), then measures ordinary requests (a key page and a browse page, from a
few client threads) for a while without live streams, and again while ``--streams`` live
feeds are open and a writer changes keys under the watched prefix (so the streams carry
events). Prints p50/p95 for both phases as JSON.

    .venv/bin/python -m bench.live_load [--streams 20] [--seconds 10] [--threads N]

``--threads`` sets ``GUNICORN_THREADS`` (default: the image's); ``--max-live`` sets
``Dashboard__MaxLiveStreams``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.dockerfile import image_cmd, image_env  # noqa: E402

SECRET = "bench-live-secret-key-0123456789abcdef"
PASSWORD = "bench-pass"
_STORE_CHILD = """
import json, sys
from dashboard.devstore import start_devstore
running = start_devstore(port=0, host="127.0.0.1")
for i in range(500):
    running.store.put(f"bench:k:{i:04d}", json.dumps({"id": i, "name": f"item {i}"}))
print(json.dumps({"url": running.url}), flush=True)
sys.stdin.read()
running.stop()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_store() -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen([sys.executable, "-c", _STORE_CHILD], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    return child, json.loads(line)["url"]


def start_dashboard(store_url: str, scratch: Path, threads: int | None,
                    max_live: int | None) -> tuple[subprocess.Popen, str]:
    from werkzeug.security import generate_password_hash

    port = free_port()
    cmd = list(image_cmd())
    cmd[2] = re.sub(r"--bind\s+0\.0\.0\.0:\d+", f"--bind 127.0.0.1:{port}", cmd[2])
    users = scratch / "users.json"
    users.write_text(json.dumps([{"name": "bench", "role": "editor", "passwordHash":
                                  generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}]))
    (scratch / "tmp").mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **image_env(),
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
        "Mesh__KeyValue__Provider": "ToskaStore",
        "Mesh__KeyValue__ToskaStore__BaseUrl": store_url,
        "Dashboard__SecretKey": SECRET,
        "Dashboard__UsersFile": str(users),
        "Dashboard__LogFormat": "text",
    }
    (scratch / "metrics").mkdir(exist_ok=True)
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    if max_live is not None:
        env["Dashboard__MaxLiveStreams"] = str(max_live)
    log = open(scratch / "gunicorn.log", "wb")  # noqa: SIM115 - kept open for the child
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log,
                               stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the dashboard did not start; see {scratch / 'gunicorn.log'}")


def logged_in(url: str, timeout: float = 10.0) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=timeout)
    page = client.get("/login").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": "bench", "password": PASSWORD,
                                         "csrf_token": token})
    assert answer.status_code == 302, answer.text[:300]
    return client


def measure(url: str, seconds: float, workers: int = 4) -> dict[str, float]:
    """Ordinary requests from ``workers`` threads for ``seconds``: latency percentiles."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    paths = ["/key?key=bench:k:{:04d}", "/browse?prefix=bench:k:00"]

    def work(n: int) -> None:
        client = logged_in(url, timeout=5.0)
        i = n
        while time.monotonic() < stop:
            path = paths[i % 2].format(i % 500)
            started = time.perf_counter()
            try:
                ok = client.get(path).status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    failures[0] += 1
            i += workers
        client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(int(len(latencies) * p), len(latencies) - 1)], 1) \
            if latencies else float("nan")

    return {"requests": len(latencies), "failed_or_timed_out": failures[0],
            "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "mean_ms": round(statistics.fmean(latencies), 1) if latencies else float("nan")}


class Streams:
    """``count`` live feeds held open by their own clients, counting the events they get."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.opened = 0
        self.refused = 0
        self.events = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(count)]

    def _hold(self) -> None:
        client = logged_in(self.url, timeout=30.0)
        try:
            with client.stream("GET", "/live/stream", params={"prefix": "bench:"}) as answer:
                if answer.status_code != 200:
                    with self._lock:
                        self.refused += 1
                    return
                with self._lock:
                    self.opened += 1
                for line in answer.iter_lines():
                    if line.startswith("event: change"):
                        with self._lock:
                            self.events += 1
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            pass
        finally:
            client.close()

    def __enter__(self) -> Streams:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 20
        while self.opened + self.refused < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # each ends at its next keepalive (2 s)


def writer(store_url: str, stop: threading.Event, per_second: float = 20) -> None:
    with httpx.Client(base_url=store_url, timeout=5) as client:
        i = 0
        while not stop.is_set():
            client.put(f"/kv/bench%3Aw%3A{i % 50}", json={"value": f"v{i}"})
            i += 1
            stop.wait(1 / per_second)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS")
    parser.add_argument("--max-live", type=int, default=None, help="Dashboard__MaxLiveStreams")
    args = parser.parse_args()
    store, store_url = start_store()
    scratch = Path(tempfile.mkdtemp(prefix="bench-live-"))
    dashboard, url = start_dashboard(store_url, scratch, args.threads, args.max_live)
    try:
        measure(url, 1.0)  # warm up: detection, templates, connections
        baseline = measure(url, args.seconds)
        stop = threading.Event()
        writing = threading.Thread(target=writer, args=(store_url, stop), daemon=True)
        writing.start()
        with Streams(url, args.streams) as streams:
            loaded = measure(url, args.seconds)
            opened, refused, events = streams.opened, streams.refused, streams.events
        stop.set()
        report = {
            "cmd_threads": args.threads or "image default",
            "max_live_streams": args.max_live or "default",
            "streams_asked": args.streams, "streams_open": opened, "streams_refused": refused,
            "events_delivered": events,
            "without_streams": baseline, "with_streams": loaded,
        }
        print(json.dumps(report, indent=2))
    finally:
        dashboard.send_signal(signal.SIGTERM)
        try:
            dashboard.wait(timeout=40)
        except subprocess.TimeoutExpired:
            dashboard.kill()
        store.stdin.close()
        store.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
