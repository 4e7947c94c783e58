"""``toska-kv export``/``import``, the web's ``/export`` and ``/import``, and start-up refusals."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys

import pytest
from werkzeug.security import generate_password_hash

from dashboard.main import main
from tests.support.webapp import csrf_token, login, make_app

pytestmark = pytest.mark.usefixtures("clean_environment")


def appsettings(tmp_path, url: str, **dashboard) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Mesh": {"KeyValue": {
        "Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url}}}, "Dashboard": dashboard}))
    return str(path)


# --------------------------------------------------------------------------- CLI


def test_cli_export_then_import_round_trips_with_exit_statuses(tmp_path, capsys, devstore):
    devstore.store.put("cli:a", '{"x":1}', ttl_ms=300_000)
    devstore.store.put("cli:b", "text")
    config = appsettings(tmp_path, devstore.url)
    out = tmp_path / "cli.jsonl"
    assert main(["export", "--config", config, "--prefix", "cli:", "--output", str(out)]) == 0
    assert "exported 2 key(s)" in capsys.readouterr().err
    assert len(out.read_bytes().splitlines()) == 2

    devstore.store.delete("cli:a")
    devstore.store.delete("cli:b")
    assert main(["import", "--config", config, str(out), "--yes"]) == 0
    captured = capsys.readouterr()
    assert "2 new" in captured.out and "Wrote 2 key(s)." in captured.out
    assert "audit: import:" in captured.err
    assert devstore.store.get("cli:b")["value"] == "text"
    assert devstore.store.get("cli:a")["metadata"]["expires_at"] > 0

    # again: create-only finds them unchanged, nothing to write
    assert main(["import", "--config", config, str(out), "--yes"]) == 0
    assert "Nothing to write." in capsys.readouterr().out
    # another value under create-only: refused, exit 1, nothing written
    devstore.store.put("cli:b", "changed")
    assert main(["import", "--config", config, str(out), "--yes"]) == 1
    assert "create-only" in capsys.readouterr().err
    assert devstore.store.get("cli:b")["value"] == "changed"
    # overwrite as JSON
    assert main(["import", "--config", config, str(out), "--mode", "overwrite", "--yes",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plan"]["counts"]["changed"] == 1 and summary["result"]["complete"]
    assert devstore.store.get("cli:b")["value"] == "text"


def test_cli_writes_carry_the_os_user_the_actor_and_the_reason(tmp_path, capsys, devstore):
    good = tmp_path / "good.jsonl"
    good.write_text('{"key":"cli4:a","value":"1","ttl_ms":null}\n')
    config = appsettings(tmp_path, devstore.url)
    assert main(["import", "--config", config, str(good), "--yes", "--reason",
                 "INC-4711 restore cart", "--actor", "bob"]) == 0
    said = capsys.readouterr().err
    line = next(line for line in said.splitlines() if line.startswith("audit: import:"))
    assert "cli:" in line and " as bob" in line and "(reason: INC-4711 restore cart)" in line
    assert main(["import", "--config", config, str(good), "--yes", "--mode", "overwrite"]) == 0
    assert "reason" not in capsys.readouterr().err  # one command's reason is not the next's


def test_cli_import_of_an_invalid_file_is_exit_2_and_lists_the_lines(tmp_path, capsys,
                                                                      devstore):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key":"cli2:a","value":"1"}\n{"key":"cli2:b"}\n')
    config = appsettings(tmp_path, devstore.url)
    assert main(["import", "--config", config, str(bad), "--yes"]) == 2
    captured = capsys.readouterr()
    assert "line 2:" in captured.out and "invalid line" in captured.err
    assert devstore.store.get("cli2:a") is None


def test_cli_import_asks_unless_yes(tmp_path, capsys, devstore, monkeypatch):
    good = tmp_path / "good.jsonl"
    good.write_text('{"key":"cli3:a","value":"1","ttl_ms":null}\n')
    config = appsettings(tmp_path, devstore.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["import", "--config", config, str(good)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert devstore.store.get("cli3:a") is None


def test_cli_import_refuses_a_file_over_the_limit(tmp_path, capsys, devstore):
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"key": "cli4:a", "value": "x" * 5000}) + "\n")
    config = appsettings(tmp_path, devstore.url, MaxImportBytes=1024)
    assert main(["import", "--config", config, str(big), "--yes"]) == 2
    assert "Dashboard__MaxImportBytes" in capsys.readouterr().err


# --------------------------------------------------------------------------- web


@pytest.fixture
def web(devstore_provider):
    return make_app(devstore_provider)


def test_web_export_streams_a_jsonl_attachment(web, devstore):
    devstore.store.put("web:a", "1", ttl_ms=100_000)
    devstore.store.put("web:b", "2")
    client = web.test_client()
    login(client, "vi")  # exporting reads: viewers may
    response = client.get("/export?prefix=web:")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="web.jsonl"'
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data().splitlines()]
    assert [(r["key"], r["value"]) for r in lines] == [("web:a", "1"), ("web:b", "2")]
    assert 0 < lines[0]["ttl_ms"] <= 100_000 and lines[1]["ttl_ms"] is None
    assert client.get("/export").status_code == 400


def test_web_import_plan_then_confirm(web, devstore):
    devstore.store.put("imp:old", "before")
    client = web.test_client()
    login(client, "ed")
    text = "\n".join(json.dumps({"key": f"imp:{k}", "value": "after", "ttl_ms": None})
                     for k in ("old", "new"))
    token = csrf_token(client, "/import")
    plan = client.post("/import", data={"csrf_token": token, "mode": "overwrite",
                                        "file": (io.BytesIO(text.encode()), "x.jsonl")})
    body = plan.get_data(as_text=True)
    assert plan.status_code == 200, body
    assert 'data-new="1"' in body and 'data-changed="1"' in body
    assert devstore.store.get("imp:new") is None  # a plan writes nothing
    upload = body.split('name="upload" value="')[1].split('"')[0]
    done = client.post("/import/confirm", data={"csrf_token": token, "upload": upload})
    result = done.get_data(as_text=True)
    assert done.status_code == 200 and 'data-complete="true"' in result, result
    assert devstore.store.get("imp:new")["value"] == "after"
    assert devstore.store.get("imp:old")["value"] == "after"
    audit = client.get("/audit").get_data(as_text=True)
    assert "imp:new" in audit
    # one confirmation per plan: a second one writes nothing and says why
    again = client.post("/import/confirm", data={"csrf_token": token, "upload": upload})
    assert again.status_code == 409 and "already being applied" in again.get_data(as_text=True)


def test_web_import_refuses_invalid_and_oversized_files(devstore, devstore_provider):
    app = make_app(devstore_provider, dashboard={"MaxImportBytes": 1024})
    client = app.test_client()
    login(client, "ed")
    token = csrf_token(client, "/import")
    invalid = client.post("/import", data={"csrf_token": token, "text": '{"key":"inv:a"}\nnope'})
    body = invalid.get_data(as_text=True)
    assert invalid.status_code == 422 and 'data-line="1"' in body and 'data-line="2"' in body
    assert "import-confirm" not in body
    big = json.dumps({"key": "inv:b", "value": "x" * 4000})
    refused = client.post("/import", data={"csrf_token": token,
                                           "file": (io.BytesIO(big.encode()), "big.jsonl")})
    assert refused.status_code == 413
    assert "Dashboard__MaxImportBytes" in refused.get_data(as_text=True)
    assert devstore.store.get("inv:a") is None and devstore.store.get("inv:b") is None


# --------------------------------------------------------------------------- start-up


def _serve(tmp_path, monkeypatch, **env) -> None:
    monkeypatch.setenv("Dashboard__SecretKey", "a-long-enough-secret-key-0123456789")
    monkeypatch.setenv("Dashboard__SessionStorage", "memory://")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("toska-kv: ") and "Traceback" not in err, err
    return lines[0]


def test_serve_refuses_a_setup_without_operators(tmp_path, capsys, monkeypatch):
    _serve(tmp_path, monkeypatch)
    assert main(["serve", "--port", "0"]) == 2
    assert "Dashboard__Users" in one_line(capsys)


def test_serve_refuses_a_password_hash_that_is_not_a_hash(tmp_path, capsys, monkeypatch):
    _serve(tmp_path, monkeypatch, Dashboard__Users__0__Name="alice",
           Dashboard__Users__0__PasswordHash="hunter2")
    assert main(["serve", "--port", "0"]) == 2
    line = one_line(capsys)
    assert "Dashboard__Users__0__PasswordHash" in line and "hunter2" not in line
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"name": "bob", "passwordHash": "plain", "role": "viewer"}]))
    monkeypatch.delenv("Dashboard__Users__0__Name")
    monkeypatch.delenv("Dashboard__Users__0__PasswordHash")
    monkeypatch.setenv("Dashboard__UsersFile", str(users))
    assert main(["serve", "--port", "0"]) == 2
    assert "Dashboard__UsersFile" in one_line(capsys)


def test_serve_refuses_a_port_in_use(tmp_path, capsys, monkeypatch):
    _serve(tmp_path, monkeypatch, Dashboard__Users__0__Name="alice",
           Dashboard__Users__0__PasswordHash=generate_password_hash("pw", "pbkdf2:sha256:1000"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    line = one_line(capsys)
    assert f"127.0.0.1:{port}" in line and "in use" in line


def test_single_sign_on_or_demo_needs_no_users():
    from dashboard.settings.load import load_settings
    from dashboard.web.startup import refuse_broken_setup

    refuse_broken_setup(load_settings(environ={}, overrides={"Dashboard": {"Demo": True}}))
    refuse_broken_setup(load_settings(environ={}, overrides={"Dashboard": {
        "TrustedAuthHeader": "X-Forwarded-User", "ForwardedProxies": 1,
        "TrustedAuthProxies": "10.0.0.0/8"}}))


def test_the_gunicorn_entry_point_refuses_a_setup_without_operators():
    env = {k: v for k, v in os.environ.items()
           if not k.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings"))}
    env.update(Dashboard__SecretKey="a-long-enough-secret-key-0123456789",
               Dashboard__SessionStorage="memory://")
    done = subprocess.run([sys.executable, "-c", "import dashboard.wsgi"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Dashboard__Users" in done.stderr


def test_demo_banner_tells_how_to_point_the_cli_at_its_store():
    env = {k: v for k, v in os.environ.items()
           if not k.lower().startswith(("mesh__", "dashboard__", "dashboard_appsettings"))}
    demo = subprocess.Popen(
        [sys.executable, "-m", "dashboard.main", "demo", "--port", "0", "--services", "1",
         "--keys-per-service", "2"], env={**env, "Dashboard__SessionStorage": "memory://"},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [demo.stdout.readline() for _ in range(4)]
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
            demo.stdout.close()
    hint = next((line for line in lines if "check-index" in line), "")
    store = next(line for line in lines if line.startswith("demo store: ")).split()[2]
    # runs as printed: test_cli_ergonomics.test_the_demo_prints_a_command_that_runs_as_printed
    assert f"toska-kv --store {store} check-index" in hint, lines
