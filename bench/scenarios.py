"""The measured pages: the real app, served by werkzeug on a loopback port, asked over HTTP.

One ``Dashboard`` per target: ``create_app`` with the provider the settings build (metered
by ``meter``), a threaded werkzeug server on 127.0.0.1 in this process, and a logged-in
httpx client that asks what a browser asks (htmx requests carry ``HX-Request`` and the
CSRF header). A scenario's time is the wall time of its dashboard requests, answers read
whole; its store round trips are those the provider made meanwhile.
"""

from __future__ import annotations

import html
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from dashboard.web.app import create_app

from .data import BIG_KEY, BROWSE_PREFIX, Dataset
from .meter import Meter, instrument
from .targets import Target

USER, PASSWORD = "bench", "bench-pass"
SECRET = "bench-secret-key-not-for-production-0123456789"
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
_SUMMARY = re.compile(r'hx-get="([^"]*/services/summary\?[^"]*)"')
_NEXT = re.compile(r'hx-get="([^"]*/browse\?[^"]*cursor=[^"]*)"')
_ROW = 'data-testid="key-row"'
_MGET_SUMMARY = re.compile(r'data-testid="mget-summary" data-found="(\d+)" data-missing="(\d+)"')


class BenchError(RuntimeError):
    """A page answered something other than what the scenario measures."""


def users() -> list[dict[str, str]]:
    # a cheap hash: the benchmark logs in 50 clients; hashing is not what it measures
    return [{"Name": USER, "PasswordHash": generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
             "Role": "editor"}]


def login(client: httpx.Client) -> str:
    """Log in through the form; the CSRF token htmx requests then send."""
    page = client.get("/login")
    match = _CSRF_INPUT.search(page.text)
    if page.status_code != 200 or not match:
        raise BenchError(f"/login answered {page.status_code} without a CSRF token")
    answer = client.post("/login", data={"username": USER, "password": PASSWORD,
                                         "csrf_token": html.unescape(match.group(1))})
    if answer.status_code != 302:
        raise BenchError(f"login failed: {answer.status_code} {answer.text[:200]}")
    form = client.get("/mget")
    match = _CSRF_INPUT.search(form.text)
    if not match:
        raise BenchError("no CSRF token on /mget")
    return html.unescape(match.group(1))


class Dashboard:
    """The app on one target, on a loopback socket, with a logged-in client."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.meter = Meter()
        provider = target.make_provider()
        instrument(provider, self.meter)
        self.provider = provider
        self.app = create_app({
            "KV_PROVIDER": provider,
            "KV_OVERRIDES": {"Mesh": {"KeyValue": target.mesh},
                             "Dashboard": {"SecretKey": SECRET, "Users": users(),
                                           "SessionStorage": "memory://"}},
        })
        _quiet_logs()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name=f"dashboard-{target.name}")
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.client = httpx.Client(base_url=self.url, timeout=600)
        self.csrf = login(self.client)

    def get(self, url: str, *, htmx: bool = False, params: dict[str, str] | None = None) -> httpx.Response:
        headers = {"HX-Request": "true"} if htmx else {}
        answer = self.client.get(url, params=params, headers=headers)
        if answer.status_code != 200:
            raise BenchError(f"GET {answer.request.url} answered {answer.status_code}: "
                             f"{answer.text[:300]}")
        return answer

    def htmx_post(self, url: str, form: dict[str, str]) -> httpx.Response:
        answer = self.client.post(url, data=form, headers={
            "HX-Request": "true", "X-CSRFToken": self.csrf, "Origin": self.url})
        if answer.status_code != 200:
            raise BenchError(f"POST {url} answered {answer.status_code}: {answer.text[:300]}")
        return answer

    def close(self) -> None:
        self.client.close()
        self.server.shutdown()
        self.server.server_close()
        self.provider.close()


def _quiet_logs() -> None:
    """Request log lines still formatted (they are part of a request's cost), not printed."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    #: untimed set-up: what the timed part needs (e.g. URLs read from a page)
    prepare: Callable[[Dashboard, Dataset], Any]
    #: the timed part: dashboard requests; returns facts to check (rows, found, ...)
    run: Callable[[Dashboard, Dataset, Any], dict[str, Any]]
    #: stop repeating once page + floor have taken this long (a 50 MB page takes a while)
    budget_s: float = 60.0
    #: Redis Commander's equivalent (``commander.Commander``), timed beside the page
    commander: Callable[[Any, Dataset], dict[str, Any]] | None = None


def _nothing(_dash: Dashboard, _ds: Dataset) -> None:
    return None


def _services(dash: Dashboard, _ds: Dataset, _: Any) -> dict[str, Any]:
    # refresh=1: a fresh discovery walk, as the first visitor pays it (the list is cached)
    page = dash.get("/services", params={"refresh": "1"})
    return {"services": len(_SUMMARY.findall(page.text)), "bytes": len(page.content)}


def _summary_urls(dash: Dashboard, _ds: Dataset) -> list[str]:
    return [html.unescape(u) for u in _SUMMARY.findall(dash.get("/services").text)]


def _services_rows(dash: Dashboard, _ds: Dataset, urls: list[str]) -> dict[str, Any]:
    for url in urls:
        dash.get(url, htmx=True)
    return {"requests": len(urls)}


def _browse_first(dash: Dashboard, _ds: Dataset, _: Any) -> dict[str, Any]:
    page = dash.get("/browse", params={"prefix": BROWSE_PREFIX})
    return {"rows": page.text.count(_ROW), "bytes": len(page.content)}


def _browse_all(dash: Dashboard, ds: Dataset, _: Any) -> dict[str, Any]:
    page = dash.get("/browse", params={"prefix": BROWSE_PREFIX})
    rows, requests = page.text.count(_ROW), 1
    while (found := _NEXT.search(page.text)) is not None:
        page = dash.get(html.unescape(found.group(1)), htmx=True)
        rows += page.text.count(_ROW)
        requests += 1
    if rows < ds.browse_size():
        raise BenchError(f"all pages of {BROWSE_PREFIX} showed {rows} of {ds.browse_size()} keys")
    return {"rows": rows, "requests": requests}


def _key(dash: Dashboard, ds: Dataset, _: Any) -> dict[str, Any]:
    page = dash.get("/key", params={"key": ds.key()})
    return {"bytes": len(page.content)}


def _big_key(dash: Dashboard, ds: Dataset, _: Any) -> dict[str, Any]:
    page = dash.get("/key", params={"key": BIG_KEY})
    return {"bytes": len(page.content), "value_bytes": ds.big_bytes}


def _mget(count: int) -> Callable[[Dashboard, Dataset, Any], dict[str, Any]]:
    def run(dash: Dashboard, _ds: Dataset, keys: str) -> dict[str, Any]:
        page = dash.htmx_post("/mget", {"keys": keys})
        summary = _MGET_SUMMARY.search(page.text)
        if summary is None:
            raise BenchError(f"mget of {count} keys: no result summary: {page.text[:300]}")
        return {"found": int(summary.group(1)), "missing": int(summary.group(2)),
                "bytes": len(page.content)}

    return run


def _mget_input(count: int) -> Callable[[Dashboard, Dataset], str]:
    return lambda _dash, ds: "\n".join(ds.lookup_keys(count))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("services", "services page (`/services?refresh=1`: a discovery walk)", _nothing,
             _services),
    Scenario("services_rows", "services page rows (`/services/summary` × each service)",
             _summary_urls, _services_rows),
    Scenario("browse_first", f"first browse page (`{BROWSE_PREFIX}`, 100 keys)", _nothing,
             _browse_first, commander=lambda rc, _ds: rc.browse(BROWSE_PREFIX)),
    Scenario("browse_all", f"all pages of a service (`{BROWSE_PREFIX}`, N/10 keys, 100 a page)",
             _nothing, _browse_all),
    Scenario("key", "key page (`/key`, one order document)", _nothing, _key,
             commander=lambda rc, ds: rc.key(ds.key())),
    Scenario("key_50mb", "key page of a 50 MB JSON value", _nothing, _big_key, budget_s=45.0),
    Scenario("mget_100", "mget 100 keys (htmx `POST /mget`, 10% missing)", _mget_input(100),
             _mget(100)),
    Scenario("mget_10000", "mget 10,000 keys", _mget_input(10_000), _mget(10_000)),
)
