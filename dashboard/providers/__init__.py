"""Choose and build the store provider once, from configuration.

Provider modules are imported lazily so that a Redis deployment never imports httpx
code paths it does not use, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from .base import KeyValueProvider

__all__ = ["index_key_resolver", "make_provider"]


def index_key_resolver(settings: Settings) -> Callable[[str], tuple[str, str] | None]:
    """A function mapping a listing prefix to (service prefix, full key of its ``__keys`` index).

    The service is the one ``mesh.service_for_key`` finds: the longest configured prefix,
    else the prefix's first ``:`` segment. A prefix without ``:`` names no service.
    """
    from .. import mesh  # mesh builds on the providers: import it only when asked

    def index_key_for(prefix: str) -> tuple[str, str] | None:
        service = mesh.service_for_key(settings, prefix)
        return None if service is None else (service.prefix, service.index_full_key)

    return index_key_for


def make_provider(settings: Settings) -> KeyValueProvider:
    """Build the provider ``Mesh:KeyValue:Provider`` selects, with the dashboard's limits."""
    dashboard = settings.dashboard
    if settings.provider == "toskastore":
        from .toskastore import ToskaStoreProvider

        ts = settings.toskastore
        return ToskaStoreProvider(
            ts.base_url,
            token=ts.auth_token,
            timeout=dashboard.store_timeout_seconds,
            legacy_list_cap=dashboard.legacy_list_cap,
            mget_batch=dashboard.mget_batch_size,
            index_key_for=index_key_resolver(settings),
        )

    from .redis import RedisProvider

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
