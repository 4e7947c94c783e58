"""Key-change events: the bounded replay history and the live watchers (main only).

Upstream keeps the last ``watch_history_limit`` events in the KV store process and
sends each new one to every watcher whose prefix matches. Here the ``DevStore`` calls
``publish`` with its lock held, so a watcher registered under that same lock sees
every event after its replay exactly once, as upstream's single GenServer guarantees.
"""

from __future__ import annotations

import itertools
import queue
from collections import deque
from typing import Any


class HistoryUnavailable(Exception):
    """``since_revision`` is older than the retained history (HTTP 409)."""


class Watcher:
    """One open watch: events for ``prefix`` arrive on ``events`` (a thread-safe queue)."""

    _ids = itertools.count(1)

    def __init__(self, prefix: str) -> None:
        self.id = next(self._ids)
        self.prefix = prefix
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()


class WatchHub:
    """Event history and watchers; every method is called with the store lock held."""

    def __init__(self, history_limit: int) -> None:
        if history_limit < 0:
            raise ValueError("watch_history_limit must not be negative")
        self.history_limit = history_limit
        self.history: deque[dict[str, Any]] = deque(maxlen=history_limit)
        self.watchers: dict[int, Watcher] = {}

    def publish(self, event: dict[str, Any]) -> None:
        self.history.append(event)
        for watcher in self.watchers.values():
            if event["key"].startswith(watcher.prefix):
                watcher.events.put(event)

    def replay(self, prefix: str, since_revision: int | None, revision: int) -> list[dict[str, Any]]:
        """Events after ``since_revision`` for ``prefix``, by upstream's ``watch_replay`` rules.

        No ``since_revision``: nothing to replay. One in the future: nothing either.
        Otherwise the history must reach back to ``since_revision + 1``; note that
        lease/lock operations bump the revision without an event, so an empty history
        with a non-zero revision cannot replay from 0 (HistoryUnavailable).
        """
        if since_revision is None or since_revision > revision:
            return []
        oldest = self.history[0]["revision"] if self.history else revision + 1
        if since_revision < revision and since_revision < oldest - 1:
            raise HistoryUnavailable(since_revision)
        return [e for e in self.history if e["revision"] > since_revision and e["key"].startswith(prefix)]

    def subscribe(self, prefix: str) -> Watcher:
        watcher = Watcher(prefix)
        self.watchers[watcher.id] = watcher
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.pop(watcher.id, None)

    def clear(self) -> None:
        self.history.clear()
