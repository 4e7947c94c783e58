"""An in-memory, ToskaStore-compatible HTTP server for the demo and the tests.

It models the upstream server (``abstractivemachines/toska_store``) in each deployed
release: ``release="main"`` (default: metadata, conditions, leases, locks, txn,
watch), ``"0.9.1"`` (``{key, value}`` only, sorted cursor listing) and ``"0.8"``
(``legacy=True``: unpaged hash-order listing), plus hooks to misbehave on purpose
(auth, read-only follower, delays, rate limits, an unavailable store)::

    from dashboard.devstore import start_devstore

    with start_devstore(port=0, release="0.9.1") as running:
        running.store.put("svc:key", "value")      # seed without HTTP
        httpx.get(f"{running.url}/kv/svc%3Akey")
"""

from dashboard.devstore.config import RELEASES
from dashboard.devstore.server import RunningDevStore, serve, start_devstore
from dashboard.devstore.store import ConditionFailed, Conditions, DevStore

__all__ = [
    "RELEASES",
    "ConditionFailed",
    "Conditions",
    "DevStore",
    "RunningDevStore",
    "serve",
    "start_devstore",
]
