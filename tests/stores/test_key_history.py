"""A key's retained change history from ToskaStore main's ``/kv/watch`` (``key_history``),
on the dev store: exact key only, newest first, as far back as the server keeps it."""

from __future__ import annotations

import pytest

from dashboard.devstore import DevStore, start_devstore
from dashboard.stores.errors import Unsupported
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.toskastore.provider import ToskaStoreProvider


@pytest.fixture
def history_of():
    opened = []

    def start(release: str = "main", limit: int | None = None):
        store = DevStore(watch_history_limit=limit) if limit is not None else None
        running = start_devstore(port=0, release=release, store=store)
        provider = ToskaStoreProvider(running.url)
        opened.append((running, provider))
        return provider

    yield start
    for running, provider in opened:
        provider.close()
        running.stop()


def test_only_the_key_newest_first(history_of):
    provider = history_of()
    provider.put("h:k", "1", ttl=NO_TTL)
    provider.put("h:kk", "other", ttl=NO_TTL)  # shares the prefix, not the key
    provider.put("h:k", "2", ttl=NO_TTL)
    provider.delete("h:k")
    events = provider.key_history("h:k")
    assert [(e.op, e.value) for e in events] == [("delete", None), ("put", "2"), ("put", "1")]
    assert provider.key_history("h:k", limit=1)[0].op == "delete"


def test_a_history_that_no_longer_reaches_the_start_is_read_from_where_it_begins(history_of):
    provider = history_of(limit=4)
    for n in range(10):
        provider.put("h:other", str(n), ttl=NO_TTL)
    provider.put("h:k", "a", ttl=NO_TTL)
    provider.put("h:k", "b", ttl=NO_TTL)
    assert [e.value for e in provider.key_history("h:k")] == ["b", "a"]


def test_a_release_without_a_change_feed_says_so(history_of):
    provider = history_of(release="0.9.1")
    with pytest.raises(Unsupported, match="no history"):
        provider.key_history("h:k")
