"""Coordination routes (main only): leases, locks and ``POST /kv/txn``."""

from __future__ import annotations

from dashboard.devstore.coordination import (
    InvalidLease,
    InvalidLock,
    LeaseExists,
    LeaseNotFound,
    LockHeld,
    LockNotFound,
    LockOwnerMismatch,
)
from dashboard.devstore.request import Reply, Request
from dashboard.devstore.txn import InvalidTransaction
from dashboard.devstore.wire import ApiError


def create_lease(req: Request) -> Reply:
    try:
        lease = req.store.create_lease(req.body.get("ttl_ms"), req.body.get("id"))
    except InvalidLease:
        raise ApiError(400, "Invalid lease") from None
    except LeaseExists:
        raise ApiError(409, "Lease already exists") from None
    return Reply(201, {"ok": True, "lease": lease})


def _on_lease(lease_id: str, act):
    """``act()`` on an existing lease; upstream's 400 and 404 answers otherwise."""
    try:
        return act()
    except InvalidLease:
        raise ApiError(400, "Invalid lease") from None
    except LeaseNotFound:
        raise ApiError(404, "Lease not found", id=lease_id) from None


def keepalive_lease(req: Request, lease_id: str) -> Reply:
    lease = _on_lease(lease_id, lambda: req.store.keepalive_lease(lease_id))
    return Reply(200, {"ok": True, "lease": lease})


def revoke_lease(req: Request, lease_id: str) -> Reply:
    _on_lease(lease_id, lambda: req.store.revoke_lease(lease_id))
    return Reply(200, {"ok": True, "id": lease_id})


def acquire_lock(req: Request, name: str) -> Reply:
    lease_id = req.body.get("lease_id")
    try:
        lock = req.store.acquire_lock(name, lease_id, req.body.get("holder"))
    except InvalidLock:
        raise ApiError(400, "Invalid lock request") from None
    except LeaseNotFound:
        raise ApiError(404, "Lease not found", lease_id=lease_id) from None
    except LockHeld:
        raise ApiError(409, "Lock held", name=name) from None
    return Reply(200, {"ok": True, "lock": lock})


def release_lock(req: Request, name: str) -> Reply:
    try:
        req.store.release_lock(name, req.body.get("lease_id"))
    except InvalidLock:
        raise ApiError(400, "Invalid lock request") from None
    except LockNotFound:
        raise ApiError(404, "Lock not found", name=name) from None
    except LockOwnerMismatch:
        raise ApiError(409, "Lock owner mismatch", name=name) from None
    return Reply(200, {"ok": True, "name": name})


def txn(req: Request) -> Reply:
    # upstream reads each list with `|| []`, so a missing (or null/false) part is empty
    parts = [req.body.get(name) for name in ("compare", "success", "failure")]
    parts = [[] if part is None or part is False else part for part in parts]
    try:
        result = req.store.txn(*parts)
    except InvalidTransaction:
        raise ApiError(400, "Invalid transaction") from None
    return Reply(200, result)
