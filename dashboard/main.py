"""The ``toska-kv`` command: dev store, sample data, password hashes, serve and demo here;
index check and repair in ``cli_index``, export and import in ``cli_transfer``.

Each subcommand is one entry in ``COMMANDS``: a function that adds its arguments, a
handler ``(args) -> exit code`` and whether it writes to the configured store. Configuration
and store failures end as one line on stderr and exit status 2, never a traceback.

``Dashboard:ReadOnly`` refuses every command that writes (``seed``, ``repair-index``,
``import``) with exit 2 before it touches the store (``cli_common.settings_from``). ``demo``
writes only the in-process store it starts: under read-only it still seeds that store, and
serves the dashboard read-only. ``devstore`` serves a store of its own and reads no settings.

``--store URL`` (``http(s)://`` ToskaStore, ``redis(s)://`` Redis) and ``--token-file PATH``
choose the store on the command line, before or after the command's name; they become
settings overrides in ``cli_common.settings_from``. A closed stdout (``toska-kv export ... |
head``) ends the command quietly with exit status 141, as a shell's pipeline would.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import getpass
import logging
import os
import shlex
import sys
from pathlib import Path

from dashboard.cli import common
from dashboard.cli.common import EXIT_ERROR, PROG, WRITES_ATTR, Command, CommandError, settings_from
from dashboard.mesh import audit
from dashboard.settings.errors import ConfigError
from dashboard.settings.load import load_settings
from dashboard.settings.sources import APPSETTINGS_ENV
from dashboard.stores.errors import ProviderError

# --------------------------------------------------------------------------- devstore


def _configure_devstore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port to listen on (4000)")
    parser.add_argument("--token", help="require this bearer token for every request")
    parser.add_argument("--read-token", help="a token that may only read")
    parser.add_argument("--write-token", help="a token that may read and write")
    parser.add_argument(
        "--release", choices=["main", "0.9.1", "0.8"], default=None,
        help="the upstream ToskaStore release to imitate (main)",
    )
    parser.add_argument(
        "--legacy", action="store_true", help="the same as --release 0.8 (the oldest deployed release)"
    )
    parser.add_argument(
        "--no-key-listing", action="store_true",
        help="answer 404 on /kv/keys, as some legacy servers do (only __keys can list)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")


def _run_devstore(args: argparse.Namespace) -> int:
    from dashboard.devstore import serve

    if args.legacy and args.release not in (None, "0.8"):
        print(f"--legacy means --release 0.8, not {args.release}", file=sys.stderr)
        return 2
    _check_port(args.host, args.port)  # one line and exit 2, as serve says it
    try:
        serve(
            host=args.host, port=args.port, token=args.token, read_token=args.read_token,
            write_token=args.write_token, release="0.8" if args.legacy else (args.release or "main"),
            no_key_listing=args.no_key_listing, verbose=args.verbose,
        )
    except ValueError as exc:  # e.g. scoped tokens on a release that has none
        print(f"devstore: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port was taken since the check
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        raise CommandError(f"cannot listen on {args.host}:{args.port}: "
                           f"{exc.strerror or exc} (--host, --port)") from None
    return 0


# --------------------------------------------------------------------------- seed


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text}")
    return value


def _configure_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--services", type=_non_negative, default=5, help="services (5)")
    parser.add_argument(
        "--keys-per-service", type=_non_negative, default=200, help="keys per service (200)"
    )
    parser.add_argument(
        "--drift", type=_percent, default=10, metavar="PCT",
        help="percent of index entries that drift: stale, missing, duplicated (10)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (42)")


def _run_seed(args: argparse.Namespace) -> int:
    from dashboard.cli.common import actor, audit_to_stderr
    from dashboard.mesh import open_store
    from dashboard.mesh.seed import seed

    settings = settings_from(args)
    provider = open_store(settings)
    try:
        with audit_to_stderr():
            audit.before_write()  # a seed the trail cannot record writes nothing
            with audit.in_job():
                report = seed(
                    provider, services=args.services, keys_per_service=args.keys_per_service,
                    drift_pct=args.drift, seed=args.seed,
                    index_key=settings.toskastore.key_index_key,
                )
                # sample data: one entry for the run (its keys are listed per service), not
                # one per key; it cannot be undone from the trail
                audit.bulk("seed", actor(), services=report.services,
                           count=report.keys_written,
                           detail=f"sample data: {report.summary()}", store=provider.name)
    finally:
        provider.close()
    print(f"{provider.name or provider.kind}: {report.summary()}")
    return 0


# --------------------------------------------------------------------------- hash-password


def _configure_hash_password(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "password", nargs="?",
        help="the password (visible in the process list; omit it to be prompted, "
        "or pipe it on stdin)",
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return args.password
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise CommandError("the passwords do not match")
    return first


def _run_hash_password(args: argparse.Namespace) -> int:
    from werkzeug.security import generate_password_hash

    password = _read_password(args)
    if not password:
        raise CommandError("the password is empty")
    print(generate_password_hash(password))
    return 0


# --------------------------------------------------------------------------- serve / demo


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")


def _check_port(host: str, port: int) -> None:
    """One line, not werkzeug's two and exit 1, when the port is taken (or not this host's)."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                               "(another program uses it? choose --port)") from None


def _serve_app(app, host: str, port: int, banner: list[str]) -> None:
    """Serve with werkzeug's threaded server: for a laptop or a port-forward, not the image."""
    from werkzeug.serving import make_server

    _check_port(host, port)
    try:
        server = make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as exc:  # werkzeug exits on a port taken since the check
        reason = getattr(exc, "strerror", None) or "address already in use"
        raise CommandError(f"cannot listen on {host}:{port}: {reason} (--host, --port)") from None
    # the app logs one line per request itself (web/logs.py): werkzeug's own access line
    # beside it would say each request twice, in another format
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    base = app.config["KV_SETTINGS"].dashboard.path_base
    print(f"ToskaMesh KV dashboard on http://{host}:{server.server_port}{base}/", flush=True)
    for line in banner:
        print(line, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _run_serve(args: argparse.Namespace) -> int:
    from dashboard.web.app import create_app
    from dashboard.web.startup import refuse_broken_setup

    settings = settings_from(args)
    refuse_broken_setup(settings)  # nobody could log in: one line naming the setting
    app = create_app({"KV_SETTINGS": settings})
    _serve_app(app, args.host, args.port, [f"store: {app.extensions['kv_provider'].name}"])
    return 0


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    _configure_serve(parser)
    parser.add_argument("--services", type=_non_negative, default=6, help="services (6)")
    parser.add_argument(
        "--keys-per-service", type=_non_negative, default=400, help="keys per service (400)"
    )


def _this_command() -> str:
    """How to run this ``toska-kv`` again, from any directory and without an activated
    virtualenv: the script that runs now, else the one beside this interpreter, else
    ``python -m dashboard.main``."""
    here = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if here is not None and here.name == PROG and here.is_file():
        return shlex.quote(str(here.absolute()))
    beside = Path(sys.executable).parent / PROG
    if beside.is_file() and os.access(beside, os.X_OK):
        return shlex.quote(str(beside.absolute()))
    return f"{shlex.quote(sys.executable)} -m dashboard.main"


def _run_demo(args: argparse.Namespace) -> int:
    """Dev store in-process, seeded with mesh-shaped data, and the dashboard on top."""
    from dashboard.devstore import start_devstore
    from dashboard.mesh.seed import seed
    from dashboard.web.app import create_app

    running = start_devstore(port=0)
    app = None

    def bulk_put(items) -> None:
        for key, value, ttl_ms in items:
            running.store.put(key, value, ttl_ms=ttl_ms)

    overrides = {
        "Mesh": {"KeyValue": {"Provider": "ToskaStore",
                              "ToskaStore": {"BaseUrl": running.url, "AuthToken": None}}},
        "Dashboard": {"Demo": True},
    }
    try:
        settings = load_settings(getattr(args, "config", None), overrides=overrides)
        if settings.dashboard.audit_storage is None:
            # a throwaway store, a throwaway trail: the demo's writes stay out of the audit
            # trail the operator's real dashboards keep in the data directory
            settings = dataclasses.replace(settings, dashboard=dataclasses.replace(
                settings.dashboard, audit_storage="memory://"))
        app = create_app({"KV_SETTINGS": settings})
        # the demo's own throwaway store, written also under Dashboard:ReadOnly: read-only
        # governs the dashboard (and the configured store), which serves it read-only
        report = seed(app.extensions["kv_provider"], services=args.services,
                      keys_per_service=args.keys_per_service, bulk_put=bulk_put)
        banner = [
            f"demo store: {running.url} ({report.summary()})",
            "log in as demo / demo (editor) or viewer / viewer (read-only); Ctrl-C stops",
            f"the CLI on this store: {_this_command()} --store {running.url} check-index",
        ]
        if settings.dashboard.read_only:
            banner.append("Dashboard__ReadOnly is true: the dashboard refuses every write "
                          "(the sample data went into the demo's own store)")
        _serve_app(app, args.host, args.port, banner)
    finally:
        if app is not None:
            app.extensions["kv_provider"].close()
        running.stop()
    return 0


# --------------------------------------------------------------------------- parser

#: subcommand name → definition; ``check-index``, ``repair-index``, ``export`` and
#: ``import`` plug in here. ``writes``: whether it writes to the configured store (refused
#: under Dashboard:ReadOnly)
COMMANDS: dict[str, Command] = {
    "devstore": Command(
        "run a ToskaStore-compatible dev server", _configure_devstore, _run_devstore,
        writes=False,  # its own in-memory store
    ),
    "seed": Command(
        "write ToskaMesh-shaped sample data to the configured store",
        _configure_seed, _run_seed, writes=True,
    ),
    "serve": Command(
        "serve the dashboard on the configured store", _configure_serve, _run_serve,
        writes=False,  # the web app refuses writes itself under read-only
    ),
    "demo": Command(
        "serve the dashboard on an in-process dev store filled with sample mesh data",
        _configure_demo, _run_demo, writes=False,  # seeds only its own in-process store
    ),
    "hash-password": Command(
        "print a password hash for Dashboard:Users:N:PasswordHash",
        _configure_hash_password, _run_hash_password, writes=False,
    ),
}


from dashboard.cli.history import SUBCOMMANDS as _HISTORY  # noqa: E402 - history, revert
from dashboard.cli.index import SUBCOMMANDS as _INDEX  # noqa: E402 - check-index, repair-index
from dashboard.cli.transfer import SUBCOMMANDS as _TRANSFER  # noqa: E402 - export, import

#: whether each ``cli_transfer`` command writes (it lists ``(help, configure, run)``): a
#: command missing here stops the import of this module, so none is added undeclared
_TRANSFER_WRITES = {"export": False, "import": True}

COMMANDS.update(_INDEX)
COMMANDS.update(_HISTORY)
COMMANDS.update({name: spec if isinstance(spec, Command)
                 else Command(*spec, writes=_TRANSFER_WRITES[name])
                 for name, spec in _TRANSFER.items()})


def build_parser() -> argparse.ArgumentParser:
    config_help = f"appsettings.json to read (default: ${APPSETTINGS_ENV})"
    parser = argparse.ArgumentParser(
        prog=PROG, description="ToskaMesh key/value dashboard and tools."
    )
    store_help = ("the store to use, instead of Mesh__KeyValue__*: http(s)://HOST:PORT is a "
                  "ToskaStore, redis(s)://[:PASSWORD@]HOST:PORT[/DB] a Redis")
    token_help = ("read the ToskaStore token (or, with a redis:// --store, the Redis "
                  "password) from this file (default: Mesh__KeyValue__ToskaStore__AuthToken)")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    parser.add_argument("--store", metavar="URL", help=store_help)
    parser.add_argument("--token-file", metavar="PATH", help=token_help)
    # the global options are accepted after the subcommand too; SUPPRESS keeps the global one
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=store_help)
    common.add_argument("--token-file", metavar="PATH", default=argparse.SUPPRESS, help=token_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        child = sub.add_parser(
            name, help=command.help, description=command.help, parents=[common]
        )
        command.configure(child)
        if command.writes:
            child.add_argument("--reason", metavar="TEXT", help=(
                "why this write is made (an incident link): kept on each audit entry"))
            child.add_argument("--actor", metavar="NAME", help=(
                "who the write is made for, beside your OS user, on the audit trail"))
        child.set_defaults(**{WRITES_ATTR: command.writes})
    return parser


def _fail(message: str) -> None:
    print(f"{PROG}: {' '.join(str(message).splitlines())}", file=sys.stderr)


#: commands that read no store settings, so ``--store``/``--token-file`` would do nothing
_OWN_STORE = {"devstore": "serves a store of its own", "demo": "runs a store of its own",
              "hash-password": "uses no store"}
#: exit status when stdout is closed under a command: a shell's for SIGPIPE (128 + 13)
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Run ``toska-kv``; returns the exit status."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # the reader went away (`| head`): no traceback; stdout goes to devnull so the
        # interpreter's final flush cannot fail again (Python docs, "Note on SIGPIPE")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    command = COMMANDS[args.command]
    try:
        for option in ("store", "token_file"):
            if getattr(args, option, None) is not None and args.command in _OWN_STORE:
                raise CommandError(f"--{option.replace('_', '-')} does not apply to "
                                   f"`{PROG} {args.command}`: it {_OWN_STORE[args.command]}")
        if command.writes:
            settings_from(args)  # refused under Dashboard:ReadOnly, before the command runs
            with audit.acting_because(args.reason), common.acting_as(args.actor):
                return command.run(args)
        return command.run(args)
    except (ConfigError, ProviderError, CommandError) as exc:
        _fail(str(exc))
        return exc.status if isinstance(exc, CommandError) else EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "COMMANDS", "Command", "CommandError", "build_parser", "main",
    "settings_from",
]
