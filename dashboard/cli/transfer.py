"""``toska-kv export`` and ``toska-kv import``: a prefix to JSON Lines and back (``transfer``).

Exit statuses: export 0 (every key written), 1 (incomplete: the store listed only part of
the prefix (a legacy server's cap) or failed after some keys; the file then ends with its
end marker line, ``{"incomplete": true, ...}``), 2 (bad settings, unreachable store,
unwritable file, or no key under the prefix: "no keys under 'profile:' (did you mean
'profiles:'?)", and no file is written; ``--allow-empty`` writes the empty file, exit 0);
import 0 (all planned keys written, or nothing to do), 1 (partial: a store error, a
conflict or a refusal of create-only; the output lists exactly which keys were written,
which were not and which are unknown), 2 (invalid file, nothing written; bad settings or an
unreachable store).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any

from dashboard.cli.common import (
    EXIT_ERROR,
    CommandError,
    actor,
    ask,
    audit_to_stderr,
    print_list,
    settings_from,
)

EXIT_PARTIAL = 1
#: at most one progress line per this many seconds
PROGRESS_SECONDS = 1.0


# --------------------------------------------------------------------------- export


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", required=True,
                        help="export every key starting with this (e.g. profiles:)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write the JSON Lines here (default: stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--allow-empty", action="store_true",
                        help="a prefix with no keys writes an empty file and exits 0 (by "
                        "default: exit 2, no file written)")


def _run_export(args: argparse.Namespace) -> int:
    from dashboard.mesh import open_store
    from dashboard.mesh.transfer import ExportStats, NothingToExport, export_lines

    settings = settings_from(args)
    provider = open_store(settings)
    stats = ExportStats()
    last = [time.monotonic()]

    def progress(now: ExportStats) -> None:
        if not args.quiet and time.monotonic() - last[0] >= PROGRESS_SECONDS:
            last[0] = time.monotonic()
            print(f"exported {now.keys} key(s) so far ({now.pages} page(s))...", file=sys.stderr,
                  flush=True)

    try:
        lines = export_lines(provider, args.prefix, stats=stats, on_page=progress,
                             settings=settings, allow_empty=args.allow_empty)
        try:  # the first line before the file: an empty prefix or a store error writes none
            first = list(itertools.islice(lines, 1))
        except NothingToExport as error:
            raise CommandError(str(error)) from None
        out = _open_output(args.output)
        try:
            for line in itertools.chain(first, lines):
                out.write(line)
        except BaseException:
            if args.output:
                print(f"{args.output} holds only the first {stats.keys} key(s), without the "
                      "end marker of an incomplete export", file=sys.stderr)
            raise
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
    finally:
        provider.close()
    where = args.output or "stdout"
    if not args.quiet:
        print(f"exported {stats.keys} key(s) under {args.prefix!r} to {where}", file=sys.stderr)
    if not stats.keys:
        print(f"{where} is empty: no keys under {args.prefix!r} (--allow-empty)",
              file=sys.stderr)
    if not stats.complete:
        print(f"warning: the export of {args.prefix!r} is incomplete: {stats.reason()}; "
              f"{where} ends with a line saying so", file=sys.stderr)
        return EXIT_PARTIAL
    return 0


def _open_output(path: str | None) -> Any:

    if not path:
        return sys.stdout.buffer
    try:
        return open(path, "wb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- import


def _configure_import(parser: argparse.ArgumentParser) -> None:
    from dashboard.mesh.transfer import MODES, TTL_POLICIES

    parser.add_argument("file", help="a JSON Lines export ('-' reads stdin)")
    parser.add_argument(
        "--mode", choices=MODES, default="create-only",
        help="create-only: refuse if a key exists with another value (default); "
        "skip-existing: leave existing keys alone; overwrite: replace them")
    parser.add_argument(
        "--ttl", choices=TTL_POLICIES, default="expiry",
        help="expiry: keys expire when they would have (expired ones are skipped; default); "
        "restart: each key gets its exported TTL counted from now")
    parser.add_argument("--yes", action="store_true", help="import without asking")
    parser.add_argument("--json", action="store_true", help="print the plan and result as JSON")


def _read_file(path: str, limit: int) -> bytes:

    try:
        if path == "-":
            return sys.stdin.buffer.read(limit + 1)
        with open(path, "rb") as file:
            return file.read(limit + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None



def print_plan(plan, out) -> None:
    counts = plan.counts
    print(f"Import plan ({plan.mode}, TTL {plan.ttl_policy}): " + ", ".join(
        f"{counts[name]} {name}" for name in ("new", "changed", "unchanged", "skipped",
                                             "blocked", "invalid")), file=out)
    if plan.incomplete is not None:
        print(f"warning: {plan.incomplete.sentence()}.", file=out)
    print_list("invalid lines", [f"line {b.line}: {b.message}" for b in plan.invalid], out)
    for action in ("new", "changed", "skipped", "blocked"):
        print_list(action, [f"line {k.line}: {k.key!r}" + (f" ({k.note})" if k.note else "")
                         for k in plan.of(action)], out)


def print_result(result, out) -> None:
    print(result.summary() + ("" if result.complete else " The import did NOT complete:"),
          file=out)
    if result.failed:
        print(f"  not written (failed): {result.failed[0]!r}: {result.failed[1]}", file=out)
    if result.unconfirmed:
        print(f"  unknown (may or may not be written): {result.unconfirmed[0]!r}: "
              f"{result.unconfirmed[1]}", file=out)
    print_list("written", [repr(k) for k in result.written], out)
    print_list("not written: changed meanwhile", [f"{k!r}: {r}" for k, r in result.conflicts], out)
    print_list("skipped", [f"{k!r}: {r}" for k, r in result.skipped], out)
    print_list("not written: not attempted (after the stop)",
               [repr(k) for k in result.not_attempted], out)
    for line in result.index:
        print(line, file=out)



def _run_import(args: argparse.Namespace) -> int:
    from dashboard.mesh import open_store
    from dashboard.mesh.transfer import TooBig, apply, make_plan, parse
    from dashboard.mesh.transfer.import_apply import audit_hooks

    settings = settings_from(args)
    limit = settings.dashboard.max_import_bytes
    data = _read_file(args.file, limit)
    try:
        parsed = parse(data, max_bytes=limit)
    except TooBig as exc:
        raise CommandError(str(exc)) from None
    out = sys.stderr if args.json else sys.stdout
    provider = open_store(settings)
    summary: dict[str, Any] = {"plan": None, "result": None}
    try:
        plan = make_plan(provider, settings, parsed, mode=args.mode, ttl_policy=args.ttl)
        summary["plan"] = plan.to_json()
        if not args.json:
            print_plan(plan, out)
        if plan.invalid:
            _emit(args, summary)
            raise CommandError(f"{args.file}: {plan.refused}", EXIT_ERROR)
        if plan.refused:
            _emit(args, summary)
            raise CommandError(plan.refused, EXIT_PARTIAL)
        if not plan.writes:
            _emit(args, summary)
            if not args.json:
                print("Nothing to write.", file=out)
            return 0
        _confirm(args, plan, out)
        written, unconfirmed = audit_hooks(actor())
        with audit_to_stderr():
            result = apply(provider, settings, plan, audit=written, unconfirmed=unconfirmed)
    finally:
        provider.close()
    summary["result"] = result.to_json()
    if args.json:
        _emit(args, summary)
    else:
        print_result(result, out)
    return 0 if result.complete else EXIT_PARTIAL


def _emit(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))


def _confirm(args: argparse.Namespace, plan, out) -> None:

    if args.yes:
        return
    if not sys.stdin.isatty() or args.file == "-":
        raise CommandError("not importing: stdin is not a terminal to confirm on; pass --yes")
    counts = plan.counts
    question = f"Write {counts['new']} new and {counts['changed']} changed key(s)? [y/N]"
    if ask(question, out).lower() not in ("y", "yes"):
        raise CommandError("aborted: nothing was written", EXIT_PARTIAL)


#: name -> (help, configure, run): ``cli.COMMANDS`` makes them ``Command``s
SUBCOMMANDS = {
    "export": ("export every key under a prefix, with TTLs, as JSON Lines", _configure_export,
               _run_export),
    "import": ("import a JSON Lines export (plan, confirm, then write; exit 1 partial, "
               "2 invalid)", _configure_import, _run_import),
}
