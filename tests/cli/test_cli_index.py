"""``toska-kv check-index`` and ``repair-index``, run in-process against real dev stores."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from dashboard.devstore import start_devstore
from dashboard.main import main
from tests.support.other_servers import HTML_PAGE, NOT_FOUND_JSON, answering_everything

DOCUMENTED = {"prefix", "index_key", "indexed", "live", "stale", "unindexed", "duplicates",
              "malformed", "seconds"}


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(scope="module")
def legacy():
    with start_devstore(port=0, legacy=True) as running:
        yield running


def appsettings(tmp_path: Path, url: str, **dashboard) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({
        "Mesh": {"KeyValue": {"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url}}},
        "Dashboard": dashboard,
    }))
    return str(path)


def fresh_prefix() -> str:
    return f"cli{uuid.uuid4().hex[:8]}:"


def make_service(running, prefix: str, live: list[str], index: list[str] | str | None) -> None:
    for key in live:
        running.store.put(prefix + key, '{"v":1}')
    if index is not None:
        text = index if isinstance(index, str) else json.dumps(index)
        running.store.put(prefix + "__keys", text)


def index_of(running, prefix: str) -> list[str]:
    return json.loads(running.store.get(prefix + "__keys")["value"])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("toska-kv: ") and "Traceback" not in err
    return lines[0]


class Terminal(io.StringIO):
    """Operator input on a terminal."""

    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- check-index


def test_consistent_index_exits_0(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a", "b"], ["b", "a"])
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", prefix]) == 0
    out = capsys.readouterr().out
    assert "SERVICE" in out and "UNINDEXED" in out and prefix + "__keys" in out
    assert "every index is consistent" in out


def test_drift_exits_1_and_lists_the_keys(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a", "b", "c"], ["a", "a", "gone"])
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", prefix[:-1]]) == 1
    out = capsys.readouterr().out
    assert f"{prefix} stale: '{prefix}gone'" in out
    assert f"'{prefix}b', '{prefix}c'" in out
    assert "1 with drift" in out


def test_json_document(tmp_path, capsys, devstore):
    drifted, clean = fresh_prefix(), fresh_prefix()
    make_service(devstore, drifted, ["a", "b", "c"], ["a", "a", "gone"])
    make_service(devstore, clean, ["x"], ["x"])
    config = appsettings(tmp_path, devstore.url)
    code = main(["check-index", "--config", config, "--json", "--service", drifted,
                 "--service", clean])
    assert code == 1
    document = json.loads(capsys.readouterr().out)
    first, second = document["services"]
    assert set(first) >= DOCUMENTED and set(second) >= DOCUMENTED
    assert first["prefix"] == drifted and first["index_key"] == drifted + "__keys"
    assert first["stale"] == [drifted + "gone"]
    assert first["unindexed"] == [drifted + "b", drifted + "c"]
    assert first["duplicates"] == [drifted + "a"]
    assert (first["indexed"], first["live"], first["malformed"]) == (3, 3, None)
    assert second["stale"] == second["unindexed"] == second["duplicates"] == []
    assert isinstance(first["seconds"], float)


def test_all_is_the_default_and_uses_configured_index_keys(tmp_path, capsys, devstore):
    found, own = fresh_prefix(), fresh_prefix()
    make_service(devstore, found, ["a"], ["a"])
    devstore.store.put(own + "k", "v")
    devstore.store.put(own + "__mine", '["k","gone"]')
    config = appsettings(tmp_path, devstore.url, Services=[
        {"Name": "own", "KeyPrefix": own, "KeyIndexKey": "__mine"}])
    assert main(["check-index", "--config", config, "--json"]) == 1  # other tests left drift
    services = {s["prefix"]: s for s in json.loads(capsys.readouterr().out)["services"]}
    assert services[found]["stale"] == []
    assert services[own]["index_key"] == own + "__mine"
    assert services[own]["stale"] == [own + "gone"]
    assert main(["check-index", "--config", config, "--all", "--service", found]) == 2


def test_malformed_index_is_drift(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], "{not json")
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", prefix, "--json"]) == 1
    [report] = json.loads(capsys.readouterr().out)["services"]
    assert "not valid JSON" in report["malformed"] and "{not json" in report["malformed"]


def test_store_down_exits_2_with_one_line(tmp_path, capsys):
    running = start_devstore(port=0)
    config = appsettings(tmp_path, running.url)
    running.stop()
    assert main(["check-index", "--config", config]) == 2
    one_error_line(capsys)
    assert main(["check-index", "--config", config, "--service", "x", "--json"]) == 2
    one_error_line(capsys)


def test_bad_config_exits_2_with_one_line(tmp_path, capsys):
    assert main(["check-index", "--config", str(tmp_path / "missing.json")]) == 2
    one_error_line(capsys)


def test_no_key_listing_needs_configured_services(tmp_path, capsys):
    with start_devstore(port=0, no_key_listing=True) as running:
        config = appsettings(tmp_path, running.url)
        assert main(["check-index", "--config", config]) == 2
        assert "Dashboard:Services" in one_error_line(capsys)
        make_service(running, "svc:", ["a"], ["a", "gone"])
        assert main(["check-index", "--config", config, "--service", "svc"]) == 1
        out = capsys.readouterr().out
        assert "'svc:gone'" in out and "0?" in out  # unindexed keys cannot be known


# --------------------------------------------------------------------------- repair-index


def test_repair_with_yes_fixes_drift_and_keeps_a_backup(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    original = ["a", "a", "gone"]
    make_service(devstore, prefix, ["a", "b"], original)
    config = appsettings(tmp_path, devstore.url)
    backup = tmp_path / "saved.json"
    code = main(["repair-index", "--config", config, "--service", prefix, "--action",
                 "rebuild", "--yes", "--backup", str(backup)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"+ {prefix}b" in captured.out and f"- {prefix}gone" in captured.out
    assert str(backup) in captured.out
    assert json.loads(backup.read_text()) == original
    assert index_of(devstore, prefix) == ["a", "b"]
    assert "audit: index repair by cli" in captured.err
    assert main(["check-index", "--config", config, "--service", prefix]) == 0


def test_repair_default_backup_path(tmp_path, capsys, devstore, monkeypatch):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], ["a", "gone"])
    monkeypatch.chdir(tmp_path)
    config = appsettings(tmp_path, devstore.url)
    assert main(["repair-index", "--config", config, "--service", prefix, "--action",
                 "prune-stale", "--yes", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    [backup] = list(tmp_path.glob(f"{prefix[:-1]}__keys.*Z.json"))
    assert document["backup"] == f"./{backup.name}"
    assert json.loads(backup.read_text()) == ["a", "gone"]
    assert document["plan"]["remove"] == [prefix + "gone"]
    assert document["result"]["removed"] == [prefix + "gone"]
    assert index_of(devstore, prefix) == ["a"]


def test_repair_refuses_without_yes_when_stdin_is_not_a_terminal(
    tmp_path, capsys, devstore, monkeypatch
):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], ["a", "gone"])
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    monkeypatch.chdir(tmp_path)
    config = appsettings(tmp_path, devstore.url)
    assert main(["repair-index", "--config", config, "--service", prefix,
                 "--action", "prune-stale"]) == 2
    assert "--yes" in one_error_line(capsys)
    assert index_of(devstore, prefix) == ["a", "gone"]
    assert not list(tmp_path.glob("*__keys*"))  # no backup either


def test_repair_asks_on_a_terminal(tmp_path, capsys, devstore, monkeypatch):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], ["a", "a"])
    monkeypatch.chdir(tmp_path)
    config = appsettings(tmp_path, devstore.url)
    args = ["repair-index", "--config", config, "--service", prefix, "--action", "dedupe"]
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(args) == 1
    assert index_of(devstore, prefix) == ["a", "a"]
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(args) == 0
    assert "Apply this repair? [y/N]" in capsys.readouterr().out
    assert index_of(devstore, prefix) == ["a"]


def test_legacy_store_needs_the_extra_confirmation(tmp_path, capsys, legacy, monkeypatch):
    prefix = fresh_prefix()
    make_service(legacy, prefix, ["a", "b"], ["a"])
    monkeypatch.chdir(tmp_path)
    config = appsettings(tmp_path, legacy.url)
    args = ["repair-index", "--config", config, "--service", prefix, "--action", "add-unindexed"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main([*args, "--yes"]) == 2
    assert "--i-understand-concurrent-writers" in one_error_line(capsys)
    assert index_of(legacy, prefix) == ["a"]
    # on a terminal: --yes, then the prefix typed out
    monkeypatch.setattr("sys.stdin", Terminal("nope\n"))
    assert main([*args, "--yes"]) == 1
    assert index_of(legacy, prefix) == ["a"]
    monkeypatch.setattr("sys.stdin", Terminal(prefix + "\n"))
    assert main([*args, "--yes"]) == 0
    assert "cannot detect concurrent writers" in capsys.readouterr().out
    assert index_of(legacy, prefix) == ["a", "b"]
    # unattended, with both flags
    make_service(legacy, prefix, ["c"], None)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main([*args, "--yes", "--i-understand-concurrent-writers"]) == 0
    assert index_of(legacy, prefix) == ["a", "b", "c"]


def test_repair_refusals_are_one_line(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], "[broken")
    config = appsettings(tmp_path, devstore.url)
    assert main(["repair-index", "--config", config, "--service", prefix, "--action",
                 "prune-stale", "--yes"]) == 2
    assert "only" in one_error_line(capsys) and devstore.store.get(prefix + "__keys")
    assert main(["repair-index", "--config", config, "--service", ":", "--action",
                 "dedupe", "--yes"]) == 2
    one_error_line(capsys)
    assert main(["repair-index", "--config", config, "--service", prefix,
                 "--action", "bogus"]) == 2  # argparse: usage error
    assert "invalid choice" in capsys.readouterr().err


def test_nothing_to_repair(tmp_path, capsys, devstore, monkeypatch):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], ["a"])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    config = appsettings(tmp_path, devstore.url)
    assert main(["repair-index", "--config", config, "--service", prefix,
                 "--action", "rebuild"]) == 0
    assert "Nothing to repair" in capsys.readouterr().out


# --------------------------------------------------------------------------- wrong targets


@pytest.mark.parametrize("answer", [NOT_FOUND_JSON, HTML_PAGE], ids=["404-everywhere", "html"])
def test_a_url_that_is_not_a_toskastore_exits_2(tmp_path, capsys, answer):
    with answering_everything(*answer) as url:
        config = appsettings(tmp_path, url)
        assert main(["check-index", "--config", config]) == 2
        assert "is not a ToskaStore server" in one_error_line(capsys)
        assert main(["check-index", "--config", config, "--service", "svc:", "--json"]) == 2
        assert "is not a ToskaStore server" in one_error_line(capsys)
        assert capsys.readouterr().out == ""  # never "consistent"


def test_an_unknown_service_exits_2(tmp_path, capsys, devstore):
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", "nosuch:"]) == 2
    assert "no such service" in one_error_line(capsys)
    assert "consistent" not in capsys.readouterr().out


def test_a_service_without_an_index_nothing_keeps_exits_2(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], None)
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", prefix]) == 2
    assert "EnableKeyIndex" in one_error_line(capsys)


def test_a_missing_index_the_runtime_keeps_is_drift(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a"], None)
    config = appsettings(tmp_path, devstore.url, Services=[
        {"KeyPrefix": prefix, "EnableKeyIndex": True}])
    assert main(["check-index", "--config", config, "--service", prefix]) == 1
    assert "missing" in capsys.readouterr().out


def test_duplicates_alone_exit_0_unless_strict(tmp_path, capsys, devstore):
    prefix = fresh_prefix()
    make_service(devstore, prefix, ["a", "b"], ["a", "b", "a"])
    config = appsettings(tmp_path, devstore.url)
    assert main(["check-index", "--config", config, "--service", prefix]) == 0
    assert "harmless" in capsys.readouterr().out
    assert main(["check-index", "--config", config, "--service", prefix, "--strict"]) == 1


def test_an_unknown_provider_name_is_warned_about_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("Mesh__KeyValue__Provider", "Toska")
    monkeypatch.setenv("Mesh__KeyValue__Redis__ConnectionString", "127.0.0.1:1")
    assert main(["check-index"]) == 2  # read as Redis, as the mesh does: nothing listens there
    err = capsys.readouterr().err
    assert "warning" in err and '"Toska"' in err and "Redis" in err
