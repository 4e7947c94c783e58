"""An in-memory, ToskaStore-compatible HTTP server for the demo and the tests.

It speaks the upstream contract (``openapi.yaml``, v0.9.1) for the key/value routes the
dashboard uses, plus the legacy server generation, and has hooks to misbehave on
purpose (auth, read-only follower, delays, rate limits, an unavailable store)::

    from dashboard.devstore import start_devstore

    with start_devstore(port=0, legacy=False) as running:
        running.store.put("svc:key", "value")      # seed without HTTP
        httpx.get(f"{running.url}/kv/svc%3Akey")
"""

from .server import RunningDevStore, serve, start_devstore
from .store import ConditionFailed, Conditions, DevStore

__all__ = [
    "ConditionFailed",
    "Conditions",
    "DevStore",
    "RunningDevStore",
    "serve",
    "start_devstore",
]
