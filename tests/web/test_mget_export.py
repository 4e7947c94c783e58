"""CSV formula injection in the bulk lookup's download (/mget?format=csv), on real stores.

A cell that starts with ``= + - @`` (or TAB / CR, per OWASP) runs as a formula when the
CSV is opened in a spreadsheet. Keys and values are data anyone with write access chose,
so such cells carry a leading ``'``; the JSON download keeps every value exact.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from dashboard.stores.entries import Entry
from dashboard.web.views.mget import csv_cell, to_csv
from tests.support.backends import start_backend
from tests.support.webapp import login, make_app, post_form

# every character a spreadsheet may start a formula with
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]
PAYLOAD = 'cmd|" /C calc"!A0'


@pytest.fixture(scope="module", params=["devstore", "redis"])
def store(request):
    with start_backend(request.param) as backend:
        yield backend


@pytest.fixture
def editor(store):
    client = make_app(store.provider).test_client()
    login(client, "ed")
    return client


def download(client, fmt: str, keys: list[str]):
    response = post_form(client, "/mget", {"keys": "\n".join(keys) + "\n", "format": fmt},
                         token_from="/mget")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Disposition"] == f'attachment; filename="mget.{fmt}"'
    return response.get_data(as_text=True)


def test_formula_like_values_and_keys_are_neutralised_in_csv(editor, store):
    values = {f"csvinj:v{n}": trigger + PAYLOAD for n, trigger in enumerate(TRIGGERS)}
    # keys are trimmed when pasted, so keys only start with = + - @ (TAB/CR: see below)
    values.update({f"{trigger}csvinj:k{n}": f"{trigger}key {n}"
                   for n, trigger in enumerate(TRIGGERS[:4])})
    values["csvinj:plain"] = "plain, \"quoted\""
    values["csvinj:quote"] = "'=already quoted"
    store.seed(values)
    keys = list(values) + ["=csvinj:missing"]
    records = list(csv.DictReader(io.StringIO(download(editor, "csv", keys), newline="")))
    assert [r["key"] for r in records] == [
        "'" + k if k[0] in "=+-@" else k for k in keys]
    for record, key in zip(records, keys, strict=True):
        value = values.get(key)
        if value is None:
            assert (record["found"], record["value"]) == ("false", "")
            continue
        assert record["found"] == "true"
        if value[0] in "=+-@\t\r'":
            assert record["value"] == "'" + value  # one leading ' added: shown as text
        else:
            assert record["value"] == value
        # nothing a spreadsheet runs: no cell starts with a formula character
        for cell in (record["key"], record["value"]):
            assert not cell or cell[0] not in TRIGGERS

    # the JSON download is no spreadsheet: exact keys and values
    document = json.loads(download(editor, "json", keys))
    assert [(r["key"], r["value"]) for r in document["results"]] == [
        (k, values.get(k)) for k in keys]


def test_csv_keys_starting_with_tab_or_cr_are_neutralised():
    # such keys cannot be pasted (lines are trimmed), but a CSV row may still carry them
    rows = [("\tkey", Entry(key="\tkey", value="\t=1+1")),
            ("\rkey", Entry(key="\rkey", value="\r@SUM(A1)")), ("=gone", None)]
    records = list(csv.reader(io.StringIO(to_csv(rows), newline="")))
    assert records[1][:3] == ["'\tkey", "true", "'\t=1+1"]
    assert records[2][:3] == ["'\rkey", "true", "'\r@SUM(A1)"]
    assert records[3][:3] == ["'=gone", "false", ""]


@pytest.mark.parametrize(("cell", "safe"), [
    *[(t + "1+1", "'" + t + "1+1") for t in TRIGGERS],
    (" =1+1", "' =1+1"), ("\n@x", "'\n@x"),  # after leading whitespace too
    ("\uff1d1+1", "'\uff1d1+1"),  # full-width equals sign
    ("'=x", "''=x"), ("'plain", "''plain"),  # a leading ' is doubled: the escape is reversible
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), ("1", "1"), ("x-1", "x-1"),
])
def test_csv_cell(cell, safe):
    assert csv_cell(cell) == safe
