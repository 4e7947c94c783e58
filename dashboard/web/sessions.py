"""Server-side sessions: the browser's cookie holds a random id, the data stays on the server.

Logout deletes the stored session, so a copied cookie dies with it on every replica that
shares the storage (a Redis from ``Dashboard:SessionStorage``; else files in a private
temp directory, shared by the workers of one host). Records are JSON, never pickle, and
are stored under a digest of the id, so reading the storage yields no usable cookie.

A session deleted (logout, expiry) is never written back: a request that began before the
deletion and saves after it only *refreshes* a record that still exists, in one step the
storage makes atomic for every replica and worker (``SET ... XX`` on Redis; a lock file
shared by the workers of one host for files; a lock for this process's memory).
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import redis
from cachelib import BaseCache, FileSystemCache, RedisCache, SimpleCache
from cachelib.serializers import JSONSerializer
from flask import Flask, Request, Response, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from dashboard.settings.errors import ConfigError, mask_url
from dashboard.settings.model import Settings


class ServerSession(CallbackDict, SessionMixin):
    """A session whose data stays on the server; the browser's cookie holds only a random id."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, sid: str | None = None,
                 created: float = 0.0, seen: float = 0.0) -> None:
        def on_update(self: ServerSession) -> None:
            self.modified = True
            self.accessed = True

        super().__init__(data, on_update)
        self.sid = sid
        self.created = created
        self.seen = seen
        self.modified = False
        self.accessed = False
        #: a new id at the next save (login: against session fixation; logout)
        self.rotate = False
        #: the cookie named a session that no longer exists (expired, logged out)
        self.stale_cookie = False
        #: the session storage did not answer: the request is refused with 503
        self.storage_error: str | None = None

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().setdefault(key, default)

    def regenerate(self) -> None:
        """Move the data to a new id and forget the old one, in the storage of every replica."""
        self.rotate = True
        self.modified = True


class _JSONRecords(JSONSerializer):
    """Session records as JSON, never pickle: a shared Redis must not be able to run code here."""

    def loads(self, bvalue: bytes | None, *args: Any, **kwargs: Any) -> Any:
        return None if bvalue is None else super().loads(bvalue, *args, **kwargs)


class _RedisSessions(RedisCache):
    serializer = _JSONRecords()

    def replace(self, key: str, value: Any, timeout: int) -> bool:
        """Write ``value`` only if ``key`` still exists (one atomic ``SET ... XX``)."""
        return bool(self._write_client.set(f"{self._get_prefix()}{key}",
                                           self.serializer.dumps(value), ex=timeout, xx=True))


class _FileSessions(FileSystemCache):
    """Session files; a refresh and a delete hold one lock file, so the workers of a host
    never write back a record another worker deleted meanwhile."""

    serializer = _JSONRecords()
    #: ends like cachelib's own temporary files, so its listing and pruning skip it
    _LOCK_NAME = "kv-session-lock"

    def _locked(self) -> Any:
        path = os.path.join(self._path, self._LOCK_NAME + self._fs_transaction_suffix)
        return _FileLock(path, self._mode)

    def replace(self, key: str, value: Any, timeout: int) -> bool:
        """Write ``value`` only if ``key`` still exists and has not expired."""
        with self._locked():
            if not self.has(key):
                return False
            return bool(self.set(key, value, timeout))

    def delete(self, key: str, mgmt_element: bool = False) -> bool:
        if mgmt_element:
            return super().delete(key, mgmt_element=True)
        with self._locked():
            return super().delete(key)


class _FileLock:
    """An exclusive ``flock`` on ``path`` (shared by every process of the host)."""

    def __init__(self, path: str, mode: int) -> None:
        self.path, self.mode = path, mode
        self.fd = -1

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, self.mode)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


class _MemorySessions(SimpleCache):
    """This process's sessions (``memory://``)."""

    def replace(self, key: str, value: Any, timeout: int) -> bool:
        """Write ``value`` only if ``key`` still exists and has not expired."""
        with self._lock:  # re-entrant: ``has`` and ``set`` take it too
            if not self.has(key):
                return False
            return bool(self.set(key, value, timeout))


_SID = re.compile(r"[A-Za-z0-9_-]{43}")


class ServerSessionInterface(SessionInterface):
    """Server-side sessions in a cachelib cache (Redis for replicas; files or memory for one).

    Logout deletes the record, so a copied cookie is dead everywhere. A session ends after
    ``idle`` seconds unused and ``lifetime`` seconds after it began, whatever the cookie says.
    The clock is ``app.config["KV_CLOCK"]`` (``time.time``), so tests can move time.
    """

    #: a used session's "last seen" is written back at most this often
    touch_seconds = 60.0
    serializer = TaggedJSONSerializer()

    def __init__(self, cache: BaseCache, *, idle: float, lifetime: float, where: str) -> None:
        self.cache = cache
        self.idle = idle
        self.lifetime = lifetime
        #: the storage, for log lines and error pages (password masked)
        self.where = where

    @staticmethod
    def _key(sid: str) -> str:
        # only a hash of the id is stored: reading the storage does not give a usable cookie
        return hashlib.sha256(sid.encode("ascii")).hexdigest()

    @staticmethod
    def _now(app: Flask) -> float:
        return float(app.config.get("KV_CLOCK", time.time)())

    def get_cookie_path(self, app: Flask) -> str:
        # the app's own prefix behind an ingress (/kv), so it is never sent to its neighbours
        return request.script_root or "/"

    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure whenever the operator came over HTTPS (directly or via the ingress)
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def _read(self, app: Flask, sid: str, *, end_expired: bool) -> tuple[Any, Any, Any]:
        """(data, created, seen) of the stored session ``sid``; Nones when it has ended.

        Raises what the storage raises when it does not answer.
        """
        now = self._now(app)
        data = created = seen = None
        try:
            record = self.cache.get(self._key(sid))
            if isinstance(record, dict):
                created, seen = record.get("created"), record.get("seen")
                if (isinstance(created, (int, float)) and isinstance(seen, (int, float))
                        and now - seen <= self.idle and now - created <= self.lifetime):
                    data = self.serializer.loads(record.get("data", ""))
                elif end_expired:  # idle or too old: gone for every replica
                    self.cache.delete(self._key(sid))
        except (ValueError, TypeError):
            data = None  # a record this version cannot read: a new session
        if not isinstance(data, dict) or created is None or seen is None:
            return None, None, None
        return data, created, seen

    def stored(self, app: Flask, sid: str | None) -> dict[str, Any] | None:
        """The session ``sid`` as the storage holds it now (None: logged out or expired).

        For long-lived responses (``dashboard.web.lifecycle``), which must not trust the copy
        their request began with. Never extends the session: a stream is not a use. Raises
        what the storage raises when it does not answer.
        """
        if not sid or not _SID.fullmatch(sid):
            return None
        data, _created, _seen = self._read(app, sid, end_expired=False)
        return data

    def open_session(self, app: Flask, request: Request) -> ServerSession:  # type: ignore[override]
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if not _SID.fullmatch(sid):
            return ServerSession()
        try:
            data, created, seen = self._read(app, sid, end_expired=True)
        except Exception as error:  # redis.RedisError, OSError: the storage is down
            app.logger.error("session storage %s did not answer: %s", self.where, error)
            session = ServerSession()
            session.storage_error = str(error)
            return session
        if not isinstance(data, dict) or created is None or seen is None:
            session = ServerSession()
            session.stale_cookie = True
            return session
        return ServerSession(data, sid=sid, created=float(created), seen=float(seen))

    def save_session(self, app: Flask, session: ServerSession,  # type: ignore[override]
                     response: Response) -> None:
        name = self.get_cookie_name(app)
        cookie = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "httponly": self.get_cookie_httponly(app),
            "samesite": self.get_cookie_samesite(app),
        }
        if session.accessed:
            response.vary.add("Cookie")
        if session.storage_error is not None:
            return
        if session.rotate and session.sid:
            self.cache.delete(self._key(session.sid))
            session.sid = None
            session.stale_cookie = True
        if not session:
            if session.sid:
                self.cache.delete(self._key(session.sid))
            if session.sid or session.stale_cookie:
                response.delete_cookie(name, **cookie)
            return
        now = self._now(app)
        new_id = session.sid is None
        if new_id:
            session.sid = secrets.token_urlsafe(32)
            session.created = now
        elif not session.modified and now - session.seen < self.touch_seconds:
            return
        remaining = min(self.idle, self.lifetime - (now - session.created))
        record = {"data": self.serializer.dumps(dict(session)), "created": session.created,
                  "seen": now}
        timeout = max(1, math.ceil(remaining))
        if new_id:
            self.cache.set(self._key(session.sid), record, timeout=timeout)
            # no Expires: the browser forgets it on close; the server ends it in any case
            response.set_cookie(name, session.sid, **cookie)
        elif not self._refresh(self._key(session.sid), record, timeout):
            # logged out (another tab, another replica) or expired while this request ran:
            # never written back. The cookie is left as it is: another tab may have logged
            # in meanwhile, and its new cookie must not be deleted by this late answer.
            session.sid = None

    def _refresh(self, key: str, record: dict[str, Any], timeout: int) -> bool:
        """Write ``record`` only over a record that still exists, atomically; False if gone."""
        replace = getattr(self.cache, "replace", None)
        if replace is None:  # a storage of another kind: not atomic, but never a resurrection
            if not self.cache.has(key):
                return False
            return bool(self.cache.set(key, record, timeout=timeout))
        return bool(replace(key, record, timeout))


def session_interface(settings: Settings, secret: str) -> ServerSessionInterface:
    """The session storage ``Dashboard:SessionStorage`` names (see ``DashboardSettings``)."""
    db = settings.dashboard
    idle, lifetime = db.session_idle_minutes * 60, db.session_max_hours * 3600
    url = db.session_storage
    scheme = urlsplit(url).scheme.lower() if url else ""
    cache: BaseCache
    if scheme in ("redis", "rediss"):
        assert url is not None
        timeout = db.store_timeout_seconds
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        cache = _RedisSessions(client, key_prefix="kvdash:session:")
        where = mask_url(url)
    elif scheme == "memory":
        cache, where = _MemorySessions(threshold=_MAX_LOCAL_SESSIONS), "memory://"
    else:
        if scheme == "file":
            assert url is not None
            directory, private = Path(url2pathname(urlsplit(url).path)), False
        else:
            # one directory per user and secret key: the workers of one host share it
            tag = hashlib.sha256(secret.encode()).hexdigest()[:12]
            directory = Path(tempfile.gettempdir()) / f"toska-kv-sessions-{os.getuid()}-{tag}"
            private = True
        _session_directory(directory, private=private)
        cache = _FileSessions(str(directory), threshold=_MAX_LOCAL_SESSIONS, mode=0o600)
        where = str(directory)
    return ServerSessionInterface(cache, idle=idle, lifetime=lifetime, where=where)


#: sessions kept by the single-host stores before the oldest are dropped
_MAX_LOCAL_SESSIONS = 20_000


def _session_directory(directory: Path, *, private: bool) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as error:
        raise ConfigError(f"Dashboard__SessionStorage: cannot use the session directory "
                          f"{str(directory)!r}: {error.strerror}") from None
    if private and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise ConfigError(f"Dashboard__SessionStorage: the session directory {str(directory)!r} "
                          "is not private to this user; remove it or set Dashboard__SessionStorage")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"Dashboard__SessionStorage: the session directory {str(directory)!r} "
                          "is not writable")


