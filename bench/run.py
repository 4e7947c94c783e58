"""Benchmark the dashboard's pages against their raw floor, on a dev store and a redis-server.

Seeds the stores (real servers on 127.0.0.1: a dev store, a redis-server, and with
``--targets ...,redis-cluster`` a 3-primary Redis Cluster) with N mesh-shaped keys in 10
services plus an N-key service for the index check and a 50 MB value, then measures, in
interleaved runs, each page beside the same store calls made directly (the raw floor) with
its store round trips, and beside Redis Commander's equivalent on the same Redis (key page
and first browse page; npm, installed once outside the repo, ``--no-redis-commander`` to
skip); an index check in a child process (time, peak RSS); and 50 concurrent clients on
gunicorn as the Dockerfile starts it. See bench/README.md.

    python bench/run.py [--keys 100000 | --big] [--runs 5] [--only NAME ...]
                        [--targets devstore,redis[,redis-cluster]] [--no-redis-commander]
                        [--json out.json] [--write-readme]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import commander, data, indexcheck, load, report, targets  # noqa: E402
from bench.floor import timed_replay  # noqa: E402
from bench.scenarios import SCENARIOS, Dashboard, Scenario  # noqa: E402

PAGE_FIGURES = tuple(s.name for s in SCENARIOS)
#: every figure the JSON holds (``--only`` picks among them)
FIGURES = (*PAGE_FIGURES, "index_check", "load")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=None,
                        help="N: keys in the sample services and in the checked service (100000)")
    parser.add_argument("--big", action="store_true", help="N = 1,000,000")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per figure (5)")
    parser.add_argument("--only", action="append", choices=FIGURES, metavar="NAME",
                        help=f"measure only these figures (repeatable): {', '.join(FIGURES)}")
    parser.add_argument("--targets", default=",".join(targets.TARGETS),
                        help="comma-separated, of: " + ",".join(targets.ALL_TARGETS)
                        + f" (default {','.join(targets.TARGETS)}; redis-cluster: a 3-primary "
                        "Redis Cluster, asked for by name)")
    parser.add_argument("--redis-commander", action=argparse.BooleanOptionalAction, default=True,
                        help=f"time Redis Commander {commander.VERSION} (npm, installed once into "
                        f"{commander.cache_root()}) on each Redis target beside the key page and "
                        "the first browse page (default: on; skipped with a note when npm fails)")
    parser.add_argument("--big-value-mb", type=float, default=50.0,
                        help="size of the big value, MiB (50)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--load-seconds", type=float, default=10.0,
                        help="length of the load per target (10); 0 skips it")
    parser.add_argument("--max-requests", type=int, default=50_000,
                        help="most requests the load sends per target (50000)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--write-readme", action="store_true",
                        help="put the tables into bench/README.md")
    args = parser.parse_args(argv)
    if args.keys is None:
        args.keys = 1_000_000 if args.big else 100_000
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not 0 < args.clients <= 200 or not 0 <= args.load_seconds <= 300:
        parser.error("--clients must be 1..200 and --load-seconds 0..300")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- pages


def measure_pages(dashboards: dict[str, Dashboard], scenarios: list[Scenario],
                  dataset: data.Dataset, runs: int,
                  commanders: dict[str, commander.Commander] | None = None) -> dict[str, Any]:
    """Interleaved: run after run, each scenario on each target, page and floor in turn.

    Where a scenario has a Redis Commander equivalent and the target a Redis Commander,
    it is timed right after the page and its floor, in the same run.
    """
    commanders = commanders or {}
    names = list(dashboards)
    raws = {name: dash.target.raw_clients() for name, dash in dashboards.items()}
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for scenario in scenarios:
        for name, dash in dashboards.items():
            state[scenario.name, name] = {
                "page": [], "floor": [], "trips": [], "commands": [], "calls": None,
                "spent": 0.0, "facts": {}, "prepared": scenario.prepare(dash, dataset),
                "rc": [], "rc_first": [], "rc_commands": None, "rc_facts": None}
    try:
        for run in range(runs):
            order = names if run % 2 == 0 else names[::-1]
            for scenario in scenarios:
                for name in order:
                    dash, st = dashboards[name], state[scenario.name, name]
                    if st["page"] and st["spent"] > scenario.budget_s:
                        continue  # over its time budget: fewer runs (the table says how many)
                    # floor first on odd runs (with the calls the last run recorded)
                    floor_first = run % 2 == 1 and st["calls"] is not None
                    if floor_first:
                        gc.collect()
                        st["floor"].append(timed_replay(raws[name], st["calls"]))
                    gc.collect()
                    dash.meter.start()
                    started = time.perf_counter()
                    st["facts"] = scenario.run(dash, dataset, st["prepared"])
                    seconds = time.perf_counter() - started
                    recording = dash.meter.stop()
                    st["page"].append(seconds)
                    st["trips"].append(recording.round_trips)
                    st["commands"].append(recording.commands)
                    st["calls"] = recording.calls
                    if not floor_first:
                        gc.collect()
                        st["floor"].append(timed_replay(raws[name], st["calls"]))
                    st["spent"] += seconds + st["floor"][-1]
                    rc_text = ""
                    rc = commanders.get(name)
                    if rc is not None and scenario.commander is not None:
                        rc.reset_stats()
                        gc.collect()
                        rc_started = time.perf_counter()
                        st["rc_facts"] = scenario.commander(rc, dataset)
                        st["rc"].append(time.perf_counter() - rc_started)
                        if st["rc_facts"].get("calls"):  # the tree: its first call alone too
                            st["rc_first"].append(st["rc_facts"]["calls"][0]["seconds"])
                        st["rc_commands"] = rc.commands()
                        st["spent"] += st["rc"][-1]
                        rc_text = f"  Redis Commander {st['rc'][-1] * 1000:9.1f} ms"
                    log(f"  run {run + 1}/{runs} {scenario.name:14} {name:9} page "
                        f"{seconds * 1000:9.1f} ms  floor {st['floor'][-1] * 1000:9.1f} ms  "
                        f"{recording.round_trips} round trips{rc_text}")
    finally:
        for raw in raws.values():
            raw.close()
    figures: dict[str, Any] = {}
    for scenario in scenarios:
        cells = {}
        for name in names:
            st = state[scenario.name, name]
            trips = st["trips"]
            cells[name] = {
                "page": report.stats(st["page"]), "floor": report.stats(st["floor"]),
                "page_s": st["page"], "floor_s": st["floor"],
                "round_trips": trips[-1], "round_trips_varied": len(set(trips)) > 1,
                "round_trips_min": min(trips), "round_trips_max": max(trips),
                "commands": st["commands"][-1], "facts": st["facts"],
            }
            if st["rc"]:
                rc_stats = report.stats(st["rc"])
                cells[name]["redis_commander"] = {
                    "time": rc_stats, "time_s": st["rc"], "store_commands": st["rc_commands"],
                    "facts": st["rc_facts"], "first_call": report.stats(st["rc_first"]),
                    # the dashboard's page time over Redis Commander's (medians)
                    "ratio": cells[name]["page"]["median"] / rc_stats["median"],
                }
        figures[scenario.name] = {"kind": "page", "title": scenario.title, "targets": cells}
    return figures


# --------------------------------------------------------------------------- index check


def measure_index_check(started: list[targets.Target], dataset: data.Dataset,
                        runs: int) -> dict[str, Any]:
    samples: dict[str, dict[str, list[Any]]] = {
        t.name: {"check": [], "floor": [], "peak": [], "growth": [], "floor_peak": [],
                 "trips": [], "commands": [], "facts": []} for t in started}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for run in range(runs):
            order = started if run % 2 == 0 else started[::-1]
            for target in order:
                calls = Path(tmp) / f"{target.name}.calls"
                check = indexcheck.run("check", target, calls)
                floor = indexcheck.run("floor", target, calls)
                s = samples[target.name]
                s["check"].append(check["seconds"])
                s["floor"].append(floor["seconds"])
                s["peak"].append(check["peak_rss_mib"])
                s["growth"].append(check["growth_mib"])
                s["floor_peak"].append(floor["peak_rss_mib"])
                s["trips"].append(check["round_trips"])
                s["commands"].append(check["commands"])
                s["facts"].append({k: check[k] for k in ("live", "stale", "unindexed", "duplicates")})
                log(f"  run {run + 1}/{runs} index_check    {target.name:9} check "
                    f"{check['seconds'] * 1000:9.1f} ms  floor {floor['seconds'] * 1000:9.1f} ms  "
                    f"peak {check['peak_rss_mib']:.0f} MiB  {check['round_trips']} round trips")
    drift = dataset.check_drift()
    cells = {}
    for name, s in samples.items():
        facts = s["facts"][-1]
        if (facts["stale"], facts["duplicates"]) != (drift, drift):
            raise RuntimeError(f"index check on {name} found {facts}, expected {drift} of each")
        cells[name] = {
            "check": report.stats(s["check"]), "floor": report.stats(s["floor"]),
            "check_s": s["check"], "floor_s": s["floor"],
            "peak_rss_mib": report.stats(s["peak"]), "growth_mib": report.stats(s["growth"]),
            "floor_peak_rss_mib": report.stats(s["floor_peak"]),
            "round_trips": s["trips"][-1], "round_trips_varied": len(set(s["trips"])) > 1,
            "round_trips_min": min(s["trips"]), "round_trips_max": max(s["trips"]),
            "commands": s["commands"][-1], "facts": facts,
        }
    return {"kind": "index", "title": f"index check, {dataset.keys:,} keys", "keys": dataset.keys,
            "targets": cells}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only or FIGURES)
    names = tuple(n.strip() for n in args.targets.split(",") if n.strip())
    began = time.perf_counter()
    results: dict[str, Any] = {"meta": {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "keys": args.keys, "runs": args.runs, "machine": report.machine(),
        "big_value_bytes": int(args.big_value_mb * 2**20),
    }, "targets": {}, "figures": {}}
    log(f"building the data set (N = {args.keys:,}) and seeding {', '.join(names)} ...")
    big = results["meta"]["big_value_bytes"] if "key_50mb" in only else 0
    dataset = data.build(args.keys, big_bytes=big)
    with ExitStack() as stack:
        started = targets.start_targets(stack, names, dataset)
        for target in started:
            results["targets"][target.name] = {"label": target.label,
                                               "seed_seconds": target.seed_seconds,
                                               **target.details}
            log(f"  {target.label}: {target.details['keys_written']:,} keys in "
                f"{target.seed_seconds:.1f} s")
        scenarios = [s for s in SCENARIOS if s.name in only]
        commanders: dict[str, commander.Commander] = {}
        if args.redis_commander and any(s.commander for s in scenarios):
            commanders, results["meta"]["redis_commander"] = commander.start_all(stack, started, log)
        if scenarios:
            log("pages (page vs raw floor):")
            dashboards = {t.name: Dashboard(t) for t in started}
            for dash in dashboards.values():
                stack.callback(dash.close)
            results["figures"].update(measure_pages(dashboards, scenarios, dataset, args.runs,
                                                    commanders))
        if "index_check" in only:
            log("index check (child processes):")
            results["figures"]["index_check"] = measure_index_check(started, dataset, args.runs)
        if "load" in only and args.load_seconds > 0:
            log(f"load: {args.clients} clients on gunicorn for {args.load_seconds:g} s per target")
            cells = {}
            for target in started:
                cells[target.name] = load.run_load(target, dataset, clients=args.clients,
                                                   seconds=args.load_seconds,
                                                   max_requests=args.max_requests)
                c = cells[target.name]
                log(f"  {target.name:9} {c['requests']} requests, {c['req_per_s']:.0f} req/s, "
                    f"p50 {c['p50_ms']:.0f} ms, p99 {c['p99_ms']:.0f} ms, {c['errors']} errors")
            results["figures"]["load"] = {"kind": "load", "title": "concurrent clients on gunicorn",
                                          "targets": cells}
    results["meta"]["duration_s"] = time.perf_counter() - began
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.write_readme:
        report.write_readme(results)
    print(report.header(results))
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
