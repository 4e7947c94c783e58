"""The Dockerfile read as the image runs it: ENV, CMD and EXPOSE, so tests and the
benchmark start exactly the command the image starts (CI has no Docker engine)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def image_env() -> dict[str, str]:
    """What the Dockerfile's ENV instructions set (``ENV A=1 B=2`` form)."""
    env: dict[str, str] = {}
    for instruction, args in instructions():
        if instruction == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_cmd() -> list[str]:
    """The CMD, exec form."""
    (cmd,) = [args for instruction, args in instructions() if instruction == "CMD"]
    return json.loads(cmd)


def image_port() -> int:
    """The port the image EXPOSEs."""
    (port,) = [args for instruction, args in instructions() if instruction == "EXPOSE"]
    return int(port)


def image_cmd_default(name: str) -> str | None:
    """The default the CMD's shell gives the variable ``name`` (``${NAME:-default}``)."""
    found = re.search(r"\$\{" + re.escape(name) + r":-([^}]*)\}", image_cmd()[-1])
    return found.group(1) if found else None
