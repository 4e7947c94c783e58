"""What every ``toska-kv`` command module shares: errors, settings, prompts, key lists.

Its own module so that ``cli.py`` and the command modules it loads (``cli_transfer``)
share one ``CommandError`` also when run as ``python -m dashboard.main``.

``Dashboard:ReadOnly`` holds for the command line as for the web: every ``Command`` says
whether it writes to the configured store (``writes``, no default), and ``settings_from``
refuses a writing command under read-only settings, before it touches the store. ``main``
loads the settings of every writing command through it before running the command, so a
writing command cannot skip the check.

``--store URL`` and ``--token-file PATH`` (every command, before or after its name) are
applied here too, as settings overrides over appsettings.json and the environment
(``store_overrides``): ``http(s)://`` is a ToskaStore, ``redis(s)://`` a Redis.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from dashboard.settings.errors import mask_url
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


#: ``--store`` URL scheme → the ``Mesh:KeyValue:Provider`` it selects
STORE_SCHEMES = {"http": "ToskaStore", "https": "ToskaStore", "redis": "Redis", "rediss": "Redis"}


def _read_token_file(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CommandError(f"cannot read --token-file {path}: {reason}") from None
    if not token or "\n" in token:
        raise CommandError(f"--token-file {path} must hold one token on one line")
    return token


def store_overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    """The settings ``--store URL`` and ``--token-file PATH`` stand for, shaped like
    appsettings.json (``load_settings``'s ``overrides``); None when neither is given.

    ``http(s)://``: ``Mesh:KeyValue:Provider=ToskaStore`` and its ``BaseUrl``; the token
    from ``--token-file``, else ``Mesh__KeyValue__ToskaStore__AuthToken`` as configured.
    ``redis(s)://``: ``Provider=Redis`` and the URL as ``Redis:ConnectionString``, with
    ``--token-file`` as the password. Another scheme: ``CommandError`` (exit 2).
    """
    url = getattr(args, "store", None)
    token_file = getattr(args, "token_file", None)
    if url is None and token_file is None:
        return None
    token = _read_token_file(token_file) if token_file is not None else None
    if url is None:  # a token for the configured ToskaStore
        return {"Mesh": {"KeyValue": {"ToskaStore": {"AuthToken": token}}}}
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    provider = STORE_SCHEMES.get(parts.scheme.lower()) if parts else None
    if parts is None or provider is None or not parts.hostname:
        raise CommandError(f"--store {mask_url(url)}: not a store URL; use http(s)://HOST:PORT "
                           "(ToskaStore) or redis(s)://HOST:PORT[/DB] (Redis)")
    key_value: dict[str, Any] = {"Provider": provider}
    if provider == "ToskaStore":
        key_value["ToskaStore"] = {"BaseUrl": url}
        if token is not None:
            key_value["ToskaStore"]["AuthToken"] = token
    else:
        if token is not None:
            if parts.password is not None:
                raise CommandError("--store names a Redis password and so does --token-file: "
                                   "give one of them")
            user = parts.username or ""
            netloc = f"{user}:{quote(token, safe='')}@{parts.netloc.rpartition('@')[2]}"
            url = parts._replace(netloc=netloc).geturl()
        key_value["Redis"] = {"ConnectionString": url}
    return {"Mesh": {"KeyValue": key_value}}


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from ``--config`` (else ``$DASHBOARD_APPSETTINGS``), the environment and
    ``--store``/``--token-file`` (``store_overrides``), loaded once per command; a command
    that writes is refused here under read-only.

    Warnings (e.g. an unknown provider name, read as Redis like the mesh does) go to stderr.
    """
    settings = getattr(args, _SETTINGS_ATTR, None)
    if settings is None:
        settings = load_settings(getattr(args, "config", None), overrides=store_overrides(args))
        for warning in settings.warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        setattr(args, _SETTINGS_ATTR, settings)
    if getattr(args, WRITES_ATTR, True):  # unknown: a command parsed elsewhere may write
        refuse_read_only(settings, getattr(args, "command", None) or "this command")
    from dashboard.cli import audit as cli_audit

    cli_audit.use(settings)  # its audit entries' journal (audit_to_stderr)
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


#: ``--actor``: who a command's writes are made for, beside the OS user
_acting_for: str | None = None


@contextmanager
def acting_as(name: str | None) -> Iterator[None]:
    """The writes inside the block name ``name`` (``--actor``) beside the OS user."""
    global _acting_for
    before, _acting_for = _acting_for, (" ".join(name.split()) or None) if name else None
    try:
        yield
    finally:
        _acting_for = before


def actor() -> str:
    """Who the audit trail names for a command-line write: ``cli:<OS user>``, and
    ``as <name>`` when ``--actor`` names someone."""
    try:
        who = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        who = "cli"
    return f"{who} as {_acting_for}" if _acting_for else who


@contextmanager
def audit_to_stderr() -> Iterator[None]:
    """Audit lines on stderr while a command writes (a CronJob's or an operator's log
    keeps stderr), and its entries on the shared journal (``/audit``) when
    ``Dashboard:SessionStorage`` is a Redis (``cli.audit``)."""
    from dashboard.cli import audit as cli_audit

    audit = logging.getLogger("dashboard.audit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("audit: %(message)s"))
    handler.setLevel(logging.INFO)
    level = audit.level
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    try:
        with cli_audit.journaled():
            yield
    finally:
        audit.removeHandler(handler)
        audit.setLevel(level)
