"""Child processes in tests: Ctrl-C without a terminal, and the leak check's view of /proc.

A test that checks how a command answers Ctrl-C cannot rely on the terminal: under
``make test &`` (a background job of a non-interactive shell, stdin not a terminal) the
shell starts pytest with SIGINT *ignored*, every child inherits that, Python then installs
no KeyboardInterrupt handler, and a SIGINT does nothing. ``interruptible()`` starts the
child as a terminal's foreground job is started: in its own process group, with SIGINT at
its default, and ``ctrl_c()`` sends SIGINT to that group, as the terminal does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass

#: how an xdist worker (an execnet gateway) is started: the pytest process's children
#: that are not leaks
_EXECNET_BOOTSTRAP = "import sys;exec(eval(sys.stdin.readline()))"


def _as_a_foreground_job() -> None:  # runs in the child, between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interruptible(args: list[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(args, **kwargs)`` that a ``ctrl_c()`` reaches whatever the
    terminal (or none) pytest runs under."""
    return subprocess.Popen(args, start_new_session=True, preexec_fn=_as_a_foreground_job,
                            **kwargs)


def ctrl_c(process: subprocess.Popen) -> None:
    """SIGINT to the child's process group, as a terminal sends Ctrl-C."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)


def kill_group(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGKILL to the child's process group (an ``interruptible()`` child and whatever it
    started), then reap it: for a ``finally``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


@dataclass(frozen=True)
class Child:
    pid: int
    command: str


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    return text[text.rindex(")") + 2:].split()


def _command_line(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def live_children(parent: int | None = None) -> list[Child]:
    """This process's (or ``parent``'s) children still running (zombies are not: they have
    exited), less xdist's workers."""
    parent = os.getpid() if parent is None else parent
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        # fields[0] is the state, fields[1] the parent's pid
        if fields is None or int(fields[1]) != parent or fields[0] in ("Z", "X"):
            continue
        command = _command_line(pid)
        if _EXECNET_BOOTSTRAP in command:
            continue
        found.append(Child(int(pid), command or f"[pid {pid}]"))
    return found


def kill_all(children: list[Child]) -> None:
    """SIGKILL each leftover child (and its process group, if it leads one), and reap it."""
    for child in children:
        try:
            if os.getpgid(child.pid) == child.pid:
                os.killpg(child.pid, signal.SIGKILL)
            else:
                os.kill(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child.pid, 0)
