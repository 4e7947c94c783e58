"""What every ``toska-kv`` command module shares: errors, settings, prompts, key lists.

Its own module so that ``cli.py`` and the command modules it loads (``cli_transfer``)
share one ``CommandError`` also when run as ``python -m dashboard.main``.

``Dashboard:ReadOnly`` holds for the command line as for the web: every ``Command`` says
whether it writes to the configured store (``writes``, no default), and ``settings_from``
refuses a writing command under read-only settings, before it touches the store. ``main``
loads the settings of every writing command through it before running the command, so a
writing command cannot skip the check.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dashboard.settings.load import load_settings
from dashboard.settings.model import Settings

PROG = "toska-kv"
#: exit status for configuration, store and usage errors (argparse uses 2 as well)
EXIT_ERROR = 2
#: items of each kind a human-readable plan or result lists before "... and N more"
SHOWN = 50


class CommandError(Exception):
    """A failure the command reports as one line, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, how to add its arguments, and what runs it.

    ``writes`` (required): whether it writes to the configured store. A writing command is
    refused under ``Dashboard:ReadOnly``; one that writes only a store of its own (``demo``,
    ``devstore``) does not write in this sense.
    """

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    writes: bool = field(kw_only=True)


#: the ``argparse.Namespace`` attributes ``build_parser`` and ``settings_from`` keep
WRITES_ATTR = "_command_writes"
_SETTINGS_ATTR = "_command_settings"


def refuse_read_only(settings: Settings, command: str) -> None:
    """``CommandError`` (exit 2, one line naming the setting) when ``Dashboard:ReadOnly``."""
    if settings.dashboard.read_only:
        raise CommandError(
            f"Dashboard__ReadOnly is true: `{PROG} {command}` writes to the store, and "
            "read-only refuses every write, from the web and the command line alike; "
            "nothing was written")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (else ``$DASHBOARD_APPSETTINGS``) and the environment,
    loaded once per command; a command that writes is refused here under read-only.

    Warnings (e.g. an unknown provider name, read as Redis like the mesh does) go to stderr.
    """
    settings = getattr(args, _SETTINGS_ATTR, None)
    if settings is None:
        settings = load_settings(getattr(args, "config", None))
        for warning in settings.warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        setattr(args, _SETTINGS_ATTR, settings)
    if getattr(args, WRITES_ATTR, True):  # unknown: a command parsed elsewhere may write
        refuse_read_only(settings, getattr(args, "command", None) or "this command")
    return settings


def print_list(title: str, rows: list[str], out, *, sign: str = "") -> None:
    """``title (N):`` then at most ``SHOWN`` rows, each indented (after ``sign``); an
    empty list prints nothing."""
    if not rows:
        return
    print(f"{title} ({len(rows)}):", file=out)
    lead = f"  {sign} " if sign else "  "
    for row in rows[:SHOWN]:
        print(f"{lead}{row}", file=out)
    if len(rows) > SHOWN:
        print(f"  ... and {len(rows) - SHOWN} more", file=out)


def ask(question: str, out) -> str:
    print(question, end=" ", file=out, flush=True)
    return sys.stdin.readline().strip()


def actor() -> str:
    """Who the audit trail names for a command-line write."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


@contextmanager
def audit_to_stderr() -> Iterator[None]:
    """Audit lines on stderr while a command writes: the CLI has no journal, and a
    CronJob's or an operator's log keeps stderr."""
    audit = logging.getLogger("dashboard.audit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("audit: %(message)s"))
    handler.setLevel(logging.INFO)
    level = audit.level
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    try:
        yield
    finally:
        audit.removeHandler(handler)
        audit.setLevel(level)
