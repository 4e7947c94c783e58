"""RedisProvider against a real 3-primary Redis Cluster started on free loopback ports.

The bug this guards: a connection string naming the nodes of a cluster used to SCAN one
node and silently list a third of the keys.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from dashboard.settings.model import Settings
from dashboard.settings.redis_connection import parse_redis_connection_string
from dashboard.stores import errors, make_provider
from dashboard.stores.mutations import NO_TTL
from dashboard.stores.redis.provider import RedisProvider
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers() as running:
        yield running


@pytest.fixture
def raw(cluster: RedisClusterServers) -> Iterator[RedisCluster]:
    """A redis-py cluster client to arrange data behind the provider's back."""
    cluster.flushall()
    with cluster.client() as client:
        yield client


@pytest.fixture
def provider(cluster: RedisClusterServers, raw: RedisCluster) -> Iterator[RedisProvider]:
    """Built from a StackExchange connection string naming every node, as operators do."""
    settings = Settings(redis=parse_redis_connection_string(cluster.connection_string))
    p = make_provider(settings)
    assert isinstance(p, RedisProvider)
    yield p
    p.close()


def keys_by_node(cluster: RedisClusterServers, count: int, template: str) -> dict[int, list[str]]:
    """``count`` keys from ``template`` grouped by the port of the primary serving them."""
    out: dict[int, list[str]] = {port: [] for port in cluster.ports}
    with cluster.node_client(cluster.ports[0]) as client:
        slots = {start: (end, port) for start, end, port in _ranges(client)}
        for i in range(count):
            key = template.format(i)
            slot = client.execute_command("CLUSTER KEYSLOT", key)
            port = next(p for s, (e, p) in slots.items() if s <= slot <= e)
            out[port].append(key)
    return out


def _ranges(client):
    return [(int(r[0]), int(r[1]), int(r[2][1])) for r in client.execute_command("CLUSTER SLOTS")]


def one_key_per_node(cluster: RedisClusterServers, template: str) -> list[str]:
    by_node = keys_by_node(cluster, 60, template)
    assert all(by_node.values()), "60 keys always reach all three primaries"
    return [keys[0] for keys in by_node.values()]


def wait_for_cluster_state(cluster: RedisClusterServers, port: int, state: str) -> None:
    """Wait (generously: failure detection takes a few node timeouts) for ``state``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with cluster.node_client(port) as node:
            if node.cluster("info").get("cluster_state") == state:
                return
        time.sleep(0.1)
    raise AssertionError(f"node {port} never reported cluster_state:{state}")


def node_sizes(cluster: RedisClusterServers) -> list[int]:
    sizes = []
    for port in cluster.ports:
        with cluster.node_client(port) as client:
            sizes.append(client.dbsize())
    return sizes


# -- detection and identity -------------------------------------------------------------


def test_cluster_is_detected_and_info_names_every_node(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    raw.set("a", "1")
    raw.set("b", "2", px=600_000)
    info = provider.info()
    assert provider.cluster_mode is True
    assert info.healthy and info.kind == "redis" and info.name == provider.name
    assert provider.name == "Redis Cluster " + ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    assert info.stats["mode"] == "cluster" and info.stats["cluster_state"] == "ok"
    assert info.stats["primaries"] == 3 and info.stats["db"] == 0
    assert info.stats["dbsize"] == 2 and info.stats["keys_with_expiry"] == 1
    for port in cluster.ports:
        assert any(node.startswith(f"127.0.0.1:{port} primary, slots ") for node in info.stats["nodes"])
    assert "cluster" in info.generation
    # capabilities keep the standalone shape: views need not know it is a cluster
    caps = provider.capabilities()
    assert (caps.listing, caps.ordered, caps.atomic_cas, caps.non_string_types) == (
        "scan", False, True, True)


def test_name_never_shows_the_password(cluster: RedisClusterServers) -> None:
    settings = parse_redis_connection_string(cluster.connection_string + ",password=s3cret-pw")
    p = make_provider(Settings(redis=settings))
    try:
        assert "s3cret" not in p.name
        assert all(f"127.0.0.1:{port}" in p.name for port in cluster.ports)
    finally:
        p.close()


def test_a_database_other_than_0_is_a_clear_configuration_error(
    cluster: RedisClusterServers,
) -> None:
    settings = parse_redis_connection_string(cluster.connection_string + ",defaultDatabase=2")
    p = make_provider(Settings(redis=settings))
    try:
        with pytest.raises(errors.Unsupported) as info:
            p.list_keys("")
        message = str(info.value)
        assert "Redis Cluster" in message and "database 0" in message
        assert "defaultDatabase" in message
    finally:
        p.close()


def test_one_named_node_or_a_dead_first_endpoint_still_finds_the_whole_cluster(
    cluster: RedisClusterServers, raw: RedisCluster,
) -> None:
    raw.mset_nonatomic({key: "v" for key in one_key_per_node(cluster, "spread:{}")})
    for connection_string in (
        f"127.0.0.1:{cluster.ports[1]}",
        f"127.0.0.1:{free_port()}," + cluster.connection_string,
    ):
        p = make_provider(Settings(redis=parse_redis_connection_string(connection_string)))
        try:
            assert len(p.list_keys("spread:", limit=100).keys) == 3
            assert p.cluster_mode is True
        finally:
            p.close()


# -- listing: every primary ---------------------------------------------------------------


def test_3000_keys_over_all_primaries_are_all_listed(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    expected = {f"bulk:item:{i:05d}" for i in range(3000)}
    pipe = raw.pipeline(transaction=False)
    for key in expected:
        pipe.set(key, "v")
    pipe.execute()
    sizes = node_sizes(cluster)
    # the bug: any one node holds only part of the keys
    assert sum(sizes) == 3000 and all(0 < size < 2000 for size in sizes)

    page = provider.list_keys("bulk:", limit=5000)
    assert page.next_cursor is None
    assert page.keys == sorted(expected)
    assert set(provider.iter_keys("bulk:")) == expected
    assert provider.count_keys("bulk:", cap=5000) == (3000, True)
    assert provider.count_keys("bulk:", cap=1000) == (1000, False)
    entries = provider.scan("bulk:", limit=5000).entries
    assert len(entries) == 3000 and all(e.value == "v" for e in entries)


def test_pagination_across_nodes_loses_and_repeats_nothing(
    cluster: RedisClusterServers, raw: RedisCluster,
) -> None:
    expected = {f"pg:{i:05d}" for i in range(1500)}
    raw.mset_nonatomic({key: "v" for key in expected})
    raw.mset_nonatomic({f"other:{i}": "v" for i in range(300)})
    p = RedisProvider(endpoints=cluster.endpoints, scan_count=40)
    try:
        listed: list[str] = []
        nodes_seen: set[int] = set()
        cursor = None
        for _ in range(500):
            page = p.list_keys("pg:", cursor=cursor, limit=100)
            assert page.keys == sorted(set(page.keys))
            listed.extend(page.keys)
            cursor = page.next_cursor
            if cursor is None:
                break
            assert cursor.startswith("c:")
            nodes_seen.add(int(cursor.split(":")[1]))
            assert len(page.keys) >= 100, "a page that is not the last holds at least limit keys"
        assert cursor is None
        assert nodes_seen == {0, 1, 2}, "the one cursor walked every primary"
        assert len(listed) == len(set(listed)) == 1500
        assert set(listed) == expected
    finally:
        p.close()


@pytest.mark.parametrize("cursor", ["s:5", "c:", "c:1", "c:x:0", "c:0:-1", "c:1:2:3", "bogus"])
def test_invalid_cluster_cursor_is_invalid_request(provider: RedisProvider, cursor: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        provider.list_keys("x:", cursor=cursor)
    assert provider.name in str(info.value)


def test_cursor_naming_a_primary_that_is_gone_says_start_again(provider: RedisProvider) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        provider.list_keys("x:", cursor="c:3:0")
    assert "start the listing again" in str(info.value)


def test_discovery_sees_prefixes_living_on_one_node_only(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    # a hash tag pins every key of a service to one slot, so each service is on one node
    services: dict[int, str] = {}
    for i in range(200):
        tag = f"t{i}"
        port = keys_by_node(cluster, 1, "{{" + tag + "}}")
        owner = next(p for p, keys in port.items() if keys)
        services.setdefault(owner, tag)
        if len(services) == 3:
            break
    assert len(services) == 3
    for tag in services.values():
        raw.mset_nonatomic({f"svc{tag}:{{{tag}}}k{i}": "v" for i in range(5)})
    listing = provider.list_segments("")
    assert listing.folders == sorted(f"svc{tag}:" for tag in services.values())
    assert listing.complete
    for port, tag in services.items():
        with cluster.node_client(port) as node:
            assert node.dbsize() == 5, "the service lives on that node alone"
        assert provider.count_keys(f"svc{tag}:") == (5, True)


# -- reads grouped by node ------------------------------------------------------------------


def test_mget_of_keys_on_different_nodes_keeps_input_order(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    by_node = keys_by_node(cluster, 600, "m:{}")
    present = [key for keys in by_node.values() for key in keys[:150]]
    raw.mset_nonatomic({key: f"v-{key}" for key in present})
    raw.set("m:ttl", "t", px=600_000)
    raw.hset("m:hash", "f", "v")
    asked = present + [f"missing:{i}" for i in range(100)] + ["m:ttl", "m:hash"]
    random.Random(3).shuffle(asked)
    asked += asked[:50]
    p = RedisProvider(endpoints=cluster.endpoints, mget_batch=97)
    try:
        result = p.mget(asked)
    finally:
        p.close()
    assert list(result) == list(dict.fromkeys(asked))
    assert all(result[key].value == f"v-{key}" for key in present)
    assert all(result[f"missing:{i}"] is None for i in range(100))
    assert 0 < result["m:ttl"].ttl_ms <= 600_000
    assert result["m:hash"].type == "hash" and result["m:hash"].content == {"f": "v"}


def test_non_string_types_on_every_node_are_read(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    keys = keys_by_node(cluster, 60, "c:{}")
    spread = [k for node_keys in keys.values() for k in node_keys[:2]]
    kinds = ["hash", "list", "set", "zset", "stream", "string"]
    made: dict[str, tuple[str, object, int | None]] = {}
    for key, kind in zip(spread, kinds, strict=True):
        if kind == "hash":
            raw.hset(key, mapping={"b": "2", "a": "1"})
            made[key] = (kind, {"a": "1", "b": "2"}, 2)
        elif kind == "list":
            raw.rpush(key, "x", "y")
            made[key] = (kind, ["x", "y"], 2)
        elif kind == "set":
            raw.sadd(key, "pear", "apple")
            made[key] = (kind, ["apple", "pear"], 2)
        elif kind == "zset":
            raw.zadd(key, {"low": 1, "high": 10.5})
            made[key] = (kind, [["low", 1.0], ["high", 10.5]], 2)
        elif kind == "stream":
            raw.xadd(key, {"event": "start"}, id="1-0")
            made[key] = (kind, [["1-0", {"event": "start"}]], 1)
        else:
            raw.set(key, "plain")
            made[key] = (kind, None, None)
    by_scan = {e.key: e for e in provider.scan("c:", limit=100).entries}
    by_preview = {e.key: e for e in provider.scan("c:", limit=100, preview_bytes=3).entries}
    by_mget = provider.mget(list(made))
    for key, (kind, content, length) in made.items():
        for entry in (provider.get(key), by_scan[key], by_preview[key], by_mget[key]):
            assert (entry.type, entry.content, entry.length) == (kind, content, length)
    assert by_mget[spread[-1]].value == "plain"
    # the string's bounded preview (STRLEN + GETRANGE, no TYPE) keeps its exact size
    assert (by_preview[spread[-1]].value, by_preview[spread[-1]].size) == ("pla", 5)
    hash_key = spread[0]
    with pytest.raises(errors.InvalidRequest):
        provider.put(hash_key, "text", expected=provider.get(hash_key).token)
    assert provider.delete(hash_key, expected=provider.get(hash_key).token) is True
    assert raw.exists(hash_key) == 0


# -- compare-and-set per key ----------------------------------------------------------------


def test_compare_and_set_conflicts_per_key_on_each_node(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    keys = one_key_per_node(cluster, "cas:{}")
    for key in keys:
        raw.set(key, "seen")
    seen = {key: provider.get(key) for key in keys}
    changed, untouched, deleted = keys
    raw.set(changed, "theirs")
    with pytest.raises(errors.Conflict) as info:
        provider.put(changed, "mine", expected=seen[changed].token)
    assert info.value.current.value == "theirs" and raw.get(changed) == b"theirs"
    # a conflict on one key says nothing about another key on another node
    written = provider.put(untouched, "mine", expected=seen[untouched].token, ttl=NO_TTL)
    assert written.value == "mine" and raw.get(untouched) == b"mine"
    raw.set(deleted, "theirs")
    with pytest.raises(errors.Conflict):
        provider.delete(deleted, expected=seen[deleted].token)
    assert raw.get(deleted) == b"theirs"
    assert provider.delete(deleted, expected=provider.get(deleted).token) is True
    with pytest.raises(errors.Conflict):
        provider.put(untouched, "again", create_only=True)


def test_change_between_read_and_exec_aborts_the_write(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WATCH runs on the key's own primary: a write there after our read aborts EXEC."""
    for key in one_key_per_node(cluster, "race:{}"):
        raw.set(key, "seen")
        seen = provider.get(key)
        real_read = RedisProvider._read_one
        calls: list[object] = []

        def read_then_interfere(self, raw_key, key=key, calls=calls, real_read=real_read):
            entry = real_read(self, raw_key)
            if not calls:
                raw.set(key, "theirs")  # after our read, before our EXEC
            calls.append(entry)
            return entry

        monkeypatch.setattr(RedisProvider, "_read_one", read_then_interfere)
        with pytest.raises(errors.Conflict) as info:
            provider.put(key, "mine", expected=seen.token)
        monkeypatch.undo()
        assert raw.get(key) == b"theirs"
        assert info.value.current.value == "theirs"
        assert len(calls) == 2, "the aborted EXEC was followed by a fresh compare"


def test_a_slot_moved_to_another_node_is_followed(
    cluster: RedisClusterServers, provider: RedisProvider, raw: RedisCluster,
) -> None:
    key = "moving:key"
    raw.set(key, "seen")
    seen = provider.get(key)  # the provider now caches the slot map
    source = cluster.node_for_key(key)
    target = next(port for port in cluster.ports if port != source)
    cluster.move_slot_of(key, target)
    assert cluster.node_for_key(key) == target
    written = provider.put(key, "mine", expected=seen.token)
    assert written.value == "mine" and raw.get(key) == b"mine"
    assert provider.list_keys("moving:").keys == [key]
    assert provider.mget([key])[key].value == "mine"


# -- a node down --------------------------------------------------------------------------


def test_a_killed_node_is_unavailable_never_a_partial_listing() -> None:
    with RedisClusterServers(node_timeout_ms=2000) as doomed, doomed.client() as raw:
        keys = keys_by_node(doomed, 300, "k:{}")
        raw.mset_nonatomic({key: "v" for node_keys in keys.values() for key in node_keys})
        p = RedisProvider(endpoints=doomed.endpoints, timeout=2.0)
        try:
            assert len(p.list_keys("k:", limit=1000).keys) == 300
            victim = doomed.ports[1]
            on_victim = keys[victim][0]
            doomed.kill_node(victim)
            calls = {
                "list_keys": lambda: p.list_keys("k:", limit=1000),
                "scan": lambda: p.scan("k:", limit=1000),
                "count_keys": lambda: p.count_keys("k:", cap=5000),
                "list_segments": lambda: p.list_segments(""),
                "mget": lambda: p.mget([k for node_keys in keys.values() for k in node_keys]),
                "get": lambda: p.get(on_victim),
                "put": lambda: p.put(on_victim, "w"),
                "info": p.info,
            }
            for name, call in calls.items():
                with pytest.raises(errors.Unavailable) as info:
                    call()
                assert p.name in str(info.value), name
                # the node is named beyond the store's name (which lists every node)
                assert (f"127.0.0.1:{victim}" in info.value.message
                        or "CLUSTERDOWN" in info.value.message), (name, info.value.message)
            # a walk page by page ends in the error when it reaches that node, never
            # in a short listing that looks complete
            walked: list[str] = []
            with pytest.raises(errors.Unavailable) as info:
                walked.extend(p.iter_keys("k:", page_size=10))
            assert "no partial listing" in info.value.message
            assert len(walked) < 300

            # once the others mark the node failed, the cluster answers CLUSTERDOWN even
            # for keys on live nodes: that too is Unavailable, saying the cluster is down
            survivor = doomed.ports[0]
            wait_for_cluster_state(doomed, survivor, "fail")
            with pytest.raises(errors.Unavailable) as info:
                p.get(keys[survivor][0])
            assert "Redis Cluster is down" in info.value.message
            with pytest.raises(errors.Unavailable) as info:
                p.info()
            assert "cluster_state:fail" in info.value.message
        finally:
            p.close()


def test_a_user_denied_info_is_detected_through_cluster_info(
    cluster: RedisClusterServers, raw: RedisCluster,
) -> None:
    for port in cluster.ports:
        with cluster.node_client(port) as node:
            node.execute_command("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info")
    try:
        raw.mset_nonatomic({key: "v" for key in one_key_per_node(cluster, "acl:{}")})
        p = RedisProvider(endpoints=cluster.endpoints, username="noinfo", password="pw")
        try:
            assert len(p.list_keys("acl:").keys) == 3
            assert p.cluster_mode is True
        finally:
            p.close()
    finally:
        for port in cluster.ports:
            with cluster.node_client(port) as node:
                node.execute_command("ACL", "DELUSER", "noinfo")
