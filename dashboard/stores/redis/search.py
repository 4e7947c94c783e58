"""Key search on Redis: ``SCAN MATCH`` with the glob-escaped prefix and the operator's glob.

Redis filters the keys itself; the page budget is counted in SCAN calls (each examines
about ``scan_count`` keys), one call at a time through the listing's own cursor, so the
page can say how far the walk got: "scanned about 40,000 of 100,000 keys" (the keyspace
size is ``DBSIZE``, summed over the primaries of a cluster: SCAN walks every key of the
database, whatever the prefix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboard.stores import search
from dashboard.stores.budget import WorkBudget, browse_budget
from dashboard.stores.glob import compile_glob
from dashboard.stores.redis.listing import glob_escape
from dashboard.stores.redis.reads import key_text


def scan_matching(
    provider: Any, prefix: str, pattern: str, *, cursor: str | None, limit: int, budget: int,
    preview_bytes: int | None, work: WorkBudget | None = None,
) -> search.SearchPage:
    """The hits' values are read through ``work`` (a browse page's budget unless given),
    as a browse page's are (``RedisListing._budgeted_page``): past its bytes, hits are
    ``unread``."""
    if work is None:
        work = browse_budget()
    if limit < 1 or budget < 1:
        raise ValueError("limit and budget must be positive")
    search.check_pattern(pattern, provider.name)
    scope = ("keys", prefix, pattern)
    state = search.decode_cursor(cursor, provider.name, *scope)
    match, keep = _server_match(provider, prefix, pattern)
    steps = max(1, -(-budget // provider.scan_count))
    found: set[bytes] = set()
    finished = False
    with provider._translate():
        # the mode (standalone or cluster) is known once _translate has detected it
        step = (provider._scan_cluster if provider._cluster is not None
                else provider._scan_standalone)
        for _ in range(steps):
            keys, state.inner = step(match, state.inner, limit, 1)
            found.update(key for key in keys if keep is None or keep(key))
            state.scanned += provider.scan_count
            if state.inner is None:
                finished = True
                break
            if len(found) >= limit:
                break
        read = provider._budgeted_page(sorted(found), None, preview_bytes, work)
        total = keyspace_size(provider)
    # COUNT is a hint: the keys examined are an estimate, never more than the keyspace
    state.scanned = total if finished else min(state.scanned, max(total - 1, 0))
    state.bytes_read += work.bytes_read
    return search.SearchPage(
        read.entries, None if finished else search.encode_cursor(state, *scope),
        state.scanned, total, finished, "scan", bytes_read=state.bytes_read,
        unread=read.unread, byte_budget=work.bytes, step_bytes=work.bytes_read)


def _server_match(provider: Any, prefix: str, pattern: str
                  ) -> tuple[bytes, Callable[[bytes], bool] | None]:
    """(the MATCH Redis applies, the filter the dashboard adds after it, or None).

    A pattern with several ``*`` goes to Redis as the prefix alone and is matched here:
    Redis before 7.0.10 backtracks such a pattern exponentially (CVE-2022-36021), and one
    operator's search must not stall the mesh's single-threaded Redis.
    """
    raw_prefix = provider._encode_key(prefix)
    escaped = glob_escape(raw_prefix)
    if pattern.count("*") <= 1:
        return escaped + pattern.encode("utf-8", "surrogateescape"), None
    matches = compile_glob(pattern)

    def keep(key: bytes) -> bool:
        return key.startswith(raw_prefix) and matches(key_text(key[len(raw_prefix):]))

    return escaped + b"*", keep


def keyspace_size(provider: Any) -> int:
    """Keys in the database SCAN walks (every primary's, on a cluster)."""
    if provider._cluster is None:
        return int(provider._client.dbsize())
    return sum(int(provider._on_node(node, lambda client: client.dbsize()))
               for node in provider._primaries())
