"""The index check of the N-key service ``bench:``, in a child process: time and peak RSS.

``mesh.check_index`` through the provider the settings build (as ``toska-kv check-index``
and the ``/index/check`` page run it), after the provider has detected the store. The
child reports its time, its peak RSS (``VmHWM``: the whole process, imports included),
its RSS just before the check (so the check's own growth is the difference) and its store
round trips; it writes the calls it made so that a second child can replay them raw
(the floor, with its own peak RSS).

    python -m bench.indexcheck check --mesh JSON [--redis HOST:PORT] --calls FILE
    python -m bench.indexcheck floor [--redis HOST:PORT | --redis-cluster H:P,H:P,...] --calls FILE
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
#: a 1M-key check takes seconds; this only stops a hung child
_CHILD_TIMEOUT_S = 900


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own memory map.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries the forking parent's peak into a child
    across ``exec``, so a child of a big parent would report the parent's size.
    """
    return _status_mib("VmHWM")


def _redis_address(text: str | None) -> tuple[str | None, int | None]:
    if not text:
        return None, None
    host, _, port = text.rpartition(":")
    return host, int(port)


def child_check(args: argparse.Namespace) -> dict[str, Any]:
    from bench.data import CHECK_PREFIX
    from bench.meter import Meter, instrument
    from dashboard import mesh
    from dashboard.mesh import open_store
    from dashboard.settings.load import load_settings

    settings = load_settings(None, overrides={"Mesh": {"KeyValue": json.loads(args.mesh)}})
    provider = open_store(settings)
    meter = Meter()
    instrument(provider, meter)
    provider.capabilities()  # detection, as on a dashboard that already served a page
    service = mesh.service_for_prefix(settings, CHECK_PREFIX)
    # the Redis runtime keeps no index, so the dashboard never checks one there; the
    # benchmark still checks bench:__keys on Redis (as bench/check_index.py does): the
    # same listing walk against a second store
    service = mesh.Service(service.name, service.prefix, service.index_key, keeps_index=None)
    baseline = _rss_mib()
    meter.start()
    started = time.perf_counter()
    report = mesh.check_index(provider, service)
    seconds = time.perf_counter() - started
    recording = meter.stop()
    peak = _peak_mib()
    with open(args.calls, "wb") as out:
        pickle.dump(recording.calls, out)
    return {
        "seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": baseline,
        "growth_mib": peak - baseline, "round_trips": recording.round_trips,
        "commands": recording.commands, "live": report.live, "stale": len(report.stale),
        "unindexed": len(report.unindexed), "duplicates": len(report.duplicates),
    }


def child_floor(args: argparse.Namespace) -> dict[str, Any]:
    from bench.floor import RawClients, timed_replay

    host, port = _redis_address(args.redis)
    cluster = ([_redis_address(node) for node in args.redis_cluster.split(",")]
               if args.redis_cluster else None)
    clients = RawClients(redis_host=host, redis_port=port, redis_cluster=cluster)  # type: ignore[arg-type]
    with open(args.calls, "rb") as source:
        calls = pickle.load(source)
    baseline = _rss_mib()
    seconds = timed_replay(clients, calls)
    peak = _peak_mib()
    clients.close()
    return {"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": baseline,
            "growth_mib": peak - baseline}


def run(kind: str, target: Any, calls: Path) -> dict[str, Any]:
    """Run one child (``check`` or ``floor``) for ``target``; its JSON answer."""
    command = [sys.executable, "-m", "bench.indexcheck", kind, "--calls", str(calls)]
    if kind == "check":
        command += ["--mesh", json.dumps(target.mesh)]
    if target.redis_address:
        command += ["--redis", "{}:{}".format(*target.redis_address)]
    if target.redis_cluster:
        command += ["--redis-cluster", ",".join(f"{h}:{p}" for h, p in target.redis_cluster)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=_CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"index check child ({kind}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("check", "floor"))
    parser.add_argument("--mesh", help="Mesh:KeyValue settings as JSON (check)")
    parser.add_argument("--redis", help="HOST:PORT of the Redis target (floor)")
    parser.add_argument("--redis-cluster", help="HOST:PORT,... of the Redis Cluster target (floor)")
    parser.add_argument("--calls", required=True, help="where the check writes its calls")
    args = parser.parse_args()
    result = child_check(args) if args.kind == "check" else child_floor(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
