"""``POST /kv/txn`` (upstream main), mixed into ``DevStore``: compare, then apply one branch.

The whole request is validated first (any malformed compare or op rejects it, nothing
applied), then the compares are evaluated and the success or failure ops applied in
order, all under the store lock, so no other write can interleave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dashboard.devstore.values import Invalid, normalize_bool, normalize_ttl, normalize_version

if TYPE_CHECKING:
    import threading

_OP_NAMES = {"put": "put", "set": "put", "delete": "delete", "del": "delete", "get": "get"}


class InvalidTransaction(Exception):
    """A malformed transaction (HTTP 400 "Invalid transaction")."""


def _compare(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        raise InvalidTransaction()
    try:
        version = normalize_version(raw.get("version"))
        exists = None if raw.get("exists") is None else normalize_bool(raw.get("exists"))
    except Invalid:
        raise InvalidTransaction() from None
    value = raw.get("value")
    if value is not None and not isinstance(value, str):
        raise InvalidTransaction()
    if version is None and exists is None and value is None:
        raise InvalidTransaction()  # a compare must test something
    return {"key": raw["key"], "version": version, "exists": exists, "value": value}


def _op(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("op"), str):
        raise InvalidTransaction()
    name = _OP_NAMES.get(raw["op"].lower())
    if name is None or not isinstance(raw.get("key"), str):
        raise InvalidTransaction()
    if name == "put":
        if not isinstance(raw.get("value"), str):
            raise InvalidTransaction()
        return {"op": "put", "key": raw["key"], "value": raw["value"], "ttl_ms": raw.get("ttl_ms")}
    return {"op": name, "key": raw["key"]}


def normalize_txn(compare: Any, success: Any, failure: Any) -> tuple[list, list, list]:
    """Upstream's ``normalize_txn``; raises ``InvalidTransaction``."""
    if not all(isinstance(part, list) for part in (compare, success, failure)):
        raise InvalidTransaction()
    return [_compare(c) for c in compare], [_op(o) for o in success], [_op(o) for o in failure]


class TxnMixin:
    """``DevStore.txn``; the entry helpers come from ``DevStore``."""

    _lock: threading.Lock

    def txn(self, compare: Any, success: Any = (), failure: Any = ()) -> dict[str, Any]:
        """Run a transaction; ``{succeeded, responses}`` as upstream answers it.

        Responses: put ``entry + op`` (or ``{op, key, deleted}`` when its TTL <= 0
        deleted the key), delete ``{op, key, deleted}``, get ``entry + op + found`` or
        ``{op, key, found: false, value: null}``. A put carries no lease: it detaches.
        """
        compares, on_success, on_failure = normalize_txn(
            list(compare) if isinstance(compare, tuple) else compare,
            list(success) if isinstance(success, tuple) else success,
            list(failure) if isinstance(failure, tuple) else failure,
        )
        with self._lock:
            now = self._now()
            succeeded = all(self._compare_met(c, now) for c in compares)
            responses = [self._apply(op, now) for op in (on_success if succeeded else on_failure)]
            return {"succeeded": succeeded, "responses": responses}

    def _compare_met(self, compare: dict[str, Any], now: int) -> bool:
        current = self._live(compare["key"], now)
        if compare["version"] is not None and (current is None or current.version != compare["version"]):
            return False
        if compare["exists"] is not None and (current is not None) != compare["exists"]:
            return False
        return compare["value"] is None or (current is not None and current.value == compare["value"])

    def _apply(self, op: dict[str, Any], now: int) -> dict[str, Any]:
        key = op["key"]
        current = self._live(key, now)
        if op["op"] == "put":
            ttl = normalize_ttl(op["ttl_ms"])
            if ttl is not None and ttl <= 0:
                self._delete_entry(key, current, now, "delete")
                return {"op": "put", "key": key, "deleted": current is not None}
            expires_at = None if ttl is None else now + ttl
            entry = self._put_entry(key, op["value"], expires_at, current, now, None)
            return {**entry.as_dict(key), "op": "put"}
        if op["op"] == "delete":
            self._delete_entry(key, current, now, "delete")
            return {"op": "delete", "key": key, "deleted": current is not None}
        if current is None:
            return {"op": "get", "key": key, "found": False, "value": None}
        return {**current.as_dict(key), "op": "get", "found": True}

    # provided by DevStore / CoordinationMixin
    def _live(self, key: str, now: int) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError
