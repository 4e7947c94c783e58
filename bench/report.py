"""Medians with min–max, the results JSON, and the markdown tables of bench/README.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                       text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        redis_version = None
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "dashboard", "templates"],
                                    cwd=root, capture_output=True, text=True, timeout=10,
                                    check=False).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {"commit": commit, "app_uncommitted_changes": dirty, "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": memory_gib,
            "os": platform.platform(), "python": platform.python_version(),
            "redis_server": redis_version}


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def _cpu(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f} s"


def _split(gunicorn: dict[str, Any]) -> str:
    return " + ".join(f"{c:.1f}" for c in gunicorn.get("cpu_by_process_s", []))


def _span(s: dict[str, Any]) -> str:
    if not s or s.get("median") is None:
        return "—"
    if s["n"] == 1:
        return f"{_time(s['median'])} (1 run)"
    return f"{_time(s['median'])} ({_time(s['min'])}–{_time(s['max'])})"


def _trips(figure: dict[str, Any]) -> str:
    trips = figure.get("round_trips")
    if trips is None:
        return "—"
    text = f"{trips:,}"
    if figure.get("round_trips_varied"):
        text += f" ({figure['round_trips_min']:,}–{figure['round_trips_max']:,})"
    commands = figure.get("commands")
    if commands is not None and commands != trips:
        text += f" / {commands:,} cmds"
    return text


def _commander(cell: dict[str, Any]) -> str:
    """Redis Commander's time beside the page: its span, the ratio, what it did."""
    rc = cell.get("redis_commander")
    if not rc:
        return "—"
    ratio = rc["ratio"]
    text = f"{_span(rc['time'])}; dashboard page {ratio:.2f}×" if ratio >= 0.1 else (
        f"{_span(rc['time'])}; dashboard page {ratio:.3f}×")
    facts = rc.get("facts") or {}
    if "tree_calls" in facts:
        calls = facts["tree_calls"]
        text += (f"; {calls} tree call{'s' if calls != 1 else ''} down to {facts['keys_shown']:,} "
                 "keys, no previews or TTLs")
        if (rc.get("first_call") or {}).get("median") is not None and calls > 1:
            text += f" (the first, `{facts['calls'][0]['prefix']}`: {_time(rc['first_call']['median'])})"
    if rc.get("store_commands") is not None:
        text += f"; {rc['store_commands']:,} cmds"
    return text


def markdown(results: dict[str, Any]) -> str:
    """The tables: pages beside their floor (and Redis Commander), the index check, the load."""
    targets = list(results["targets"])
    labels = {name: results["targets"][name]["label"] for name in targets}
    lines: list[str] = []
    figures = results["figures"]
    pages = [(name, f) for name, f in figures.items() if f.get("kind") == "page"]
    rc_meta = results["meta"].get("redis_commander") or {}
    with_rc = [name for name in targets
               if any("redis_commander" in f["targets"].get(name, {}) for _n, f in pages)]
    if pages:
        head = ["figure"]
        for name in targets:
            head += [f"{labels[name]}: page", "raw floor", "store round trips"]
            if name in with_rc:
                head.append(f"Redis Commander {rc_meta.get('version', '')} on the same "
                            f"{'cluster' if name == 'redis-cluster' else 'server'}")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _name, figure in pages:
            row = [figure["title"]]
            for name in targets:
                cell = figure["targets"].get(name, {})
                row += [_span(cell.get("page", {})), _span(cell.get("floor", {})), _trips(cell)]
                if name in with_rc:
                    row.append(_commander(cell))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        if with_rc:
            lines += [
                f"Redis Commander {rc_meta.get('version')} (npm `redis-commander`, node "
                f"{rc_meta.get('node')}, its defaults: SCAN with COUNT 100), asked over HTTP what "
                "its UI asks. Key page: `GET /apiv2/key/<connection>/<key>` (JSON; its UI renders "
                "it in the browser). First browse page: `GET /apiv2/keystree/<connection>/<prefix>` "
                "for the service's folder, then for its first sub-folder at each level until a "
                "level holds keys only (`orders:` → `order:` → `2025:`); each call SCANs every key "
                "of the store and sends `TYPE` for each key it shows; it has no pages. "
                "\"dashboard page N×\": the dashboard's page time over Redis Commander's "
                "(medians); cmds: the commands it sent to Redis (INFO commandstats).", ""]
    check = figures.get("index_check")
    if check:
        lines += [f"Index check of one {check['keys']:,}-key service (child process):", ""]
        head = ["target", "check", "raw floor", "round trips", "peak RSS (growth during check)",
                "floor peak RSS"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in targets:
            cell = check["targets"].get(name)
            if not cell:
                continue
            lines.append("| " + " | ".join([
                labels[name], _span(cell["check"]), _span(cell["floor"]), _trips(cell),
                f"{cell['peak_rss_mib']['median']:.0f} MiB (+{cell['growth_mib']['median']:.0f} MiB)",
                f"{cell['floor_peak_rss_mib']['median']:.0f} MiB",
            ]) + " |")
        lines.append("")
    load = figures.get("load")
    if load:
        any_cell = next(iter(load["targets"].values()), None)
        if any_cell:
            g = any_cell["gunicorn"]
            lines += [f"{any_cell['clients']} concurrent clients for {any_cell['seconds']:.0f} s on "
                      f"gunicorn ({g['workers']} workers × {g['threads']} threads, the Dockerfile's "
                      "CMD); mix: key 40%, browse 40%, services 10%, mget 100 10%:", ""]
        head = ["target", "requests", "req/s", "p50", "p95", "p99", "errors",
                "CPU: dashboard / store / clients"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in targets:
            cell = load["targets"].get(name)
            if not cell:
                continue
            lines.append("| " + " | ".join([
                labels[name], f"{cell['requests']:,}", f"{cell['req_per_s']:.0f}",
                _time(cell["p50_ms"] / 1000), _time(cell["p95_ms"] / 1000),
                _time(cell["p99_ms"] / 1000),
                f"{cell['errors']} (+{cell['gunicorn'].get('server_errors', 0)} logged)",
                f"{cell['gunicorn']['cpu_s']:.1f} s ({cell['dashboard_cpu_ms_per_request']:.1f} ms a "
                f"request; by process {_split(cell['gunicorn'])}) / {_cpu(cell.get('store_cpu_s'))} / "
                f"{_cpu(cell.get('client_cpu_s'))}",
            ]) + " |")
        lines.append("")
    return "\n".join(lines)


def header(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m = meta["machine"]
    dirty = " with uncommitted changes" if m["app_uncommitted_changes"] else ""
    seeded = ", ".join(f"{t['label']} {t['keys_written']:,} keys in {t['seed_seconds']:.0f} s"
                       for t in results["targets"].values())
    rc = meta.get("redis_commander")
    if rc and rc.get("targets"):
        beside = (f" Beside the Redis targets: Redis Commander {rc['version']} (npm "
                  f"`{rc['package']}`, node {rc.get('node')}).")
    elif rc:
        beside = f" Redis Commander {rc['version']}: not measured ({rc.get('skipped', 'failed')})."
    else:
        beside = ""
    return (
        f"Measured {meta['started']} with `{meta['command']}` ({meta['duration_s']:.0f} s in all) "
        f"on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Python "
        f"{m['python']}, {m['redis_server'].split(' sha=')[0] if m['redis_server'] else ''}; "
        f"app at {m['commit']}{dirty}. N = {meta['keys']:,}; seeded: {seeded}. "
        f"Times are medians (min–max) of {meta['runs']} interleaved runs unless a cell says "
        f"otherwise.{beside}\n"
    )


def write_readme(results: dict[str, Any], readme: Path = README) -> None:
    """Replace the text between the results markers of bench/README.md."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise RuntimeError(f"{readme} has no {BEGIN} … {END} section")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{header(results)}\n{markdown(results)}\n{END}{after}")
