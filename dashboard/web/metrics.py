"""``/metrics`` in the Prometheus text format: requests, store calls, writes, failed logins.

What is counted, and where:

- requests and their latency by Flask endpoint (``keys.detail``, never the path: keys travel
  in query strings, and an endpoint is a bounded label), method and status class (``2xx``);
  timed from Flask's ``request_started`` to ``request_finished`` signals, so a request a
  ``before_request`` hook answered (CSRF, origin, session storage) counts too;
- store calls, their latency and their errors by provider operation, at one place: the
  provider the app uses is wrapped in ``MeteredProvider`` (errors by ``ProviderError.kind``;
  ``not-found`` and ``conflict`` are answers, not outages: filter on ``error``);
- writes by kind (create, edit, delete, repair) and outcome (ok, unchanged, conflict,
  unconfirmed), counted by the audit trail (``audit.py``) and the edit views;
- failed logins (wrong name or password: ``invalid``; refused by the throttle: ``throttled``),
  from the login view's answer, so the authentication code stays as it is.

Several processes (gunicorn workers) each count in their own memory. When the environment
names ``PROMETHEUS_MULTIPROC_DIR`` before the process starts (the image should), every
worker writes its counts to files there and a scrape of any worker reports the sum of all
workers of that host (prometheus-client's multiprocess mode); each replica (pod) is scraped
on its own. Without it a scrape reports the one worker that answered it.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, has_app_context, request
from flask.signals import request_finished, request_started
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from dashboard.stores.base import KeyValueProvider
from dashboard.stores.errors import ProviderError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

bp = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if this process uses it."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class Metrics:
    """The app's counters and histograms, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir() is None:
            # a worker's own memory and CPU; meaningless summed over processes
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "kvdash_http_requests", "HTTP requests answered, by Flask endpoint and status class",
            ["endpoint", "method", "status"], registry=r)
        self.request_seconds = Histogram(
            "kvdash_http_request_duration_seconds", "Time to answer a request",
            ["endpoint", "method", "status"], registry=r)
        self.store_calls = Counter(
            "kvdash_store_calls", "Calls of the key/value store, by provider operation",
            ["operation"], registry=r)
        self.store_errors = Counter(
            "kvdash_store_errors", "Store calls that raised, by operation and error kind",
            ["operation", "error"], registry=r)
        self.store_seconds = Histogram(
            "kvdash_store_call_duration_seconds", "Time a store call took", ["operation"],
            registry=r)
        self.writes = Counter(
            "kvdash_writes", "Writes by kind (create, edit, delete, repair) and outcome",
            ["kind", "outcome"], registry=r)
        self.login_failures = Counter(
            "kvdash_login_failures", "Failed logins: invalid (wrong name or password) or "
            "throttled (refused after too many failures)", ["reason"], registry=r)
        #: label children by label values: ``labels()`` takes a lock and builds a key per call
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._store_children: dict[str, tuple[Any, Any]] = {}

    def request_children(self, endpoint: str, method: str, status: str) -> tuple[Any, Any]:
        """(requests counter, latency histogram) of one endpoint, method and status class."""
        key = (endpoint, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(endpoint, method, status),
                self.request_seconds.labels(endpoint, method, status))
        return children

    def store_children(self, operation: str) -> tuple[Any, Any]:
        """(calls counter, latency histogram) of one provider operation."""
        children = self._store_children.get(operation)
        if children is None:
            children = self._store_children[operation] = (
                self.store_calls.labels(operation), self.store_seconds.labels(operation))
        return children

    def exposition(self) -> bytes:
        """The text a scrape gets: this app's registry, or every worker's files."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)


def current() -> Metrics | None:
    """The running app's metrics; None outside an app (the CLI's repairs)."""
    if not has_app_context():
        return None
    return current_app.extensions.get("kv_metrics")


def count_write(kind: str, outcome: str) -> None:
    """One write of ``kind`` (create, edit, delete, repair) ended with ``outcome``."""
    metrics = current()
    if metrics is not None:
        metrics.writes.labels(kind, outcome).inc()


# --------------------------------------------------------------------------- the provider


class MeteredProvider(KeyValueProvider):
    """The app's provider with every contract call counted and timed; nothing else changes.

    Composite calls (``count_keys``, ``iter_keys``, ``list_segments``) go to the wrapped
    provider whole, so each counts once under its own name although it may read many pages.
    Anything beyond the contract (``release()``, ``base_url``) is the wrapped provider's.
    """

    def __init__(self, inner: KeyValueProvider, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.kind = getattr(inner, "kind", "")
        self.name = getattr(inner, "name", "")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def wrapped(self) -> KeyValueProvider:
        return self._inner

    def _call(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        metrics = self._metrics
        calls, seconds = metrics.store_children(operation)
        calls.inc()
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except ProviderError as error:
            metrics.store_errors.labels(operation, error.kind).inc()
            raise
        except Exception:
            metrics.store_errors.labels(operation, "exception").inc()
            raise
        finally:
            seconds.observe(time.perf_counter() - started)

    def capabilities(self):
        # asked on most pages and cached by the provider: not a store call worth counting
        return self._inner.capabilities()

    # access questions ask no store: passed on, not counted
    def may_read(self, key: str) -> bool:
        return self._inner.may_read(key)

    def may_write(self, key: str) -> bool:
        return self._inner.may_write(key)

    def reads_under(self, prefix: str) -> bool:
        return self._inner.reads_under(prefix)

    def check_read(self, key: str) -> None:
        self._inner.check_read(key)

    def key_history(self, key: str, *, limit: int = 200) -> list:
        return self._call("key_history", self._inner.key_history, key, limit=limit)

    def list_keys(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100):
        return self._call("list_keys", self._inner.list_keys, prefix, cursor=cursor, limit=limit)

    def scan(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100,
             preview_bytes: int | None = None, work: Any = None):
        return self._call("scan", self._inner.scan, prefix, cursor=cursor, limit=limit,
                          preview_bytes=preview_bytes, work=work)

    def get(self, key: str, *, max_bytes: int | None = None):
        return self._call("get", self._inner.get, key, max_bytes=max_bytes)

    def mget(self, keys: Sequence[str], *, exact: bool = False):
        return self._call("mget", self._inner.mget, keys, exact=exact)

    def read_bytes(self, key: str):
        return self._call("read_bytes", self._inner.read_bytes, key)

    def exists_many(self, keys: Sequence[str]):
        return self._call("exists_many", self._inner.exists_many, keys)

    def put(self, key: str, value: str, **kwargs: Any):
        return self._call("put", self._inner.put, key, value, **kwargs)

    def delete(self, key: str, *, expected: str | None = None):
        return self._call("delete", self._inner.delete, key, expected=expected)

    def info(self):
        return self._call("info", self._inner.info)

    def transact(self, compare, success, failure=()):
        return self._call("transact", self._inner.transact, compare, success, failure)

    def list_segments(self, prefix: str = "", **kwargs: Any):
        return self._call("list_segments", self._inner.list_segments, prefix, **kwargs)

    def count_keys(self, prefix: str = "", *, cap: int = 1000):
        return self._call("count_keys", self._inner.count_keys, prefix, cap=cap)

    def iter_keys(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[str]:
        return self._call("iter_keys", self._iterate, prefix, page_size)

    def _iterate(self, prefix: str, page_size: int) -> Iterator[str]:
        keys = self._inner.iter_keys(prefix, page_size=page_size)

        def metered() -> Iterator[str]:
            try:
                yield from keys
            except ProviderError as error:
                # raised while walking: the call itself was counted when it began
                self._metrics.store_errors.labels("iter_keys", error.kind).inc()
                raise

        return metered()

    def close(self) -> None:
        self._inner.close()

    def dump(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100):
        return self._call("dump", self._inner.dump, prefix, cursor=cursor, limit=limit)

    def restore(self, item, **kwargs: Any):
        return self._call("restore", self._inner.restore, item, **kwargs)

    def scan_matching(self, prefix: str = "", pattern: str = "*", **kwargs: Any):
        return self._call("scan_matching", self._inner.scan_matching, prefix, pattern, **kwargs)

    def search_values(self, prefix: str = "", query: str = "", **kwargs: Any):
        return self._call("search_values", self._inner.search_values, prefix, query, **kwargs)

    def watch_unavailable_reason(self):
        # answered from what detection found: not a store call worth counting
        return self._inner.watch_unavailable_reason()

    def watch(self, prefix: str, since_revision: int | None = None):
        # counts opening the stream; the events it then carries are not calls
        return self._call("watch", self._inner.watch, prefix, since_revision)


# --------------------------------------------------------------------------- requests


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def _on_request_started(app: Flask, **_: Any) -> None:
    g.kv_started = time.perf_counter()


def _on_request_finished(app: Flask, response: Response, **_: Any) -> None:
    metrics: Metrics = app.extensions["kv_metrics"]
    started = g.get("kv_started")
    endpoint = request.endpoint or "unmatched"
    method = request.method if request.method in _METHODS else "other"
    status = _status_class(response.status_code)
    requests, seconds = metrics.request_children(endpoint, method, status)
    requests.inc()
    if started is not None:
        seconds.observe(time.perf_counter() - started)
    if endpoint == "auth.login" and request.method == "POST":
        if response.status_code == 401:
            metrics.login_failures.labels("invalid").inc()
        elif response.status_code == 429:
            metrics.login_failures.labels("throttled").inc()


@bp.get("/metrics")
def metrics():
    """The Prometheus exposition; no login, but ``Dashboard:MetricsToken`` when it is set."""
    token = current_app.config["KV_SETTINGS"].dashboard.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")):
            return Response("metrics need Authorization: Bearer <Dashboard__MetricsToken>\n",
                            401, {"WWW-Authenticate": 'Bearer realm="metrics"',
                                  "Content-Type": "text/plain; charset=utf-8"})
    body = current_app.extensions["kv_metrics"].exposition()
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Count the app's requests and store calls and serve ``/metrics``.

    Call after ``app.extensions["kv_provider"]`` is set: it is replaced by a metered proxy.
    """
    directory = multiprocess_dir()
    if directory is not None:
        # the files must have a directory, or the first count of every request fails
        os.makedirs(directory, exist_ok=True)
    metrics = Metrics()
    app.extensions["kv_metrics"] = metrics
    provider = app.extensions["kv_provider"]
    if not isinstance(provider, MeteredProvider):
        app.extensions["kv_provider"] = MeteredProvider(provider, metrics)
    request_started.connect(_on_request_started, app)
    request_finished.connect(_on_request_finished, app)
    app.register_blueprint(bp)
