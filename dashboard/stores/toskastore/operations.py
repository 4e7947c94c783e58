"""ToskaStore reads, writes, transactions and status, on any release.

Reads decode ``{key?, value, metadata?}`` into ``Entry`` values (TTL unknown without
metadata). Every write that replaces a value is conditional on what the operator saw:
with ``If-Match``/``If-None-Match`` where the server has proven it honours them, else
as a read before the write (best effort; ``capabilities().atomic_cas`` says which).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dashboard.stores import errors
from dashboard.stores.base import StoreInfo
from dashboard.stores.entries import Entry, now_ms
from dashboard.stores.mutations import KEEP_TTL, Compare, TtlChange, TxnOp, TxnResult
from dashboard.stores.toskastore.metadata import listed_metadata, lists_metadata
from dashboard.stores.toskastore.wire import is_int

_VERSION_TOKEN = re.compile(r"v([0-9]+)")
#: how often a write is retried when only a lease keepalive moved the key's version
_ATTEMPTS = 4
#: keys an mget reads one by one when they appeared after its metadata listing
LATE_READS = 100


class _KeepaliveRaced(Exception):
    """A 412 on a key whose value still matches: its lease's keepalive moved the version."""


class OperationsMixin:
    """``get``/``mget``, ``put``/``delete``, ``transact`` and ``info``.

    Part of ``ToskaStoreProvider``; uses the provider's ``kind``, ``name``,
    ``_mget_batch`` and ``_legacy_list_cap``, its transport (``_request``, ``_json``,
    ``_bad``, ``_key_path``) and detection (``_detected``, ``_conditions``,
    ``_note_metadata``, ``release``).
    """

    kind: str
    name: str
    _mget_batch: int
    _legacy_list_cap: int

    # ------------------------------------------------------------------ entries

    def _entry(self, data: Any, key: str, *, what: str, now: int | None = None) -> Entry:
        """An Entry from ``{key?, value, metadata?}``; without metadata TTL is unknown.

        ``now`` (epoch ms) is the clock the remaining TTL is counted from: a page of
        entries passes one reading for all of them (default: read it here).
        """
        # hot on every page: checks inlined (``type(x) is int`` first, ``is_int`` only
        # for the rare rest), one lookup per field, the clock read once per answer
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
        get = meta.get
        version = get("version")
        expires_at = get("expires_at")
        if not (type(version) is int or is_int(version)) or not (
                expires_at is None or type(expires_at) is int or is_int(expires_at)):
            raise self._bad(f"{what}: metadata version/expires_at are not integers", key)
        created_at = get("created_at")
        updated_at = get("updated_at")
        if not (created_at is None or type(created_at) is int or is_int(created_at)) or not (
                updated_at is None or type(updated_at) is int or is_int(updated_at)):
            raise self._bad(f"{what}: metadata timestamps are not integers", key)
        lease_id = get("lease_id")
        if lease_id is not None and not isinstance(lease_id, str):
            raise self._bad(f"{what}: metadata lease_id is not a string", key)
        # local clock against the server's expires_at: clock skew shifts the remaining
        # time; the contract gives no server "now" to correct it with
        if expires_at is None:
            ttl_ms = None
        else:
            ttl_ms = expires_at - (now_ms() if now is None else now)
            if ttl_ms < 0:
                ttl_ms = 0
        return Entry(
            key=key, value=value, ttl_ms=ttl_ms, ttl_known=True, expires_at_ms=expires_at,
            version=version, created_at_ms=created_at, updated_at_ms=updated_at,
            lease_id=lease_id,
        )

    def get(self, key: str, *, max_bytes: int | None = None) -> Entry:
        """Read one key (value, version, TTL, lease); ``NotFound`` when absent or expired.

        ToskaStore has no partial reads: ``max_bytes`` is ignored, the value comes whole.
        """
        self._detected()  # a wrong URL fails as "not a ToskaStore", never as a missing key
        return self._read(key)

    def _read(self, key: str) -> Entry:
        response = self._request("GET", self._key_path(key), key=key)
        data = self._json(response, "GET key", key=key)
        self._note_metadata(data.get("metadata") is not None)
        entry = self._entry(data, key, what="GET key")
        return replace(entry, read_rtt_ms=int(response.elapsed.total_seconds() * 1000))

    def _get_or_none(self, key: str) -> Entry | None:
        try:
            return self.get(key)
        except errors.NotFound:
            return None

    def read_bytes(self, key: str) -> bytes:
        """The value's UTF-8 bytes: ToskaStore keeps text, read whole with ``get``."""
        return self.get(key).exact_bytes

    def mget(self, keys: Sequence[str], *, exact: bool = False) -> dict[str, Entry | None]:
        """Values of many keys, ``mget_batch`` keys per request; TTLs where the server lists
        metadata (main: ``metadata.listed_metadata``, read before the values, so a version
        is never newer than the value it comes with: a write based on it conflicts rather
        than overwrites). Text values are exact: ``exact`` changes nothing here.
        """
        unique = list(dict.fromkeys(keys))  # de-duplicate, keep input order
        result: dict[str, Entry | None] = {}
        if not unique:
            return result
        self._detected()
        meta = listed_metadata(self, unique) if lists_metadata(self) else None
        late: list[str] = []  # written between the listing and the values
        now = now_ms()
        for start in range(0, len(unique), self._mget_batch):
            batch = unique[start:start + self._mget_batch]
            response = self._request("POST", "/kv/mget", json_body={"keys": batch})
            data = self._json(response, "mget")
            values = data.get("values")
            if not isinstance(values, dict):
                raise self._bad("mget: 'values' is not an object")
            found = values.get
            for key in batch:
                value = found(key)
                if value is None:
                    result[key] = None
                elif not isinstance(value, str):
                    raise self._bad(f"mget: value of {key!r} is not a string or null", key)
                elif meta is not None and key in meta:
                    result[key] = self._entry({"value": value, "metadata": meta[key]}, key,
                                              what="mget", now=now)
                else:
                    result[key] = Entry(key=key, value=value, ttl_ms=None, ttl_known=False)
                    if meta is not None:
                        late.append(key)
        for key in late[:LATE_READS]:  # a few: read whole, value and metadata together
            result[key] = self._get_or_none(key)
        return result

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
        remaining = current.ttl_to_keep_ms()
        if remaining is None:
            return {"ttl_ms": None}
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
