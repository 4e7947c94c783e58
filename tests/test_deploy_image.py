"""The image's command, run as the image runs it: the Dockerfile's CMD and ENV, unchanged but
for the bind address (a free loopback port), with no usable $HOME (the image's user has
none, and its root filesystem is read-only), against a real dev store.

There is no Docker engine in CI, so this is how the image's start-up is tested: the same
gunicorn command line, parsed from the Dockerfile so the test follows it.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from werkzeug.security import generate_password_hash

from dashboard.devstore import start_devstore
from tests.support.dockerfile import DOCKERFILE, image_cmd, image_env, image_port

SECRET = "deploy-test-secret-key-0123456789abcdef"
TOKEN = "deploy-test-store-token"
#: how long gunicorn may take to answer or stop before the test gives up (not asserted)
DEADLINE_S = 60


# --------------------------------------------------------------------------- the Dockerfile


def cmd_on(port: int, cmd: list[str] | None = None) -> list[str]:
    """The CMD with its ``--bind`` moved to ``127.0.0.1:port``; nothing else changes."""
    cmd = list(cmd or image_cmd())
    assert cmd[:2] == ["sh", "-c"] and len(cmd) == 3, cmd
    script, binds = re.subn(r"--bind\s+0\.0\.0\.0:(\d+)\b",
                            f"--bind 127.0.0.1:{port}", cmd[2])
    assert binds == 1, f"one --bind 0.0.0.0:PORT expected in {cmd[2]!r}"
    return [*cmd[:2], script]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- running it


@dataclass
class Running:
    process: subprocess.Popen
    url: str
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"--- stderr\n{self.stderr.read_text()}\n--- stdout\n{self.stdout.read_text()}"


@contextmanager
def run_image_cmd(tmp_path: Path, cmd: list[str], store_url: str,
                  env_overrides: dict[str, str] | None = None) -> Iterator[Running]:
    """Start ``cmd`` in the image's environment, plus the settings a Deployment gives it
    (and ``env_overrides``, as a Deployment's ``env`` overrides the image's)."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"name": "alice", "role": "editor",
                                  "passwordHash": generate_password_hash(
                                      "alice-pass", method="pbkdf2:sha256:1000")}]))
    # $HOME below a regular file: not creatable even by root, as on a read-only root
    not_a_dir = tmp_path / "not-a-directory"
    not_a_dir.write_text("")
    scratch = tmp_path / "tmp"  # the pod's /tmp emptyDir; keeps session files out of /tmp
    scratch.mkdir()
    env = {
        # the gunicorn of the Python running the tests, as the image's is its Python's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **image_env(),
        "HOME": str(not_a_dir / "home"),
        "TMPDIR": str(scratch),
        "Mesh__KeyValue__Provider": "ToskaStore",
        "Mesh__KeyValue__ToskaStore__BaseUrl": store_url,
        "Mesh__KeyValue__ToskaStore__AuthToken": TOKEN,
        "Dashboard__SecretKey": SECRET,
        "Dashboard__UsersFile": str(users),
        "Dashboard__PathBase": "/kv",
        # the data directory a Deployment mounts (a PersistentVolumeClaim or an emptyDir)
        "Dashboard__DataDirectory": str(tmp_path / "data"),
        **(env_overrides or {}),
    }
    port = int(re.search(r"--bind 127\.0\.0\.1:(\d+)", cmd[2]).group(1))
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        # cwd: the checkout holds dashboard/, templates/ and static/ as the image's /app does
        process = subprocess.Popen(cmd, cwd=DOCKERFILE.parent, env=env, stdout=out, stderr=err,
                                   stdin=subprocess.DEVNULL)
    running = Running(process, f"http://127.0.0.1:{port}", stdout, stderr)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_healthy(running: Running) -> None:
    give_up = time.monotonic() + DEADLINE_S
    while time.monotonic() < give_up:
        if running.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {running.process.returncode}\n{running.logs()}")
        try:
            if httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"/healthz did not answer within {DEADLINE_S}s\n{running.logs()}")


def log_lines(running: Running) -> list[str]:
    """Every line the process wrote, standard output and standard error."""
    return [line for stream in (running.stdout, running.stderr)
            for line in stream.read_text().splitlines()]


@pytest.fixture
def store():
    running = start_devstore(port=0, token=TOKEN)
    try:
        answer = httpx.put(f"{running.url}/kv/profiles:alice", json={"value": '{"name":"Alice"}'},
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code in (200, 201), answer.text
        yield running
    finally:
        running.stop()


# --------------------------------------------------------------------------- tests


def test_the_image_command_serves_the_dashboard_without_a_home_and_stops_cleanly(tmp_path, store):
    cmd = cmd_on(_free_port())
    assert image_port() == 8080 and "0.0.0.0:8080" in image_cmd()[2]
    with run_image_cmd(tmp_path, cmd, store.url) as running:
        wait_until_healthy(running)
        # `exec gunicorn`: the process the runtime signals is gunicorn itself, not a shell
        cmdline = Path(f"/proc/{running.process.pid}/cmdline").read_bytes().split(b"\0")
        assert any(b"gunicorn" in part for part in cmdline[:2]), cmdline

        ready = httpx.get(f"{running.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

        with httpx.Client(base_url=running.url, timeout=10) as client:
            login_page = client.get("/kv/login")
            assert login_page.status_code == 200
            token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text)
            assert token, login_page.text
            answer = client.post("/kv/login", data={
                "username": "alice", "password": "alice-pass",
                "csrf_token": html.unescape(token.group(1))})
            assert answer.status_code == 302, answer.text
            assert answer.headers["location"].startswith("/kv/")
            services = client.get("/kv/services")
            assert services.status_code == 200, services.text
            assert "profiles" in services.text

        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=DEADLINE_S) == 0, running.logs()

    errors = running.stderr.read_text()
    assert "Control server error" not in errors, errors
    assert "Traceback" not in errors, errors
    lines = [json.loads(line) for line in log_lines(running)]  # the image logs JSON
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")], running.logs()
    # the request's line, on the container's output (the pod's log)
    assert [line for line in lines if line["logger"] == "dashboard.request"
            and line["path"] == "/services" and line["status"] == 200], running.logs()


def test_without_no_control_socket_the_same_start_logs_the_control_server_error(tmp_path, store):
    """The control check above can fail: with the flag removed, gunicorn 25.1+ wants
    $HOME/.gunicorn and says so at start (this is the error the image logged)."""
    (shell, flag, script) = cmd_on(_free_port())
    assert " --no-control-socket " in script
    cmd = [shell, flag, script.replace(" --no-control-socket ", " ")]
    with run_image_cmd(tmp_path, cmd, store.url) as running:
        wait_until_healthy(running)
        give_up = time.monotonic() + DEADLINE_S
        while "Control server error" not in running.stderr.read_text():
            assert time.monotonic() < give_up, running.logs()
            time.sleep(0.1)


def test_a_stop_ends_open_live_streams_instead_of_waiting_for_them(tmp_path, store):
    """SIGTERM with a live page open: the stream ends and gunicorn stops well before its
    30 s graceful timeout (which an open stream used to hold up in full)."""
    cmd = cmd_on(_free_port())
    with run_image_cmd(tmp_path, cmd, store.url) as running:
        wait_until_healthy(running)
        with httpx.Client(base_url=running.url, timeout=10) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/kv/login").text)
            client.post("/kv/login", data={"username": "alice", "password": "alice-pass",
                                           "csrf_token": html.unescape(token.group(1))})
            with client.stream("GET", "/kv/live/stream",
                               params={"prefix": "profiles:", "mode": "feed"}) as stream:
                assert stream.status_code == 200, running.logs()
                lines = stream.iter_lines()
                assert next(lines).startswith("retry:")  # connected
                running.process.send_signal(signal.SIGTERM)
                # well under gunicorn's graceful timeout (30 s): not a timing figure, the
                # difference between ending the stream and waiting the timeout out for it
                stop_by = time.monotonic() + 15
                rest = []
                with contextlib.suppress(httpx.TransportError):
                    rest = list(lines)  # ends when the worker ends the stream
        assert "event: end" not in rest  # no "end": the browser reconnects elsewhere
        left = stop_by - time.monotonic()
        assert left > 0, "the open stream held the stop for the whole graceful timeout"
        assert running.process.wait(timeout=left) == 0, running.logs()


# --------------------------------------------------------------------------- its logs

#: what a line of ``Dashboard__LogFormat=text`` looks like (dashboard.web.logs.TEXT_FORMAT)
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                       r"[\w.]+ \S")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_image_logs_each_request_once_in_the_configured_format(tmp_path, store, log_format):
    """One line per request, in Dashboard__LogFormat, and gunicorn's own lines in it too:
    no second (gunicorn access) line per request, nothing in another format."""
    # (path below the path base, as the request line names it; status; the text line's
    # method, endpoint and status)
    asked = [("/login", 200, "GET auth.login -> 200"),
             ("/services", 302, "GET services.index -> 302"),
             (f"/no-such-page-{os.getpid()}", 404, "GET unmatched -> 404")]
    with run_image_cmd(tmp_path, cmd_on(_free_port()), store.url,
                       {"Dashboard__LogFormat": log_format}) as running:
        wait_until_healthy(running)
        with httpx.Client(base_url=running.url, timeout=10) as client:
            for path, status, _ in asked:
                assert client.get(f"/kv{path}").status_code == status, running.logs()
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=DEADLINE_S) == 0, running.logs()

    lines = log_lines(running)
    output = "\n".join(lines)
    if log_format == "json":
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line!r}\n{running.logs()}")
            assert {"time", "level", "logger", "message"} <= parsed[-1].keys(), line
        for path, status, _ in asked:
            # the path on one line: the dashboard's, and no gunicorn access line beside it
            assert output.count(path) == 1, (path, running.logs())
            (line,) = [each for each in parsed if each.get("path") == path]
            assert line["logger"] == "dashboard.request" and line["status"] == status, line
        said = [each["message"] for each in parsed if each["logger"] == "gunicorn.error"]
    else:
        for line in lines:
            assert not line.lstrip().startswith("{"), f"a JSON line: {line!r}\n{running.logs()}"
            assert TEXT_LINE.match(line), f"not a text line: {line!r}\n{running.logs()}"
        for path, _, text in asked:
            assert path not in output, (path, running.logs())  # no gunicorn access line
            assert output.count(f" dashboard.request {text} ") == 1, (text, running.logs())
        said = [line for line in lines if " gunicorn.error " in line]
    # gunicorn's own lines are there, in the same format
    assert any("Listening at" in each for each in said), running.logs()
    assert any("Shutting down" in each for each in said), running.logs()


def test_gunicorn_lines_are_formatted_as_the_dashboard_formats_its_own():
    from dashboard import gunicorn_conf
    from dashboard.web import logs

    record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1,
                               "Listening at: %s", ("http://0.0.0.0:8080",), None)
    for log_format in ("json", "text"):
        assert (gunicorn_conf._formatter(log_format).format(record)
                == logs.formatter(log_format).format(record)), log_format


def test_gunicorn_settings_do_not_load_the_app():
    """gunicorn's master imports them: it must not import the dashboard's web app."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, dashboard.gunicorn_conf; "
         "print(sorted(m for m in sys.modules if m.startswith(('dashboard.web', 'flask'))))"],
        cwd=DOCKERFILE.parent, capture_output=True, text=True, timeout=DEADLINE_S, check=True)
    assert done.stdout.strip() == "[]", done.stdout
