"""Listing Redis keys with SCAN (never ``KEYS``), on one server or on every cluster primary.

One opaque cursor covers the whole walk:

- standalone: ``s:<n>``, the server's own SCAN cursor;
- Redis Cluster: ``c:<node>:<n>``, where ``<node>`` is the index of a primary in the
  cluster's primaries ordered by the first hash slot each serves, and ``<n>`` is that
  node's SCAN cursor. A node's walk ends at cursor 0 and the next primary's begins, so
  one page may hold keys of several nodes; each key lives on exactly one node, so nodes
  never repeat each other's keys (one node's SCAN may repeat its own: pages are sets).

Primaries are ordered by slot, not by address, so a failover that puts a replica in its
primary's place keeps every index meaning the same slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import exceptions as rx

from dashboard.stores import errors
from dashboard.stores.budget import BudgetedPage, Unread, WorkBudget

#: characters that are special in a SCAN MATCH glob
_GLOB_SPECIAL = frozenset(b"*?[]\\")
STANDALONE_CURSOR = "s:"
CLUSTER_CURSOR = "c:"
_SLOTS = 16384
#: SCAN calls one page may make (each examines about ``scan_count`` keys)
SCAN_STEPS = 32


def glob_escape(prefix: bytes) -> bytes:
    """Escape ``prefix`` so SCAN MATCH treats every byte literally."""
    out = bytearray()
    for byte in prefix:
        if byte in _GLOB_SPECIAL:
            out.append(0x5C)  # backslash
        out.append(byte)
    return bytes(out)


def _digits(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


class RedisListing:
    """Mixin for ``RedisProvider``: SCAN pages under one opaque cursor."""

    name: str
    scan_count: int
    _client: Any
    _cluster: Any

    def _scan_keys(
        self, prefix: str, cursor: str | None, limit: int, *, max_steps: int = SCAN_STEPS,
    ) -> tuple[list[bytes], str | None]:
        """SCAN until ``limit`` distinct keys, the end, or ``max_steps`` SCAN calls.

        The step budget bounds the work by the keyspace walked, not by the matches found:
        a small prefix in a large keyspace answers a short page with a next cursor instead
        of walking every key. Returns the sorted keys and the next cursor.
        """
        if limit < 1:
            raise errors.InvalidRequest(f"limit must be positive, got {limit}", store=self.name)
        match = glob_escape(self._encode_key(prefix)) + b"*"  # type: ignore[attr-defined]
        if self._cluster is not None:
            return self._scan_cluster(match, cursor, limit, max_steps)
        return self._scan_standalone(match, cursor, limit, max_steps)

    def _scan_standalone(
        self, match: bytes, cursor: str | None, limit: int, max_steps: int,
    ) -> tuple[list[bytes], str | None]:
        position = 0 if cursor is None else self._parse_standalone_cursor(cursor)
        found: set[bytes] = set()
        for _ in range(max(max_steps, 1)):
            # SCAN may repeat keys (during a rehash) and gives no order: a set, then sort
            position, keys = self._client.scan(position, match=match, count=self.scan_count)
            found.update(keys)
            if position == 0 or len(found) >= limit:
                break
        next_cursor = f"{STANDALONE_CURSOR}{position}" if position else None
        return sorted(found), next_cursor

    def _scan_cluster(
        self, match: bytes, cursor: str | None, limit: int, max_steps: int,
    ) -> tuple[list[bytes], str | None]:
        primaries = self._primaries()
        node_index, position = (0, 0) if cursor is None else self._parse_cluster_cursor(cursor)
        if node_index >= len(primaries):
            raise errors.InvalidRequest(
                f"cursor {cursor!r} names primary #{node_index}, but the cluster now has "
                f"{len(primaries)}: its topology changed; start the listing again",
                store=self.name,
            )
        found: set[bytes] = set()
        steps = 0
        while node_index < len(primaries) and steps < max(max_steps, 1):
            steps += 1
            node = primaries[node_index]
            position, keys = self._on_node(
                node, lambda client, pos=position: client.scan(
                    pos, match=match, count=self.scan_count),
                consequence="its keys cannot be listed, so no partial listing is shown")
            found.update(keys)
            if position == 0:
                node_index += 1
            if len(found) >= limit:
                break
        more = node_index < len(primaries)
        next_cursor = f"{CLUSTER_CURSOR}{node_index}:{position}" if more else None
        return sorted(found), next_cursor

    def _budgeted_page(
        self, keys: Sequence[bytes], next_cursor: str | None, preview_bytes: int | None,
        work: WorkBudget,
    ) -> BudgetedPage:
        """The entries of ``keys`` read through ``work``'s byte budget, a pipeline at a time.

        Redis reads the start of a value (``GETRANGE``): each string costs at most
        ``preview_bytes``, so a pipeline holds as many keys as the bytes left allow (at
        least one); once the budget is spent the rest of the page is ``Unread``. Charged
        per pipeline: one call, and the bytes of the values it returned (strings as
        stored; a collection's preview as its text).
        """
        if work.after is not None:  # examined by an earlier step of the walk
            keys = [key for key in keys if work.wanted(self._key_name(key))]
        entries: list[Any] = []
        unread: list[Unread] = []
        position = 0
        while position < len(keys):
            left = work.read_limit(first=not entries)
            if left is not None and left <= 0:
                unread.extend(Unread(self._key_name(k)) for k in keys[position:])
                break
            count = len(keys) - position
            if left is not None and preview_bytes:
                fits = left // preview_bytes
                if fits == 0 and work.bytes_read:  # one more value could pass the budget
                    unread.extend(Unread(self._key_name(k)) for k in keys[position:])
                    break
                count = max(1, min(count, fits))
            chunk = keys[position:position + count]
            position += count
            work.call()
            for entry in self._read_entries(chunk, preview_bytes=preview_bytes):  # type: ignore[attr-defined]
                if entry is None:
                    continue  # gone since SCAN listed it
                work.read(_bytes_of(entry, preview_bytes))
                entries.append(entry)
        return BudgetedPage(entries, next_cursor, source="scan", unread=unread,
                            bytes_read=work.bytes_read, byte_budget=work.bytes)

    @staticmethod
    def _key_name(key: bytes) -> str:
        return key.decode("utf-8", "surrogateescape")

    def _primaries(self) -> list[Any]:
        """Every primary of the cluster, ordered by the first slot it serves."""
        slots = self._cluster.nodes_manager.slots_cache
        ordered: dict[str, Any] = {}
        for slot in range(_SLOTS):
            nodes = slots.get(slot)
            if nodes:
                ordered.setdefault(nodes[0].name, nodes[0])
        if not ordered:
            raise errors.Unavailable(
                "the Redis Cluster reports no node serving any hash slot", store=self.name)
        return list(ordered.values())

    def _on_node(self, node: Any, call: Any, *, consequence: str = "") -> Any:
        """Run ``call(client)`` on one cluster node; a node that does not answer is named.

        A dropped connection is retried once; after a second failure the topology is
        refreshed, so a failover is seen next time.
        """
        client = self._cluster.get_redis_connection(node)
        try:
            try:
                return call(client)
            except (rx.AuthenticationError, rx.AuthorizationError, rx.BusyLoadingError):
                raise
            except rx.ConnectionError:
                # once more on a fresh connection: a restarted node leaves stale sockets
                return call(client)
        except (rx.AuthenticationError, rx.AuthorizationError, rx.BusyLoadingError):
            raise
        except (rx.ConnectionError, rx.TimeoutError) as exc:
            self._refresh_topology()  # type: ignore[attr-defined]
            what = ("did not answer within "
                    f"{self.timeout:g} s" if isinstance(exc, rx.TimeoutError)  # type: ignore[attr-defined]
                    else f"cannot be reached ({exc})")
            raise errors.Unavailable(
                f"Redis Cluster node {node.name} {what}"
                + (f"; {consequence}" if consequence else ""),
                store=self.name,
            ) from exc

    def _parse_standalone_cursor(self, cursor: str) -> int:
        position = (_digits(cursor[len(STANDALONE_CURSOR):])
                    if cursor.startswith(STANDALONE_CURSOR) else None)
        if position is None:
            raise self._bad_cursor(cursor)
        return position

    def _parse_cluster_cursor(self, cursor: str) -> tuple[int, int]:
        if cursor.startswith(CLUSTER_CURSOR):
            node_text, sep, position_text = cursor[len(CLUSTER_CURSOR):].partition(":")
            node_index, position = _digits(node_text), _digits(position_text)
            if sep and node_index is not None and position is not None:
                return node_index, position
        raise self._bad_cursor(cursor)

    def _bad_cursor(self, cursor: str) -> errors.InvalidRequest:
        return errors.InvalidRequest(
            f"invalid cursor {cursor!r}: pass back a next_cursor from this store",
            store=self.name,
        )


def _bytes_of(entry: Any, preview_bytes: int | None) -> int:
    """The bytes of a value a read returned: a preview's ``preview_bytes`` (GETRANGE's
    answer), a whole string's size, a collection preview's text."""
    if entry.value is not None:
        if entry.partial and preview_bytes:
            return min(entry.size, preview_bytes)
        return entry.size
    return len(repr(entry.content).encode("utf-8", "surrogateescape"))
