"""How a running dev store behaves: mode, auth, limits, and the test hooks."""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass, field

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class TokenBucket:
    """A simple token bucket: ``rate`` requests per second, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate_limit_per_s must be positive")
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Spend one token; 0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds; round up so a client never retries too early."""
    return str(max(1, math.ceil(seconds)))


@dataclass
class DevStoreConfig:
    """Options of one running server; ``delay_ms`` and ``unavailable`` change at run time."""

    token: str | None = None
    read_token: str | None = None
    write_token: str | None = None
    legacy: bool = False
    no_key_listing: bool = False
    read_only: bool = False
    delay_ms: int = 0
    rate_limit_per_s: float | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    unavailable: bool = False
    #: log each request to stderr (off: test suites make thousands of requests)
    verbose: bool = False
    started_at: float = field(default_factory=time.monotonic)
    bucket: TokenBucket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        if self.rate_limit_per_s is not None:
            self.bucket = TokenBucket(self.rate_limit_per_s)

    def tokens_for(self, scope: str) -> list[str]:
        """Tokens accepted for ``scope`` ("read" or "write"); empty means auth is off.

        ``token`` covers every scope; a scoped token adds to it, so a read token alone
        cannot write when a write token (or ``token``) is configured.
        """
        scoped = self.read_token if scope == "read" else self.write_token
        return [t for t in (self.token, scoped) if t]

    def authorized(self, scope: str, presented: list[str]) -> bool:
        """Whether any presented token is accepted for ``scope`` (constant-time compare)."""
        accepted = self.tokens_for(scope)
        if not accepted:
            return True
        return any(hmac.compare_digest(p.encode(), a.encode()) for p in presented for a in accepted)

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    def mode(self) -> str:
        """A one-phrase description, e.g. "current, read-only, auth"."""
        parts = ["legacy" if self.legacy else "current"]
        if self.no_key_listing:
            parts.append("no key listing")
        if self.read_only:
            parts.append("read-only")
        if self.tokens_for("read") or self.tokens_for("write"):
            parts.append("auth")
        if self.rate_limit_per_s:
            parts.append(f"{self.rate_limit_per_s:g} req/s")
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms} ms")
        return ", ".join(parts)
