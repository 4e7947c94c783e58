"""What a new user trips over on the command line (issue 17, items 3 and 4), each run as a
real process: a closed pipe, ``--store`` with each kind of URL, a port in use, and the
command the demo prints.

Every process is started without a terminal (stdin from /dev/null) and waited for with a
timeout; one still running when its test ends is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dashboard.cli.common import settings_from
from dashboard.devstore import start_devstore
from dashboard.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
#: how long one command may take before the test fails (and kills it)
TIMEOUT_S = 60


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the mesh's and the dashboard's settings."""
    env = {name: value for name, value in os.environ.items()
           if not name.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings"))}
    env.update(extra)
    return env


def toska_kv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m dashboard.main ARGS`` to the end (killed after ``TIMEOUT_S``)."""
    return subprocess.run(
        [sys.executable, "-m", "dashboard.main", *args], cwd=ROOT, env=env or clean_env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=TIMEOUT_S)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("toska-kv: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def read_line_with(process: subprocess.Popen, text: str, timeout: float = TIMEOUT_S) -> str:
    """The first line of ``process``'s stdout containing ``text``, without blocking past
    ``timeout``."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if text in line:
                    return line
    raise AssertionError(f"no line with {text!r} within {timeout} s: {buffer.decode(errors='replace')}")


# --------------------------------------------------------------------------- item 3


def test_a_closed_pipe_ends_an_export_quietly(devstore, tmp_path):
    """``toska-kv export ... | head -1``: the reader goes away, the export stops, no traceback."""
    prefix = f"pipe-{uuid.uuid4().hex[:8]}:"
    for n in range(1500):  # ~1.5 MB of JSON Lines: far more than a pipe holds
        devstore.store.put(f"{prefix}{n:05d}", "x" * 1000)
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        # the store from the environment: this test holds without --store (item 4) too
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.main", "export", "--prefix", prefix],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            env=clean_env(Mesh__KeyValue__Provider="ToskaStore",
                          Mesh__KeyValue__ToskaStore__BaseUrl=devstore.url),
        )
        try:
            assert process.stdout is not None
            first = json.loads(process.stdout.readline())
            assert first["key"].startswith(prefix)
            process.stdout.close()  # as `head -1` exits
            status = process.wait(timeout=TIMEOUT_S)
        finally:
            stop(process)
    err = stderr_path.read_text()
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert status in (1, 141), err


# --------------------------------------------------------------------------- item 4: --store


def test_store_with_an_http_url_reaches_the_dev_store(devstore):
    prefix = f"http-{uuid.uuid4().hex[:8]}:"
    devstore.store.put(f"{prefix}a", "1")
    done = toska_kv("export", "--store", devstore.url, "--prefix", prefix, "--quiet")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["key"] for line in done.stdout.splitlines()] == [f"{prefix}a"]
    # before the command's name, as a global option, too
    done = toska_kv("--store", devstore.url, "export", "--prefix", prefix, "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"{prefix}a" in done.stdout


def test_store_takes_the_token_from_token_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with start_devstore(port=0, token="s3cret-token") as running:
        running.store.put("tok:a", "1")
        refused = toska_kv("export", "--store", running.url, "--prefix", "tok:")
        assert refused.returncode == 2, refused.stderr
        done = toska_kv("export", "--store", running.url, "--token-file", str(token_file),
                        "--prefix", "tok:", "--quiet")
        assert done.returncode == 0, done.stderr
        assert "tok:a" in done.stdout
        # or from the environment, as before
        done = toska_kv("export", "--store", running.url, "--prefix", "tok:", "--quiet",
                        env=clean_env(Mesh__KeyValue__ToskaStore__AuthToken="s3cret-token"))
        assert done.returncode == 0, done.stderr
    assert "s3cret-token" not in refused.stderr


def test_store_with_a_redis_url_reaches_redis(redis_server):
    prefix = f"redis-{uuid.uuid4().hex[:8]}:"
    with redis_server.client(db=3) as client:
        client.set(f"{prefix}a", "1")
    url = f"redis://{redis_server.host}:{redis_server.port}/3"
    done = toska_kv("--store", url, "export", "--prefix", prefix, "--quiet")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["key"] for line in done.stdout.splitlines()] == [f"{prefix}a"]
    # database 0 holds no such key: the URL's database was used
    with redis_server.client(db=0) as client:
        assert client.get(f"{prefix}a") is None


@pytest.mark.parametrize("scheme", ["ftp", "file", "toskastore", "memory"])
def test_store_with_another_scheme_is_one_line_exit_2(scheme):
    done = toska_kv("check-index", "--store", f"{scheme}://host:4000")
    assert done.returncode == 2
    assert "--store" in one_line(done)


def test_store_does_not_apply_to_a_command_with_a_store_of_its_own():
    done = toska_kv("devstore", "--store", "http://127.0.0.1:4000")
    assert done.returncode == 2
    assert "devstore" in one_line(done)


def _settings(tmp_path, monkeypatch, *argv: str):
    for name in list(os.environ):
        if name.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings")):
            monkeypatch.delenv(name)
    return settings_from(build_parser().parse_args([*argv, "check-index"]))


def test_each_scheme_selects_its_provider(tmp_path, monkeypatch):
    """https:// and rediss:// (TLS) become the same settings the environment would give."""
    token = tmp_path / "token"
    token.write_text("p@ss word\n")
    https = _settings(tmp_path, monkeypatch, "--store", "https://kv.example:4443/",
                      "--token-file", str(token))
    assert (https.provider, https.toskastore.base_url) == ("toskastore", "https://kv.example:4443")
    assert https.toskastore.auth_token == "p@ss word"
    rediss = _settings(tmp_path, monkeypatch, "--store", "rediss://cache.example:6380/2")
    assert rediss.provider == "redis"
    assert (rediss.redis.host, rediss.redis.port, rediss.redis.ssl, rediss.redis.database) == (
        "cache.example", 6380, True, 2)
    with_password = _settings(tmp_path, monkeypatch, "--store", "redis://cache.example",
                              "--token-file", str(token))
    assert with_password.redis.password == "p@ss word"
    assert with_password.redis.port == 6379


def test_a_missing_token_file_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "no-token"
    assert main(["--store", "http://127.0.0.1:1", "--token-file", str(missing), "check-index"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(missing) in err, err


# --------------------------------------------------------------------------- item 4: ports


def test_devstore_on_a_busy_port_is_one_line_exit_2():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = toska_kv("devstore", "--port", str(port))
    assert done.returncode == 2, done.stderr
    line = one_line(done)
    assert f"127.0.0.1:{port}" in line and "--port" in line


# --------------------------------------------------------------------------- item 4: demo


def test_the_demo_prints_a_command_that_runs_as_printed(tmp_path):
    """The banner's CLI line runs in a plain shell: no activated virtualenv, another
    directory, none of the mesh's variables."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "dashboard.main", "demo", "--port", "0", "--services", "2",
         "--keys-per-service", "20"],
        cwd=ROOT, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = read_line_with(demo, "the CLI on this store:")
        command = line.split("the CLI on this store:", 1)[1].strip()
        shell_env = clean_env(PATH="/usr/bin:/bin")
        shell_env.pop("VIRTUAL_ENV", None)
        done = subprocess.run(
            ["/bin/sh", "-c", command], cwd=tmp_path, env=shell_env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=TIMEOUT_S,
        )
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=TIMEOUT_S)
        finally:
            stop(demo)
            assert demo.stdout is not None
            demo.stdout.close()
    # 0: consistent, 1: drift (the demo's sample data drifts on purpose); 127: not found
    assert done.returncode in (0, 1), (command, done.stdout, done.stderr)
    assert "SERVICE" in done.stdout.upper(), done.stdout
