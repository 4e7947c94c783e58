"""``toska-kv history KEY`` and ``toska-kv revert ID`` on the audit trail the settings name
(a SQLite file here, as on a single replica), against a real dev store."""

from __future__ import annotations

import json

import pytest

from dashboard.main import main

pytestmark = pytest.mark.usefixtures("clean_environment")


def appsettings(tmp_path, url: str) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({
        "Mesh": {"KeyValue": {"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url}}},
        "Dashboard": {"AuditStorage": f"sqlite://{tmp_path}/audit.sqlite3"}}))
    return str(path)


def imported(tmp_path, config: str, key: str, value: str, mode: str = "create-only") -> None:
    data = tmp_path / f"in-{len(value)}.jsonl"
    data.write_text(json.dumps({"key": key, "value": value, "ttl_ms": None}) + "\n")
    assert main(["import", "--config", config, str(data), "--yes", "--mode", mode,
                 "--reason", "INC-9 backfill"]) == 0


def history(config: str, key: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["history", "--config", config, key, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_history_lists_the_commands_writes_and_revert_undoes_one(tmp_path, devstore, capsys):
    config = appsettings(tmp_path, devstore.url)
    imported(tmp_path, config, "hist:k", '{"v":1}')
    imported(tmp_path, config, "hist:k", '{"v":22}', mode="overwrite")
    entries = history(config, "hist:k", capsys)
    assert [e["action"] for e in entries] == ["import", "import"]
    assert all(e["reason"] == "INC-9 backfill" and e["operator"].startswith("cli") for e in entries)
    assert all(e["store"] == f"ToskaStore {devstore.url}" for e in entries), entries[0]["store"]
    assert main(["history", "--config", config, "hist:k"]) == 0
    assert "import" in capsys.readouterr().out

    # the first import created the key: undoing it now would delete the second's value
    assert main(["revert", "--config", config, entries[1]["id"], "--yes"]) == 1
    assert "changed since" in capsys.readouterr().out
    assert devstore.store.get("hist:k")["value"] == '{"v":22}'
    # the overwrite kept the value it replaced: undoing it puts that back
    assert main(["revert", "--config", config, entries[0]["id"], "--yes"]) == 0
    assert devstore.store.get("hist:k")["value"] == '{"v":1}'
    assert history(config, "hist:k", capsys)[0]["action"] == "revert"
    assert main(["revert", "--config", config, entries[1]["id"], "--yes"]) == 0  # now it may
    assert devstore.store.get("hist:k") is None


def test_revert_of_an_unknown_entry_says_so(tmp_path, devstore, capsys):
    config = appsettings(tmp_path, devstore.url)
    assert main(["revert", "--config", config, "nope", "--yes"]) == 2
    assert "no audit entry 'nope'" in capsys.readouterr().err


def test_revert_job_undoes_a_whole_import(tmp_path, devstore, capsys):
    config = appsettings(tmp_path, devstore.url)
    data = tmp_path / "many.jsonl"
    data.write_text("".join(json.dumps({"key": f"histj:k{n}", "value": "1", "ttl_ms": None})
                            + "\n" for n in range(3)))
    assert main(["import", "--config", config, str(data), "--yes"]) == 0
    job = history(config, "histj:k0", capsys)[0]["job"]
    assert main(["revert", "--config", config, "--job", job, "--yes"]) == 0
    out = capsys.readouterr()
    assert out.out.count("reverted") == 3 and "3 reverted, 0 changed since, 0 failed" in out.err
    assert all(devstore.store.get(f"histj:k{n}") is None for n in range(3))
