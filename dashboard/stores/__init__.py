"""Choose and build the store provider once, from configuration.

Provider modules are imported lazily so that a Redis deployment never imports httpx
code paths it does not use, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dashboard.settings.model import Settings
    from dashboard.stores.base import KeyValueProvider

__all__ = ["make_provider"]


def make_provider(
    settings: Settings, *, index_key_for: Callable[[str], tuple[str, str] | None] | None = None,
) -> KeyValueProvider:
    """Build the provider ``Mesh:KeyValue:Provider`` selects, with the dashboard's limits.

    ``index_key_for`` maps a listing prefix to (service prefix, full key of its ``__keys``
    index), for ToskaStore servers that cannot list keys; the mesh layer knows services and
    passes it (``mesh.open_store``).
    """
    dashboard = settings.dashboard
    if settings.provider == "toskastore":
        from dashboard.stores.toskastore.provider import ToskaStoreProvider

        ts = settings.toskastore
        return ToskaStoreProvider(
            ts.base_url,
            token=ts.auth_token,
            timeout=dashboard.store_timeout_seconds,
            legacy_list_cap=dashboard.legacy_list_cap,
            mget_batch=dashboard.mget_batch_size,
            index_key_for=index_key_for,
        )

    from dashboard.stores.redis.provider import RedisProvider

    rd = settings.redis
    return RedisProvider(
        host=rd.host,
        port=rd.port,
        endpoints=rd.all_endpoints,
        db=rd.database,
        username=rd.username,
        password=rd.password,
        ssl=rd.ssl,
        timeout=dashboard.store_timeout_seconds,
        mget_batch=dashboard.mget_batch_size,
    )
