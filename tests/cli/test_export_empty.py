"""A prefix with no keys is not a successful export (issue 17, item 1): ``toska-kv export``
exits 2 with "no keys under 'profile:' (did you mean 'profiles:'?)" and writes no file, the
web's ``/export`` answers 404 with the same sentence; ``--allow-empty`` (``allow_empty=1``)
still writes the empty file. On the dev store over its socket and on a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis

from dashboard.main import main
from dashboard.mesh import transfer
from tests.support.webapp import login, make_app

pytestmark = pytest.mark.usefixtures("clean_environment")

NEAR_MISS = "no keys under 'profile:' (did you mean 'profiles:'?)"


def toskastore_config(tmp_path, url: str) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Mesh": {"KeyValue": {
        "Provider": "ToskaStore", "ToskaStore": {"BaseUrl": url}}}}))
    return str(path)


def redis_config(tmp_path, server) -> str:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Mesh": {"KeyValue": {
        "Provider": "Redis", "Redis": {"ConnectionString": f"{server.host}:{server.port}"}}}}))
    return str(path)


@pytest.fixture(scope="module")
def seeded_devstore(devstore):
    devstore.store.put("profiles:alice", '{"name":"alice"}')
    devstore.store.put("profiles:bob", '{"name":"bob"}', ttl_ms=300_000)
    devstore.store.put("orders:1", "one")
    return devstore


@pytest.fixture(scope="module")
def seeded_redis(redis_server):
    raw = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        raw.set("profiles:alice", '{"name":"alice"}')
        raw.set("profiles:bob", '{"name":"bob"}', px=300_000)
        raw.set("orders:1", "one")
    finally:
        raw.close()
    return redis_server


@pytest.fixture(params=["devstore", "redis"])
def config(request, tmp_path):
    """An appsettings.json for the CLI on a store holding profiles:* and orders:*."""
    if request.param == "devstore":
        return toskastore_config(tmp_path, request.getfixturevalue("seeded_devstore").url)
    return redis_config(tmp_path, request.getfixturevalue("seeded_redis"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- CLI


def test_a_mistyped_prefix_exits_2_suggests_the_close_one_and_writes_no_file(
        tmp_path, capsys, config):
    out = tmp_path / "b.jsonl"
    assert main(["export", "--config", config, "--prefix", "profile:", "-o", str(out)]) == 2
    assert one_error_line(capsys) == f"toska-kv: {NEAR_MISS}"
    assert not out.exists()


def test_an_existing_file_is_left_as_it_was(tmp_path, capsys, config):
    out = tmp_path / "b.jsonl"
    out.write_bytes(b"yesterday's backup\n")
    assert main(["export", "--config", config, "--prefix", "profile:", "-o", str(out)]) == 2
    assert NEAR_MISS in capsys.readouterr().err
    assert out.read_bytes() == b"yesterday's backup\n"


def test_nothing_close_suggests_nothing(tmp_path, capsys, config):
    out = tmp_path / "b.jsonl"
    assert main(["export", "--config", config, "--prefix", "zzqx:", "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert line == "toska-kv: no keys under 'zzqx:'" and "did you mean" not in line
    assert not out.exists()


def test_to_stdout_nothing_is_printed(capsys, config):
    assert main(["export", "--config", config, "--prefix", "profile:"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and NEAR_MISS in captured.err


def test_allow_empty_writes_the_empty_file_and_says_so(tmp_path, capsys, config):
    out = tmp_path / "empty.jsonl"
    assert main(["export", "--config", config, "--prefix", "profile:", "-o", str(out),
                 "--allow-empty"]) == 0
    err = capsys.readouterr().err
    assert "exported 0 key(s) under 'profile:'" in err and "is empty" in err
    assert out.exists() and out.read_bytes() == b""


def test_a_prefix_with_keys_exports_as_before(tmp_path, capsys, config):
    out = tmp_path / "profiles.jsonl"
    assert main(["export", "--config", config, "--prefix", "profiles:", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "exported 2 key(s) under 'profiles:'" in err and "empty" not in err
    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(r["key"] for r in lines) == ["profiles:alice", "profiles:bob"]


# --------------------------------------------------------------------------- mesh


def test_the_error_carries_the_prefix_and_the_suggestions(seeded_devstore, devstore_provider):
    with pytest.raises(transfer.NothingToExport) as raised:
        list(transfer.export_lines(devstore_provider, "profile:"))
    assert raised.value.prefix == "profile:" and raised.value.suggestions == ["profiles:"]
    assert str(raised.value) == NEAR_MISS
    assert list(transfer.export_lines(devstore_provider, "profile:", allow_empty=True)) == []


# --------------------------------------------------------------------------- web


@pytest.fixture
def web(seeded_devstore, devstore_provider):
    client = make_app(devstore_provider).test_client()
    login(client, "vi")
    return client


def test_web_answers_404_with_the_same_sentence(web):
    response = web.get("/export?prefix=profile:")
    body = response.get_data(as_text=True)
    assert response.status_code == 404, body
    assert "Content-Disposition" not in response.headers
    assert "no keys under &#39;profile:&#39; (did you mean &#39;profiles:&#39;?)" in body
    far = web.get("/export?prefix=zzqx:")
    assert far.status_code == 404 and "did you mean" not in far.get_data(as_text=True)
    # asked for explicitly: the empty download
    empty = web.get("/export?prefix=profile:&allow_empty=1")
    assert empty.status_code == 200 and empty.get_data() == b""


def test_web_export_with_keys_is_unchanged(web):
    response = web.get("/export?prefix=profiles:")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="profiles.jsonl"'
    keys = [json.loads(line)["key"] for line in response.get_data().splitlines()]
    assert keys == ["profiles:alice", "profiles:bob"]
