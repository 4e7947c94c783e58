"""One lifecycle for long-lived responses: streams that outlive the moment they were asked for.

A page is answered, then forgotten; a stream (today the live view's Server-Sent Events)
keeps sending for minutes or hours. Meanwhile the operator may log out in another tab, the
session may time out, the operator may be removed or change role, and the response holds
things (a stream slot, a store connection) that must come back. So every long-lived
response is built by ``long_lived``, and nowhere else:

- **HEAD** is answered with the headers alone: nothing is taken and nothing runs.
- **Slots** are taken when the response is built and given back when it closes, which the
  WSGI server does for every response, whatever the method and whether or not its body was
  ever read (``Response.call_on_close``), and as soon as the body ends.
- **Who is asking** is asked again (``Asker.why_not``) through the session storage, never the
  copy of the session the request began with, before every chunk it sends (a keepalive or
  an event carrying values). Once the session is gone (logout anywhere, idle or absolute
  timeout), or its operator was removed, got another password or a role that may not see
  the response, the body is closed and the response ends with the caller's ``ended`` chunk
  (for a live page: a notice and its ``end`` event, so the browser does not reconnect).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, Response, current_app, g, request, session, stream_with_context
from flask_login import current_user

from dashboard.web.access import held_elevation
from dashboard.web.auth import _FINGERPRINT, ROLES, Operator, operator_of

#: roles that may read: a long-lived response that only shows data
#: "none": an operator with no dashboard-wide role whom access rules give some prefixes
#: (what they read is the guarded store's answer)
READ_ROLES = frozenset((*ROLES, "none"))
#: why a stream ended, completing "… unavailable because <reason>"
SESSION_ENDED = ("your session ended (you logged out, or it timed out): reload the page and "
                 "log in again")
ACCOUNT_CHANGED = ("your account changed (removed, or a new password or role): reload the page "
                   "and log in again")


@dataclass(frozen=True)
class Asker:
    """Who asked for a long-lived response, as its request began; ``why_not`` asks again."""

    app: Flask
    #: the request's session object: its id is read at each check (a login on this very
    #: request gets its id only when the response's headers are saved)
    session: Any
    name: str
    roles: frozenset[str]
    sso: Operator | None = None
    #: the session's elevation when the response began (what it shows may depend on it)
    elevation: Any = None

    @classmethod
    def of_request(cls, roles: Iterable[str] = READ_ROLES) -> Asker:
        """The operator of the current request (the view runs after ``login_required``)."""
        return cls(app=current_app._get_current_object(),  # type: ignore[attr-defined]
                   session=session._get_current_object(),  # type: ignore[attr-defined]
                   name=current_user.get_id(), roles=frozenset(roles),
                   sso=g.get("sso_operator"), elevation=held_elevation(session))

    def why_not(self) -> str | None:
        """None while the session is still valid for this response; else why not, in words."""
        interface = self.app.session_interface
        stored = getattr(interface, "stored", None)
        if stored is None:  # a session without server-side storage cannot be asked again
            return SESSION_ENDED
        try:
            data: Mapping[str, Any] | None = stored(self.app, getattr(self.session, "sid", None))
        except Exception as error:  # redis.RedisError, OSError: the storage did not answer
            self.app.logger.error("long-lived response ended: session storage %s did not "
                                  "answer: %s", getattr(interface, "where", "?"), error)
            return (f"the session storage ({getattr(interface, 'where', '?')}) did not answer, "
                    "so who is asking cannot be checked: reload the page")
        if data is None or data.get("_user_id") != self.name:
            return SESSION_ENDED
        operator = operator_of(self.app, self.name, data.get(_FINGERPRINT), self.sso)
        if operator is None:
            return ACCOUNT_CHANGED
        if operator.role not in self.roles:
            return f"your role ({operator.role}) may not see this: reload the page"
        if held_elevation(data, self.app) != self.elevation:
            # masked values and write controls follow the elevation: what is on screen is
            # not what the operator may see now
            return "your elevation started or ended: reload the page"
        return None


class _Hold:
    """What one response holds: its slot (if any) and its clean-up, released exactly once."""

    def __init__(self, release: Callable[[], None] | None,
                 on_close: Callable[[], None] | None) -> None:
        self._callbacks = [c for c in (release, on_close) if c is not None]
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class Slots(Protocol):
    """What ``long_lived`` needs of a pool of slots (``dashboard.web.live.LiveSlots``)."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


def long_lived(body: Callable[[], Iterator[str]], *, mimetype: str,
               ended: Callable[[str], str], headers: Mapping[str, str] | None = None,
               slots: Slots | None = None, refused: Callable[[], Response] | None = None,
               roles: Iterable[str] = READ_ROLES,
               on_close: Callable[[], None] | None = None) -> Response:
    """The response of a long-lived view: ``body()`` chunks, while the asker may see them.

    ``slots``: a pool (``acquire() -> bool``, ``release()``) the response holds one of while
    open; when none is free, ``refused()`` answers instead. ``ended(reason)``: the last chunk
    once the session is no longer valid. ``on_close``: clean-up when the response closes.
    """
    if request.method == "HEAD":
        # the headers a GET would get; no slot, no body (the server would never read it)
        return Response(iter(()), mimetype=mimetype, headers=dict(headers or {}))
    asker = Asker.of_request(roles)
    if slots is not None and not slots.acquire():
        assert refused is not None, "a pool of slots needs a refusal for when it is full"
        return refused()
    hold = _Hold(slots.release if slots is not None else None, on_close)
    try:
        chunks = body()
    except BaseException:
        hold.release()
        raise
    response = Response(stream_with_context(_checked(chunks, asker, ended, hold)),
                        mimetype=mimetype, headers=dict(headers or {}))
    # closed by the server for every response, read or not (HEAD, a client gone early)
    response.call_on_close(hold.release)
    return response


def _checked(chunks: Iterator[str], asker: Asker, ended: Callable[[str], str],
             hold: _Hold) -> Iterator[str]:
    """``chunks``, each sent only after the asker was found still valid; then released."""
    try:
        for chunk in chunks:
            reason = asker.why_not()
            if reason is not None:
                _close(chunks)  # its own clean-up (the store stream) runs now
                yield ended(reason)
                return
            yield chunk
    finally:
        _close(chunks)
        hold.release()


def _close(chunks: Iterator[str]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
