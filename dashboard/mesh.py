"""ToskaMesh semantics above the providers: service prefixes and the ``__keys`` index.

Both stores share these rules (mesh-kv.md): a service is a key prefix ending in ``:``;
an indexed service keeps a JSON array of its keys, without the prefix, at
``<prefix><KeyIndexKey>``, which never lists itself.

The index drifts (the runtime's blind read-modify-write loses updates, keeps expired
and foreign-deleted keys, allows duplicates): ``check_index`` measures the drift of one
service and ``plan_repair``/``apply_repair`` fix it with compare-and-swap writes that
keep whatever mesh services add to the index meanwhile. The web views and the CLI
both use these functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from . import meshjson
from .providers.base import NO_TTL, Entry, KeyValueProvider, now_ms
from .providers.errors import Conflict, NotFound, ProviderError

SEPARATOR = ":"
DEFAULT_INDEX_KEY = "__keys"


def normalise_prefix(prefix: str) -> str:
    """The runtime appends ``:`` unless the prefix already ends with one."""
    return prefix if prefix.endswith(SEPARATOR) else prefix + SEPARATOR


@dataclass(frozen=True)
class Service:
    """One service's slice of the store."""

    name: str
    prefix: str
    #: the index key *inside* the prefix (``__keys``, verbatim: it may hold ``:`` or
    #: spaces); the full key is ``index_full_key``
    index_key: str = DEFAULT_INDEX_KEY
    #: listed in Dashboard:Services or the mesh's own KeyPrefix (else discovered from keys)
    configured: bool = False
    #: whether the service's runtime keeps a ``__keys`` index: True (ToskaStore with
    #: EnableKeyIndex), False (Redis, or EnableKeyIndex false), None (nothing says: an
    #: index that exists is kept, a missing one is not missed)
    keeps_index: bool | None = None

    @property
    def index_full_key(self) -> str:
        return self.prefix + self.index_key


class MalformedIndex(ProviderError):
    """The ``__keys`` index exists but is not a JSON array of strings."""

    kind = "malformed-index"
    http_status = 409


class NoSuchService(ProviderError):
    """A prefix with no keys and no index: most likely a typo, never "consistent"."""

    kind = "no-such-service"
    http_status = 404


class NoIndex(ProviderError):
    """The service has keys but no index, and nothing says its runtime keeps one."""

    kind = "no-index"
    http_status = 404


def _index_name(configured: str | None, settings) -> str:
    # the runtime: IsNullOrWhiteSpace(KeyIndexKey) ? "__keys" : KeyIndexKey (verbatim)
    for name in (configured, settings.toskastore.key_index_key):
        if name is not None and name.strip():
            return name
    return DEFAULT_INDEX_KEY


def _keeps_index(settings, said: bool | None) -> bool | None:
    if settings.provider != "toskastore":
        return False  # the Redis runtime never keeps an index
    return said


def configured_services(settings) -> list[Service]:
    """Dashboard:Services, then the mesh's own service prefix (KeyPrefix or ServiceName)."""
    services = {
        normalise_prefix(s.key_prefix): Service(
            s.name, normalise_prefix(s.key_prefix), _index_name(s.key_index_key, settings), True,
            _keeps_index(settings, s.enable_key_index),
        )
        for s in settings.dashboard.services
    }
    own = settings.own_service_prefix
    if own:
        own_keeps = _keeps_index(settings, settings.toskastore.enable_key_index)
        listed = services.get(own)
        if listed is None:
            services[own] = Service(own[: -len(SEPARATOR)], own, _index_name(None, settings), True,
                                    own_keeps)
        elif listed.keeps_index is None:
            services[own] = replace(listed, keeps_index=own_keeps)
    return list(services.values())


def _default_service(settings, prefix: str) -> Service:
    """A service nothing configures: its index is kept only where one exists."""
    return Service(prefix[: -len(SEPARATOR)], prefix, _index_name(None, settings),
                   keeps_index=_keeps_index(settings, None))


def service_for_key(settings, key: str) -> Service | None:
    """The service a full key belongs to: the longest configured prefix, else its first segment."""
    matches = [s for s in configured_services(settings) if key.startswith(s.prefix)]
    if matches:
        return max(matches, key=lambda s: len(s.prefix))
    head, sep, _ = key.partition(SEPARATOR)
    if not sep:
        return None
    return _default_service(settings, head + SEPARATOR)


def parse_index(entry: Entry) -> list[str]:
    """The index's entries in stored order (duplicates kept); raises ``MalformedIndex`` if malformed."""
    if entry.type != "string" or entry.value is None:
        raise MalformedIndex(
            f"index {entry.key!r} is a Redis {entry.type}, not a JSON array stored as a string",
            key=entry.key,
        )
    try:
        data = json.loads(entry.value or "")
    except json.JSONDecodeError as error:
        raise MalformedIndex(
            f"index {entry.key!r} is not valid JSON ({error.msg} at position {error.pos}); "
            f"it starts with {(entry.value or '')[:200]!r}", key=entry.key,
        ) from None
    except (ValueError, RecursionError):
        # nested too deep, or a number over Python's digit limit: no array of strings
        raise MalformedIndex(
            f"index {entry.key!r} is not a JSON array of strings (nested too deep or an "
            f"oversized number); it starts with {(entry.value or '')[:200]!r}", key=entry.key,
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise MalformedIndex(
            f"index {entry.key!r} is not a JSON array of strings; it starts with "
            f"{(entry.value or '')[:200]!r}", key=entry.key,
        )
    return data


def serialise_index(keys: Iterable[str]) -> str:
    """The runtime's bytes: System.Text.Json's compact array, non-ASCII escaped."""
    return meshjson.dumps(list(keys))


def read_index_entry(provider: KeyValueProvider, service: Service) -> Entry | None:
    """The stored index entry, unparsed, or None when the service has none."""
    try:
        return provider.get(service.index_full_key)
    except NotFound:
        return None


def read_index(provider: KeyValueProvider, service: Service) -> tuple[list[str], Entry] | None:
    """The parsed index and the entry it came from, or None when the service has none."""
    entry = read_index_entry(provider, service)
    return None if entry is None else (parse_index(entry), entry)


def has_index(provider: KeyValueProvider, service: Service) -> bool:
    return read_index_entry(provider, service) is not None


def update_index(
    provider: KeyValueProvider, service: Service, *, add: Iterable[str] = (),
    remove: Iterable[str] = (), attempts: int = 8, create_missing: bool = False,
) -> str:
    """Add/remove keys (without the prefix) in the service's index, compare-and-swap.

    Unlike the runtime's blind read-modify-write, a concurrent change makes us re-read and
    re-apply, so nothing another writer added is lost. A missing index is created (with
    just the added keys, as the runtime's first write does) only with ``create_missing``.
    Returns "missing", "unchanged", "updated" or "created".
    """
    add = [k for k in add if k != service.index_key]
    remove = set(remove)
    for _ in range(attempts):
        current = read_index(provider, service)
        if current is None:
            if not create_missing:
                return "missing"
            try:
                provider.put(service.index_full_key, serialise_index(dict.fromkeys(add)),
                             ttl=NO_TTL, create_only=True)
                return "created"
            except Conflict:
                continue
        keys, entry = current
        updated = [k for k in keys if k not in remove]
        present = set(updated)
        updated.extend(k for k in dict.fromkeys(add) if k not in present)
        if updated == keys:
            return "unchanged"
        try:
            provider.put(entry.key, serialise_index(updated), ttl=NO_TTL, expected=entry.token)
            return "updated"
        except Conflict:
            continue
    raise Conflict(
        f"the index {service.index_full_key!r} kept changing; gave up after {attempts} attempts",
        store=provider.name, key=service.index_full_key,
    )


def service_for_prefix(settings, prefix: str) -> Service:
    """The service with exactly this prefix (normalised): configured, else a default one."""
    prefix = normalise_prefix(prefix)
    for service in configured_services(settings):
        if service.prefix == prefix:
            return service
    return _default_service(settings, prefix)


def known_services(provider: KeyValueProvider, settings) -> tuple[list[Service], bool]:
    """Configured services first (in configuration order), then discovered prefixes.

    Discovery takes the distinct first ``:`` segments of the store's keys (on a range
    server by skipping from one to the next). Returns the services and whether
    discovery saw every prefix.
    """
    services: dict[str, Service] = {s.prefix: s for s in configured_services(settings)}
    discovered = provider.list_segments("", sep=SEPARATOR, limit=1000)
    for prefix in sorted(discovered.folders):
        services.setdefault(prefix, _default_service(settings, prefix))
    return list(services.values()), discovered.complete


def services_with_index(provider: KeyValueProvider, settings) -> list[Service]:
    """Known services whose runtime keeps an index: it exists, or configuration says so.

    None on Redis: that runtime keeps no index (a ``__keys`` key there is plain data).
    One bulk read tells which indexes exist.
    """
    candidates = [s for s in known_services(provider, settings)[0] if s.keeps_index is not False]
    found = provider.mget([s.index_full_key for s in candidates]) if candidates else {}
    return [
        s for s in candidates
        if found.get(s.index_full_key) is not None or s.keeps_index
    ]


# --------------------------------------------------------------------------- drift

#: index entries checked per bulk read when the store cannot list keys
CHECK_BATCH = 1000
#: keys asked for per listing page
CHECK_PAGE = 1000


@dataclass(frozen=True)
class DriftReport:
    """How one service's ``__keys`` index differs from its live keys, at ``checked_at_ms``.

    Key lists hold FULL keys (prefix included), sorted; ``index_entries`` is the index
    exactly as read (inner keys, stored order, duplicates kept): the base of a repair.
    """

    service: Service
    index_exists: bool
    #: None, or why the index is unusable (parse error and its first 200 characters),
    #: or ``missing: ...`` when the service has keys but no index
    malformed: str | None
    #: entries in the index, duplicates counted
    indexed: int
    #: live keys under the prefix, the index key itself excluded (when the store cannot
    #: list keys: the index entries that exist)
    live: int
    #: distinct index entries that are live
    in_both: int
    #: in the index, not live (expired keys included)
    stale: list[str]
    #: live, not in the index (when ``unindexed_detectable`` is False: empty without a key
    #: listing, only those found by a capped legacy listing)
    unindexed: list[str]
    #: listed more than once in the index, each once
    duplicates: list[str]
    #: False when the store cannot list every key (no key listing, or a legacy listing
    #: cut at its cap): then ``unindexed`` is unknown or incomplete
    unindexed_detectable: bool
    checked_at_ms: int
    seconds: float
    #: ``Entry.token`` of the index as read (None when there is no index)
    index_token: str | None
    index_entries: tuple[str, ...] = ()
    #: why the listing was incomplete, for the operator (None when it was complete)
    listing_note: str | None = None

    @property
    def consistent(self) -> bool:
        """No drift that matters. Duplicates do not count: the runtime de-duplicates the
        index on read and its next write removes them."""
        return not (self.stale or self.unindexed or self.malformed)

    @property
    def strictly_consistent(self) -> bool:
        """Consistent and without duplicate entries either (``check-index --strict``)."""
        return self.consistent and not self.duplicates

    @property
    def checked_at(self) -> datetime:
        return datetime.fromtimestamp(self.checked_at_ms / 1000, tz=UTC)

    def to_json(self) -> dict:
        """The CLI's ``--json`` document for one service (and the web's JSON download)."""
        return {
            "service": self.service.name,
            "prefix": self.service.prefix,
            "index_key": self.service.index_full_key,
            "index_exists": self.index_exists,
            "indexed": self.indexed,
            "live": self.live,
            "in_both": self.in_both,
            "stale": list(self.stale),
            "unindexed": list(self.unindexed),
            "duplicates": list(self.duplicates),
            "malformed": self.malformed,
            "unindexed_detectable": self.unindexed_detectable,
            "listing_note": self.listing_note,
            "consistent": self.consistent,
            "strictly_consistent": self.strictly_consistent,
            "checked_at": self.checked_at.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "seconds": round(self.seconds, 3),
        }


def check_index(
    provider: KeyValueProvider, service: Service, *,
    on_progress: Callable[[int], None] | None = None,
) -> DriftReport:
    """Compare ``service``'s index with its live keys; see ``DriftReport``.

    Streams the listing page by page into one set of inner keys (memory grows with the
    number of keys, never with copies of pages). A store that cannot list keys only
    lets us check the index entries themselves, with bulk reads.
    """
    started = time.monotonic()
    checked_at = now_ms()
    prefix, own = service.prefix, service.index_key
    entry = read_index_entry(provider, service)
    if entry is None:
        _require_index_or_keys(provider, service)
    malformed: str | None = None
    entries: list[str] = []
    if entry is not None:
        try:
            entries = parse_index(entry)
        except MalformedIndex as error:
            malformed = error.message
    listing = provider.capabilities().listing
    note: str | None = None
    detectable = listing != "index"

    live: set[str] = set()
    if detectable:
        truncated = False
        cursor: str | None = None
        while True:
            page = provider.list_keys(prefix, cursor=cursor, limit=CHECK_PAGE)
            truncated = truncated or page.truncated
            cut = len(prefix)
            live.update(key[cut:] for key in page.keys if key.startswith(prefix))
            if on_progress is not None:
                on_progress(len(live))
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        live.discard(own)
        if truncated:
            # keys past the server's cap are unknown: confirm index entries by bulk reads
            # so stale stays exact; the unindexed keys found are only a part
            detectable = False
            note = (f"the store listed only part of the keys under {prefix!r} (legacy "
                    "listing cap): stale entries are exact, unindexed keys may be missing")
            unseen = [e for e in dict.fromkeys(entries) if e not in live and e != own]
            live.update(_existing(provider, prefix, unseen, on_progress, len(live)))
    else:
        note = "the store cannot list keys: only the index entries were checked"
        candidates = [e for e in dict.fromkeys(entries) if e != own]
        live.update(_existing(provider, prefix, candidates, on_progress, 0))

    listed = set(entries)
    if entry is None and live:
        # only a runtime configured to keep an index misses it (see _require_index_or_keys)
        malformed = (f"missing: the service has {len(live)} keys but no index, and its runtime "
                     "keeps one (EnableKeyIndex)")
    elif entry is None:
        note = "no keys and no index yet: the runtime creates the index with the first key"
    return DriftReport(
        service=service,
        index_exists=entry is not None,
        malformed=malformed,
        indexed=len(entries),
        live=len(live),
        in_both=len(listed & live),
        stale=sorted(prefix + e for e in listed - live),
        # without a listing, live keys are index entries: none can be unindexed
        unindexed=sorted(prefix + k for k in live - listed),
        duplicates=sorted(prefix + e for e, n in Counter(entries).items() if n > 1),
        unindexed_detectable=detectable,
        checked_at_ms=checked_at,
        seconds=time.monotonic() - started,
        index_token=entry.token if entry is not None else None,
        index_entries=tuple(entries),
        listing_note=note,
    )


def _require_index_or_keys(provider: KeyValueProvider, service: Service) -> None:
    """Refuse to report a service without an index as consistent, unless its runtime keeps one.

    A prefix with no keys at all is most likely a typo (``NoSuchService``); one with keys
    but no index, where nothing says the runtime keeps one, has nothing to check
    (``NoIndex``): a "missing index" alarm there would be false.
    """
    if service.keeps_index:
        return
    has_keys = provider.capabilities().key_listing and bool(
        provider.list_keys(service.prefix, limit=1).keys)
    if not has_keys:
        raise NoSuchService(
            f"no such service: nothing is stored under {service.prefix!r} and it has no index "
            f"{service.index_full_key!r}; check the prefix (it must match the keys exactly)",
            store=provider.name, key=service.index_full_key)
    why = ("the Redis runtime keeps no index" if service.keeps_index is False else
           "no setting says its runtime keeps one (Mesh:KeyValue:ToskaStore:EnableKeyIndex for "
           "the mesh's own service, or Dashboard:Services:N:EnableKeyIndex)")
    raise NoIndex(f"{service.prefix!r} has keys but no index {service.index_full_key!r}, and {why}: "
                  "there is nothing to check", store=provider.name, key=service.index_full_key)


def _existing(
    provider: KeyValueProvider, prefix: str, inner: Sequence[str],
    on_progress: Callable[[int], None] | None, done: int,
) -> Iterable[str]:
    """The inner keys of ``inner`` that exist, by bulk reads of ``CHECK_BATCH`` keys."""
    for start in range(0, len(inner), CHECK_BATCH):
        batch = inner[start:start + CHECK_BATCH]
        found = provider.mget([prefix + k for k in batch])
        yield from (k for k in batch if found.get(prefix + k) is not None)
        if on_progress is not None:
            on_progress(done + start + len(batch))


# --------------------------------------------------------------------------- repair

ACTIONS = ("add-unindexed", "prune-stale", "dedupe", "rebuild")

audit_log = logging.getLogger("dashboard.audit")


class RepairRefused(ProviderError):
    """This repair cannot be done safely (unknown action, malformed index, no listing)."""

    kind = "repair-refused"
    http_status = 409


@dataclass(frozen=True)
class RepairPlan:
    """What a repair would change, computed from a ``DriftReport``; full keys in lists."""

    action: str
    report: DriftReport
    #: full keys the repair adds to the index
    add: list[str]
    #: full keys it removes (dedupe: the duplicated keys, once each)
    remove: list[str]
    #: the index it would write now (inner keys)
    new_entries: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """A short stable hash of (action, add, remove): tells a changed plan from the one shown."""
        payload = json.dumps([self.report.service.prefix, self.action, self.add, self.remove],
                             ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    @property
    def changes(self) -> bool:
        if self.report.index_exists and self.report.malformed is not None:
            return True  # a rebuild replaces the unusable value even with no keys
        return self.new_entries != list(self.report.index_entries)

    def to_json(self) -> dict:
        return {
            "prefix": self.report.service.prefix,
            "index_key": self.report.service.index_full_key,
            "action": self.action,
            "add": list(self.add),
            "remove": list(self.remove),
            "changes": self.changes,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class RepairResult:
    """What ``apply_repair`` wrote; ``added``/``removed`` are full keys actually applied."""

    plan: RepairPlan
    #: the index value that was replaced (None when there was none), for download
    previous_value: str | None
    new_value: str
    #: writes tried (0 when there was nothing to write)
    attempts: int
    added: list[str]
    removed: list[str]
    #: full keys whose change a runtime write undid right after the repair (seen on re-read)
    undone: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "prefix": self.plan.report.service.prefix,
            "index_key": self.plan.report.service.index_full_key,
            "action": self.plan.action,
            "added": list(self.added),
            "removed": list(self.removed),
            "attempts": self.attempts,
            "undone": list(self.undone),
        }


def repair_is_atomic(provider: KeyValueProvider) -> bool:
    """Whether the store checks a repair's compare-and-swap atomically (not legacy ToskaStore)."""
    return provider.capabilities().atomic_cas


def _inner(service: Service, keys: Iterable[str]) -> list[str]:
    cut = len(service.prefix)
    return [k[cut:] for k in keys]


def _apply_action(plan: RepairPlan, base: Sequence[str], fresh: Sequence[str]) -> list[str]:
    """The index ``plan.action`` makes of ``fresh``, given the ``base`` the plan was made on.

    Applied to the index as it is at write time, so an entry a mesh service added (or
    removed) since the check survives the repair.
    """
    own = plan.report.service.index_key
    if plan.action == "add-unindexed":
        present = set(fresh)
        result = list(fresh) + [k for k in _inner(plan.report.service, plan.add) if k not in present]
    elif plan.action == "prune-stale":
        gone = set(_inner(plan.report.service, plan.remove))
        result = [k for k in fresh if k not in gone]
    elif plan.action == "dedupe":
        result = list(dict.fromkeys(fresh))
    elif plan.action == "rebuild":
        live = set(plan.new_entries)  # the plan's rebuild: exactly the live keys
        base_set, fresh_set = set(base), set(fresh)
        result = sorted((live - (base_set - fresh_set)) | (fresh_set - base_set))
    else:  # pragma: no cover - plan_repair refuses unknown actions
        raise RepairRefused(f"unknown repair action {plan.action!r}")
    return [k for k in result if k != own]


def plan_repair(
    provider: KeyValueProvider, service: Service, action: str, *,
    report: DriftReport | None = None,
) -> RepairPlan:
    """What ``action`` would do to ``service``'s index; checks the index unless given ``report``."""
    if action not in ACTIONS:
        raise RepairRefused(f"unknown repair action {action!r} (use one of {', '.join(ACTIONS)})",
                            key=service.index_full_key)
    if report is None:
        report = check_index(provider, service)
    if report.malformed is not None and action != "rebuild":
        raise RepairRefused(
            f"the index {service.index_full_key!r} cannot be repaired with {action!r}, only "
            f"rebuilt: {report.malformed}", key=service.index_full_key,
        )
    if action in ("rebuild", "add-unindexed") and not report.unindexed_detectable:
        raise RepairRefused(
            f"{action!r} needs every live key under {service.prefix!r}, and this store "
            f"cannot list them ({report.listing_note or 'no key listing'}); "
            "use prune-stale or dedupe", key=service.index_full_key,
        )
    base = list(report.index_entries)
    own_listed = [service.index_full_key] if service.index_key in base else []
    if action == "add-unindexed":
        add, remove = list(report.unindexed), own_listed
    elif action == "prune-stale":
        add, remove = [], list(report.stale)
    elif action == "dedupe":
        add, remove = [], sorted(set(report.duplicates) | set(own_listed))
    else:
        add, remove = list(report.unindexed), list(report.stale)
    plan = RepairPlan(action, report, add, remove)
    if action == "rebuild":
        live = (set(base) - set(_inner(service, report.stale))) | set(_inner(service, add))
        new_entries = sorted(live - {service.index_key})
    else:
        new_entries = _apply_action(plan, base, base)
    return RepairPlan(action, report, add, remove, new_entries)


def _changed(
    service: Service, action: str, old: Sequence[str], new: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Full keys the write added and removed; for dedupe, removed are the de-duplicated ones."""
    before, after = set(old), set(new)
    removed = before - after
    if action == "dedupe":
        removed |= {k for k, n in Counter(old).items() if n > 1}
    return full_keys(service, after - before), full_keys(service, removed)


def full_keys(service: Service, inner: Iterable[str]) -> list[str]:
    """Inner keys as sorted full keys."""
    return sorted(service.prefix + k for k in inner)


def apply_repair(
    provider: KeyValueProvider, plan: RepairPlan, *, actor: str = "cli", attempts: int = 8,
    before_write: Callable[[str | None], None] | None = None,
) -> RepairResult:
    """Write ``plan`` with compare-and-swap; on a conflict re-read and re-apply the action.

    Each attempt reads the index, applies the plan's action to it (see ``_apply_action``)
    and writes only if the index still has the version just read (``create_only`` when
    there is none). ``before_write`` gets the value about to be replaced before every
    write (e.g. to save a backup; raising stops the repair). Logs one audit line.
    """
    service = plan.report.service
    key = service.index_full_key
    base = list(plan.report.index_entries)
    if not plan.changes:
        entry = read_index_entry(provider, service)
        value = entry.value if entry is not None else None
        _audit(actor, plan, 0, [], [])
        return RepairResult(plan, value, value if value is not None else serialise_index(base),
                            0, [], [])
    for attempt in range(1, max(attempts, 1) + 1):
        entry = read_index_entry(provider, service)
        if entry is None:
            if plan.report.index_exists:
                raise Conflict(f"the index {key!r} was deleted since it was checked; check again",
                               store=provider.name, key=key)
            if plan.action != "rebuild":
                raise RepairRefused(f"the service has no index {key!r} to repair", key=key)
            fresh: list[str] = []
            parsed = True
        else:
            try:
                fresh, parsed = parse_index(entry), True
            except MalformedIndex as error:
                if plan.action != "rebuild":
                    raise RepairRefused(f"the index {key!r} is malformed now, only a rebuild "
                                        f"can replace it: {error.message}", key=key) from None
                # nothing to learn from it about concurrent changes: rebuild from the base
                fresh, parsed = base, False
        new = _apply_action(plan, base, fresh)
        if parsed and entry is not None and new == fresh:
            # another writer already made the change: nothing left to write
            _audit(actor, plan, attempt - 1, [], [])
            return RepairResult(plan, entry.value, entry.value or "", attempt - 1, [], [])
        value = serialise_index(new)
        previous = entry.value if entry is not None else None
        if before_write is not None:
            before_write(previous)
        try:
            if entry is None:
                provider.put(key, value, ttl=NO_TTL, create_only=True)
            else:
                provider.put(key, value, ttl=NO_TTL, expected=entry.token)
        except Conflict:
            continue
        added, removed = _changed(service, plan.action, fresh if parsed else [], new)
        _audit(actor, plan, attempt, added, removed)
        return RepairResult(plan, previous, value, attempt, added, removed,
                            _undone(provider, service, plan.action, added, removed))
    raise Conflict(
        f"the index {key!r} kept changing while it was repaired; gave up after {attempts} "
        "attempts, nothing was written", store=provider.name, key=key,
    )


def _undone(provider: KeyValueProvider, service: Service, action: str, added: list[str],
            removed: list[str]) -> list[str]:
    """Changes of the repair that the index no longer shows when read again.

    Runtime writes are blind: one that read the index before the repair and writes after
    it puts the old entries back. The store cannot prevent that; the operator is told.
    """
    try:
        current = read_index(provider, service)
    except (MalformedIndex, ProviderError):
        return []
    counts = Counter(current[0]) if current is not None else Counter()
    cut = len(service.prefix)
    # dedupe "removes" the second copy of a key: undone is a key listed twice again
    back = (lambda k: counts[k[cut:]] > 1) if action == "dedupe" else (lambda k: counts[k[cut:]] > 0)
    return sorted([k for k in added if not counts[k[cut:]]] + [k for k in removed if back(k)])


def _audit(actor: str, plan: RepairPlan, attempts: int, added: list[str], removed: list[str]) -> None:
    audit_log.info(
        "index repair by %s: service=%s index=%s action=%s added=%d removed=%d attempts=%d",
        actor, plan.report.service.prefix, plan.report.service.index_full_key, plan.action,
        len(added), len(removed), attempts,
    )
