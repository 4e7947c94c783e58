"""The ``toska-kv`` command: dev store, sample data, password hashes, index check and repair.

Each subcommand is one entry in ``COMMANDS``: a function that adds its arguments and a
handler ``(args) -> exit code``. Configuration and store failures end as one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from datetime import UTC, datetime

from .cli_common import (
    EXIT_ERROR,
    PROG,
    Command,
    CommandError,
    actor,
    ask,
    print_list,
    settings_from,
)
from .config import APPSETTINGS_ENV, ConfigError, Settings, load_settings
from .providers.errors import ProviderError

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
    from .devstore import serve

    if args.legacy and args.release not in (None, "0.8"):
        print(f"--legacy means --release 0.8, not {args.release}", file=sys.stderr)
        return 2
    try:
        serve(
            host=args.host, port=args.port, token=args.token, read_token=args.read_token,
            write_token=args.write_token, release="0.8" if args.legacy else (args.release or "main"),
            no_key_listing=args.no_key_listing, verbose=args.verbose,
        )
    except ValueError as exc:  # e.g. scoped tokens on a release that has none
        print(f"devstore: {exc}", file=sys.stderr)
        return 2
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
    from .providers import make_provider
    from .seed import seed

    settings = settings_from(args)
    provider = make_provider(settings)
    try:
        report = seed(
            provider, services=args.services, keys_per_service=args.keys_per_service,
            drift_pct=args.drift, seed=args.seed, index_key=settings.toskastore.key_index_key,
        )
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
    base = app.config["KV_SETTINGS"].dashboard.path_base
    print(f"ToskaMesh KV dashboard on http://{host}:{server.server_port}{base}/", flush=True)
    for line in banner:
        print(line, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _run_serve(args: argparse.Namespace) -> int:
    from . import create_app
    from .startup import refuse_broken_setup

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


def _run_demo(args: argparse.Namespace) -> int:
    """Dev store in-process, seeded with mesh-shaped data, and the dashboard on top."""
    from . import create_app
    from .devstore import start_devstore
    from .seed import seed

    running = start_devstore(port=0)

    def bulk_put(items) -> None:
        for key, value, ttl_ms in items:
            running.store.put(key, value, ttl_ms=ttl_ms)

    overrides = {
        "Mesh": {"KeyValue": {"Provider": "ToskaStore",
                              "ToskaStore": {"BaseUrl": running.url, "AuthToken": None}}},
        "Dashboard": {"Demo": True},
    }
    settings = load_settings(getattr(args, "config", None), overrides=overrides)
    app = create_app({"KV_SETTINGS": settings})
    report = seed(app.extensions["kv_provider"], services=args.services,
                  keys_per_service=args.keys_per_service, bulk_put=bulk_put)
    try:
        _serve_app(app, args.host, args.port, [
            f"demo store: {running.url} ({report.summary()})",
            "log in as demo / demo (editor) or viewer / viewer (read-only); Ctrl-C stops",
            f"the CLI on this store: Mesh__KeyValue__Provider=ToskaStore "
            f"Mesh__KeyValue__ToskaStore__BaseUrl={running.url} toska-kv check-index",
        ])
    finally:
        running.stop()
    return 0


# --------------------------------------------------------------------------- check-index

#: keys of each kind printed by the human-readable check and repair output
SHOWN_KEYS = 50
#: exit status when drift was found (0: every index consistent)
EXIT_DRIFT = 1


def _services_from(args: argparse.Namespace, settings: Settings, provider) -> list:
    from . import mesh

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
    from . import mesh
    from .providers import make_provider

    settings = settings_from(args)
    provider = make_provider(settings)
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
    from .mesh import ACTIONS

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
    import logging

    from . import mesh
    from .providers import make_provider

    settings = settings_from(args)
    if args.service.strip(mesh.SEPARATOR).strip() == "":
        raise CommandError(f"not a usable service prefix: {args.service!r}")
    service = mesh.service_for_prefix(settings, args.service)
    out = sys.stderr if args.json else sys.stdout
    # the audit line goes to stderr, so a CronJob's or an operator's log keeps it
    audit = logging.getLogger("dashboard.audit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("audit: %(message)s"))
    handler.setLevel(logging.INFO)
    level = audit.level
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    provider = make_provider(settings)
    try:
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
            return 0
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

        result = mesh.apply_repair(provider, plan, actor=actor(), before_write=save_backup)
    finally:
        provider.close()
        audit.removeHandler(handler)
        audit.setLevel(level)
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



# --------------------------------------------------------------------------- parser

#: subcommand name → definition; ``check-index`` and ``repair-index`` plug in here
COMMANDS: dict[str, Command] = {
    "devstore": Command(
        "run a ToskaStore-compatible dev server", _configure_devstore, _run_devstore
    ),
    "seed": Command(
        "write ToskaMesh-shaped sample data to the configured store",
        _configure_seed, _run_seed,
    ),
    "serve": Command(
        "serve the dashboard on the configured store", _configure_serve, _run_serve
    ),
    "demo": Command(
        "serve the dashboard on an in-process dev store filled with sample mesh data",
        _configure_demo, _run_demo,
    ),
    "hash-password": Command(
        "print a password hash for Dashboard:Users:N:PasswordHash",
        _configure_hash_password, _run_hash_password,
    ),
    "check-index": Command(
        "compare each service's key index with its live keys (exit 1 on drift)",
        _configure_check_index, _run_check_index,
    ),
    "repair-index": Command(
        "repair one service's key index (compare-and-swap, keeps a backup)",
        _configure_repair_index, _run_repair_index,
    ),
}


from .cli_transfer import SUBCOMMANDS as _TRANSFER  # noqa: E402 - export, import

COMMANDS.update({name: Command(*spec) for name, spec in _TRANSFER.items()})


def build_parser() -> argparse.ArgumentParser:
    config_help = f"appsettings.json to read (default: ${APPSETTINGS_ENV})"
    parser = argparse.ArgumentParser(
        prog=PROG, description="ToskaMesh key/value dashboard and tools."
    )
    parser.add_argument("--config", metavar="PATH", help=config_help)
    # --config is accepted after the subcommand too; SUPPRESS keeps the global one
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        child = sub.add_parser(
            name, help=command.help, description=command.help, parents=[common]
        )
        command.configure(child)
    return parser


def _fail(message: str) -> None:
    print(f"{PROG}: {' '.join(str(message).splitlines())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``toska-kv``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return COMMANDS[args.command].run(args)
    except (ConfigError, ProviderError, CommandError) as exc:
        _fail(str(exc))
        return exc.status if isinstance(exc, CommandError) else EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "COMMANDS", "Command", "CommandError", "build_parser", "default_backup_path", "main",
    "settings_from",
]
