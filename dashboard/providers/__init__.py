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


def index_key_resolver(settings: Settings) -> Callable[[str], str | None]:
    """A function mapping a listing prefix to the full key of the ``__keys`` index covering it.

    The configured service whose key prefix the listing prefix starts with (longest
    match) decides; otherwise the prefix's first ``:`` segment is taken as the service.
    A prefix without ``:`` names no service, so no index covers it.
    """
    default_index = settings.toskastore.key_index_key
    services: list[tuple[str, str | None]] = [
        (s.key_prefix, s.key_index_key) for s in settings.dashboard.services
    ]
    # the mesh's own KeyPrefix setting names one service too (it may itself contain ":")
    own_prefix = settings.toskastore.key_prefix
    if own_prefix:
        services.append((own_prefix if own_prefix.endswith(":") else own_prefix + ":", None))
    services.sort(key=lambda item: len(item[0]), reverse=True)

    def index_key_for(prefix: str) -> str | None:
        for key_prefix, index_key in services:
            if prefix.startswith(key_prefix):
                return key_prefix + (index_key or default_index)
        head, sep, _ = prefix.partition(":")
        if not sep:
            return None
        return f"{head}:{default_index}"

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
        db=rd.database,
        username=rd.username,
        password=rd.password,
        ssl=rd.ssl,
        timeout=dashboard.store_timeout_seconds,
        mget_batch=dashboard.mget_batch_size,
    )
