"""The Redis limiter and counter cache on a real three-master Redis Cluster
(the scale-out shape): keys are hash-tagged per user, so each user's keys sit
on one slot while different users spread over the masters; the limiter is
exact (also under concurrency) and the counter cache publishes, hits, fills
on a miss and never lets an older version overwrite a newer one."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from cache import redis_client
from cache.redis_cache import RedisCounterCache, counts_key
from cache.sql import SqlCounters
from ratelimit import InProcessLimiter, parse_windows
from ratelimit.redis import RedisLimiter, log_key
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade
from storage.types import Counts, VersionedCounts

from .support import RedisServer, new_user, require

pytestmark = pytest.mark.redis

MASTERS = 3


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too;
    Redis refuses cluster ports above 55535."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise AssertionError("no free port pair for a cluster node")


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["redis-cli", *args], check=False, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three cluster-enabled redis-server processes on loopback, joined into
    one cluster with no replicas; yields their ports; kills them all after."""
    require("redis-server and redis-cli", bool(shutil.which("redis-server") and shutil.which("redis-cli")))
    directory = tmp_path_factory.mktemp("cluster")
    nodes: list[RedisServer] = []
    try:
        for _ in range(MASTERS):
            node = RedisServer(directory)
            node.port = cluster_port()
            node.extra = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{node.port}.conf",
                "--cluster-node-timeout", "2000",
            )
            nodes.append(node.start())
        ports = [node.port for node in nodes]
        created = _cli("--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                       "--cluster-replicas", "0", "--cluster-yes")
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 30
        while True:
            states = [_cli("-h", "127.0.0.1", "-p", str(p), "cluster", "info", timeout=5).stdout for p in ports]
            if all("cluster_state:ok" in s for s in states):
                break
            assert time.monotonic() < deadline, f"cluster not ok within 30 s: {states}"
            time.sleep(0.2)
        yield ports
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def client(cluster):
    return redis_client.connect(f"redis+cluster://127.0.0.1:{cluster[0]}", timeout=1.0)


@pytest.fixture(scope="module")
def masters(cluster):
    """slot -> the port of the master that serves it, from CLUSTER SLOTS."""
    direct = redis.Redis(host="127.0.0.1", port=cluster[0], socket_timeout=5)
    owner = {}
    for start, end, master, *_replicas in direct.execute_command("CLUSTER SLOTS"):
        for slot in range(start, end + 1):
            owner[slot] = int(master[1])
    direct.close()
    assert len(owner) == 16384 and len(set(owner.values())) == MASTERS
    return owner


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('cluster-sql')}/graph.db", pool_size=8)
    upgrade(storage)
    yield storage
    storage.close()


def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_the_url_gives_a_cluster_client(client):
    from redis.cluster import RedisCluster

    assert isinstance(client, redis_client.LazyCluster)
    assert client.ping()
    assert isinstance(client._cluster(), RedisCluster)
    assert len(client.get_primaries()) == MASTERS


# -------------------------------------------------------------------- limiter


def test_limiter_admits_exactly_up_to_the_limit(client):
    limiter = RedisLimiter(client, parse_windows("5/1h,7/24h"), prefix=prefix())
    user = new_user()
    decisions = [limiter.acquire(user, f"t{i}") for i in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert all(d.retry_after > 0 for d in decisions[5:])


def test_limiter_is_exact_under_concurrency(client):
    limit, threads, attempts = 10, 8, 5
    limiter = RedisLimiter(client, parse_windows(f"{limit}/1h"), prefix=prefix())
    users = [new_user() for _ in range(6)]
    barrier = threading.Barrier(threads)

    def run(worker: int) -> dict[str, int]:
        barrier.wait()
        admitted = {u: 0 for u in users}
        for user in users:
            for i in range(attempts):
                if limiter.acquire(user, f"{worker}-{i}").allowed:
                    admitted[user] += 1
        return admitted

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, range(threads)))
    for user in users:
        assert sum(r[user] for r in results) == limit, user


def test_users_spread_over_masters_and_each_user_stays_on_one_slot(client, masters):
    p = prefix()
    limiter = RedisLimiter(client, parse_windows("3/1h"), prefix=p)
    users = [new_user() for _ in range(30)]
    for user in users:
        assert limiter.acquire(user, "a").allowed
    slots = {}
    for user in users:
        limiter_slot = client.keyslot(log_key(p, user))
        cache_slot = client.keyslot(counts_key(p, user))
        # One user's keys (limiter log and counters) share the slot of the tag.
        assert limiter_slot == cache_slot == client.keyslot(user)
        assert client.execute_command("CLUSTER KEYSLOT", log_key(p, user)) == limiter_slot
        slots[user] = limiter_slot
        # The log really lives on the master that owns the slot.
        node = redis.Redis(host="127.0.0.1", port=masters[limiter_slot], socket_timeout=5)
        assert node.zcard(log_key(p, user)) == 1
        node.close()
    assert len({masters[s] for s in slots.values()}) >= 2


def test_release_gives_the_slot_back(client):
    p = prefix()
    limiter = RedisLimiter(client, parse_windows("2/1h"), prefix=p)
    user = new_user()
    assert limiter.acquire(user, "one").allowed
    assert limiter.acquire(user, "two").allowed
    assert not limiter.acquire(user, "three").allowed
    limiter.release(user, "two")
    assert client.zcard(log_key(p, user)) == 1
    assert limiter.acquire(user, "three").allowed
    assert not limiter.acquire(user, "four").allowed
    limiter.release(user, "unknown")  # a no-op
    assert client.zcard(log_key(p, user)) == 2


# ---------------------------------------------------------------- counter cache


class CountingReader:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def get(self, user_ids):
        self.asked.extend(user_ids)
        return self.inner.get(user_ids)


@pytest.fixture
def world(client, storage):
    """A graph over SQLite whose counters come through a RedisCounterCache on the cluster."""
    p = prefix()
    reader = CountingReader(SqlCounters(storage))
    cache = RedisCounterCache(client, reader, ttl_seconds=120, prefix=p)
    storage.on_counters_committed(cache.publish)
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), counters=cache)
    yield graph, cache, reader, p
    storage._listeners.remove(cache.publish)


def sql_counts(storage, users) -> list[Counts]:
    found = storage.read_only(lambda tx: tx.counts(users))
    return [found[u].counts if u in found else Counts(u) for u in users]


def test_cache_publishes_after_writes_and_serves_hits(world, client, masters, storage):
    graph, cache, reader, p = world
    hub = new_user()
    users = [new_user() for _ in range(24)]
    for user in users:
        graph.follow(user, hub)
    # Every written user's counters were published to the cluster...
    for user in [hub, *users]:
        stored = client.hgetall(counts_key(p, user))
        assert stored, f"no cached counters for {user} after a committed write"
    assert int(client.hget(counts_key(p, hub), "followers")) == len(users)
    # ...spread over the masters...
    assert len({masters[client.keyslot(counts_key(p, u))] for u in users}) >= 2
    # ...and reads are hits: no SQL at all.
    reader.asked.clear()
    assert graph.get_counts([hub, *users]) == sql_counts(storage, [hub, *users])
    assert reader.asked == []
    assert cache._clock() >= cache._down_until, "the cache considers the cluster down"


def test_a_miss_fills_the_cache(world, client, storage):
    graph, _cache, reader, p = world
    a, b = new_user(), new_user()
    storage.read_write(lambda tx: (tx.lock_users([a, b]), tx.insert_follow(a, b, 1)))
    for user in (a, b):
        client.delete(counts_key(p, user))  # as after an expiry
    stranger = new_user()
    reader.asked.clear()
    assert graph.get_counts([a, b, stranger]) == [Counts(a, following=1), Counts(b, followers=1), Counts(stranger)]
    assert sorted(reader.asked) == sorted([a, b, stranger])
    for user in (a, b, stranger):
        assert client.hget(counts_key(p, user), "v") is not None, f"miss did not fill {user}"
    reader.asked.clear()
    assert graph.get_counts([a, b, stranger]) == [Counts(a, following=1), Counts(b, followers=1), Counts(stranger)]
    assert reader.asked == []


def test_an_older_version_cannot_overwrite_a_newer_one(world, client):
    _graph, cache, reader, p = world
    users = [new_user() for _ in range(12)]
    cache.publish({u: VersionedCounts(Counts(u, followers=5), 20) for u in users})
    cache.publish({u: VersionedCounts(Counts(u, followers=3), 10) for u in users})
    cache.publish({u: VersionedCounts(Counts(u, followers=4), 20) for u in users})
    for user in users:
        assert client.hget(counts_key(p, user), "v") == b"20"
        assert client.hget(counts_key(p, user), "followers") == b"5"
    reader.asked.clear()
    got = cache.get(users)
    assert reader.asked == []
    assert all(got[u] == VersionedCounts(Counts(u, followers=5), 20) for u in users)
    cache.publish({users[0]: VersionedCounts(Counts(users[0], followers=6), 21)})
    assert cache.get([users[0]])[users[0]].counts.followers == 6


# ------------------------------------------------------------ the whole wiring


def test_a_server_wired_to_the_cluster_answers_writes_and_counts(cluster, tmp_path):
    """make_graph with a redis+cluster:// URL, behind a real gRPC server:
    writes succeed (and are not reported as failures after committing), and
    GetCounts equals SQL."""
    import grpc

    from server.app import make_graph
    from server.settings import Settings

    from .support import serving

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/wired.db",
        redis_url=f"redis+cluster://127.0.0.1:{cluster[0]}",
        redis_timeout=1.0,
        rate_limits="1000/1h",
    )
    storage = open_storage(settings.database_url, pool_size=8)
    upgrade(storage)
    try:
        graph = make_graph(settings, storage)
        a, b, c = new_user(), new_user(), new_user()
        with serving(graph) as rpc:
            failures = []
            for call in (lambda: rpc.follow(a, b), lambda: rpc.send(c, a), lambda: rpc.accept(a, c),
                         lambda: rpc.block(b, c)):
                try:
                    call()
                except grpc.RpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")
            counts = None
            try:
                counts = rpc.counts(a, b, c)
            except grpc.RpcError as error:
                failures.append(f"GetCounts {error.code().name}: {error.details()}")
        expected = sql_counts(storage, [a, b, c])
        assert expected[0] == Counts(a, followers=1, following=2, connections=1)
        assert failures == [], failures
        assert [(x.user_id, x.followers, x.following, x.connections, x.incoming_requests,
                 x.outgoing_requests, x.blocked) for x in counts] == [
            (e.user_id, e.followers, e.following, e.connections, e.incoming_requests,
             e.outgoing_requests, e.blocked) for e in expected]
    finally:
        storage.close()


def test_a_cluster_down_at_first_use_falls_back(tmp_path):
    """LazyCluster exists so that a cluster down at start does not stop the
    server: the limiter must fall back in-process and the cache to SQL."""
    from ratelimit.failover import FailoverLimiter

    client = redis_client.connect(f"redis+cluster://127.0.0.1:{cluster_port()}", timeout=0.2)
    windows = parse_windows("2/1h")
    limiter = FailoverLimiter(RedisLimiter(client, windows), InProcessLimiter(windows), retry_after=0.2)
    user = new_user()
    assert [limiter.acquire(user, f"t{i}").allowed for i in range(3)] == [True, True, False]
    assert limiter.degraded

    storage = open_storage(f"sqlite:///{tmp_path}/down.db")
    upgrade(storage)
    try:
        cache = RedisCounterCache(client, SqlCounters(storage), prefix=prefix(), retry_after=0.2)
        storage.on_counters_committed(cache.publish)
        graph = Graph(storage, InProcessLimiter(windows), Policy(), counters=cache)
        a, b = new_user(), new_user()
        graph.follow(a, b)
        assert graph.get_counts([a, b]) == [Counts(a, following=1), Counts(b, followers=1)]
    finally:
        storage.close()
