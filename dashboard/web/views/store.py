"""The store page: which store this is, what it can do, its statistics and how fast it answers."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, render_template
from flask_login import login_required

from dashboard.settings.errors import MASK, mask_connection_string, mask_url
from dashboard.stores.base import Capabilities, KeyValueProvider, StoreInfo
from dashboard.stores.errors import NotFound, ProviderError, Unavailable
from dashboard.web.current import provider
from dashboard.web.errors import PROVIDER_HINTS

bp = Blueprint("store", __name__)

#: read (never written) to time one round trip; its absence is the expected answer
PING_KEY = "__toska-kv-dashboard:ping"
#: releases that accept If-Match and compare-and-swap requests without checking them
_UNCHECKED_RELEASES = ("0.8", "0.9.1")
_STORE_NAMES = {"toskastore": "ToskaStore", "redis": "Redis"}


@dataclass(frozen=True)
class Feature:
    """One line of the capabilities table."""

    name: str
    label: str
    available: bool
    text: str


@dataclass(frozen=True)
class Problem:
    """A store call that failed, for the error banner."""

    doing: str
    error: ProviderError

    @property
    def hint(self) -> str:
        return PROVIDER_HINTS.get(self.error.kind, "")


@bp.get("/store")
@login_required
def overview():
    """Never a 500: each failed store call becomes a banner; what was learnt is still shown."""
    store = provider()
    problems: list[Problem] = []
    capabilities: Capabilities | None = None
    release: str | None = None
    info: StoreInfo | None = None
    ping_ms: float | None = None
    try:
        capabilities = store.capabilities()
        release = _release(store)
    except ProviderError as error:
        problems.append(Problem("detecting the store's release", error))
    if capabilities is not None:
        # after detection, so the ping times one warm round trip, not the probes
        try:
            ping_ms = _ping(store)
        except ProviderError as error:
            problems.append(Problem("timing a read", error))
        # a store that just did not answer is not waited for a second time
        if not (problems and isinstance(problems[-1].error, Unavailable)):
            try:
                info = store.info()
            except ProviderError as error:
                problems.append(Problem("reading the store's status and statistics", error))
    if info is not None and release is None:
        release = info.generation  # Redis: its server version
    for problem in problems:
        current_app.logger.warning("store page: %s failed: %s", problem.doing, problem.error)
    page = render_template(
        "store/overview.html", kind=_STORE_NAMES.get(store.kind, store.kind or "unknown"),
        store=store, url=_url(store), configured=_configured(store), release=release,
        features=_features(capabilities, release) if capabilities else [],
        capabilities=capabilities, info=info, stats=_stats(info), ping_ms=ping_ms,
        problems=problems)
    return page, problems[0].error.http_status if problems else 200


def _release(store: KeyValueProvider) -> str | None:
    """The release the store proved (ToskaStore); None where the provider names none."""
    release = getattr(store, "release", None)
    return release() if callable(release) else None


def _ping(store: KeyValueProvider) -> float:
    """Milliseconds one read of an absent key takes: one round trip, nothing written."""
    started = time.perf_counter()
    with contextlib.suppress(NotFound):
        store.get(PING_KEY)
    return (time.perf_counter() - started) * 1000


def _url(store: KeyValueProvider) -> str:
    """Where the store is, any password or token masked."""
    base_url = getattr(store, "base_url", None)
    if isinstance(base_url, str):
        return mask_url(base_url)
    return store.name


def _configured(store: KeyValueProvider) -> list[tuple[str, str]]:
    """The settings naming this store, as the operator would fix them; secrets masked."""
    settings = current_app.config["KV_SETTINGS"]
    if store.kind == "toskastore":
        ts = settings.toskastore
        return [("Mesh__KeyValue__ToskaStore__BaseUrl", mask_url(ts.base_url)),
                ("Mesh__KeyValue__ToskaStore__AuthToken", MASK if ts.auth_token else "not set")]
    if store.kind == "redis":
        return [("Mesh__KeyValue__Redis__ConnectionString",
                 mask_connection_string(settings.redis.connection_string))]
    return []


_LISTING = {
    "range": "ordered range API: pages come in key order",
    "cursor": "cursor pages (no ordered range API)",
    "legacy": "one unpaged request per listing, at most {cap} keys (Dashboard__LegacyListCap)",
    "index": "none on the server: keys come from each service's __keys index",
    "scan": "SCAN: unordered, each page sorted on its own",
}


def _features(caps: Capabilities, release: str | None) -> list[Feature]:
    cap = current_app.config["KV_SETTINGS"].dashboard.legacy_list_cap
    if caps.atomic_cas:
        conditions = "checked by the store: an edit fails if the key changed meanwhile"
    elif release in _UNCHECKED_RELEASES:
        conditions = ("ignored by this server: edits and create-only writes are checked by "
                      "reading first, so a write landing in between is overwritten")
    else:
        conditions = ("not proven (a read-only token cannot probe them): edits are checked "
                      "by reading first")
    return [
        Feature("listing", "Key listing", caps.key_listing, _LISTING[caps.listing].format(cap=cap)),
        Feature("versions", "Versions", caps.versions,
                "kept per key" if caps.versions
                else "not reported by this server: edits compare values"),
        Feature("ttl_visible", "TTL visibility", caps.ttl_visible,
                "TTLs reported, and kept on edit" if caps.ttl_visible
                else "unknown: this server does not report TTLs, so an edit must choose one"),
        Feature("atomic_cas", "Conditional writes", caps.atomic_cas, conditions),
        Feature("transactions", "Transactions", caps.transactions,
                "several keys compared and written all or nothing" if caps.transactions
                else "none: a key and its __keys index are written one after the other"),
        Feature("leases", "Leases", caps.leases,
                "keys can follow a lease's expiry" if caps.leases else "none"),
        Feature("watch", "Watch", caps.watch,
                "changes can be streamed" if caps.watch else "none"),
        Feature("mget_ttl", "TTLs in bulk lookups", caps.mget_ttl,
                "reported" if caps.mget_ttl else "not reported"),
        Feature("non_string_types", "Hashes, lists, sets, streams", caps.non_string_types,
                "shown read-only" if caps.non_string_types else "only string values exist"),
    ]


def _stats(info: StoreInfo | None) -> list[tuple[str, str]]:
    if info is None:
        return []
    return [(name, _show(value)) for name, value in sorted(info.stats.items())]


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)
