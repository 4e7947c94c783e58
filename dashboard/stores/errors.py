"""The only exceptions the provider layer lets out.

Views and the CLI catch ``ProviderError`` and show ``str(error)``: every message is
written for an operator, names the store, and never carries a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dashboard.stores.entries import Entry


class ProviderError(Exception):
    """Base of every provider failure; ``store`` names the backend, ``key`` the key."""

    #: a short label for banners and logs ("unavailable", "unauthorized", ...)
    kind = "error"
    #: the HTTP status the dashboard answers with when this reaches a view
    http_status = 502
    #: a write failed in a way that does not say it was not applied (a timeout, a cut
    #: connection, a 5xx): it may have landed, or may still land; re-read to know
    maybe_written = False

    def __init__(self, message: str, *, store: str = "", key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.store = store
        self.key = key

    def __str__(self) -> str:
        return f"{self.store}: {self.message}" if self.store else self.message


class Unavailable(ProviderError):
    """The store cannot be reached: refused, DNS failure, timeout, or 503."""

    kind = "unavailable"
    http_status = 503


class Unauthorized(ProviderError):
    """The store refused the credentials (HTTP 401, Redis NOAUTH/WRONGPASS)."""

    kind = "unauthorized"
    http_status = 502


class Forbidden(ProviderError):
    """The store refused the operation: 403, e.g. a read-only follower or replica."""

    kind = "forbidden"
    http_status = 403


class Conflict(ProviderError):
    """A conditional write failed: the key changed (or exists) since it was read.

    ``current`` is the entry as it is now, or ``None`` when the key is gone.
    """

    kind = "conflict"
    http_status = 409

    def __init__(
        self, message: str, *, store: str = "", key: str | None = None,
        current: Entry | None = None,
    ) -> None:
        super().__init__(message, store=store, key=key)
        self.current = current


class NotFound(ProviderError):
    """The key does not exist (or has expired)."""

    kind = "not-found"
    http_status = 404


class RateLimited(ProviderError):
    """The store asked us to slow down (HTTP 429)."""

    kind = "rate-limited"
    http_status = 429

    def __init__(
        self, message: str, *, store: str = "", key: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, store=store, key=key)
        self.retry_after = retry_after


class BadResponse(ProviderError):
    """The store answered something we cannot interpret (malformed JSON, wrong shape)."""

    kind = "bad-response"
    http_status = 502


class WriteUnknown(ProviderError):
    """A write was not confirmed and reading back does not show it: it may still land.

    ``index_note`` says what that means for the service's ``__keys`` index.
    """

    kind = "write-unknown"
    http_status = 504

    def __init__(self, message: str, *, store: str = "", key: str | None = None,
                 index_note: str = "") -> None:
        super().__init__(message, store=store, key=key)
        self.index_note = index_note


class NotAStore(ProviderError):
    """The configured address answers, but not as the configured kind of store.

    A mistyped URL must never read as an empty store: every check would then pass.
    """

    kind = "not-a-store"
    http_status = 502


class InvalidRequest(ProviderError):
    """The store rejected the request itself: 400, or 413 for a value over its size limit."""

    kind = "invalid"
    http_status = 400


class Unsupported(ProviderError):
    """The operation cannot be done safely on this store (e.g. keep a TTL it cannot see)."""

    kind = "unsupported"
    http_status = 400


class HistoryGone(ProviderError):
    """A change stream cannot continue without a gap: events may have been missed.

    ToskaStore answers 409 when ``since_revision`` is older than its retained history;
    Redis keeps no history at all, so a dropped notification connection means the same.
    Whoever shows the changes must say so and reload its state.
    """

    kind = "history-gone"
    http_status = 409
