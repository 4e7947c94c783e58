"""``toska-kv history KEY`` and ``toska-kv revert ID``: a key's audit timeline, and the undo
of one entry, from the journal the settings name (``mesh.audit_journal``), as on the web.

``revert`` writes only when the key is still as the entry left it; ``--force`` restores
over a change made since (after showing it and asking, or with ``--yes``).
"""

from __future__ import annotations

import argparse
import json
import sys

from dashboard.cli.common import (
    Command,
    CommandError,
    actor,
    ask,
    audit_to_stderr,
    settings_from,
)
from dashboard.mesh.audit_journal import AuditQuery, JournalUnavailable, make_journal

#: nothing was undone (the key changed since, or the operator said no): as import's exit 1
EXIT_NOT_UNDONE = 1

HISTORY_MAX = 200


def _from_trail(settings, read):
    """``read(journal)`` on the trail the settings name, opened for it and closed after;
    a trail that cannot be opened or does not answer is one ``CommandError``."""
    try:
        journal = make_journal(settings)
    except JournalUnavailable as error:
        raise CommandError(f"the audit trail cannot be opened: {error}") from None
    try:
        return read(journal)
    except JournalUnavailable as error:
        raise CommandError(f"the audit trail did not answer: {error}") from None
    finally:
        journal.close()


def _configure_history(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", help="the full key")
    parser.add_argument("--json", action="store_true",
                        help="print the entries as JSON Lines, newest first")


def _run_history(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    entries = _from_trail(settings, lambda journal: journal.query(
        AuditQuery(key=args.key), 0, HISTORY_MAX).entries)
    for entry in entries:
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
            continue
        versions = f"{_v(entry.get('old_version'))} -> {_v(entry.get('new_version'))}"
        reason = f"  reason: {entry['reason']}" if entry.get("reason") else ""
        print(f"{entry.get('time', '')[:19]}  {entry['id']}  {entry.get('action'):<8} "
              f"{entry.get('operator')}  {versions}  {entry.get('outcome')}{reason}")
    if not entries and not args.json:
        print(f"no change of {args.key!r} is on the audit trail", file=sys.stderr)
    return 0


def _v(version) -> str:
    return "-" if version is None else f"v{version}"


def _configure_revert(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the audit entry to undo (toska-kv history KEY "
                       "lists them)")
    which.add_argument("--job", help="undo a whole import or repair, key by key")
    parser.add_argument("--yes", action="store_true", help="do not ask before writing")
    parser.add_argument("--force", action="store_true",
                        help="restore even if the key changed since the entry")


def _run_revert(args: argparse.Namespace) -> int:
    if args.job:
        return _run_revert_job(args)
    from dashboard.mesh import open_store, revert

    settings = settings_from(args)
    entry = _from_trail(settings, lambda journal: journal.get(args.id))
    if entry is None:
        raise CommandError(f"no audit entry {args.id!r} (it may be past the retention)")
    provider = open_store(settings)
    try:
        plan = revert.plan_revert(provider, entry)
        print(plan.describe())
        if not plan.safe and not args.force:
            print(f"now: {plan.current.value if plan.current else '(no key)'}", file=sys.stderr)
            raise CommandError("not undone: pass --force to restore anyway", EXIT_NOT_UNDONE)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError("not undoing: stdin is not a terminal to confirm on; "
                                   "pass --yes")
            if ask(f"Undo {entry['action']} of {plan.key!r}? [y/N]", sys.stdout).lower() \
                    not in ("y", "yes"):
                raise CommandError("aborted: nothing was written", EXIT_NOT_UNDONE)
        with audit_to_stderr():
            revert.apply_revert(provider, settings, plan, operator=actor(), force=args.force)
    except revert.CannotRevert as error:
        raise CommandError(f"cannot undo: {error.message}") from None
    finally:
        provider.close()
    print(f"undone: {plan.key}")
    return 0


def _run_revert_job(args: argparse.Namespace) -> int:
    from dashboard.mesh import open_store, revert

    settings = settings_from(args)
    entries = _from_trail(settings, lambda journal: list(
        journal.iter_entries(AuditQuery(job=args.job))))
    if not entries:
        raise CommandError(f"no job {args.job!r} on the audit trail")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("not undoing: stdin is not a terminal to confirm on; pass --yes")
        if ask(f"Undo job {args.job} ({len(entries)} entries)? [y/N]", sys.stdout).lower() \
                not in ("y", "yes"):
            raise CommandError("aborted: nothing was written", EXIT_NOT_UNDONE)
    provider = open_store(settings)
    try:
        with audit_to_stderr():
            report = revert.revert_job(provider, settings, args.job, entries, operator=actor())
    finally:
        provider.close()
    for key, outcome, detail in report.results:
        print(f"{outcome:<9} {key}  {detail}")
    totals = report.totals
    print(f"undo job {report.undo_job}: {totals['reverted']} reverted, {totals['changed']} "
          f"changed since, {totals['failed']} failed", file=sys.stderr)
    return 0 if not totals["changed"] and not totals["failed"] else EXIT_NOT_UNDONE


#: name -> ``Command``, plugged into ``cli.COMMANDS``
SUBCOMMANDS = {
    "history": Command("list a key's changes from the audit trail, newest first",
                       _configure_history, _run_history, writes=False),
    "revert": Command("undo one audit entry (only if the key is still as it left it, unless "
                      "--force)", _configure_revert, _run_revert, writes=True),
}
