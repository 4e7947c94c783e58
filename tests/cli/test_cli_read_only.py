"""``Dashboard:ReadOnly`` on the command line: no command writes to the configured store.

Generated from ``cli.COMMANDS``: each command has a sample here that writes when it can
(``SAMPLES``; a new command without one fails ``test_every_command_has_a_sample``). Under
read-only a command declared ``writes`` is refused with exit 2 and one line naming the
setting, and no command changes the store, whatever it declares; without read-only each
writing sample does write, so the refusal is what kept the store unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import dashboard.main as entry
from dashboard.devstore import start_devstore
from dashboard.main import COMMANDS, main
from dashboard.stores.mutations import NO_TTL
from tests.support.webapp import csrf_token, post_form

pytestmark = pytest.mark.usefixtures("clean_environment")

PREFIX = "ro:"

#: command -> argv (from a temporary directory) that writes to the store if the command can;
#: None: the command serves until stopped (tested below or in its own module)
SAMPLES: dict[str, Callable[[Path], list[str]] | None] = {
    "seed": lambda tmp: ["seed", "--services", "1", "--keys-per-service", "3"],
    "repair-index": lambda tmp: ["repair-index", "--service", PREFIX, "--action", "rebuild",
                                 "--yes", "--backup", str(tmp / "backup.json")],
    "import": lambda tmp: ["import", str(tmp / "import.jsonl"), "--mode", "overwrite", "--yes"],
    "check-index": lambda tmp: ["check-index", "--all"],
    "export": lambda tmp: ["export", "--prefix", PREFIX, "--output", str(tmp / "out.jsonl"),
                           "--quiet"],
    "hash-password": lambda tmp: ["hash-password", "pw"],
    "history": lambda tmp: ["history", PREFIX + "k"],
    "revert": lambda tmp: ["revert", audited_create(tmp), "--yes"],
    "serve": None,  # the web app refuses writes itself (tests/web/test_views.py, test_route_matrix)
    "devstore": None,  # serves an in-memory store of its own; reads no settings
    "demo": None,  # seeds its own in-process store: test_demo_under_read_only_serves_read_only
}

def audited_create(tmp: Path) -> str:
    """The id of the audit entry of a create, on the journal the commands use (an undo of
    it deletes the key: a write)."""
    from dashboard.cli.audit import journaled
    from dashboard.mesh import audit, open_store, writes
    from dashboard.mesh.audit_journal import AuditQuery, make_journal
    from dashboard.settings.load import load_settings

    settings = load_settings()
    key = f"{PREFIX}undo-{tmp.name}"
    provider = open_store(settings)
    with journaled(settings):
        result = writes.create(provider, settings, key, "1", ttl=NO_TTL)
        audit.key_write("create", "cli:test", key, result=result, value="1")
    provider.close()
    journal = make_journal(settings)
    try:
        return journal.query(AuditQuery(key=key), 0, 1).entries[0]["id"]
    finally:
        journal.close()


WRITING = sorted(name for name, command in COMMANDS.items() if command.writes)
RUNNABLE = sorted(name for name, sample in SAMPLES.items() if sample is not None)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A dev store holding a service whose index drifts, and settings pointing at it."""
    with start_devstore(port=0) as running:
        running.store.put(PREFIX + "a", '{"v":1}')
        running.store.put(PREFIX + "b", '{"v":2}')
        running.store.put(PREFIX + "__keys", '["a","gone"]')
        (tmp_path / "import.jsonl").write_text(
            json.dumps({"key": PREFIX + "a", "value": '{"v":9}', "ttl_ms": None}) + "\n"
            + json.dumps({"key": PREFIX + "new", "value": '{"v":3}', "ttl_ms": None}) + "\n")
        monkeypatch.setenv("Mesh__KeyValue__Provider", "ToskaStore")
        monkeypatch.setenv("Mesh__KeyValue__ToskaStore__BaseUrl", running.url)
        monkeypatch.setenv("Mesh__KeyValue__ToskaStore__EnableKeyIndex", "true")
        monkeypatch.chdir(tmp_path)
        yield running


def contents(running) -> tuple[int, dict]:
    """The store's revision (bumped by every change) and every key with value and version."""
    keys = running.store.keys()  # the dev store's method (a list), not a dict's view
    return running.store.revision, {key: running.store.get(key) for key in keys}


def test_every_command_has_a_sample():
    assert set(SAMPLES) == set(COMMANDS), "add the new command to SAMPLES"
    assert set(WRITING) == {"seed", "repair-index", "import", "revert"}


@pytest.mark.parametrize("name", RUNNABLE)
def test_read_only_refuses_every_writing_command_and_no_command_writes(
        name, store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("Dashboard__ReadOnly", "true")
    argv = SAMPLES[name](tmp_path)  # a sample may prepare what it acts on
    before = contents(store)
    code = main(argv)
    captured = capsys.readouterr()
    assert contents(store) == before, f"{name} wrote under Dashboard__ReadOnly"
    if COMMANDS[name].writes:
        assert code == 2
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("toska-kv: Dashboard__ReadOnly is true: ")
        assert f"`toska-kv {name}`" in lines[0] and "nothing was written" in lines[0]
        assert captured.out == ""  # refused before any plan or progress
        assert not (tmp_path / "backup.json").exists()
    else:
        assert code in (0, 1), captured.err  # read-only does not stop reading commands


@pytest.mark.parametrize("name", WRITING)
def test_each_writing_sample_writes_without_read_only(name, store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("Dashboard__ReadOnly", "false")
    argv = SAMPLES[name](tmp_path)
    before = contents(store)
    assert main(argv) == 0, capsys.readouterr().err
    assert contents(store) != before


def test_read_only_from_the_config_file_refuses_too(store, tmp_path, capsys):
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Dashboard": {"ReadOnly": True}}))
    before = contents(store)
    assert main(["--config", str(path), "import", str(tmp_path / "import.jsonl"), "--yes"]) == 2
    assert "Dashboard__ReadOnly" in capsys.readouterr().err
    assert contents(store) == before


def test_a_command_cannot_be_declared_without_saying_whether_it_writes():
    with pytest.raises(TypeError):
        entry.Command("help", lambda parser: None, lambda args: 0)  # type: ignore[call-arg]


def test_demo_under_read_only_serves_read_only(monkeypatch):
    """The demo writes only its own in-process store: it still seeds it, and the dashboard
    it serves refuses writes, to the demo's editor too."""
    served: dict = {}

    def serve(app, host, port, banner):  # instead of serving until Ctrl-C: use the app once
        client = app.test_client()
        client.post("/login", data={"username": "demo", "password": "demo",
                                    "csrf_token": csrf_token(client, "/login")})
        served.update(app=app, banner=banner, services=client.get("/services"),
                      new=client.get("/key/new?prefix=profiles:"),
                      create=post_form(client, "/key/new", {
                          "key": "profiles:ro-demo", "value": "1", "ttl_mode": "none",
                          "raw": "on"}))

    monkeypatch.setenv("Dashboard__ReadOnly", "true")
    monkeypatch.setenv("Dashboard__SessionStorage", "memory://")
    monkeypatch.setattr(entry, "_serve_app", serve)
    assert main(["demo", "--port", "0", "--services", "1", "--keys-per-service", "3"]) == 0
    assert served["app"].config["KV_SETTINGS"].dashboard.read_only is True
    assert "demo store: " in served["banner"][0] and "1 services" in served["banner"][0]
    assert any(line.startswith("Dashboard__ReadOnly is true: the dashboard refuses every write")
               for line in served["banner"])
    assert served["services"].status_code == 200 and "profiles" in served["services"].get_data(
        as_text=True)  # seeded, and the demo operator is logged in
    assert served["new"].status_code == 403 and served["create"].status_code == 403
