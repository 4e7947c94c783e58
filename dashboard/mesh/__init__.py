"""ToskaMesh semantics above the providers: service prefixes and the ``__keys`` index.

Both stores share these rules (mesh-kv.md): a service is a key prefix ending in ``:``;
an indexed service keeps a JSON array of its keys, without the prefix, at
``<prefix><KeyIndexKey>``, which never lists itself.

The index drifts (the runtime's blind read-modify-write loses updates, keeps expired
and foreign-deleted keys, allows duplicates): ``check_index`` measures the drift of one
service and ``plan_repair``/``apply_repair`` fix it with compare-and-swap writes that
keep whatever mesh services add to the index meanwhile. The web views and the CLI
both use these functions.

One module per concern; callers use ``mesh.<name>``, re-exported here:

- ``services``: ``Service``, prefixes, and which services are configured, known or indexed;
- ``index``: the ``__keys`` index itself (parse, serialise, read, and ``swap_index``, the one
  compare-and-swap every index write goes through, reading back an unanswered write);
- ``drift``: ``check_index`` and its ``DriftReport``;
- ``repair``: ``plan_repair``/``apply_repair``, their ``ACTIONS`` and the audit log line.
Their underscore helpers are re-exported too (``_name as _name``), so ``mesh._name``
still resolves.
"""

from dashboard.mesh.drift import (
    CHECK_BATCH,
    CHECK_PAGE,
    DriftReport,
    NoIndex,
    NoSuchService,
    check_index,
)
from dashboard.mesh.drift import _existing as _existing
from dashboard.mesh.drift import _require_index_or_keys as _require_index_or_keys
from dashboard.mesh.index import (
    MalformedIndex,
    has_index,
    parse_index,
    read_index,
    read_index_entry,
    serialise_index,
    swap_index,
    update_index,
)
from dashboard.mesh.repair import (
    ACTIONS,
    RepairPlan,
    RepairRefused,
    RepairResult,
    apply_repair,
    audit_log,
    full_keys,
    plan_repair,
    repair_is_atomic,
)
from dashboard.mesh.repair import _apply_action as _apply_action
from dashboard.mesh.repair import _audit as _audit
from dashboard.mesh.repair import _changed as _changed
from dashboard.mesh.repair import _inner as _inner
from dashboard.mesh.repair import _undone as _undone
from dashboard.mesh.services import (
    DEFAULT_INDEX_KEY,
    SEPARATOR,
    Service,
    configured_services,
    index_key_resolver,
    known_services,
    normalise_prefix,
    open_store,
    service_for_key,
    service_for_prefix,
    services_with_index,
)
from dashboard.mesh.services import _default_service as _default_service
from dashboard.mesh.services import _index_name as _index_name
from dashboard.mesh.services import _keeps_index as _keeps_index

__all__ = [
    "ACTIONS",
    "CHECK_BATCH",
    "CHECK_PAGE",
    "DEFAULT_INDEX_KEY",
    "SEPARATOR",
    "DriftReport",
    "MalformedIndex",
    "NoIndex",
    "NoSuchService",
    "RepairPlan",
    "RepairRefused",
    "RepairResult",
    "Service",
    "apply_repair",
    "audit_log",
    "check_index",
    "configured_services",
    "full_keys",
    "has_index",
    "index_key_resolver",
    "known_services",
    "normalise_prefix",
    "open_store",
    "parse_index",
    "plan_repair",
    "read_index",
    "read_index_entry",
    "repair_is_atomic",
    "serialise_index",
    "service_for_key",
    "service_for_prefix",
    "services_with_index",
    "swap_index",
    "update_index",
]
