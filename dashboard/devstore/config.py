"""How a running dev store behaves: release, auth, limits, and the test hooks."""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass, field

#: the upstream ToskaStore releases the dev store can imitate, newest first
RELEASES = ("main", "0.9.1", "0.8")
DEFAULT_RELEASE = "main"

#: upstream's configurable request-body cap (``max_body_size``, 0.9.1 and later)
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: 0.8 has no configurable cap: Plug.Parsers' own default length applies
LEGACY_PARSER_MAX_BYTES = 8_000_000
#: upstream's ``watch_history_limit`` default
DEFAULT_WATCH_HISTORY_LIMIT = 10_000
#: upstream's ``ttl_check_interval_ms`` default: how often expired keys and leases are reaped
DEFAULT_TTL_CHECK_INTERVAL_MS = 1000


def resolve_release(release: str | None, legacy: bool = False) -> str:
    """The release name for a ``release``/``legacy`` pair; ``legacy=True`` means "0.8"."""
    if release is None:
        return "0.8" if legacy else DEFAULT_RELEASE
    release = str(release).removeprefix("v")
    if release == "0.8.0":
        release = "0.8"
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; pick one of {', '.join(RELEASES)}")
    if legacy and release != "0.8":
        raise ValueError(f"legacy=True means release 0.8, not {release}")
    return release


class TokenBucket:
    """Upstream's token bucket: ``rate`` tokens per second, bursts up to ``rate``."""

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
    """Whole seconds for a ``Retry-After`` header (upstream sends none; kept for callers)."""
    return str(max(1, math.ceil(seconds)))


@dataclass
class DevStoreConfig:
    """Options of one running server; ``delay_ms`` and ``unavailable`` change at run time.

    ``max_body_bytes`` None means the release's default (10 MiB, or Plug's 8,000,000
    bytes on 0.8, whose cap is not configurable).
    """

    token: str | None = None
    read_token: str | None = None
    write_token: str | None = None
    legacy: bool = False
    release: str | None = None
    no_key_listing: bool = False
    read_only: bool = False
    delay_ms: int = 0
    rate_limit_per_s: float | None = None
    max_body_bytes: int | None = None
    unavailable: bool = False
    #: Slow-write modes, as a real server behaves while it writes a snapshot (writes wait;
    #: PUTs answered 500 after 5 s were applied later). Each changes at run time.
    #: Apply a write, then wait this long before answering (the client may time out):
    write_answer_delay_ms: int = 0
    #: apply a write, then answer 500 as if it had failed:
    write_fails_after_apply: bool = False
    #: answer a write 500 at once and apply it this many ms later (0: off):
    write_applies_late_ms: int = 0
    #: with write_applies_late_ms: a late write also waits for this event (``faults()``
    #: sets one and releases it when its block ends, so a loaded machine cannot apply the
    #: write before the client has read back what it needs to see as "not yet")
    late_write_gate: threading.Event | None = None
    #: refuse a write with this status without applying it (0: off): 429 as the rate
    #: limiter does, 503 as a stopped KV process does, 500 as a crash before applying:
    write_refused_status: int = 0
    #: the modes above hit only writes whose decoded path holds this text ("" every
    #: write; e.g. "__keys" for index writes alone, "txn" for transactions):
    write_fault_match: str = ""
    #: log each request to stderr (off: test suites make thousands of requests)
    verbose: bool = False
    started_at: float = field(default_factory=time.monotonic)
    bucket: TokenBucket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.release = resolve_release(self.release, self.legacy)
        self.legacy = self.release == "0.8"
        if self.max_body_bytes is None:
            self.max_body_bytes = LEGACY_PARSER_MAX_BYTES if self.release == "0.8" else DEFAULT_MAX_BODY_BYTES
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        if self.release != "main" and (self.read_token or self.write_token):
            # 0.8 and 0.9.1 know a single auth_token; scoped tokens came with main
            raise ValueError(f"release {self.release} has no scoped tokens; use token=")
        if self.rate_limit_per_s is not None:
            self.bucket = TokenBucket(self.rate_limit_per_s)

    def tokens_for(self, scope: str) -> list[str]:
        """Tokens accepted for ``scope`` ("read", "write", "admin"); empty means auth is off.

        As upstream main's ConfigManager: a scoped token, when set, REPLACES the plain
        ``token`` for its scope (the plain token is only the fallback), so with
        ``read_token`` set the plain token cannot read. Older releases have one token.
        """
        if scope == "read" and self.read_token:
            return [self.read_token]
        if scope == "write" and self.write_token:
            return [self.write_token]
        return [self.token] if self.token else []

    def authorized(self, scope: str, presented: list[str]) -> bool:
        """Whether any presented token is accepted for ``scope`` (constant-time compare)."""
        accepted = self.tokens_for(scope)
        if not accepted:
            return True
        return any(hmac.compare_digest(p.encode(), a.encode()) for p in presented for a in accepted)

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    def mode(self) -> str:
        """A one-phrase description, e.g. "release main, read-only, auth"."""
        parts = [f"release {self.release}"]
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
        faults = [name for name, on in (
            (f"writes answered after {self.write_answer_delay_ms} ms", self.write_answer_delay_ms),
            ("writes answered 500 after applying", self.write_fails_after_apply),
            (f"writes applied {self.write_applies_late_ms} ms after a 500",
             self.write_applies_late_ms),
            (f"writes refused {self.write_refused_status}", self.write_refused_status)) if on]
        if faults:
            where = f" (paths holding {self.write_fault_match!r})" if self.write_fault_match else ""
            parts.append(", ".join(faults) + where)
        return ", ".join(parts)
