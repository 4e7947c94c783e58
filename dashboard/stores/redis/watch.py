"""Redis keyspace notifications as a change stream.

Redis publishes ``__keyspace@<db>__:<key>`` messages (the event name as payload) only when
``notify-keyspace-events`` asks for them: ``K`` (keyspace channel) plus the event classes
the live view maps, ``g`` (del, rename), ``$`` (string writes) and ``x`` (expired), or
``A`` (all classes). The dashboard may not be allowed to change that setting, so it only
reads it (``CONFIG GET``; a managed Redis or an ACL may refuse even that: then it says the
setting could not be checked).

A ``NotificationStream`` PSUBSCRIBEs ``__keyspace@<db>__:<glob-escaped prefix>*`` (on a
Redis Cluster, on every primary: notifications are local to the node that holds the key)
in threads of its own. Writes become ``put`` events with a bounded preview and PTTL read
just after the notification (so the value "now", which a later write may already have
replaced); deletes, renames away and evictions ``delete``; expiries ``expire``. TTL-only
changes (``expire``, ``persist``) are not shown. Redis has no revisions: events are
numbered per stream, and pub/sub keeps no history, so a dropped subscription means events
may have been missed (``HistoryGone``), never a silent gap.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.stores import errors
from dashboard.stores.changes import PREVIEW_CHARS, ChangeEvent, QueuedStream, bounded
from dashboard.stores.redis.listing import glob_escape
from dashboard.stores.redis.reads import key_text

if TYPE_CHECKING:
    from dashboard.stores.redis.provider import RedisProvider

#: how long a notification check is trusted (the setting can change at run time)
STATUS_SECONDS = 15.0
#: how often an idle reader looks whether its stream was closed
POLL_SECONDS = 0.25
_DELETES = {"del": "", "rename_from": "renamed away", "move_from": "moved to another database",
            "evicted": "evicted"}
_IGNORED = {"expire", "persist", "new", "keymiss"}
_STATUS_ATTR = "_watch_status_cache"
_LOCK = threading.Lock()


def _flags_ok(flags: str) -> str | None:
    """None when ``flags`` publish what the live view needs, else what is missing."""
    missing = []
    if "K" not in flags:
        missing.append("K (keyspace channel)")
    classes = "g$x" if "A" not in flags else ""
    missing += [f"{c} ({what})" for c, what in
                (("g", "deletes"), ("$", "string writes"), ("x", "expiries")) if c in classes
                and c not in flags]
    return ", ".join(missing) or None


def _node_clients(provider: RedisProvider) -> list[tuple[str, int, Any]]:
    """(host, port, client) of every server whose notifications count: the primaries."""
    provider._ensure_mode()
    cluster = provider._cluster
    if cluster is None:
        return [(provider.host, provider.port, provider._client)]
    return [(node.host, node.port, node.redis_connection or cluster.get_redis_connection(node))
            for node in cluster.get_primaries()]


def _check(provider: RedisProvider) -> str | None:
    """None when every node publishes keyspace notifications the live view can use."""
    how = ("enable them with CONFIG SET notify-keyspace-events KEA (or K with g$x), in "
           "redis.conf, or in the managed service's parameter group")
    try:
        nodes = _node_clients(provider)
    except (rx.RedisError, errors.ProviderError) as exc:
        return f"keyspace notifications could not be checked: the store did not answer ({exc})"
    for host, port, client in nodes:
        endpoint = f"{host}:{port}"
        try:
            answer = client.config_get("notify-keyspace-events")
        except (rx.ConnectionError, rx.TimeoutError) as exc:
            return (f"keyspace notifications could not be checked: {endpoint} did not answer "
                    f"({exc})")
        except rx.RedisError as exc:
            return (f"keyspace notifications could not be checked: CONFIG GET "
                    f"notify-keyspace-events was refused by {endpoint} ({exc}); a managed Redis "
                    "or an ACL may forbid it. " + how)
        raw = answer.get(b"notify-keyspace-events", answer.get("notify-keyspace-events"))
        if raw is None:
            return (f"keyspace notifications could not be checked: {endpoint} did not report "
                    "notify-keyspace-events")
        flags = raw.decode() if isinstance(raw, bytes) else str(raw)
        missing = _flags_ok(flags)
        if missing is not None:
            shown = f'"{flags}"' if flags else "empty (off)"
            return (f"keyspace notifications are off or incomplete on {endpoint}: "
                    f"notify-keyspace-events is {shown}, missing {missing}; " + how)
    return None


def unavailable_reason(provider: RedisProvider) -> str | None:
    """Why this Redis cannot stream changes (asked at most every ``STATUS_SECONDS``)."""
    cached = getattr(provider, _STATUS_ATTR, None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < STATUS_SECONDS:
        return cached[1]
    with _LOCK:
        cached = getattr(provider, _STATUS_ATTR, None)
        if cached is not None and now - cached[0] < STATUS_SECONDS:
            return cached[1]
        reason = _check(provider)
        setattr(provider, _STATUS_ATTR, (time.monotonic(), reason))
        return reason


class NotificationStream(QueuedStream):
    """Keyspace notifications under one prefix, numbered in arrival order."""

    def __init__(self, provider: RedisProvider, prefix: str) -> None:
        super().__init__(0)
        self._provider = provider
        self._name = provider.name
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        raw_prefix = provider._encode_key(prefix)
        self._channel_prefix = f"__keyspace@{provider.db}__:".encode()
        pattern = self._channel_prefix + glob_escape(raw_prefix) + b"*"
        self._pubsubs: list[Any] = []
        try:
            for host, port, _client in _node_clients(provider):
                # a connection of its own per node: a subscribed connection does nothing else
                # and no silent reconnect: a new subscription would hide the gap
                own = redis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0),
                                  **{**provider._connect_kwargs, "socket_timeout": None})
                self._pubsubs.append((f"{host}:{port}", own, own.pubsub(
                    ignore_subscribe_messages=True)))
                self._pubsubs[-1][2].psubscribe(pattern)
        except rx.RedisError as exc:
            self._release()
            raise errors.Unavailable(f"could not subscribe to keyspace notifications: {exc}",
                                     store=self._name) from exc
        self._threads = [threading.Thread(target=self._run, args=item, daemon=True,
                                          name=f"redis-watch {item[0]}")
                         for item in self._pubsubs]
        for thread in self._threads:
            thread.start()

    def _release(self) -> None:
        for _endpoint, own, pubsub in self._pubsubs:
            with contextlib.suppress(rx.RedisError):
                pubsub.close()
            with contextlib.suppress(rx.RedisError):
                own.close()

    def close(self) -> None:
        """Stop the readers (each notices within ``POLL_SECONDS``); they unsubscribe."""
        super().close()

    def _run(self, endpoint: str, own: Any, pubsub: Any) -> None:
        try:
            while not self.closed:
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None or self.closed:
                    continue
                if message.get("type") != "pmessage":
                    continue
                self._dispatch(message.get("channel"), message.get("data"))
        except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
            if not self.closed:
                self._emit(errors.HistoryGone(
                    f"the keyspace notification connection to {endpoint} dropped ({exc}): "
                    "Redis keeps no history, so events may have been missed", store=self._name))
        except Exception as exc:  # noqa: BLE001 - a reader thread must report, never die silently
            if not self.closed:
                self._emit(errors.BadResponse(f"keyspace notifications: {exc!r}",
                                              store=self._name))
        finally:
            for closing in (pubsub, own):
                # closing after a failure is best effort
                with contextlib.suppress(Exception):
                    closing.close()

    def _dispatch(self, channel: Any, data: Any) -> None:
        if not isinstance(channel, bytes) or not channel.startswith(self._channel_prefix):
            return
        name = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
        if name in _IGNORED:
            return
        key = key_text(channel[len(self._channel_prefix):])
        now = int(time.time() * 1000)
        if name == "expired":
            self._emit_event("expire", key, now)
        elif name in _DELETES:
            self._emit_event("delete", key, now, note=_DELETES[name])
        else:
            self._emit_put(key, now, note="" if name in ("set", "rename_to") else name)

    def _emit_put(self, key: str, now: int, note: str) -> None:
        fields: dict[str, Any] = {}
        try:
            entry = self._provider.get(key, max_bytes=PREVIEW_CHARS)
        except errors.ProviderError:
            entry = None  # gone again, or unreadable: the event still says it was written
        if entry is not None:
            value, size = bounded(entry.value)
            fields = {"value": value, "value_size": entry.size if entry.value is not None else size,
                      "ttl_ms": entry.ttl_ms, "ttl_known": entry.ttl_known,
                      "expires_at_ms": entry.expires_at_ms, "type": entry.type}
        self._emit_event("put", key, now, note=note, **fields)

    def _emit_event(self, op: str, key: str, now: int, **fields: Any) -> None:
        with self._sequence_lock:  # one number per event, in the order they are queued
            self._sequence += 1
            self._emit(ChangeEvent(op=op, key=key, revision=self._sequence, timestamp_ms=now,
                                   **fields))


def watch(provider: RedisProvider, prefix: str) -> NotificationStream:
    """Subscribe to ``prefix``'s notifications; see ``RedisProvider.watch``."""
    return NotificationStream(provider, prefix)
