"""ToskaStore (HTTP/JSON) behind the ``KeyValueProvider`` contract.

Three server releases are deployed (docs/mesh-kv.md): 0.8 (unpaged, unordered key
listing), v0.9.1 (cursor key listing) and main (ordered range API, metadata, conditional
writes, leases, transactions, watch). A release is never guessed from one feature: the
server is first identified by ``GET /health``; versions and TTLs count only once a GET
answered with metadata; conditional writes only once the server answered 412 where one
was due (a v0.9.1 server lists keys with cursors yet silently ignores If-Match); and
transactions only once ``POST /kv/txn`` answered. Detection runs once, lazily.

Every HTTP call goes through ``_request``, the one place where transport failures and
error statuses become ``ProviderError``s.

``ToskaStoreProvider`` is defined here (construction and transport) and composed from
one mixin per concern:

- ``toskastore_detect``: release detection, ``capabilities()`` and ``release()``;
- ``toskastore_listing``: ``list_keys``, ``list_segments`` and ``scan`` (range, cursor,
  legacy and index listings);
- ``toskastore_operations``: ``get``/``mget``, ``put``/``delete``, ``transact``, ``info``;
- ``toskastore_wire``: key paths, queries, cursors and error statuses (no requests).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx

from dashboard.stores import errors
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.toskastore.detect import DetectionMixin, _Server
from dashboard.stores.toskastore.listing import MAX_PAGE, IndexLocator, ListingMixin, default_index_key_for
from dashboard.stores.toskastore.operations import OperationsMixin
from dashboard.stores.toskastore.wire import display_url, encode_key, status_error

__all__ = ["MAX_PAGE", "ToskaStoreProvider", "default_index_key_for", "encode_key"]


class ToskaStoreProvider(DetectionMixin, ListingMixin, OperationsMixin, KeyValueProvider):
    """A ToskaStore server of any release, through one pooled ``httpx.Client``."""

    kind = "toskastore"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        legacy_list_cap: int = 10000,
        mget_batch: int = 500,
        index_key_for: IndexLocator | None = None,
        name: str | None = None,
    ) -> None:
        if legacy_list_cap < 1:
            raise ValueError("legacy_list_cap must be at least 1")
        if mget_batch < 1:
            raise ValueError("mget_batch must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._display_url = display_url(self.base_url)
        self.name = name or f"ToskaStore {self._display_url}"
        self._has_token = bool(token)
        self._timeout = timeout
        self._legacy_list_cap = legacy_list_cap
        self._mget_batch = mget_batch
        self._index_key_for = index_key_for or default_index_key_for
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # one pooled client per provider (and the app keeps one provider per process);
        # httpx.Client is safe to share between threads
        self._client = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout), headers=headers
        )
        self._detect_lock = threading.Lock()
        self._server: _Server | None = None
        #: set by the first GET answer, before or after detection
        self._metadata_seen: bool | None = None

    # ------------------------------------------------------------------ transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        write: bool = False,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; map every failure to a ``ProviderError``.

        ``path`` is already percent-encoded (keys via ``encode_key``, queries via
        ``query``): httpx keeps a pre-encoded path as it is, so ``%2F`` stays inside
        the key segment. Statuses in ``allow`` are returned to the caller instead.
        """
        try:
            response = self._client.request(method, path, json=json_body, headers=headers)
        except UnicodeEncodeError:  # a key in a JSON body that is not UTF-8 text
            raise errors.InvalidRequest(
                "a key in the request is not UTF-8 text, and ToskaStore keys are UTF-8 text: "
                "it cannot be sent to the store", store=self.name, key=key) from None
        except httpx.HTTPError as exc:
            error = self._transport_error(exc, key)
            # a request that may have reached the server may have been applied by it
            error.maybe_written = write and not isinstance(
                exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            raise error from exc
        status = response.status_code
        if 200 <= status < 300 or status in allow:
            return response
        error = status_error(response, method, store=self.name, key=key, write=write,
                             has_token=self._has_token)
        # a real server under load answers 500 and applies the write later
        error.maybe_written = write and status >= 500
        raise error

    def _transport_error(self, exc: httpx.HTTPError, key: str | None) -> errors.ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return errors.Unavailable(
                f"cannot reach ToskaStore at {self._display_url}: timed out after "
                f"{self._timeout:g}s", store=self.name, key=key)
        if isinstance(exc, httpx.ConnectError):
            return errors.Unavailable(
                f"cannot reach ToskaStore at {self._display_url}: {self._connect_reason(exc)}",
                store=self.name, key=key)
        if isinstance(exc, httpx.TransportError):
            return errors.Unavailable(
                f"connection to ToskaStore at {self._display_url} failed: "
                f"{exc or type(exc).__name__}", store=self.name, key=key)
        # e.g. a body that cannot be decoded
        return errors.BadResponse(f"unreadable answer from ToskaStore: {exc or type(exc).__name__}",
                                  store=self.name, key=key)

    @staticmethod
    def _connect_reason(exc: Exception) -> str:
        text = str(exc)
        lowered = text.lower()
        if "refused" in lowered:
            return "connection refused"
        if "name or service not known" in lowered or "nodename nor servname" in lowered or (
            "name resolution" in lowered
        ) or "getaddrinfo" in lowered:
            return "host name not found"
        return text or "connection failed"

    def _json(self, response: httpx.Response, what: str, *, key: str | None = None) -> dict:
        """The JSON object in a 2xx answer, else ``BadResponse``."""
        try:
            data = response.json()
        except ValueError as exc:
            kind = response.headers.get("content-type", "unknown content type")
            raise errors.BadResponse(
                f"{what}: the answer is not JSON ({kind}); is {self._display_url} a "
                "ToskaStore server?",
                store=self.name, key=key,
            ) from exc
        if not isinstance(data, dict):
            raise errors.BadResponse(f"{what}: expected a JSON object, got "
                                     f"{type(data).__name__}", store=self.name, key=key)
        return data

    def _bad(self, what: str, key: str | None = None) -> errors.BadResponse:
        return errors.BadResponse(f"unexpected answer shape: {what}", store=self.name, key=key)

    def _key_path(self, key: str) -> str:
        if not isinstance(key, str) or key == "":
            raise errors.InvalidRequest("a key must be a non-empty string", store=self.name,
                                        key=key if isinstance(key, str) else None)
        return "/kv/" + encode_key(key)

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._client.close()

    # -- search: listings that arrive whole are searched once (``toskastore_search``) -----

    def scan_matching(
        self, prefix: str = "", pattern: str = "*", *, cursor: str | None = None,
        limit: int = 100, budget: int = 20_000, preview_bytes: int | None = None,
    ):
        """Glob-filter the keys-only listing here; then ``mget`` the hits only."""
        from dashboard.stores.toskastore import search as toskastore_search

        return toskastore_search.scan_matching(self, prefix, pattern, cursor=cursor,
                                               limit=limit, budget=budget,
                                               preview_bytes=preview_bytes)

    def search_values(self, prefix: str = "", query: str = "", **options: Any):
        """Values of the listing's keys, read in batches, searched here."""
        from dashboard.stores.toskastore import search as toskastore_search

        return toskastore_search.search_values(self, prefix, query, **options)

    # -- live changes: the change feed (``toskastore_watch``) --------------------------------

    def watch_unavailable_reason(self) -> str | None:
        """Why this server cannot stream changes (its release has no ``/kv/watch``); None if it can."""
        server = self._detected()
        return None if server.watch else (server.watch_note or "no change feed was found")

    def key_history(self, key: str, *, limit: int = 200) -> list:
        """The store's retained changes of ``key``, newest first (main-branch servers)."""
        from dashboard.stores.toskastore import watch as toskastore_watch

        if not self.capabilities().watch:
            return super().key_history(key, limit=limit)
        return toskastore_watch.key_history(self, key, limit=limit)

    def watch(self, prefix: str, since_revision: int | None = None):
        """Stream changes under ``prefix`` from ``GET /kv/watch`` (main-branch servers).

        With ``since_revision``, first the retained changes after it (``HistoryGone`` when
        the store no longer holds them). The stream reconnects by itself when the server
        ends it, from the last revision it saw. ``Unsupported`` on a release without watch.
        """
        from dashboard.stores.toskastore import watch as toskastore_watch

        reason = self.watch_unavailable_reason()
        if reason is not None:
            raise errors.Unsupported(f"live view unavailable: {reason}", store=self.name)
        return toskastore_watch.watch(self, prefix, since_revision)
