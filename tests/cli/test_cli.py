"""The ``toska-kv`` command, run in-process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from werkzeug.security import check_password_hash

from dashboard.devstore import start_devstore
from dashboard.main import COMMANDS, build_parser, main

pytestmark = pytest.mark.usefixtures("clean_environment")


def appsettings(tmp_path, url: str, **toskastore) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Mesh": {"KeyValue": {
        "Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url, **toskastore}}}}))
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("toska-kv: ")
    assert "Traceback" not in err
    return lines[0]


def test_hash_password_argument(capsys):
    assert main(["hash-password", "correct horse"]) == 0
    out = capsys.readouterr().out.strip()
    assert check_password_hash(out, "correct horse")
    assert not check_password_hash(out, "wrong")


def test_hash_password_from_piped_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pw\nignored\n"))
    assert main(["hash-password"]) == 0
    assert check_password_hash(capsys.readouterr().out.strip(), "s3cret pw")


def test_hash_password_refuses_empty(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["hash-password"]) == 2
    assert "empty" in one_error_line(capsys)


def test_missing_config_file_is_one_line_exit_2(tmp_path, capsys):
    missing = str(tmp_path / "nope.json")
    assert main(["--config", missing, "seed"]) == 2
    assert missing in one_error_line(capsys)


def test_config_from_environment_variable(tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "from-env.json")
    monkeypatch.setenv("DASHBOARD_APPSETTINGS", missing)
    assert main(["seed"]) == 2
    assert missing in one_error_line(capsys)


def test_invalid_setting_is_one_line_with_secret_masked(capsys, monkeypatch):
    monkeypatch.setenv(
        "Mesh__KeyValue__Redis__ConnectionString", "cache:6379,password=hunter2,ssl=maybe"
    )
    assert main(["seed", "--services", "1"]) == 2
    line = one_error_line(capsys)
    assert "Mesh__KeyValue__Redis__ConnectionString" in line
    assert "hunter2" not in line


def test_store_errors_are_one_line_exit_2(tmp_path, capsys):
    with start_devstore(port=0, token="right-token") as running:
        path = appsettings(tmp_path, running.url, AuthToken="wrong-token")
        assert main(["--config", path, "seed", "--services", "1"]) == 2
        line = one_error_line(capsys)
        assert "wrong-token" not in line
        assert len(running.store) == 0
    # the store is gone now: unavailable
    assert main(["--config", path, "seed", "--services", "1"]) == 2
    one_error_line(capsys)


def test_seed_against_devstore(tmp_path, capsys, devstore):
    path = appsettings(tmp_path, devstore.url)
    code = main(["seed", "--config", path, "--services", "3", "--keys-per-service", "12",
                 "--drift", "25", "--seed", "7"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 services" in captured.out and "profiles" in captured.out
    keys = devstore.store.live_keys()
    assert len(keys) == 3 * 12 + 2  # the third service has no index
    assert "profiles:__keys" in keys and "orders:__keys" not in keys
    # one audit entry for the run, on the trail the settings name (here the default SQLite)
    assert "audit: seed: cli:" in captured.err and "38 key(s)" in captured.err


def test_seed_rejects_bad_arguments(capsys):
    assert main(["seed", "--services", "-1"]) == 2
    assert main(["seed", "--drift", "150"]) == 2
    assert "usage" in capsys.readouterr().err


def test_devstore_options_parse():
    args = build_parser().parse_args([
        "devstore", "--port", "0", "--token", "t", "--read-token", "r",
        "--write-token", "w", "--legacy", "--no-key-listing",
    ])
    assert (args.host, args.port, args.token, args.read_token, args.write_token) == (
        "127.0.0.1", 0, "t", "r", "w"
    )
    assert args.legacy and args.no_key_listing
    assert set(COMMANDS) >= {"devstore", "seed", "hash-password"}


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "hash-password" in capsys.readouterr().out


def test_wsgi_entry_point_stops_with_one_line_on_a_bad_setting():
    env = {k: v for k, v in os.environ.items()
           if not k.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings"))}
    env["Mesh__KeyValue__ToskaStore__BaseUrl"] = "not a url"
    done = subprocess.run([sys.executable, "-c", "import dashboard.wsgi"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "Mesh__KeyValue__ToskaStore__BaseUrl" in done.stderr and "Traceback" not in done.stderr
