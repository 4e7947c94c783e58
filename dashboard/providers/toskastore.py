"""ToskaStore (HTTP/JSON) behind the ``KeyValueProvider`` contract.

Two server generations are deployed (see docs/mesh-kv.md): current servers (0.9.1+)
have an ordered range API, versions, TTL metadata and conditional writes; legacy servers
answer ``{key, value}`` only, list keys in one unpaged unordered request, and some cannot
list keys at all (then only a service's ``__keys`` index can). The generation is detected
once, lazily, at first use; views only ever see ``capabilities()``.

Every HTTP call goes through ``_request``, the one place where transport failures and
error statuses become ``ProviderError``s.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import email.utils
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

from . import errors
from .base import (
    KEEP_TTL,
    Capabilities,
    Entry,
    EntryPage,
    KeyPage,
    KeyValueProvider,
    ListingSource,
    SegmentListing,
    StoreInfo,
    TtlChange,
    now_ms,
    value_token,
)

#: the server refuses pages over this size (400), so every page request is clamped to it
MAX_PAGE = 1000
_CURSOR_PREFIX = "k:"
_VERSION_TOKEN = re.compile(r"v([0-9]+)")


def default_index_key_for(prefix: str) -> str | None:
    """The ``__keys`` index covering ``prefix``: its first ``:`` segment + ``:__keys``."""
    if ":" not in prefix:
        return None
    return prefix.split(":", 1)[0] + ":__keys"


def encode_key(key: str) -> str:
    """A key as ONE URL path segment: every reserved character percent-encoded.

    ``quote`` leaves ``.`` alone, so the keys ``.`` and ``..`` would be dot segments
    that clients and proxies collapse (``/kv/..`` becomes ``/``): encode those dots too.
    """
    segment = quote(key, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return segment


def _display_url(url: str) -> str:
    """The base URL without userinfo, so a password in it never reaches a message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _encode_cursor(last_key: str) -> str:
    raw = last_key.encode("utf-8", "surrogatepass")
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def _matches(expected: str, entry: Entry) -> bool:
    """Whether ``entry`` is still what the operator saw.

    A version token compares versions; a value digest (what unversioned reads such as
    mget give, even on a current server) compares the value, not ``entry.token``.
    """
    if expected.startswith("h"):
        return expected == value_token(entry.type, entry.value, entry.content)
    return expected == entry.token


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ToskaStoreProvider(KeyValueProvider):
    """A ToskaStore server of either generation, through one pooled ``httpx.Client``."""

    kind = "toskastore"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        legacy_list_cap: int = 10000,
        mget_batch: int = 500,
        index_key_for: Callable[[str], str | None] | None = None,
        name: str | None = None,
    ) -> None:
        if legacy_list_cap < 1:
            raise ValueError("legacy_list_cap must be at least 1")
        if mget_batch < 1:
            raise ValueError("mget_batch must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._display_url = _display_url(self.base_url)
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
        self._listing: ListingSource | None = None
        #: whether GET answers carry metadata; only needed when listing cannot tell
        #: (index mode): None until the first GET of a key
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
        ``_query``): httpx keeps a pre-encoded path as it is, so ``%2F`` stays inside
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
        raise self._status_error(response, method, key=key, write=write)

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

    def _status_error(
        self, response: httpx.Response, method: str, *, key: str | None, write: bool
    ) -> errors.ProviderError:
        status = response.status_code
        body = self._error_body(response)
        # the human sentence when the server gave one, else its error code
        human = str(body.get("reason") or "").strip()
        code = str(body.get("error") or "").strip()
        reason = human or code
        detail = f": {reason}" if reason else ""
        store, what = self.name, (f"key {key!r}" if key is not None else "the request")
        if status == 401:
            if not self._has_token:
                message = "the store requires a token (401) and none is configured"
            elif write:
                message = "the token was refused (401) for a write: it needs write scope"
            else:
                message = "the token was refused (401)"
            # "unauthorized" as a code adds nothing; a reason sentence might
            return errors.Unauthorized(message + (f": {human}" if human else ""),
                                       store=store, key=key)
        if status == 403:
            if not human and (not code or "read_only" in code or "follower" in code):
                reason = "read-only follower"
            verb = "write" if write else "request"
            return errors.Forbidden(f"the store refused the {verb} (403): {reason}",
                                    store=store, key=key)
        if status == 404:
            if key is not None:
                return errors.NotFound(f"key {key!r} not found", store=store, key=key)
            return errors.NotFound(f"{method} {response.request.url.path} not found (404)",
                                   store=store)
        if status == 412:
            return errors.Conflict(f"{what} changed since it was read (412)", store=store, key=key)
        if status == 413:
            limit = body.get("max_bytes", body.get("max"))
            if _is_int(limit):
                message = f"value too large: over {limit} bytes"
            else:
                message = "value too large for the store's request size limit (413)"
            return errors.InvalidRequest(message, store=store, key=key)
        if status == 400:
            return errors.InvalidRequest(f"the store rejected {what} (400){detail}",
                                         store=store, key=key)
        if status == 429:
            retry_after = self._retry_after(response.headers.get("Retry-After"))
            hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
            return errors.RateLimited(f"rate limited by the store (429){hint}",
                                      store=store, key=key, retry_after=retry_after)
        if status in (502, 503, 504):
            return errors.Unavailable(f"store unavailable ({status}){detail}",
                                      store=store, key=key)
        if status >= 500:
            return errors.BadResponse(f"server error ({status}){detail}", store=store, key=key)
        return errors.InvalidRequest(f"the store answered {status}{detail}", store=store, key=key)

    @staticmethod
    def _error_body(response: httpx.Response) -> dict[str, Any]:
        # error bodies are JSON {error, reason?, ...} by contract, but a proxy in front
        # may answer HTML: never fail while describing a failure
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _retry_after(value: str | None) -> float | None:
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:  # the HTTP-date form
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())

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

    @staticmethod
    def _query(**params: Any) -> str:
        # %20 rather than '+' for spaces: unambiguous for every server's query parser
        pairs = []
        for name, value in params.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            pairs.append((name, str(value)))
        return urlencode(pairs, quote_via=quote, safe="")

    def _key_path(self, key: str) -> str:
        if not isinstance(key, str) or key == "":
            raise errors.InvalidRequest("a key must be a non-empty string", store=self.name,
                                        key=key if isinstance(key, str) else None)
        return "/kv/" + encode_key(key)

    # ------------------------------------------------------------------ detection

    def _ensure_detected(self) -> ListingSource:
        """Detect how the server lists keys, once; failures are not cached (retried)."""
        listing = self._listing
        if listing is not None:
            return listing
        with self._detect_lock:
            if self._listing is None:
                self._listing = self._detect()
            return self._listing

    def _detect(self) -> ListingSource:
        response = self._request("GET", "/kv?" + self._query(limit=1), allow=(404,))
        if response.status_code == 200:
            self._json(response, "range listing probe")
            return "range"
        response = self._request("GET", "/kv/keys?" + self._query(limit=1), allow=(404,))
        if response.status_code == 404:
            return "index"
        data = self._json(response, "key listing probe")
        return "cursor" if "next_cursor" in data else "legacy"

    def _versions(self) -> bool:
        """The server keeps versions/TTLs (so it also honours conditional writes)."""
        listing = self._ensure_detected()
        if listing in ("range", "cursor"):
            return True
        if listing == "legacy":
            return False
        return bool(self._metadata_seen)

    def capabilities(self) -> Capabilities:
        """What this server can do; contacts it once (first use) to detect its generation."""
        listing = self._ensure_detected()
        versions = self._versions()
        return Capabilities(
            listing=listing, ordered=True, versions=versions, ttl_visible=versions,
            atomic_cas=versions, mget_ttl=False, non_string_types=False,
            watch=listing == "range",
        )

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
        if not _is_int(version) or not (expires_at is None or _is_int(expires_at)):
            raise self._bad(f"{what}: metadata version/expires_at are not integers", key)
        if not all(v is None or _is_int(v) for v in (created_at, updated_at)):
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
        """Read one key (value, version, TTL); ``NotFound`` when it is absent or expired."""
        response = self._request("GET", self._key_path(key), key=key)
        data = self._json(response, "GET key", key=key)
        # the first read tells an index-mode server's generation (no listing to probe)
        if self._metadata_seen is None:
            self._metadata_seen = data.get("metadata") is not None
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
                "GET", "/kv?" + self._query(prefix=prefix, limit=limit, cursor=cursor or None)
            ), "range listing")
            items = data.get("items")
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("key"), str) for i in items
            ):
                raise self._bad("range listing: 'items' is not a list of {key}")
            return KeyPage([i["key"] for i in items], self._next_cursor(data), source="range")
        if listing == "cursor":
            data = self._json(self._request(
                "GET", "/kv/keys?" + self._query(prefix=prefix, limit=limit, cursor=cursor or None)
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
                "GET", "/kv?" + self._query(prefix=prefix, start=start, limit=1)
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
            "GET", "/kv/keys?" + self._query(prefix=prefix, limit=self._legacy_list_cap + 1)
        ), "legacy key listing")
        keys = sorted({k for k in self._string_list(data.get("keys"), "legacy key listing: 'keys'")
                       if k.startswith(prefix)})
        truncated = len(keys) > self._legacy_list_cap
        return keys[:self._legacy_list_cap], truncated

    def _index_keys(self, prefix: str) -> list[str]:
        index_key = self._index_key_for(prefix)
        if not index_key:
            return []
        try:
            entry = self.get(index_key)
        except errors.NotFound:
            return []  # no index yet: nothing to list, not an error
        try:
            names = json.loads(entry.value or "")
        except ValueError as exc:
            raise errors.BadResponse(f"key index {index_key!r} is not valid JSON",
                                     store=self.name, key=index_key) from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise errors.BadResponse(f"key index {index_key!r} is not a JSON array of strings",
                                     store=self.name, key=index_key)
        # index entries are stored without the service prefix: everything up to and
        # including the last ':' of the index key (``svc:__keys`` -> ``svc:``)
        service_prefix = index_key[: index_key.rfind(":") + 1]
        full = {service_prefix + n for n in names}  # the index may hold duplicates
        return sorted(k for k in full if k.startswith(prefix))

    def _local_page(
        self, keys: list[str], cursor: str | None, limit: int, *, truncated: bool,
        source: ListingSource,
    ) -> KeyPage:
        """Page a sorted list with our own cursor: the last key served, base64-encoded."""
        start = 0
        if cursor:
            start = bisect.bisect_right(keys, self._decode_cursor(cursor))
        page = keys[start:start + limit]
        more = start + limit < len(keys)
        return KeyPage(page, _encode_cursor(page[-1]) if more and page else None,
                       truncated=truncated, source=source)

    def _decode_cursor(self, cursor: str) -> str:
        if not cursor.startswith(_CURSOR_PREFIX):
            raise errors.InvalidRequest("invalid listing cursor", store=self.name)
        try:
            raw = base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX):].encode("ascii"))
            return raw.decode("utf-8", "surrogatepass")
        except (ValueError, binascii.Error, UnicodeError) as exc:
            raise errors.InvalidRequest("invalid listing cursor", store=self.name) from exc

    def scan(self, prefix: str = "", *, cursor: str | None = None, limit: int = 100) -> EntryPage:
        """One page of entries: one range request (current), else a key page + one mget."""
        limit = max(1, min(int(limit), MAX_PAGE))
        if self._ensure_detected() == "range":
            data = self._json(self._request("GET", "/kv?" + self._query(
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
        if "value" not in data:  # a legacy acknowledgement {ok, key}
            data = {**data, "value": value}
        return self._entry(data, key, what="PUT key")

    def _conflict(self, key: str, message: str, current: Entry | None) -> errors.Conflict:
        return errors.Conflict(message, store=self.name, key=key, current=current)

    def put(
        self, key: str, value: str, *, ttl: TtlChange = KEEP_TTL,
        expected: str | None = None, create_only: bool = False,
    ) -> Entry:
        """Write a string value, conditional on ``expected``/``create_only``.

        A plain ToskaStore PUT drops the TTL, so ``keep`` reads the remaining time and
        sends it, guarded by ``If-Match`` on the version just read. Legacy servers
        honour no conditions: checks there are a read-then-write, best effort only.
        """
        if not isinstance(value, str):
            raise errors.InvalidRequest("values must be strings", store=self.name, key=key)
        self._key_path(key)  # validates the key before any request
        versions = self._versions()
        body: dict[str, Any] = {"value": value}
        headers: dict[str, str] = {}

        if create_only:
            body["ttl_ms"] = ttl.ms if ttl.mode == "set" else None  # nothing to keep
            body["if_absent"] = True
            headers["If-None-Match"] = "*"
            if not versions:
                # best effort, NOT atomic: a legacy server ignores the conditions, so
                # check first; another writer may still create the key in between
                existing = self._get_or_none(key)
                if existing is not None:
                    raise self._conflict(key, f"key {key!r} already exists", existing)
            try:
                return self._put(key, body, headers, value)
            except errors.Conflict:
                raise self._conflict(key, f"key {key!r} already exists",
                                     self._get_or_none(key)) from None

        current: Entry | None = None
        if ttl.mode == "keep":
            if self._ensure_detected() == "legacy":
                raise self._keep_unsupported(key)
            current = self.get(key)  # NotFound: nothing to keep
            if not current.ttl_known:
                raise self._keep_unsupported(key)
            if expected is not None and not _matches(expected, current):
                raise self._conflict(key, f"key {key!r} changed since it was read", current)
            if current.expires_at_ms is None:
                body["ttl_ms"] = None
            else:
                remaining = current.expires_at_ms - now_ms()
                if remaining <= 0:
                    # never send ttl_ms <= 0: the server would delete the key
                    raise errors.NotFound(f"key {key!r} expired before it could be written",
                                          store=self.name, key=key)
                body["ttl_ms"] = remaining
        else:
            body["ttl_ms"] = ttl.ms if ttl.mode == "set" else None
            match = _VERSION_TOKEN.fullmatch(expected or "")
            if expected is not None and not (versions and match):
                # a value digest (or a server without versions): compare what is there
                current = self._get_or_none(key)
                if current is None:
                    raise self._conflict(key, f"key {key!r} was deleted since it was read", None)
                if not _matches(expected, current):
                    raise self._conflict(key, f"key {key!r} changed since it was read", current)
                # on legacy servers the write below is unconditional: best effort, the
                # key may still change between this read and the write
            elif match:
                headers["If-Match"] = f'"{match.group(1)}"'
        if current is not None and current.version is not None:
            # close the window between our read and our write where the server can
            headers["If-Match"] = f'"{current.version}"'
        try:
            return self._put(key, body, headers, value)
        except (errors.Conflict, errors.NotFound):
            if "If-Match" not in headers:
                raise
            now = self._get_or_none(key)
            gone = "was deleted" if now is None else "changed"
            raise self._conflict(key, f"key {key!r} {gone} since it was read", now) from None

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
        With a version token the delete is conditional on the server (If-Match).
        """
        path = self._key_path(key)
        versions = self._versions()
        headers: dict[str, str] = {}
        match = _VERSION_TOKEN.fullmatch(expected or "")
        if expected is None:
            existed = self._get_or_none(key) is not None
        elif versions and match:
            headers["If-Match"] = f'"{match.group(1)}"'
            existed = True
        else:
            # value digest: compare, then (when the server has versions) pin the version
            # read; on legacy servers this is best effort, not atomic
            current = self._get_or_none(key)
            if current is None:
                raise self._conflict(key, f"key {key!r} was deleted since it was read", None)
            if not _matches(expected, current):
                raise self._conflict(key, f"key {key!r} changed since it was read", current)
            if current.version is not None:
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
            gone = "was deleted" if now is None else "changed"
            raise self._conflict(key, f"key {key!r} {gone} since it was read", now) from None
        return existed

    # ------------------------------------------------------------------ status

    def info(self) -> StoreInfo:
        """Health (/health), statistics (/stats) and status (/status) of the server."""
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
        listing = self._ensure_detected()
        if listing in ("range", "cursor"):
            generation = "current"
            detail = ("ordered range listing, versions and TTLs" if listing == "range" else
                      "keys listed by cursor pages (no ordered range API); versions and TTLs")
        elif listing == "legacy":
            generation = "legacy"
            detail = ("legacy server: TTLs and versions unknown; keys listed in one unpaged "
                      f"request (at most {self._legacy_list_cap})")
        else:
            generation = {True: "current", False: "legacy", None: "unknown"}[self._metadata_seen]
            detail = "keys listed from the __keys index (server has no key listing)"
            if self._metadata_seen is False:
                detail += "; TTLs and versions unknown"
        extras = [f"health: {status}" if status and not healthy else "",
                  f"status: {server_status}" if server_status not in (None, "running") else ""]
        detail = "; ".join([detail, *[e for e in extras if e]])
        return StoreInfo(kind=self.kind, name=self.name, healthy=healthy, generation=generation,
                         detail=detail, stats=stats)

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._client.close()
