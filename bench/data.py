"""The benchmark's data set: deterministic, so the parent and the dev store child agree.

For ``keys`` = N the store holds:

- N mesh-shaped keys in 10 services (``dashboard.mesh.seed``: camelCase JSON, 20% with a TTL,
  ``__keys`` indexes drifted by 10% on 8 of them), so each service has N/10 keys;
- the service ``bench:`` with N small keys and a ``__keys`` index drifted by 1% stale,
  1% unindexed and 1% duplicated (as ``bench/check_index.py``): the index check's target;
- one 50 MB JSON value (``bigvalues:catalog-snapshot``), a list of order documents.

So a store holds 2N keys plus a few; Redis SCANs walk all of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from dashboard.mesh.seed import SeedReport, seed

SERVICES = 10
CHECK_PREFIX = "bench:"
BIG_KEY = "bigvalues:catalog-snapshot"
#: the browsed service (its N/10 keys are "all pages of a service")
BROWSE_PREFIX = "orders:"
RNG_SEED = 20261127

#: (full key, value, TTL in ms or None)
Item = tuple[str, str, "int | None"]


def big_value(size: int) -> str:
    """A JSON array of order documents, ``size`` bytes or a little more (compact, ASCII)."""
    rng = random.Random(RNG_SEED)
    parts: list[str] = []
    total = 2
    n = 0
    while total < size:
        n += 1
        doc = {
            "orderId": f"2026-{n:07d}", "customerId": f"customer{rng.randint(1, 99999)}",
            "status": rng.choice(["Pending", "Paid", "Shipped", "Cancelled"]),
            "lines": [{"sku": f"SKU-{rng.randint(1, 9999):05d}", "quantity": rng.randint(1, 5),
                       "unitPrice": round(rng.uniform(1, 200), 2)} for _ in range(3)],
            "createdUtc": "2026-11-27T09:00:00Z",
        }
        text = json.dumps(doc, separators=(",", ":"))
        parts.append(text)
        total += len(text) + 1
    return "[" + ",".join(parts) + "]"


@dataclass
class Dataset:
    """What a target is seeded with, and the keys the scenarios ask for."""

    keys: int
    big_bytes: int
    sample: list[Item] = field(default_factory=list)
    report: SeedReport | None = None

    @property
    def check_live(self) -> list[str]:
        """The ``bench:`` service's live keys, without the prefix."""
        return [f"item:{n:07d}" for n in range(self.keys)]

    def check_drift(self) -> int:
        return max(1, self.keys // 100)

    def check_index(self) -> str:
        """``bench:__keys``: 1% stale, 1% unindexed, 1% duplicated."""
        live, drift = self.check_live, self.check_drift()
        index = live[drift:] + [f"gone:{n}" for n in range(drift)] + live[drift:2 * drift]
        return json.dumps(index, separators=(",", ":"))

    def items(self) -> Iterator[Item]:
        """Every key to write, in write order."""
        yield from self.sample
        for key in self.check_live:
            yield CHECK_PREFIX + key, '{"v":1}', None
        yield CHECK_PREFIX + "__keys", self.check_index(), None
        if self.big_bytes:
            yield BIG_KEY, big_value(self.big_bytes), None

    # -- what the scenarios ask for ---------------------------------------------------

    @property
    def services(self) -> list[str]:
        assert self.report is not None
        return self.report.services

    def browse_size(self) -> int:
        """Keys under ``BROWSE_PREFIX`` (its index key included where it has one)."""
        assert self.report is not None
        name = BROWSE_PREFIX[:-1]
        return len(self.report.live_keys[name]) + (name in self.report.indexed_services)

    def key(self) -> str:
        """An ordinary key (an order document) for the key page."""
        assert self.report is not None
        name = BROWSE_PREFIX[:-1]
        live = self.report.live_keys[name]
        return f"{name}:{live[len(live) // 2]}"

    def lookup_keys(self, count: int) -> list[str]:
        """``count`` keys for /mget: 90% existing (from every service), 10% missing."""
        assert self.report is not None
        rng = random.Random(RNG_SEED + count)
        everything = [f"{name}:{key}" for name, keys in self.report.live_keys.items()
                      for key in keys if "\n" not in key and "," not in key and " " not in key]
        found = rng.sample(everything, min(len(everything), count - count // 10))
        missing = [f"orders:order:missing:{n:06d}" for n in range(count - len(found))]
        chosen = found + missing
        rng.shuffle(chosen)
        return chosen


def build(keys: int, *, big_bytes: int = 50 * 2**20) -> Dataset:
    """The data set for ``keys`` (N): see the module docstring."""
    if keys < SERVICES:
        raise ValueError(f"--keys must be at least {SERVICES}")
    sample: list[Item] = []
    report = seed(None, services=SERVICES, keys_per_service=keys // SERVICES,  # type: ignore[arg-type]
                  drift_pct=10, seed=RNG_SEED, bulk_put=sample.extend)
    return Dataset(keys=keys, big_bytes=big_bytes, sample=sample, report=report)
