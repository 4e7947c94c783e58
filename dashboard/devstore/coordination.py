"""Leases and locks (upstream main), mixed into ``DevStore``; all under the store lock.

A lease is a TTL ownership record. Keys written with its ``lease_id`` expire with it;
keepalive renews it AND rewrites every attached key (version + 1, a put event each);
revoking it deletes the attached keys (delete events); when it lapses, the periodic
cleanup revokes it with ``expire`` events. A lock is a name held by an active lease.
Every lease and lock change bumps the store revision without publishing an event.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashboard.devstore.values import Invalid, normalize_id, normalize_positive, now_ms

if TYPE_CHECKING:
    import threading


class InvalidLease(Exception):
    """A malformed lease request (HTTP 400 "Invalid lease")."""


class LeaseExists(Exception):
    """An active lease already has the requested id (HTTP 409)."""


class LeaseNotFound(Exception):
    """No active lease has that id (HTTP 404 "Lease not found")."""


class InvalidLock(Exception):
    """A malformed lock request (HTTP 400 "Invalid lock request")."""


class LockHeld(Exception):
    """Another lease holds the lock (HTTP 409 "Lock held")."""


class LockNotFound(Exception):
    """No active lock has that name (HTTP 404 "Lock not found")."""


class LockOwnerMismatch(Exception):
    """The lock belongs to another lease (HTTP 409 "Lock owner mismatch")."""


@dataclass
class Lease:
    id: str
    ttl_ms: int
    created_at: int
    updated_at: int
    expires_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ttl_ms": self.ttl_ms,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
        }


@dataclass
class Lock:
    name: str
    lease_id: str
    holder: str | None
    acquired_at: int
    expires_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lease_id": self.lease_id,
            "holder": self.holder,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
        }


class CoordinationMixin:
    """Lease and lock operations of ``DevStore`` (which provides the lock and entries)."""

    _lock: threading.Lock

    def _reset_coordination(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._locks: dict[str, Lock] = {}

    # -- leases --------------------------------------------------------------------------

    def create_lease(self, ttl_ms: Any, lease_id: Any = None) -> dict[str, Any]:
        """Create a lease of ``ttl_ms`` (> 0) with ``lease_id`` or a generated id.

        Raises ``InvalidLease`` or ``LeaseExists``. An expired lease with the requested
        id is revoked first (its keys expire), so the id can be reused.
        """
        try:
            ttl = normalize_positive(ttl_ms)
            requested = normalize_id(lease_id, required=False)
        except Invalid:
            raise InvalidLease() from None
        with self._lock:
            now = self._now()
            if requested is not None:
                old = self._leases.get(requested)
                if old is not None and old.expires_at <= now:
                    self._revoke(requested, now, "expire")
            new_id = requested or self._unique_lease_id()
            if self._active_lease(new_id, now) is not None:
                raise LeaseExists(new_id)
            lease = Lease(new_id, ttl, now, now, now + ttl)
            self._leases[new_id] = lease
            self._bump_revision()
            return lease.as_dict()

    def keepalive_lease(self, lease_id: Any) -> dict[str, Any]:
        """Renew to now + ttl_ms; attached keys are rewritten to the new expiry."""
        lid = self._required(lease_id, InvalidLease)
        with self._lock:
            now = self._now()
            lease = self._active_lease(lid, now)
            if lease is None:
                raise LeaseNotFound(lid)
            lease.expires_at = now + lease.ttl_ms
            lease.updated_at = now
            for lock in self._locks.values():
                if lock.lease_id == lid:
                    lock.expires_at = lease.expires_at
            self._bump_revision()
            for key, entry in self._stored():
                if entry.lease_id == lid:
                    self._put_entry(key, entry.value, lease.expires_at, entry, now, lid)
            return lease.as_dict()

    def revoke_lease(self, lease_id: Any) -> None:
        """Revoke an active lease: its locks are released and its keys deleted."""
        lid = self._required(lease_id, InvalidLease)
        with self._lock:
            now = self._now()
            if self._active_lease(lid, now) is None:
                raise LeaseNotFound(lid)
            self._revoke(lid, now, "delete")

    def leases(self) -> list[dict[str, Any]]:
        """Active leases (for inspection in tests)."""
        with self._lock:
            now = self._now()
            return [lease.as_dict() for lease in self._leases.values() if lease.expires_at > now]

    def lease_count(self) -> int:
        return len(self.leases())

    # -- locks ---------------------------------------------------------------------------

    def acquire_lock(self, name: Any, lease_id: Any, holder: Any = None) -> dict[str, Any]:
        """Take ``name`` for ``lease_id``; re-acquiring with the same lease is a no-op."""
        lock_name = self._required(name, InvalidLock)
        lid = self._required(lease_id, InvalidLock)
        if holder is not None and not isinstance(holder, str):
            raise InvalidLock()
        with self._lock:
            now = self._now()
            lease = self._active_lease(lid, now)
            if lease is None:
                raise LeaseNotFound(lid)
            current = self._active_lock(lock_name, now)
            if current is None:
                lock = Lock(lock_name, lid, holder, now, lease.expires_at)
                self._locks[lock_name] = lock
                self._bump_revision()
                return lock.as_dict()
            if current.lease_id == lid:
                return current.as_dict()
            raise LockHeld(lock_name)

    def release_lock(self, name: Any, lease_id: Any) -> None:
        """Release ``name`` if ``lease_id`` holds it."""
        lock_name = self._required(name, InvalidLock)
        lid = self._required(lease_id, InvalidLock)
        with self._lock:
            now = self._now()
            current = self._active_lock(lock_name, now)
            if current is None:
                self._locks.pop(lock_name, None)  # a stale lock goes silently
                raise LockNotFound(lock_name)
            if current.lease_id != lid:
                raise LockOwnerMismatch(lock_name)
            del self._locks[lock_name]
            self._bump_revision()

    def lock_count(self) -> int:
        with self._lock:
            now = self._now()
            return sum(1 for name in self._locks if self._active_lock(name, now) is not None)

    # -- internals (lock held) -----------------------------------------------------------

    @staticmethod
    def _now() -> int:

        return now_ms()

    @staticmethod
    def _required(raw: Any, error: type[Exception]) -> str:
        try:
            value = normalize_id(raw, required=True)
        except Invalid:
            raise error() from None
        assert value is not None
        return value

    def _active_lease(self, lease_id: str, now: int) -> Lease | None:
        lease = self._leases.get(lease_id)
        return None if lease is None or lease.expires_at <= now else lease

    def _active_lock(self, name: str, now: int) -> Lock | None:
        lock = self._locks.get(name)
        if lock is None:
            return None
        lease = self._active_lease(lock.lease_id, now)
        if lease is None:
            return None
        lock.expires_at = lease.expires_at
        return lock

    def _unique_lease_id(self) -> str:
        while True:
            raw = base64.urlsafe_b64encode(secrets.token_bytes(12)).rstrip(b"=").decode()
            if f"lease-{raw}" not in self._leases:
                return f"lease-{raw}"

    def _revoke(self, lease_id: str, now: int, key_event: str) -> None:
        """Upstream's ``revoke_lease``: drop the lease and its locks, then its keys."""
        attached = [(k, e) for k, e in self._stored() if e.lease_id == lease_id]
        self._leases.pop(lease_id, None)
        self._locks = {n: lock for n, lock in self._locks.items() if lock.lease_id != lease_id}
        self._bump_revision()
        for key, entry in attached:
            self._delete_entry(key, entry, now, key_event)

    def _expire_leases(self, now: int) -> int:
        """Revoke every lapsed lease with ``expire`` events; returns the keys removed."""
        removed = 0
        for lease in [lease for lease in self._leases.values() if lease.expires_at <= now]:
            removed += sum(1 for _, e in self._stored() if e.lease_id == lease.id)
            self._revoke(lease.id, now, "expire")
        return removed

    # provided by DevStore
    def _stored(self) -> list[tuple[str, Any]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _put_entry(self, *args: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _delete_entry(self, *args: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _bump_revision(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError
