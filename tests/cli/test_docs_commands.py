"""Every command in the docs is run by a test (issue 17, item 5).

* Every ``toska-kv ...`` line in a shell or YAML code block of README.md and docs/*.md
  parses with the real parser (``dashboard.main.build_parser``): a renamed command or
  flag fails here, not on an operator's terminal.
* The dev store's smoke test (docs/development.md, "The dev store") runs as written: the
  dev store as a process on a free port, each ``curl`` replayed with httpx (method, headers,
  body and URL as written), the ``toska-kv`` lines as processes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dashboard.main import COMMANDS, build_parser
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
#: how long one documented command may take before the test fails (and kills it)
TIMEOUT_S = 60
#: code blocks whose lines are commands (or, for yaml, a container's ``args``)
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "yaml", "yml"}
#: ``toska-kv`` as a command word (also ``.venv/bin/toska-kv``), not ``toska-kv-dashboard``
_COMMAND_WORD = re.compile(r"(?:(?<=^)|(?<=[\s(;|&`]))(?:[\w./-]*/)?toska-kv(?![\w-])")
#: where a command ends on its line: a comment, a pipe, a list, a redirect, ``$(...)``'s end
_COMMAND_END = re.compile(r"\s#|[|;&)>`]")
_YAML_ARGS = re.compile(r"^\s*-?\s*(?:args|command):\s*(\[.*\])\s*$")


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DocumentedCommand:
    where: str  # path:line
    line: str
    argv: tuple[str, ...]  # what follows toska-kv


def code_blocks(path: Path) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    heading = ""
    fence: tuple[int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("#") and not line.startswith(" "):
                heading = stripped.lstrip("#").strip()
            elif stripped.startswith("```"):
                fence, body = (number, stripped[3:].strip().lower(), heading), []
        elif stripped.startswith("```"):
            blocks.append(CodeBlock(path, fence[0], fence[1], fence[2], tuple(body)))
            fence = None
        else:
            body.append(line)
    return blocks


def commands_in(block: CodeBlock) -> list[DocumentedCommand]:
    """The ``toska-kv`` invocations of a shell or YAML block."""
    if block.language not in SHELL_LANGUAGES:
        return []
    found: list[DocumentedCommand] = []
    page = block.path.relative_to(ROOT) if block.path.is_relative_to(ROOT) else block.path
    for offset, line in enumerate(block.lines, start=1):
        where = f"{page}:{block.line + offset}"
        yaml_args = _YAML_ARGS.match(line)
        if yaml_args:
            argv = json.loads(yaml_args.group(1))
            if argv and Path(argv[0]).name == "toska-kv":
                found.append(DocumentedCommand(where, line.strip(), tuple(argv[1:])))
            continue
        for match in _COMMAND_WORD.finditer(line):
            rest = line[match.end():]
            end = _COMMAND_END.search(rest)
            found.append(DocumentedCommand(
                where, line.strip(), tuple(shlex.split(rest[: end.start()] if end else rest))))
    return found


def documented_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[DocumentedCommand]:
    return [command for page in documented_pages() for block in code_blocks(page)
            for command in commands_in(block)]


COMMANDS_IN_DOCS = documented_commands()


def test_the_extraction_finds_commands_however_they_are_written(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```sh\n"
        "export X=$(toska-kv hash-password)\n"
        ".venv/bin/toska-kv --store http://h:1 check-index --all   # a comment\n"
        "toska-kv export --prefix 'a b:' | head -2\n"
        "toska-kv devstore --port 4000 &\n"
        "pip install toska-kv-dashboard\n"
        "```\n\n```yaml\n"
        "image: registry.example/toska-kv-dashboard:latest\n"
        'args: ["toska-kv", "check-index", "--json"]\n'
        "```\n\n```\nmain.py (toska-kv)\n```\n",
        encoding="utf-8",
    )
    found = [c.argv for block in code_blocks(page) for c in commands_in(block)]
    assert found == [
        ("hash-password",),
        ("--store", "http://h:1", "check-index", "--all"),
        ("export", "--prefix", "a b:"),
        ("devstore", "--port", "4000"),
        ("check-index", "--json"),
    ]


def test_the_docs_show_the_commands_operators_run():
    shown = {_subcommand(list(c.argv)) for c in COMMANDS_IN_DOCS}
    assert {"serve", "hash-password", "check-index", "repair-index", "devstore", "seed"} <= shown


@pytest.mark.parametrize("command", COMMANDS_IN_DOCS, ids=lambda c: f"{c.where} {' '.join(c.argv)}")
def test_every_documented_command_parses(command, capsys):
    try:
        args = build_parser().parse_args(list(command.argv))
    except SystemExit:
        pytest.fail(f"{command.where}: `{command.line}` does not parse: "
                    f"{capsys.readouterr().err.strip()}")
    assert args.command in COMMANDS


# --------------------------------------------------------------------------- the smoke test


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if not name.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings"))}


def _curl(words: list[str]) -> tuple[str, str, dict[str, str], str | None]:
    """``curl [-X M] [-H 'K: V'] [-d DATA] URL`` as (method, url, headers, body)."""
    method, headers, body, url = None, {}, None, None
    words = iter(words)
    for word in words:
        if word in ("-X", "--request"):
            method = next(words)
        elif word in ("-H", "--header"):
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data", "--data-raw"):
            body = next(words)
        elif word.startswith("-"):
            raise AssertionError(f"the smoke test's curl uses {word}, which this replay does not know")
        else:
            url = word
    assert url is not None, words
    if "://" not in url:
        url = f"http://{url}"
    return method or ("POST" if body is not None else "GET"), url, headers, body


def _subcommand(argv: list[str]) -> str | None:
    return next((word for word in argv if word in COMMANDS), None)


def _wait_listening(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the dev store exited with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the dev store did not listen on {port} within {TIMEOUT_S} s")


def test_the_dev_store_smoke_test_runs_as_documented():
    (block,) = [b for b in code_blocks(ROOT / "docs" / "development.md")
                if b.heading == "The dev store" and b.language in SHELL_LANGUAGES]
    port = free_port()
    devstore: subprocess.Popen | None = None
    replayed: list[tuple[str, int]] = []
    written: dict[str, str] = {}
    try:
        for raw in block.lines:
            line = re.sub(r"\b4000\b", str(port), raw.split(" #", 1)[0].strip())
            if not line:
                continue
            comment = raw.split(" #", 1)[1].strip() if " #" in raw else ""
            words = shlex.split(line.rstrip("&").strip())
            if Path(words[0]).name == "toska-kv" and _subcommand(words) == "devstore":
                assert line.endswith("&"), f"the dev store line runs in the background: {raw}"
                devstore = subprocess.Popen(
                    [sys.executable, "-m", "dashboard.main", *words[1:]], cwd=ROOT,
                    env=_clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                _wait_listening(devstore, port)
            elif words[0] == "curl":
                assert devstore is not None, "the dev store starts before the first curl"
                method, url, headers, body = _curl(words[1:])
                answer = httpx.request(method, url, headers=headers, content=body, timeout=TIMEOUT_S)
                assert 200 <= answer.status_code < 300, (raw, answer.status_code, answer.text)
                key = url.rsplit("/kv/", 1)[1]
                if method == "PUT":
                    written[key] = json.loads(body or "null")["value"]
                elif method == "GET":
                    # the documented value: what the PUT wrote, and what the comment shows
                    assert answer.json()["value"] == written[key], (raw, answer.text)
                    assert json.dumps(written[key]) in comment, f"the comment shows the value: {raw}"
                replayed.append((method, answer.status_code))
            elif Path(words[0]).name == "toska-kv":
                done = subprocess.run(
                    [sys.executable, "-m", "dashboard.main", *words[1:]], cwd=ROOT,
                    env=_clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=TIMEOUT_S,
                )
                assert done.returncode == 0, (raw, done.stdout, done.stderr)
                replayed.append((_subcommand(words), done.returncode))
            else:
                raise AssertionError(f"the smoke test has a line this test does not run: {raw}")
    finally:
        if devstore is not None:
            devstore.kill()
            devstore.wait(timeout=TIMEOUT_S)
    assert [step for step, _ in replayed] == ["PUT", "GET", "seed"], replayed
