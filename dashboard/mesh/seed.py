"""ToskaMesh-shaped sample data: services, camelCase JSON values, TTLs, drifting indexes.

Deterministic for a given ``seed``, written only through the provider contract, so the
demo, the tests and a developer's store all see the same data. ``SeedReport`` records
exactly what was written, including each index's drift, so tests can assert on it.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard.mesh import meshjson
from dashboard.stores.base import KeyValueProvider
from dashboard.stores.mutations import NO_TTL, TtlChange

#: bulk writer: ``(full_key, value, ttl_ms or None)`` items
BulkPut = Callable[[list[tuple[str, str, int | None]]], Any]

SERVICE_NAMES = (
    "profiles", "sessions", "orders", "catalog", "notifications",
    "billing", "inventory", "shipping", "search", "audit",
)

#: keys that break naive code: URL-special characters, spaces, unicode, glob characters
ODD_KEYS = (
    "config/theme",
    "a%2Fb",
    "what?#frag",
    "sp ace",
    "ünïcødé:ключ",
    "../escape",
    "glob*[x]?",
    "back\\slash",
    "100%",
    "emoji:🚀",
    "quote\"d'key",
    "trailing:",
    "note:xss",
    "empty",
    "text:plain",
    "blob:avatar",
    "xml:feed",
)
XSS_VALUE = "<script>alert(1)</script>"

_EPOCH = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
_FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
    "zoë",
)
_TAGS = ("kv", "beta", "vip", "eu", "us", "trial", "internal", "mobile")
_CURRENCIES = ("EUR", "USD", "GBP", "SEK")


@dataclass(frozen=True)
class IndexDrift:
    """How a service's ``__keys`` index differs from its live keys (keys without prefix)."""

    #: listed in the index but not live
    stale: tuple[str, ...] = ()
    #: live but not listed in the index
    missing: tuple[str, ...] = ()
    #: listed more than once (each appears exactly twice)
    duplicates: tuple[str, ...] = ()


@dataclass
class SeedReport:
    """What ``seed`` wrote."""

    services: list[str] = field(default_factory=list)
    #: every put, index keys included
    keys_written: int = 0
    indexed_services: list[str] = field(default_factory=list)
    #: service → its live keys (without prefix), in write order
    live_keys: dict[str, list[str]] = field(default_factory=dict)
    #: service → drift of its index (indexed services only)
    drift: dict[str, IndexDrift] = field(default_factory=dict)
    #: full keys written with a TTL, and the TTL in ms
    ttl_keys: dict[str, int] = field(default_factory=dict)
    #: the service holding ``ODD_KEYS`` (None when no service was seeded)
    odd_service: str | None = None
    index_key: str = "__keys"

    @property
    def unindexed_services(self) -> list[str]:
        return [s for s in self.services if s not in self.indexed_services]

    def index_full_key(self, service: str) -> str:
        return f"{service}:{self.index_key}"

    def summary(self) -> str:
        """One paragraph for the CLI."""
        stale = sum(len(d.stale) for d in self.drift.values())
        missing = sum(len(d.missing) for d in self.drift.values())
        dups = sum(len(d.duplicates) for d in self.drift.values())
        unindexed = ", ".join(self.unindexed_services) or "none"
        return (
            f"Wrote {self.keys_written} keys for {len(self.services)} services "
            f"({', '.join(self.services)}); {len(self.ttl_keys)} carry a TTL. "
            f"{self.index_key} index on {len(self.indexed_services)} services "
            f"(without one: {unindexed}), drifted by {stale} stale, {missing} missing and "
            f"{dups} duplicate entries. Odd keys are in "
            f"{self.odd_service or 'no service'}."
        )


def service_names(count: int) -> list[str]:
    """``profiles, sessions, ...``, then ``profiles2, sessions2, ...`` past the list."""
    names = []
    for i in range(count):
        base = SERVICE_NAMES[i % len(SERVICE_NAMES)]
        cycle = i // len(SERVICE_NAMES)
        names.append(base if cycle == 0 else f"{base}{cycle + 1}")
    return names


def _unindexed_positions(count: int) -> set[int]:
    # most services have an index; every fourth does not, and at least one never does
    if count < 2:
        return set()
    if count < 4:
        return {count - 1}
    return {i for i in range(count) if i % 4 == 3}


def dumps(document: Any) -> str:
    """JSON the way the C# runtime writes it: System.Text.Json's compact, escaped bytes."""
    return meshjson.dumps(document)


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Generator:
    """Keys and camelCase values for one kind of service."""

    def __init__(self, kind: str, rng: random.Random) -> None:
        self.kind = kind
        self.rng = rng
        self.counter = 0

    def when(self) -> datetime:
        return _EPOCH - timedelta(minutes=self.rng.randint(0, 60 * 24 * 400))

    def next(self) -> tuple[str, Any]:
        """A fresh (key, document); keys never repeat within one generator."""
        self.counter += 1
        n, r = self.counter, self.rng
        created = self.when()
        user = f"{r.choice(_FIRST_NAMES)}{n}"
        if self.kind == "profiles":
            if n % 10 == 0:
                return f"settings:{user}", {
                    "userId": user, "locale": r.choice(["en-GB", "de-DE", "sv-SE"]),
                    "darkMode": r.random() < 0.5, "updatedUtc": _utc(created),
                }
            return f"profile:{user}", {
                "id": user, "displayName": user.capitalize(), "email": f"{user}@example.com",
                "tags": r.sample(_TAGS, r.randint(0, 3)), "loginCount": r.randint(0, 999),
                "createdUtc": _utc(created),
            }
        if self.kind == "sessions":
            part = r.choice(["cart", "state", "csrf"])
            doc: dict[str, Any] = {"sessionId": str(n), "userId": user,
                                   "expiresUtc": _utc(created + timedelta(hours=2))}
            if part == "cart":
                doc["items"] = [
                    {"sku": f"SKU-{r.randint(1, 9999):05d}", "quantity": r.randint(1, 4)}
                    for _ in range(r.randint(0, 4))
                ]
            return f"session:{n}:{part}", doc
        if self.kind == "orders":
            lines = [
                {"sku": f"SKU-{r.randint(1, 9999):05d}", "quantity": r.randint(1, 5),
                 "unitPrice": round(r.uniform(1, 200), 2)}
                for _ in range(r.randint(1, 4))
            ]
            return f"order:{created.year}:{n:06d}", {
                "orderId": f"{created.year}-{n:06d}", "customerId": user,
                "status": r.choice(["Pending", "Paid", "Shipped", "Cancelled"]),
                "currency": r.choice(_CURRENCIES), "lines": lines,
                "totalAmount": round(sum(x["quantity"] * x["unitPrice"] for x in lines), 2),
                "createdUtc": _utc(created),
            }
        if self.kind == "catalog":
            if n % 8 == 0:
                return f"category:{n}", {"categoryId": n, "title": f"Category {n}",
                                         "parentId": None if n < 40 else n // 8}
            return f"product:sku-{n:05d}", {
                "sku": f"SKU-{n:05d}", "name": f"Widget {n}", "priceCents": r.randint(99, 99999),
                "inStock": r.random() < 0.8, "tags": r.sample(_TAGS, r.randint(0, 2)),
            }
        if self.kind == "notifications":
            return f"notification:{user}:{n}", {
                "notificationId": n, "recipientId": user,
                "channel": r.choice(["Email", "Sms", "Push"]), "read": r.random() < 0.3,
                "sentUtc": _utc(created),
            }
        if self.kind == "billing":
            return f"invoice:{created.year}-{created.month:02d}:{n:06d}", {
                "invoiceId": f"INV-{n:06d}", "customerId": user,
                "amountDue": round(r.uniform(5, 5000), 2), "currency": r.choice(_CURRENCIES),
                "paid": r.random() < 0.6, "dueUtc": _utc(created + timedelta(days=30)),
            }
        if self.kind == "inventory":
            return f"stock:warehouse-{r.randint(1, 4)}:sku-{n:05d}", {
                "sku": f"SKU-{n:05d}", "onHand": r.randint(0, 500),
                "reserved": r.randint(0, 20), "updatedUtc": _utc(created),
            }
        if self.kind == "shipping":
            return f"shipment:{n:06d}", {
                "shipmentId": n, "carrier": r.choice(["DHL", "UPS", "PostNord"]),
                "trackingNumber": f"TRK{r.randint(10**8, 10**9 - 1)}",
                "deliveredUtc": _utc(created) if r.random() < 0.5 else None,
            }
        if self.kind == "search":
            return f"query-cache:{n:x}", {
                "query": r.choice(["shoes", "red widget", "gift card", "sale"]),
                "hitCount": r.randint(0, 1000), "cachedUtc": _utc(created),
            }
        return f"event:{created:%Y%m%d}:{n:06d}", {
            "eventId": n, "actor": user,
            "action": r.choice(["Login", "Logout", "Update", "Delete"]),
            "occurredUtc": _utc(created),
        }


def _non_json(kind: str, rng: random.Random, n: int) -> str:
    if kind == "text":
        return f"plain text written by a shell script, run {n}"
    if kind == "blob":
        return base64.b64encode(rng.randbytes(48)).decode("ascii")
    return f'<?xml version="1.0"?><feed id="{n}"><entry>item {n}</entry></feed>'


def _odd_values(rng: random.Random) -> dict[str, str]:
    values = {key: dumps({"key": key, "note": "an odd key"}) for key in ODD_KEYS}
    values["config/theme"] = dumps({"theme": "dark", "accentColor": "#3366ff"})
    values["note:xss"] = XSS_VALUE
    values["empty"] = ""
    values["text:plain"] = _non_json("text", rng, 0)
    values["blob:avatar"] = _non_json("blob", rng, 0)
    values["xml:feed"] = _non_json("xml", rng, 0)
    return values


def _ttl_ms(rng: random.Random) -> int:
    # minutes to days; some short (but long enough to outlive a test run)
    bucket = rng.random()
    if bucket < 0.25:
        return rng.randint(5, 15) * 60_000
    if bucket < 0.7:
        return rng.randint(1, 24) * 3_600_000
    return rng.randint(1, 14) * 86_400_000


def _drift_counts(live: int, drift_pct: float) -> tuple[int, int, int]:
    if drift_pct <= 0 or live == 0:
        return 0, 0, 0
    total = max(3, round(live * drift_pct / 100))
    third, rest = divmod(total, 3)
    stale = third + (rest > 0)
    missing = min(third + (rest > 1), max(live - 1, 0))
    duplicates = min(third, live - missing)
    return stale, missing, duplicates


def seed(
    provider: KeyValueProvider,
    *,
    services: int = 5,
    keys_per_service: int = 200,
    drift_pct: float = 10,
    seed: int = 42,
    index_key: str = "__keys",
    bulk_put: BulkPut | None = None,
) -> SeedReport:
    """Write sample ToskaMesh data through ``provider`` and report exactly what was written.

    Each service gets ``keys_per_service`` keys under ``<service>:``; most services get a
    ``<service>:__keys`` index drifted by ``drift_pct`` percent (stale, missing and
    duplicate entries). ``bulk_put`` may replace one-by-one ``provider.put`` calls.
    """
    if services < 0 or keys_per_service < 0:
        raise ValueError("services and keys_per_service must not be negative")
    if not 0 <= drift_pct <= 100:
        raise ValueError("drift_pct must be between 0 and 100")
    rng = random.Random(seed)
    report = SeedReport(index_key=index_key)
    names = service_names(services)
    unindexed = _unindexed_positions(services)
    pending: list[tuple[str, str, int | None]] = []

    for position, name in enumerate(names):
        report.services.append(name)
        kind = SERVICE_NAMES[position % len(SERVICE_NAMES)]
        gen = _Generator(kind, rng)
        values: dict[str, str] = {}
        if position == 0:
            report.odd_service = name
            odd = _odd_values(rng)
            for key in ODD_KEYS[:keys_per_service]:
                values[key] = odd[key]
        while len(values) < keys_per_service:
            key, document = gen.next()
            if key in values or key == index_key:
                continue
            roll = rng.random()
            if roll < 0.03:
                values[key] = _non_json(rng.choice(["text", "blob", "xml"]), rng, gen.counter)
            else:
                values[key] = dumps(document)
        live = list(values)
        report.live_keys[name] = live
        for key in live:
            full = f"{name}:{key}"
            ttl = _ttl_ms(rng) if rng.random() < 0.2 else None
            if ttl is not None:
                report.ttl_keys[full] = ttl
            pending.append((full, values[key], ttl))

        if position not in unindexed:
            report.indexed_services.append(name)
            n_stale, n_missing, n_dup = _drift_counts(len(live), drift_pct)
            missing = rng.sample(live, n_missing)
            missing_set = set(missing)
            listed = [k for k in live if k not in missing_set]
            duplicates = rng.sample(listed, min(n_dup, len(listed)))
            stale: list[str] = []
            while len(stale) < n_stale:
                key, _ = gen.next()
                if key not in values and key not in stale and key != index_key:
                    stale.append(key)
            index = list(listed)
            for key in stale:
                index.insert(rng.randint(0, len(index)), key)
            for key in duplicates:
                first = index.index(key)
                index.insert(rng.randint(first + 1, len(index)), key)
            report.drift[name] = IndexDrift(
                stale=tuple(stale), missing=tuple(missing), duplicates=tuple(duplicates)
            )
            pending.append((f"{name}:{index_key}", dumps(index), None))

    _write(provider, pending, bulk_put)
    report.keys_written = len(pending)
    return report


def _write(
    provider: KeyValueProvider,
    items: Iterable[tuple[str, str, int | None]],
    bulk_put: BulkPut | None,
) -> None:
    items = list(items)
    if bulk_put is not None:
        bulk_put(items)
        return
    for key, value, ttl in items:
        provider.put(key, value, ttl=TtlChange.set(ttl) if ttl else NO_TTL)
