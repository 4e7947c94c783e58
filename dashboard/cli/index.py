"""``toska-kv check-index`` and ``toska-kv repair-index``: the web's index check and repair.

check-index exits 0 (every index consistent), 1 (drift) or 2 (bad settings, an unreachable
store, no such service); repair-index 0 (repaired), 1 (a change the repair had undone, said
on stderr) or 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime

from dashboard.cli.common import (
    Command,
    CommandError,
    actor,
    ask,
    audit_to_stderr,
    print_list,
    settings_from,
)
from dashboard.settings.model import Settings

#: keys of each kind printed by the human-readable check and repair output
SHOWN_KEYS = 50
#: exit status when drift was found (0: every index consistent)
EXIT_DRIFT = 1


def _services_from(args: argparse.Namespace, settings: Settings, provider) -> list:
    from dashboard import mesh

    if not getattr(args, "service", None):
        return mesh.services_with_index(provider, settings)
    services: dict[str, mesh.Service] = {}
    for given in args.service:
        if given.strip(mesh.SEPARATOR).strip() == "":
            raise CommandError(f"not a usable service prefix: {given!r}")
        service = mesh.service_for_prefix(settings, given)
        services.setdefault(service.prefix, service)
    return list(services.values())


def _configure_check_index(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--service", action="append", metavar="PREFIX",
        help="check this service prefix (repeatable); the index key comes from "
        "Dashboard:Services, else Mesh:KeyValue:ToskaStore:KeyIndexKey",
    )
    which.add_argument(
        "--all", action="store_true",
        help="check every service that has an index (the default)",
    )
    parser.add_argument("--json", action="store_true", help='print {"services": [...]} as JSON')
    parser.add_argument(
        "--strict", action="store_true",
        help="duplicate index entries count as drift too (by default they are reported as "
        "harmless: the runtime de-duplicates the index and its next write drops them)",
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [i >= 2 and h != "MALFORMED" for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _print_reports(reports: list) -> None:
    headers = ["SERVICE", "INDEX KEY", "INDEXED", "LIVE", "STALE", "UNINDEXED", "DUPLICATES",
               "MALFORMED", "SECONDS"]
    rows = []
    for r in reports:
        problem = "-" if r.malformed is None else (
            "missing" if r.malformed.startswith("missing:") else "yes")
        rows.append([
            r.service.prefix, r.service.index_full_key, str(r.indexed), str(r.live),
            str(len(r.stale)),
            str(len(r.unindexed)) + ("" if r.unindexed_detectable else "?"),
            str(len(r.duplicates)), problem, f"{r.seconds:.2f}",
        ])
    _print_table(headers, rows)
    for r in reports:
        details = []
        if r.malformed:
            details.append(f"malformed: {r.malformed}")
        for label, keys in (("stale", r.stale), ("unindexed", r.unindexed),
                            ("duplicates", r.duplicates)):
            if keys:
                details.append(f"{label}: {_some(keys)}")
        if r.listing_note:
            details.append(f"note: {r.listing_note}")
        for detail in details:
            print(f"{r.service.prefix} {detail}")
    drifted = sum(not r.consistent for r in reports)
    doubled = sum(bool(r.duplicates) for r in reports)
    harmless = (f"; {doubled} with duplicate entries (harmless: the runtime's next write "
                "removes them)") if doubled else ""
    print(f"{len(reports)} service(s) checked, {drifted} with drift"
          + ("" if drifted or doubled else ": every index is consistent") + harmless)


def _run_check_index(args: argparse.Namespace) -> int:
    from dashboard import mesh
    from dashboard.mesh import open_store

    settings = settings_from(args)
    provider = open_store(settings)
    try:
        services = _services_from(args, settings, provider)
        if not services and not provider.capabilities().key_listing:
            raise CommandError(
                "this store cannot list keys, so services with an index cannot be found: "
                "configure Dashboard:Services or pass --service"
            )
        reports = []
        for service in services:
            try:
                reports.append(mesh.check_index(provider, service))
            except (mesh.NoSuchService, mesh.NoIndex):
                if args.service:
                    raise  # asked for by name: a typo or a service without an index
                # listed a moment ago, its index is gone now: nothing left to compare
    finally:
        provider.close()
    if args.json:
        print(json.dumps({"services": [r.to_json() for r in reports]}, ensure_ascii=False,
                         indent=2))
    elif not reports:
        print("no service with a key index found")
    else:
        _print_reports(reports)
    fine = (lambda r: r.strictly_consistent) if args.strict else (lambda r: r.consistent)
    return 0 if all(fine(r) for r in reports) else EXIT_DRIFT


# --------------------------------------------------------------------------- repair-index


def _configure_repair_index(parser: argparse.ArgumentParser) -> None:
    from dashboard.mesh import ACTIONS

    parser.add_argument("--service", required=True, metavar="PREFIX",
                        help="the service prefix whose index to repair")
    parser.add_argument(
        "--action", required=True, choices=ACTIONS,
        help="add-unindexed: list live keys the index misses; prune-stale: drop entries "
        "that are not live; dedupe: drop repeated entries; rebuild: the live keys, sorted",
    )
    parser.add_argument("--yes", action="store_true", help="apply without asking")
    parser.add_argument(
        "--i-understand-concurrent-writers", action="store_true",
        help="also needed with --yes on a store that ignores conditional writes "
        "(ToskaStore 0.8 and v0.9.1): concurrent writers cannot be detected",
    )
    parser.add_argument(
        "--backup", metavar="PATH",
        help="save the previous index value here "
        "(default ./<prefix><index key>.<UTC timestamp>.json)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan and result as JSON")


def default_backup_path(service, when: datetime | None = None) -> str:
    """``./<prefix without ':'><index key>.<UTC timestamp>.json``, safe as a file name."""
    when = when or datetime.now(UTC)
    stem = re.sub(r"[^\w.-]", "_", service.prefix.rstrip(":") + service.index_key)
    return f"./{stem}.{when:%Y%m%dT%H%M%SZ}.json"



def _print_plan(plan, out) -> None:
    r = plan.report
    print(f"Repair {r.service.index_full_key} ({plan.action}): indexed {r.indexed}, live {r.live}, "
          f"stale {len(r.stale)}, unindexed {len(r.unindexed)}, duplicates {len(r.duplicates)}"
          + (f"; malformed: {r.malformed}" if r.malformed else ""), file=out)
    print_list("Adds", plan.add, out, sign="+")
    print_list("Removes" if plan.action != "dedupe" else "De-duplicates", plan.remove, out,
               sign="-")



def _confirm(args: argparse.Namespace, plan, atomic: bool, out) -> None:
    """Raise ``CommandError`` unless the operator confirmed the repair."""
    flags_ok = args.yes and (atomic or args.i_understand_concurrent_writers)
    if flags_ok:
        if not atomic:
            print("warning: this store cannot detect concurrent writers; proceeding as asked "
                  "by --i-understand-concurrent-writers", file=sys.stderr)
        return
    if not sys.stdin.isatty():
        needed = "--yes" if atomic else "--yes --i-understand-concurrent-writers"
        raise CommandError(f"not repairing: stdin is not a terminal to confirm on; pass {needed}")
    if not args.yes and ask("Apply this repair? [y/N]", out).lower() not in ("y", "yes"):
        raise CommandError("aborted: the index was not changed", EXIT_DRIFT)
    if not atomic:
        print("WARNING: this store ignores conditional writes (ToskaStore 0.8 and v0.9.1), so it "
              "cannot detect concurrent writers: a mesh service updating the index during the "
              "repair may lose its update.", file=out)
        prefix = plan.report.service.prefix
        if ask(f"Type the service prefix {prefix!r} to repair anyway:", out) != prefix:
            raise CommandError("aborted: the index was not changed", EXIT_DRIFT)


def _run_repair_index(args: argparse.Namespace) -> int:
    from dashboard import mesh
    from dashboard.mesh import open_store

    settings = settings_from(args)
    if args.service.strip(mesh.SEPARATOR).strip() == "":
        raise CommandError(f"not a usable service prefix: {args.service!r}")
    service = mesh.service_for_prefix(settings, args.service)
    out = sys.stderr if args.json else sys.stdout
    provider = open_store(settings)
    with audit_to_stderr():
        try:
            result, summary = _repair(args, provider, service, out)
        finally:
            provider.close()
    if result is None:
        return 0
    summary["result"] = result.to_json()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        saved = (f"; the previous index is saved in {summary['backup']}" if summary["backup"]
                 else "")
        print(f"Repaired {service.index_full_key}: added {len(result.added)}, removed "
              f"{len(result.removed)} key(s) in {result.attempts} write attempt(s){saved}.")
    if result.undone:
        print(f"warning: right after the repair a mesh service rewrote the index from what it had "
              f"read before; {len(result.undone)} change(s) are undone ({_some(result.undone)}). "
              "Check again.", file=sys.stderr)
        return EXIT_DRIFT
    return 0


def _repair(args: argparse.Namespace, provider, service, out):
    """Plan, confirm, back up and apply; (result, summary), result None when nothing to do."""
    from dashboard import mesh

    plan = mesh.plan_repair(provider, service, args.action)
    atomic = mesh.repair_is_atomic(provider)
    summary: dict = {"plan": plan.to_json(), "atomic": atomic, "result": None, "backup": None}
    if not args.json:  # the JSON document carries the plan
        _print_plan(plan, out)
    if not plan.changes:
        if args.json:
            print(json.dumps(summary, ensure_ascii=False, indent=2))
        else:
            print("Nothing to repair: the index already matches.")
        return None, summary
    _confirm(args, plan, atomic, out)
    backup = args.backup or default_backup_path(service)

    def save_backup(previous: str | None) -> None:
        if previous is None:
            return
        try:
            with open(backup, "w", encoding="utf-8", errors="surrogateescape") as file:
                file.write(previous)
        except OSError as exc:
            raise CommandError(
                f"cannot write the backup {backup}: {exc.strerror or exc}; "
                "the index was not changed"
            ) from None
        summary["backup"] = backup

    return mesh.apply_repair(provider, plan, actor=actor(), before_write=save_backup), summary


#: name -> ``Command``, plugged into ``cli.COMMANDS``
SUBCOMMANDS = {
    "check-index": Command("compare each service's key index with its live keys (exit 1 on "
                           "drift)", _configure_check_index, _run_check_index, writes=False),
    "repair-index": Command("repair one service's key index (compare-and-swap, keeps a "
                            "backup)", _configure_repair_index, _run_repair_index,
                            writes=True),
}
