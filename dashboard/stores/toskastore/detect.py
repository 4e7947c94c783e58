"""ToskaStore release detection: what the server has proven it can do.

A release is never guessed from one feature (docs/mesh-kv.md): the server is first
identified by ``GET /health``; versions and TTLs count only once a GET answered with
metadata; conditional writes only once the server answered 412 where one was due (a
v0.9.1 server lists keys with cursors yet silently ignores If-Match); and transactions
only once ``POST /kv/txn`` answered. Detection runs once, lazily, and its findings are
the provider's ``capabilities()`` and ``release()``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass

from dashboard.stores import errors
from dashboard.stores.base import Capabilities
from dashboard.stores.pages import ListingSource
from dashboard.stores.toskastore.wire import query

#: keys the capability probes address: never written, only asked about
_PROBE_PREFIX = "__toska-kv-dashboard:probe:"


@dataclass
class _Server:
    """What the server has proven it can do; ``None`` is "not proven yet"."""

    listing: ListingSource
    #: GET answers carry metadata (version, TTL, lease): main
    metadata: bool | None = None
    #: a conditional write was refused with 412 where one was due
    conditions: bool | None = None
    #: ``POST /kv/txn`` answered with ``succeeded``
    transactions: bool | None = None
    #: ``GET /kv/watch`` answered an event stream (``toskastore_watch.probe``)
    watch: bool | None = None
    #: why there is no change feed, for the live pages
    watch_note: str = ""


class DetectionMixin:
    """Identifies the server once and reports its proven capabilities and release.

    Part of ``ToskaStoreProvider``; uses the provider's ``name`` and ``_display_url``,
    its transport (``_request``, ``_json``, ``_key_path``) and ``_read`` (operations:
    one GET tells whether answers carry metadata). Owns ``_detect_lock``, ``_server``
    and ``_metadata_seen``, which the provider's ``__init__`` sets up.
    """

    name: str
    _display_url: str
    _detect_lock: threading.Lock
    _server: _Server | None
    #: set by the first GET answer, before or after detection
    _metadata_seen: bool | None

    def _detected(self) -> _Server:
        """Identify the server and how it lists keys, once; failures are retried next time."""
        server = self._server
        if server is not None:
            return server
        with self._detect_lock:
            if self._server is None:
                self._server = self._detect()
            return self._server

    def _ensure_detected(self) -> ListingSource:
        return self._detected().listing

    def _not_a_store(self, why: str) -> errors.NotAStore:
        return errors.NotAStore(
            f"{self._display_url} is not a ToskaStore server: {why} (a ToskaStore answers "
            "GET /health with JSON holding a status)", store=self.name,
        )

    def _identify(self) -> None:
        """``GET /health`` must answer JSON with a ``status``: else this is not a ToskaStore.

        Without this, a mistyped URL (a server answering 404 or HTML to everything)
        would look like a store without key listing, and every check would pass.
        """
        try:
            response = self._request("GET", "/health", allow=(503,))
        except errors.NotFound:
            raise self._not_a_store("GET /health answered 404") from None
        except (errors.InvalidRequest, errors.BadResponse) as exc:
            raise self._not_a_store(f"GET /health failed ({exc.message})") from None
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise self._not_a_store(f"GET /health answered {kind}, not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise self._not_a_store("GET /health answered JSON without a status")

    def _detect(self) -> _Server:
        self._identify()
        server: _Server
        sample: str | None = None
        response = self._request("GET", "/kv?" + query(limit=1, include_metadata=True),
                                 allow=(404,))
        if response.status_code == 200:
            items = self._json(response, "range listing probe").get("items")
            if not isinstance(items, list):
                raise self._not_a_store("GET /kv answered without a list of items")
            server = _Server("range")
            if items and isinstance(items[0], dict):
                server.metadata = isinstance(items[0].get("metadata"), dict)
        else:
            response = self._request("GET", "/kv/keys?" + query(limit=1), allow=(404,))
            if response.status_code == 404:
                server = _Server("index")
            else:
                data = self._json(response, "key listing probe")
                keys = data.get("keys")
                if not isinstance(keys, list):
                    raise self._not_a_store("GET /kv/keys answered without a list of keys")
                server = _Server("cursor" if "next_cursor" in data else "legacy")
                sample = keys[0] if keys and isinstance(keys[0], str) else None
        if server.metadata is None and self._metadata_seen is None and sample is not None:
            with contextlib.suppress(errors.NotFound):  # expired since it was listed
                self._read(sample)  # one GET tells whether answers carry metadata
        if server.metadata is None:
            server.metadata = self._metadata_seen
        if server.metadata is not False:
            # metadata seen, or nothing to read it from (an empty store): the probes say
            self._probe_writes(server)
        from dashboard.stores.toskastore.watch import probe

        server.watch, server.watch_note = probe(self)  # one request, answered at once
        return server

    def _probe_writes(self, server: _Server) -> None:
        """Prove conditional writes and transactions without writing anything.

        A DELETE of a key that does not exist, conditional on version 1, is refused
        with 412 by a server that honours conditions; one that ignores them deletes
        nothing (the key is not there). A transaction whose only compare fails runs no
        operation. Both need write scope: a read-only token leaves them unproven.
        """
        probe = _PROBE_PREFIX + uuid.uuid4().hex
        try:
            answer = self._request("DELETE", self._key_path(probe), headers={"If-Match": '"1"'},
                                   write=True, allow=(412,))
            server.conditions = answer.status_code == 412
            answer = self._request(
                "POST", "/kv/txn", write=True, allow=(404, 405),
                json_body={"compare": [{"key": probe, "exists": True}], "success": [],
                           "failure": []},
            )
            data = self._json(answer, "transaction probe") if answer.status_code == 200 else {}
            server.transactions = data.get("succeeded") is False
        except (errors.Unauthorized, errors.Forbidden):
            pass  # unproven; a write with this token would be refused anyway

    def _note_metadata(self, seen: bool) -> None:
        if self._metadata_seen is None:
            self._metadata_seen = seen
        server = self._server
        if server is not None and server.metadata is None:
            server.metadata = seen

    def _conditions(self) -> bool:
        """Whether this server honours conditional writes (probed on first need)."""
        server = self._detected()
        if server.conditions is None and server.metadata is not False:
            self._probe_writes(server)
        return bool(server.conditions)

    def capabilities(self) -> Capabilities:
        """What this server has proven it can do; contacts it once (first use)."""
        server = self._detected()
        # a 412 for If-Match on an absent key proves the server compares versions
        versions = bool(server.metadata or server.conditions)
        return Capabilities(
            listing=server.listing, ordered=True, versions=versions, ttl_visible=versions,
            atomic_cas=bool(server.conditions),
            # main's mget answers values only; their TTLs come from its range listing
            mget_ttl=versions and server.listing == "range", non_string_types=False,
            watch=bool(server.watch),
            transactions=bool(server.transactions), leases=versions and bool(server.conditions),
        )

    def release(self) -> str:
        """A name for what the server proved: ``main``, ``0.9.1``, ``0.8`` or a description."""
        server = self._detected()
        if server.metadata or server.conditions:
            return "main" if server.listing == "range" else "conditional writes, no range API"
        if server.listing == "cursor":
            return "0.9.1"
        if server.listing == "legacy":
            return "0.8"
        return "unknown (no key listing)"
