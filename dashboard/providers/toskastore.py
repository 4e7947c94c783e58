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
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from . import errors
from .base import (
    KEEP_TTL,
    Capabilities,
    Compare,
    Entry,
    EntryPage,
    KeyPage,
    KeyValueProvider,
    ListingSource,
    SegmentListing,
    StoreInfo,
    TtlChange,
    TxnOp,
    TxnResult,
    now_ms,
)
from .toskastore_wire import (
    decode_local_cursor,
    display_url,
    encode_key,
    encode_local_cursor,
    is_int,
    query,
    status_error,
)

__all__ = ["MAX_PAGE", "ToskaStoreProvider", "default_index_key_for", "encode_key"]

#: the server refuses pages over this size (400), so every page request is clamped to it
MAX_PAGE = 1000
_VERSION_TOKEN = re.compile(r"v([0-9]+)")
#: how often a write is retried when only a lease keepalive moved the key's version
_ATTEMPTS = 4
#: keys the capability probes address: never written, only asked about
_PROBE_PREFIX = "__toska-kv-dashboard:probe:"

#: maps a listing prefix to (service prefix, full key of the ``__keys`` index covering it)
IndexLocator = Callable[[str], "tuple[str, str] | None"]


def default_index_key_for(prefix: str) -> tuple[str, str] | None:
    """The index covering ``prefix``: its first ``:`` segment's service and ``__keys``."""
    if ":" not in prefix:
        return None
    service = prefix.split(":", 1)[0] + ":"
    return service, service + "__keys"


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


class _KeepaliveRaced(Exception):
    """A 412 on a key whose value still matches: its lease's keepalive moved the version."""


class ToskaStoreProvider(KeyValueProvider):
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
        except httpx.TimeoutException as exc:
            raise errors.Unavailable(
                f"cannot reach ToskaStore at {self._display_url}: timed out after "
                f"{self._timeout:g}s",
                store=self.name, key=key,
            ) from exc
        except httpx.ConnectError as exc:
            raise errors.Unavailable(
                f"cannot reach ToskaStore at {self._display_url}: {self._connect_reason(exc)}",
                store=self.name, key=key,
            ) from exc
        except httpx.TransportError as exc:
            raise errors.Unavailable(
                f"connection to ToskaStore at {self._display_url} failed: "
                f"{exc or type(exc).__name__}",
                store=self.name, key=key,
            ) from exc
        except httpx.HTTPError as exc:  # e.g. a body that cannot be decoded
            raise errors.BadResponse(
                f"unreadable answer from ToskaStore: {exc or type(exc).__name__}",
                store=self.name, key=key,
            ) from exc
        status = response.status_code
        if 200 <= status < 300 or status in allow:
            return response
        raise status_error(response, method, store=self.name, key=key, write=write,
                           has_token=self._has_token)

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

    # ------------------------------------------------------------------ detection

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
            atomic_cas=bool(server.conditions), mget_ttl=False, non_string_types=False,
            watch=versions and server.listing == "range",
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

    # ------------------------------------------------------------------ entries

    def _entry(self, data: Any, key: str, *, what: str) -> Entry:
        """An Entry from ``{key?, value, metadata?}``; without metadata TTL is unknown."""
        if not isinstance(data, dict):
            raise self._bad(f"{what}: entry is not an object", key)
        value = data.get("value")
        if not isinstance(value, str):
            raise self._bad(f"{what}: value is not a string", key)
        meta = data.get("metadata")
        if meta is None:
            return Entry(key=key, value=value, ttl_ms=None, ttl_known=False)
        if not isinstance(meta, dict):
            raise self._bad(f"{what}: metadata is not an object", key)
        version = meta.get("version")
        expires_at = meta.get("expires_at")
        created_at = meta.get("created_at")
        updated_at = meta.get("updated_at")
        lease_id = meta.get("lease_id")
        if not is_int(version) or not (expires_at is None or is_int(expires_at)):
            raise self._bad(f"{what}: metadata version/expires_at are not integers", key)
        if not all(v is None or is_int(v) for v in (created_at, updated_at)):
            raise self._bad(f"{what}: metadata timestamps are not integers", key)
        if lease_id is not None and not isinstance(lease_id, str):
            raise self._bad(f"{what}: metadata lease_id is not a string", key)
        # local clock against the server's expires_at: clock skew shifts the remaining
        # time; the contract gives no server "now" to correct it with
        ttl_ms = None if expires_at is None else max(0, expires_at - now_ms())
        return Entry(
            key=key, value=value, ttl_ms=ttl_ms, ttl_known=True, expires_at_ms=expires_at,
            version=version, created_at_ms=created_at, updated_at_ms=updated_at,
            lease_id=lease_id,
        )

    def get(self, key: str) -> Entry:
        """Read one key (value, version, TTL, lease); ``NotFound`` when absent or expired."""
        self._detected()  # a wrong URL fails as "not a ToskaStore", never as a missing key
        return self._read(key)

    def _read(self, key: str) -> Entry:
        response = self._request("GET", self._key_path(key), key=key)
        data = self._json(response, "GET key", key=key)
        self._note_metadata(data.get("metadata") is not None)
        return self._entry(data, key, what="GET key")

    def _get_or_none(self, key: str) -> Entry | None:
        try:
            return self.get(key)
        except errors.NotFound:
            return None

    def mget(self, keys: Sequence[str]) -> dict[str, Entry | None]:
        """Values of many keys, ``mget_batch`` keys per request; TTLs are not reported."""
        unique = list(dict.fromkeys(keys))  # de-duplicate, keep input order
        result: dict[str, Entry | None] = {}
        if unique:
            self._detected()
        for start in range(0, len(unique), self._mget_batch):
            batch = unique[start:start + self._mget_batch]
            response = self._request("POST", "/kv/mget", json_body={"keys": batch})
            data = self._json(response, "mget")
            values = data.get("values")
            if not isinstance(values, dict):
                raise self._bad("mget: 'values' is not an object")
            for key in batch:
                value = values.get(key)
                if value is not None and not isinstance(value, str):
                    raise self._bad(f"mget: value of {key!r} is not a string or null", key)
                result[key] = None if value is None else Entry(key=key, value=value,
                                                               ttl_ms=None, ttl_known=False)
        return result

    # ------------------------------------------------------------------ listing

    def list_keys(
        self, prefix: str = "", *, cursor: str | None = None, limit: int = 100
    ) -> KeyPage:
        """One page of keys under ``prefix``, in key order, however the server lists them."""
        limit = max(1, min(int(limit), MAX_PAGE))
        listing = self._ensure_detected()
        if listing == "range":
            data = self._json(self._request(
                "GET", "/kv?" + query(prefix=prefix, limit=limit, cursor=cursor or None)
            ), "range listing")
            items = data.get("items")
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
            ):
                raise self._bad("range listing: 'items' is not a list of {key}")
            return KeyPage([i["key"] for i in items], self._next_cursor(data), source="range")
        if listing == "cursor":
            data = self._json(self._request(
                "GET", "/kv/keys?" + query(prefix=prefix, limit=limit, cursor=cursor or None)
            ), "key listing")
            keys = self._string_list(data.get("keys"), "key listing: 'keys'")
            return KeyPage(keys, self._next_cursor(data), source="cursor")
        if listing == "legacy":
            keys, truncated = self._legacy_keys(prefix)
            return self._local_page(keys, cursor, limit, truncated=truncated, source="legacy")
        return self._local_page(self._index_keys(prefix), cursor, limit, truncated=False,
                                source="index")

    def list_segments(
        self, prefix: str = "", *, sep: str = ":", limit: int = 500, walk_cap: int = 20_000,
    ) -> SegmentListing:
        """Next-segment folders and leaf keys; on a range server, one request per entry.

        Instead of reading every key, ask for the first key at or after a lower bound and
        then jump past its whole segment (``seg`` + the character after ``sep``), so a
        service with a million keys costs one request.
        """
        if self._ensure_detected() != "range":
            return super().list_segments(prefix, sep=sep, limit=limit, walk_cap=walk_cap)
        folders: list[str] = []
        leaves: list[str] = []
        start = prefix
        past_sep = chr(ord(sep) + 1)
        while len(folders) + len(leaves) < limit:
            data = self._json(self._request(
                "GET", "/kv?" + query(prefix=prefix, start=start, limit=1)
            ), "range listing")
            items = data.get("items")
            if not isinstance(items, list):
                raise self._bad("range listing: 'items' is not a list")
            if not items:
                return SegmentListing(folders, leaves, True)
            key = items[0].get("key") if isinstance(items[0], dict) else None
            if not isinstance(key, str) or not key.startswith(prefix) or key < start:
                raise self._bad("range listing: unexpected key after start")
            rest = key[len(prefix):]
            cut = rest.find(sep)
            if cut >= 0:
                folders.append(prefix + rest[: cut + 1])
                start = prefix + rest[:cut] + past_sep
            else:
                leaves.append(key)
                start = key + "\0"
        return SegmentListing(folders, leaves, False)

    def _next_cursor(self, data: dict) -> str | None:
        cursor = data.get("next_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise self._bad("'next_cursor' is not a string or null")
        return cursor or None

    def _string_list(self, value: Any, what: str, key: str | None = None) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise self._bad(f"{what} is not a list of strings", key)
        return value

    def _legacy_keys(self, prefix: str) -> tuple[list[str], bool]:
        # legacy /kv/keys has no cursor and no order: one request for up to cap+1 keys
        # (the extra one tells us the cap was hit), sorted here
        data = self._json(self._request(
            "GET", "/kv/keys?" + query(prefix=prefix, limit=self._legacy_list_cap + 1)
        ), "legacy key listing")
        keys = sorted({k for k in self._string_list(data.get("keys"), "legacy key listing: 'keys'")
                       if k.startswith(prefix)})
        truncated = len(keys) > self._legacy_list_cap
        return keys[:self._legacy_list_cap], truncated

    def _index_keys(self, prefix: str) -> list[str]:
        located = self._index_key_for(prefix)
        if not located:
            return []
        service_prefix, index_key = located
        try:
            entry = self.get(index_key)
        except errors.NotFound:
            return []  # no index yet: nothing to list, not an error
        try:
            names = json.loads(entry.value or "")
        except (ValueError, RecursionError) as exc:
            raise errors.BadResponse(f"key index {index_key!r} is not valid JSON",
                                     store=self.name, key=index_key) from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise errors.BadResponse(f"key index {index_key!r} is not a JSON array of strings",
                                     store=self.name, key=index_key)
        # index entries are stored without the service prefix (the index key itself
        # may hold ':', so the prefix comes from the locator, not from the key)
        full = {service_prefix + n for n in names}  # the index may hold duplicates
        return sorted(k for k in full if k.startswith(prefix))

    def _local_page(
        self, keys: list[str], cursor: str | None, limit: int, *, truncated: bool,
        source: ListingSource,
    ) -> KeyPage:
        """Page a sorted list with our own cursor: the last key served, base64-encoded."""
        start = 0
        if cursor:
            start = bisect.bisect_right(keys, decode_local_cursor(cursor, self.name))
        page = keys[start:start + limit]
        more = start + limit < len(keys)
        return KeyPage(page, encode_local_cursor(page[-1]) if more and page else None,
                       truncated=truncated, source=source)

    def scan(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> EntryPage:
        """One page of entries: one range request (current), else a key page + one mget."""
        limit = max(1, min(int(limit), MAX_PAGE))
        if self._ensure_detected() == "range":
            data = self._json(self._request("GET", "/kv?" + query(
                prefix=prefix, limit=limit, cursor=cursor or None,
                include_values=True, include_metadata=True,
            )), "range scan")
            items = data.get("items")
            if not isinstance(items, list):
                raise self._bad("range scan: 'items' is not a list")
            entries = []
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                    raise self._bad("range scan: an item has no string 'key'")
                entries.append(self._entry(item, item["key"], what="range scan"))
            return EntryPage(entries, self._next_cursor(data), source="range")
        page = self.list_keys(prefix, cursor=cursor, limit=limit)
        values = self.mget(page.keys) if page.keys else {}
        # keys that vanished between listing and mget (or stale index entries) drop out
        entries = [e for k in page.keys if (e := values.get(k)) is not None]
        return EntryPage(entries, page.next_cursor, truncated=page.truncated, source=page.source)

    # ------------------------------------------------------------------ writes

    def _put(self, key: str, body: dict, headers: dict[str, str], value: str) -> Entry:
        response = self._request("PUT", self._key_path(key), json_body=body, headers=headers,
                                 key=key, write=True)
        data = self._json(response, "PUT key (the write may have happened)", key=key)
        if "value" not in data:  # an acknowledgement {ok, key} (0.8, 0.9.1)
            data = {**data, "value": value}
        return self._entry(data, key, what="PUT key")

    def _conflict(self, key: str, message: str, current: Entry | None) -> errors.Conflict:
        return errors.Conflict(message, store=self.name, key=key, current=current)

    def put(
        self, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
        expected: str | None = None, create_only: bool = False,
    ) -> Entry:
        """Write a string value, conditional on ``expected``/``create_only``.

        A plain ToskaStore PUT drops the TTL and detaches the key from its lease, so
        ``keep`` re-attaches a leased key to its lease (its expiry follows the lease) and
        otherwise sends the remaining time. Where the server honours conditions the write
        carries ``If-Match``/``If-None-Match``; where it does not (0.8, v0.9.1) every check
        is a read before the write: best effort, and ``capabilities().atomic_cas`` says so.
        """
        if not isinstance(value, str):
            raise errors.InvalidRequest("values must be strings", store=self.name, key=key)
        self._key_path(key)  # validates the key before any request
        conditions = self._conditions()
        if create_only:
            return self._create(key, value, ttl, conditions)
        for _ in range(_ATTEMPTS):
            try:
                return self._replace(key, value, ttl, expected, conditions)
            except _KeepaliveRaced:
                continue  # read again: the value still matched, only the version moved
        raise self._conflict(key, f"key {key!r} kept changing while being written; nothing was "
                             "written", self._get_or_none(key))

    def _create(self, key: str, value: str, ttl: TtlChange, conditions: bool) -> Entry:
        body: dict[str, Any] = {"value": value, "ttl_ms": ttl.ms if ttl.mode == "set" else None}
        headers: dict[str, str] = {}
        if conditions:
            body["if_absent"] = True
            headers["If-None-Match"] = "*"
        else:
            # NOT atomic: this server ignores if_absent, so look first; a key another
            # writer creates between this read and the write below is overwritten
            existing = self._get_or_none(key)
            if existing is not None:
                raise self._conflict(key, f"key {key!r} already exists", existing)
        try:
            return self._put(key, body, headers, value)
        except errors.Conflict:
            raise self._conflict(key, f"key {key!r} already exists",
                                 self._get_or_none(key)) from None

    def _replace(
        self, key: str, value: str, ttl: TtlChange, expected: str | None, conditions: bool,
    ) -> Entry:
        version = _VERSION_TOKEN.fullmatch(expected or "")
        current: Entry | None = None
        if ttl.mode == "keep" or (expected is not None and not (conditions and version)):
            current = self._get_or_none(key)
            if current is None:
                if expected is not None:
                    raise self._conflict(key, f"key {key!r} was deleted since it was read", None)
                raise errors.NotFound(f"key {key!r} not found: there is no TTL to keep",
                                      store=self.name, key=key)
            if expected is not None and not current.matches(expected):
                raise self._conflict(key, f"key {key!r} changed since it was read", current)
        body: dict[str, Any] = {"value": value}
        if ttl.mode != "keep":
            body["ttl_ms"] = ttl.ms if ttl.mode == "set" else None
        else:
            assert current is not None
            body.update(self._kept_ttl(current))
        headers: dict[str, str] = {}
        if conditions:
            pinned = current.version if current is not None else None
            if pinned is None and version:
                pinned = int(version.group(1))
            if pinned is not None:
                headers["If-Match"] = f'"{pinned}"'
        try:
            return self._put(key, body, headers, value)
        except errors.Conflict:
            now = self._get_or_none(key)
            if now is not None and current is not None and expected is not None and (
                    now.matches(expected)):
                raise _KeepaliveRaced() from None
            gone = "was deleted" if now is None else "changed"
            raise self._conflict(key, f"key {key!r} {gone} since it was read", now) from None
        except errors.NotFound:
            if "lease_id" not in body:
                raise
            now = self._get_or_none(key)
            raise self._conflict(
                key, f"the lease {body['lease_id']!r} of key {key!r} ended (expired or revoked) "
                "before the write; nothing was written", now) from None

    def _kept_ttl(self, current: Entry) -> dict[str, Any]:
        """The body fields that keep ``current``'s expiry: its lease, or the remaining time."""
        if current.lease_id is not None:
            return {"lease_id": current.lease_id}
        if not current.ttl_known:
            raise self._keep_unsupported(current.key)
        if current.expires_at_ms is None:
            return {"ttl_ms": None}
        remaining = current.expires_at_ms - now_ms()
        if remaining <= 0:
            # never send ttl_ms <= 0: the server would delete the key
            raise errors.NotFound(f"key {current.key!r} expired before it could be written",
                                  store=self.name, key=current.key)
        return {"ttl_ms": remaining}

    def _keep_unsupported(self, key: str) -> errors.Unsupported:
        return errors.Unsupported(
            "this ToskaStore server cannot report TTLs, so the key's current TTL cannot be "
            "kept; choose to set a TTL or store without expiry",
            store=self.name, key=key,
        )

    def delete(self, key: str, *, expected: str | None = None) -> bool:
        """Delete a key (only if it still matches ``expected``); True if it existed.

        The server answers ok whether or not the key existed, so without ``expected``
        one GET first reports existence (informational: not atomic with the delete).
        Where the server honours conditions the delete carries ``If-Match``; elsewhere
        the check is a read before the delete (best effort).
        """
        path = self._key_path(key)
        conditions = self._conditions()
        for _ in range(_ATTEMPTS):
            headers: dict[str, str] = {}
            version = _VERSION_TOKEN.fullmatch(expected or "")
            current: Entry | None = None
            if expected is None:
                existed = self._get_or_none(key) is not None
            elif conditions and version:
                headers["If-Match"] = f'"{version.group(1)}"'
                existed = True
            else:
                current = self._get_or_none(key)
                if current is None:
                    raise self._conflict(key, f"key {key!r} was deleted since it was read", None)
                if not current.matches(expected):
                    raise self._conflict(key, f"key {key!r} changed since it was read", current)
                if conditions and current.version is not None:
                    headers["If-Match"] = f'"{current.version}"'
                existed = True
            try:
                self._request("DELETE", path, headers=headers, key=key, write=True)
            except errors.NotFound:
                if headers:
                    raise self._conflict(key, f"key {key!r} was deleted since it was read",
                                         None) from None
                return False  # some servers answer 404 for an absent key
            except errors.Conflict:
                now = self._get_or_none(key)
                if now is not None and current is not None and expected is not None and (
                        now.matches(expected)):
                    continue  # a keepalive moved the version, the value is unchanged
                gone = "was deleted" if now is None else "changed"
                raise self._conflict(key, f"key {key!r} {gone} since it was read", now) from None
            return existed
        raise self._conflict(key, f"key {key!r} kept changing while being deleted; nothing was "
                             "deleted", self._get_or_none(key))

    # ------------------------------------------------------------------ transactions

    def transact(
        self, compare: Sequence[Compare], success: Sequence[TxnOp],
        failure: Sequence[TxnOp] = (),
    ) -> TxnResult:
        """``POST /kv/txn``: all compares hold → ``success`` ops, else ``failure`` ops, atomically.

        A transaction's put carries no lease: it detaches a leased key (callers keep leased
        keys out of transactions). ``Unsupported`` where the server has no transactions.
        """
        if not self._detected().transactions:
            raise errors.Unsupported("this ToskaStore server has no transactions (/kv/txn)",
                                     store=self.name)
        body = {
            "compare": [_compare_json(c) for c in compare],
            "success": [_op_json(o) for o in success],
            "failure": [_op_json(o) for o in failure],
        }
        data = self._json(self._request("POST", "/kv/txn", json_body=body, write=True),
                          "transaction (it may have been applied)")
        succeeded = data.get("succeeded")
        responses = data.get("responses")
        if not isinstance(succeeded, bool) or not isinstance(responses, list):
            raise self._bad("transaction: no 'succeeded' flag or 'responses' list")
        return TxnResult(succeeded, [r for r in responses if isinstance(r, dict)])

    # ------------------------------------------------------------------ status

    def info(self) -> StoreInfo:
        """Health (/health), statistics (/stats) and status (/status) of the server."""
        server = self._detected()  # identifies the server first: a wrong URL fails here
        # /health answers 503 with a body while starting or unhealthy: that is an answer
        health = self._json(self._request("GET", "/health", allow=(503,)), "/health")
        status = health.get("status")
        healthy = status == "healthy"
        try:
            stats = self._json(self._request("GET", "/stats"), "/stats")
        except errors.Unavailable:
            if healthy:
                raise
            stats = {}
        try:
            server_status = self._json(self._request("GET", "/status"), "/status").get("status")
        except (errors.NotFound, errors.BadResponse, errors.InvalidRequest):
            server_status = None  # informational only
        release = self.release()
        listing = {
            "range": "ordered range listing",
            "cursor": "keys listed by cursor pages (no ordered range API)",
            "legacy": f"keys listed in one unpaged request (at most {self._legacy_list_cap})",
            "index": "keys listed from the __keys index (server has no key listing)",
        }[server.listing]
        if server.metadata or server.conditions:
            writes = ("conditional writes" if server.conditions else
                      "conditional writes not proven (read-only token?)")
            extra = [f"versions, TTLs and leases; {writes}"]
            if server.transactions:
                extra.append("transactions")
        elif server.metadata is False or server.conditions is False:
            extra = ["TTLs and versions unknown; conditional writes ignored (checks are "
                     "read-then-write)"]
        else:
            extra = ["TTLs and versions not known yet"]
        notes = [f"health: {status}" if status and not healthy else "",
                 f"status: {server_status}" if server_status not in (None, "running") else ""]
        detail = "; ".join([listing, *extra, *[n for n in notes if n]])
        if server.metadata or server.conditions:
            generation = "current"
        elif server.metadata is False or server.conditions is False:
            generation = "legacy"
        else:
            generation = "unknown"
        return StoreInfo(kind=self.kind, name=self.name, healthy=healthy, generation=generation,
                         detail=f"release {release}: {detail}", stats=stats)

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._client.close()


def _compare_json(compare: Compare) -> dict[str, Any]:
    body: dict[str, Any] = {"key": compare.key}
    if compare.version is not None:
        body["version"] = compare.version
    if compare.exists is not None:
        body["exists"] = compare.exists
    if compare.value is not None:
        body["value"] = compare.value
    return body


def _op_json(op: TxnOp) -> dict[str, Any]:
    body: dict[str, Any] = {"op": op.op, "key": op.key}
    if op.op == "put":
        body["value"] = op.value
        body["ttl_ms"] = op.ttl_ms
    return body
