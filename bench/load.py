"""50 concurrent clients on gunicorn, started as the Dockerfile's CMD starts it.

The CMD and ENV are read from the Dockerfile (as ``tests/test_deploy_image.py`` does), the
bind address moved to a free 127.0.0.1 port, nothing else changed: ``GUNICORN_WORKERS`` ×
``GUNICORN_THREADS`` (the CMD's defaults unless set), JSON logs (one line per request, to a
file here), ``PROMETHEUS_MULTIPROC_DIR`` and ``TMPDIR`` in a private temporary directory, and
the default session storage (files there). ``loadgen`` then runs the clients in its own
process. Everything is stopped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from tests.support.dockerfile import image_cmd, image_cmd_default, image_env

from .data import Dataset
from .scenarios import PASSWORD, SECRET, USER, users
from .targets import Target

ROOT = Path(__file__).resolve().parent.parent
_START_S = 60


def image_cmd_on(port: int) -> list[str]:
    """The CMD with its ``--bind`` moved to 127.0.0.1:``port``."""
    cmd = image_cmd()
    script, binds = re.subn(r"--bind\s+0\.0\.0\.0:\d+\b", f"--bind 127.0.0.1:{port}", cmd[2])
    if cmd[:2] != ["sh", "-c"] or binds != 1:
        raise RuntimeError(f"unexpected Dockerfile CMD: {cmd!r}")
    return [*cmd[:2], script]


def _cpu_by_pid(pid: int) -> dict[int, float]:
    """User + system CPU seconds of ``pid`` and of each live child (gunicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with suppress(OSError):
        pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    cpu = {}
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[each] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return cpu


def _cpu_seconds(pid: int) -> float:
    return sum(_cpu_by_pid(pid).values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(target: Target, workdir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """gunicorn on ``target``; yields its URL and facts (command, workers, logs)."""
    users_file = workdir / "users.json"
    users_file.write_text(json.dumps(users()))
    scratch = workdir / "tmp"
    metrics = scratch / "kvdash-metrics"
    metrics.mkdir(parents=True)
    port = _free_port()
    cmd = image_cmd_on(port)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **image_env(),
        "HOME": str(workdir / "no-home"),
        "TMPDIR": str(scratch),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "Dashboard__SecretKey": SECRET,
        "Dashboard__UsersFile": str(users_file),
        **target.env,
    }
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS"):
        if name in os.environ:
            env[name] = os.environ[name]
    stdout, stderr = workdir / "gunicorn.out", workdir / "gunicorn.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    facts = {"command": cmd[2], "pid": process.pid, **{
        kind: env.get(name) or image_cmd_default(name) or "?"
        for kind, name in (("workers", "GUNICORN_WORKERS"), ("threads", "GUNICORN_THREADS"))}}
    try:
        give_up = time.monotonic() + _START_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({process.returncode}): "
                                   f"{stderr.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up:
                raise RuntimeError(f"gunicorn not ready in {_START_S}s: {stderr.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, facts
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        facts["server_errors"] = _server_errors(stderr.read_text(errors="replace"))


def _server_errors(log: str) -> int:
    """gunicorn's own errors (a failed request, a worker timeout) and tracebacks in its log,
    whose lines are in ``Dashboard__LogFormat`` (JSON in the image)."""
    count = log.count("Traceback")
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a text line: "date time LEVEL logger message"
            count += bool(re.match(r"\S+ \S+ (ERROR|CRITICAL) gunicorn\.", line))
            continue
        count += (isinstance(entry, dict) and entry.get("level") in ("ERROR", "CRITICAL")
                  and str(entry.get("logger", "")).startswith("gunicorn."))
    return count


def run_load(target: Target, dataset: Dataset, *, clients: int, seconds: float,
             max_requests: int) -> dict[str, Any]:
    """gunicorn on ``target`` and ``clients`` concurrent clients for ``seconds``."""
    import random

    rng = random.Random(7)
    everything = [f"{name}:{key}" for name, keys in dataset.report.live_keys.items() for key in keys]
    plan = {
        "user": USER, "password": PASSWORD, "clients": clients, "seconds": seconds,
        "max_requests": max_requests, "timeout_s": 30,
        "keys": rng.sample(everything, min(1000, len(everything))),
        "prefixes": [f"{name}:" for name in dataset.services],
        "mget_100": "\n".join(dataset.lookup_keys(100)),
    }
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp:
        workdir = Path(tmp)
        (workdir / "plan.json").write_text(json.dumps(plan))
        with gunicorn(target, workdir) as (url, facts):
            store_pids = target.store_pids  # a cluster: every node
            workers_before = _cpu_by_pid(facts["pid"])
            store_before = sum(_cpu_seconds(pid) for pid in store_pids)
            done = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", "--url", url, "--plan",
                 str(workdir / "plan.json")],
                cwd=ROOT, capture_output=True, text=True, timeout=seconds + 240, check=False)
            workers_after = _cpu_by_pid(facts["pid"])
            # per process (master first, then each worker): how the load spread
            facts["cpu_by_process_s"] = [round(cpu - workers_before.get(pid, 0.0), 2)
                                         for pid, cpu in workers_after.items()]
            facts["cpu_s"] = sum(facts["cpu_by_process_s"])
            store_cpu = (sum(_cpu_seconds(pid) for pid in store_pids) - store_before
                         if store_pids else None)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(gunicorn=facts, store_cpu_s=store_cpu)
    # CPU per request, logins (3 requests a client, before the clock) included
    answered = result["requests"] + 3 * result["clients_logged_in"]
    result["dashboard_cpu_ms_per_request"] = facts["cpu_s"] * 1000 / answered if answered else None
    return result
