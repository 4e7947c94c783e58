"""What a write asks of the store: the TTL change of a put, and a transaction's parts.

``TtlChange`` keeps, sets or drops a key's expiry (``KEEP_TTL``, ``TtlChange.set(ms)``,
``NO_TTL``); ``Compare``, ``TxnOp`` and ``TxnResult`` are the conditions, operations and
answer of a multi-key transaction (``KeyValueProvider.transact``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class TtlChange:
    """What a write does to the key's TTL: keep the remaining time, set a new one, or drop it."""

    mode: Literal["keep", "set", "none"] = "keep"
    ms: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("keep", "set", "none"):
            raise ValueError(f"unknown TTL mode {self.mode!r}")
        if self.mode == "set" and (self.ms is None or self.ms <= 0):
            raise ValueError("a TTL to set must be a positive number of milliseconds")

    @classmethod
    def set(cls, ms: int) -> TtlChange:
        return cls("set", ms)


KEEP_TTL = TtlChange("keep")
NO_TTL = TtlChange("none")


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: every field that is set must hold for ``key``."""

    key: str
    version: int | None = None
    exists: bool | None = None
    value: str | None = None


@dataclass(frozen=True)
class TxnOp:
    """One operation of a transaction: ``put`` (value, ``ttl_ms`` None = no expiry),
    ``delete`` or ``get``."""

    op: Literal["put", "delete", "get"]
    key: str
    value: str | None = None
    ttl_ms: int | None = None


@dataclass(frozen=True)
class TxnResult:
    """Whether every compare held (so the success ops ran), and each op's answer."""

    succeeded: bool
    responses: list[dict[str, Any]]

