"""Redis going away and coming back: the service keeps answering (limiter
in-process, counters from SQL), no acknowledged write is lost, and once
writes stop the cached counters equal the stored ones (I4, I6).

Each test runs its own redis-server on a free loopback port, so stopping it
disturbs nobody else."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import grpc
import pytest
import redis

from cache import redis_client
from cache.redis_cache import RedisCounterCache, counts_key
from cache.sql import SqlCounters
from ratelimit import parse_windows
from ratelimit.failover import FailoverLimiter
from ratelimit.redis import RedisLimiter, log_key
from server.app import make_graph
from server.rules import ConnectionState, Graph, Policy
from server.settings import Settings
from socialgraph.v1 import social_graph_pb2 as pb
from storage import open_storage
from storage.limiter import SqlLimiter
from storage.migrate import upgrade
from storage.types import Counts

from .support import Client, RedisServer, free_port, new_user, require, running_server

pytestmark = pytest.mark.redis

COUNTER_FIELDS = ("followers", "following", "connections", "incoming_requests", "outgoing_requests", "blocked")


def redis_installed() -> bool:
    import shutil

    return shutil.which("redis-server") is not None


@pytest.fixture
def private_redis(tmp_path):
    require("redis-server", redis_installed())
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ----------------------------------------------------------------- the model


@dataclass
class Model:
    """What the acknowledged writes imply (auto-follow on, no C3 crossings,
    no connection limit reached)."""

    follows: set = field(default_factory=set)  # (follower, followee)
    pending: set = field(default_factory=set)  # (requester, recipient)
    connections: set = field(default_factory=set)  # frozenset({a, b})
    blocks: set = field(default_factory=set)  # (blocker, blocked)

    def blocked_either_way(self, a, b) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def counts(self, user: str) -> tuple:
        return (
            sum(1 for _, b in self.follows if b == user),
            sum(1 for a, _ in self.follows if a == user),
            sum(1 for pair in self.connections if user in pair),
            sum(1 for _, b in self.pending if b == user),
            sum(1 for a, _ in self.pending if a == user),
            sum(1 for a, _ in self.blocks if a == user),
        )

    def relationship(self, user: str, other: str) -> tuple:
        return (
            (user, other) in self.follows,
            (other, user) in self.follows,
            frozenset((user, other)) in self.connections,
            (user, other) in self.pending,
            (other, user) in self.pending,
            (user, other) in self.blocks,
            (other, user) in self.blocks,
        )


def as_tuple(counts) -> tuple:
    return tuple(getattr(counts, name) for name in COUNTER_FIELDS)


def rel_tuple(rel) -> tuple:
    return (rel.following, rel.followed_by, rel.connected, rel.outgoing_request_pending,
            rel.incoming_request_pending, rel.blocking, rel.blocked_by)


class Driver:
    """Issues RPCs, insists each one answers as the rules say, and records
    every acknowledged write in the model."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.model = Model()
        self.rpcs = 0

    def _call(self, what, fn, *args):
        self.rpcs += 1
        try:
            return fn(*args)
        except grpc.RpcError as error:
            raise AssertionError(f"{what} failed: {error.code().name}: {error.details()}") from None

    def follow(self, a, b):
        response = self._call(f"Follow {a}->{b}", lambda: self.client.follow(a, b))
        assert response.created == ((a, b) not in self.model.follows)
        self.model.follows.add((a, b))

    def send(self, a, b):
        assert (b, a) not in self.model.pending, "the scenario avoids C3 crossings"
        response = self._call(f"SendConnectionRequest {a}->{b}", lambda: self.client.send(a, b))
        assert response.state == pb.CONNECTION_STATE_PENDING
        assert response.created
        self.model.pending.add((a, b))
        self.model.follows.add((a, b))

    def accept(self, b, a):
        self._call(f"AcceptConnectionRequest {a}->{b}", lambda: self.client.accept(b, a))
        self.model.pending.discard((a, b))
        self.model.connections.add(frozenset((a, b)))
        self.model.follows.add((b, a))

    def block(self, a, b):
        response = self._call(f"Block {a}->{b}", lambda: self.client.block(a, b))
        m = self.model
        removed_follows = {(a, b), (b, a)} & m.follows
        removed_requests = {(a, b), (b, a)} & m.pending
        assert response.removed_follows == len(removed_follows)
        assert response.removed_requests == len(removed_requests)
        assert response.removed_connections == (1 if frozenset((a, b)) in m.connections else 0)
        m.follows -= removed_follows
        m.pending -= removed_requests
        m.connections.discard(frozenset((a, b)))
        m.blocks.add((a, b))

    def check_counts(self, users):
        users = list(users)
        for i in range(0, len(users), 100):
            chunk = users[i : i + 100]
            got = self._call("GetCounts", self.client.counts, *chunk)
            assert [c.user_id for c in got] == chunk
            for user, counts in zip(chunk, got, strict=True):
                assert as_tuple(counts) == self.model.counts(user), f"counts of {user}"

    def check_relationships(self, users):
        users = list(users)
        for user in users:
            others = [u for u in users if u != user]
            for i in range(0, len(others), 100):
                chunk = others[i : i + 100]
                got = self._call(
                    "BatchGetRelationships",
                    self.client.graph.BatchGetRelationships,
                    pb.BatchGetRelationshipsRequest(user_id=user, other_user_ids=chunk),
                ).relationships
                for other, rel in zip(chunk, got, strict=False):
                    assert rel.other_user_id == other
                    assert rel_tuple(rel) == self.model.relationship(user, other), (user, other)

    def check_acknowledged(self):
        """Every acknowledged edge still there, one GetRelationship each."""
        m = self.model
        for a, b in sorted(m.follows):
            assert self._call("GetRelationship", self.client.relationship, a, b).following, (a, b)
        for pair in m.connections:
            a, b = sorted(pair)
            assert self._call("GetRelationship", self.client.relationship, a, b).connected, (a, b)
        for a, b in sorted(m.blocks):
            assert self._call("GetRelationship", self.client.relationship, a, b).blocking, (a, b)


def phase(driver: Driver, hub: str, users: list[str], on_the_way=None) -> None:
    """One round of follows, requests, accepts and blocks between ``hub`` and
    fresh ``users`` (and among them), with GetCounts checks on the way.
    ``on_the_way`` runs once, in the middle of the round."""
    a = users
    for u in a[:4]:
        driver.follow(u, hub)
    driver.follow(hub, a[0])
    driver.follow(a[0], hub)  # a repeat: created=false
    driver.check_counts([hub, *a])
    for u in a[4:8]:
        driver.send(u, hub)
    driver.send(hub, a[8])
    driver.check_counts([hub, *a])
    if on_the_way is not None:
        on_the_way()
    driver.accept(hub, a[4])
    driver.accept(hub, a[5])
    driver.accept(a[8], hub)
    driver.send(a[1], a[2])
    driver.follow(a[3], a[2])
    driver.check_counts([hub, *a])
    driver.block(hub, a[5])  # a connection, two follows
    driver.block(hub, a[6])  # a pending request and a follow
    driver.block(a[2], a[1])  # a pending request and a follow
    driver.block(a[9], a[0])  # nothing to remove
    driver.check_counts([hub, *a])


def test_the_server_rides_out_a_redis_outage(tmp_path):
    require("redis-server", redis_installed())
    database = f"sqlite:///{tmp_path}/g.db"
    redis_server = RedisServer(tmp_path).start()
    try:
        args = ("--database-url", database, "--redis-url", redis_server.url, "--rate-limits", "1000/1h")
        with running_server(*args) as (address, process):
            with grpc.insecure_channel(address) as channel:
                driver = Driver(Client(channel))
                hub = new_user()
                everyone = [hub]

                # Before: Redis serves the limiter and the counters.
                users = [new_user() for _ in range(10)]
                everyone += users
                phase(driver, hub, users)
                direct = redis.Redis(port=redis_server.port, socket_timeout=2)
                assert direct.exists(log_key("sg", users[4])), "the limiter did not use Redis"
                assert direct.exists(counts_key("sg", hub)), "the counters were not cached in Redis"
                direct.close()

                # During: Redis dies in the middle of a round.
                users = [new_user() for _ in range(10)]
                everyone += users
                phase(driver, hub, users, on_the_way=redis_server.stop)
                driver.check_counts(everyone)
                # still down, more than a retry pause later: still answering
                time.sleep(1.2)
                users = [new_user() for _ in range(10)]
                everyone += users
                phase(driver, hub, users)
                driver.check_counts(everyone)

                # After: Redis is back, empty, on the same port.
                redis_server.start()
                users = [new_user() for _ in range(10)]
                everyone += users
                phase(driver, hub, users)
                driver.check_counts(everyone)
                time.sleep(1.2)  # past the limiter's and the cache's retry pause
                users = [new_user() for _ in range(10)]
                everyone += users
                phase(driver, hub, users)

                # Writes have stopped: everything acknowledged is there, and the
                # counts (cached again) equal what the writes imply.
                driver.check_acknowledged()
                driver.check_counts(everyone)
                driver.check_counts(everyone)
                driver.check_relationships(everyone[:12])
                direct = redis.Redis(port=redis_server.port, socket_timeout=2)
                assert direct.exists(log_key("sg", users[4])), "the limiter did not go back to Redis"
                assert direct.exists(counts_key("sg", users[4])), "the counters are not cached in Redis again"
                assert as_tuple_from_hash(direct.hgetall(counts_key("sg", hub))) == driver.model.counts(hub)
                direct.close()
                assert driver.rpcs < 600
            assert process.poll() is None, "the server died during the outage"
        recount = subprocess.run(
            [sys.executable, "-m", "server.cli", "recount", "--database-url", database],
            check=False, capture_output=True, text=True, timeout=60,
        )
        assert recount.returncode == 0, recount.stdout + recount.stderr
        assert "recount: 0 counter(s) fixed" in recount.stdout, recount.stdout
        # The stored counters recount agreed with are the ones GetCounts served.
        storage = open_storage(database)
        try:
            for counts in sql_counts(storage, everyone):
                assert as_tuple(counts) == driver.model.counts(counts.user_id), counts
        finally:
            storage.close()
    finally:
        redis_server.stop()


def as_tuple_from_hash(stored: dict) -> tuple:
    return tuple(int(stored[name.encode()]) for name in COUNTER_FIELDS)


# ------------------------------------------------------- in-process: the cache


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/cache-{uuid.uuid4().hex[:8]}.db"


def sql_counts(storage, users) -> list[Counts]:
    found = storage.read_only(lambda tx: tx.counts(users))
    return [found[u].counts if u in found else Counts(u) for u in users]


def test_a_restarted_empty_redis_serves_no_stale_counters(private_redis, sqlite_url):
    settings = Settings(database_url=sqlite_url, redis_url=private_redis.url, redis_timeout=0.2,
                        rate_limits="1000/1h")
    storage = open_storage(sqlite_url, pool_size=4)
    upgrade(storage)
    try:
        graph = make_graph(settings, storage)
        assert isinstance(graph.counters._remote, RedisCounterCache)  # behind the in-process tier
        user, fans = new_user(), [new_user() for _ in range(5)]
        graph.follow(fans[0], user)
        assert graph.get_counts([user]) == [Counts(user, followers=1)]  # warm
        direct = redis.Redis(port=private_redis.port, socket_timeout=2)
        assert direct.hget(counts_key("sg", user), "followers") == b"1"

        private_redis.stop()
        for fan in fans[1:]:
            graph.follow(fan, user)
        graph.send_connection_request(user, fans[0], "")
        graph.block(user, fans[1], "")
        assert graph.get_counts([user, *fans]) == sql_counts(storage, [user, *fans])
        assert graph.limiter.degraded

        private_redis.start()
        assert graph.get_counts([user, *fans]) == sql_counts(storage, [user, *fans])
        time.sleep(1.1)  # make_graph's retry pause
        for _ in range(2):  # the first read refills, the second is a hit
            assert graph.get_counts([user, *fans]) == sql_counts(storage, [user, *fans])
        direct = redis.Redis(port=private_redis.port, socket_timeout=2)
        stored = direct.hgetall(counts_key("sg", user))
        assert stored, "the cache is not used again after Redis came back"
        assert as_tuple_from_hash(stored) == as_tuple(sql_counts(storage, [user])[0])
        direct.close()
    finally:
        storage.close()


class Switchable:
    """A Redis client that can be cut off from Redis for this process only:
    while ``down``, every call goes to a client on a closed port."""

    def __init__(self, real) -> None:
        self.real = real
        # Made like the service's own clients (short timeouts, one quick retry).
        self.broken = redis_client.connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
        self.down = False

    def register_script(self, script):
        from redis.commands.core import Script

        return Script(self, script)

    def __getattr__(self, name):
        return getattr(self.broken if self.down else self.real, name)


def cut_off_graph(settings: Settings, storage, retry_after: float = 0.2):
    """As make_graph wires a Redis-backed graph, over a Switchable client."""
    client = Switchable(redis_client.connect(settings.redis_url, settings.redis_timeout))
    limiter = FailoverLimiter(
        RedisLimiter(client, settings.windows), SqlLimiter(storage, settings.windows), retry_after=retry_after
    )
    cache = RedisCounterCache(client, SqlCounters(storage), ttl_seconds=settings.counter_cache_ttl,
                              retry_after=retry_after, announce=True)
    storage.on_counters_committed(cache.publish)
    graph = Graph(storage, limiter, Policy(connection_limit=settings.connection_limit), counters=cache)
    return graph, client


def test_an_entry_warmed_before_a_process_only_outage_is_not_served_stale(private_redis, sqlite_url):
    """Redis keeps its data but this process could not reach it while it
    wrote: the entry warmed before must not survive the recovery."""
    settings = Settings(database_url=sqlite_url, redis_url=private_redis.url, redis_timeout=0.2,
                        rate_limits="1000/1h")
    storage = open_storage(sqlite_url, pool_size=4)
    upgrade(storage)
    try:
        graph, client = cut_off_graph(settings, storage, retry_after=1.0)
        user, fan, other = new_user(), new_user(), new_user()
        graph.follow(fan, user)
        assert graph.get_counts([user, fan]) == [Counts(user, followers=1), Counts(fan, following=1)]
        direct = redis.Redis(port=private_redis.port, socket_timeout=2)
        warmed = direct.hgetall(counts_key("sg", user))
        assert warmed[b"followers"] == b"1"

        client.down = True
        graph.follow(other, user)
        assert graph.send_connection_request(user, other, "").state == ConnectionState.PENDING
        assert graph.limiter.degraded  # admitted in-process
        graph.unfollow(fan, user)
        # Redis itself still holds the old entry: nobody could update it.
        assert direct.hgetall(counts_key("sg", user)) == warmed
        assert graph.get_counts([user, fan, other]) == sql_counts(storage, [user, fan, other])

        client.down = False
        time.sleep(1.1)  # the retry pause
        for _ in range(2):
            assert graph.get_counts([user, fan, other]) == sql_counts(storage, [user, fan, other])
        assert not graph.limiter.degraded or wait_until(lambda: not graph.limiter.degraded, 1.0)
        stored = direct.hgetall(counts_key("sg", user))
        assert stored, "the cache is not used again after the outage"
        assert as_tuple_from_hash(stored) == as_tuple(sql_counts(storage, [user])[0]), "stale entry survived"
        direct.close()
    finally:
        storage.close()


def test_a_stale_entry_left_by_a_cut_off_process_does_not_outlive_its_recovery(private_redis, sqlite_url):
    """Two server processes share Redis (and SQL). Process A loses Redis
    while it writes, then gets Redis back and receives no further traffic.
    Process B must not keep serving the entry A could not update: once
    writes stop, cached counters equal the stored ones (I4)."""
    settings = Settings(database_url=sqlite_url, redis_url=private_redis.url, redis_timeout=0.2,
                        rate_limits="1000/1h")
    storage_a = open_storage(sqlite_url, pool_size=4)
    upgrade(storage_a)
    storage_b = open_storage(sqlite_url, pool_size=4)
    try:
        graph_a, client_a = cut_off_graph(settings, storage_a)
        graph_b = make_graph(settings, storage_b)
        user, fan = new_user(), new_user()
        graph_b.follow(fan, user)
        assert graph_b.get_counts([user]) == [Counts(user, followers=1)]  # warm, via B

        client_a.down = True
        graph_a.unfollow(fan, user)  # committed; A could not publish
        client_a.down = False
        # Writes have stopped and Redis answers everyone again.
        truth = sql_counts(storage_b, [user])
        assert truth == [Counts(user)]
        settled = wait_until(lambda: graph_b.get_counts([user]) == truth, timeout=3.0, interval=0.1)
        assert settled, (
            f"process B still serves {graph_b.get_counts([user])} from Redis, SQL says {truth}, "
            "3 s after process A's outage ended"
        )
    finally:
        storage_a.close()
        storage_b.close()


# ------------------------------------------------------------- the limiter


@pytest.fixture
def limiter_storage(sqlite_url):
    storage = open_storage(sqlite_url, pool_size=8)
    upgrade(storage)
    yield storage
    storage.close()


def failover(redis_url: str, storage, windows, prefix: str) -> FailoverLimiter:
    """One process's limiter: Redis first, the shared database while Redis fails."""
    client = redis_client.connect(redis_url, timeout=0.2)
    return FailoverLimiter(RedisLimiter(client, windows, prefix=prefix), SqlLimiter(storage, windows), retry_after=0.2)


def test_an_outage_admits_exactly_the_limit_across_processes(private_redis, limiter_storage):
    """With the limit at 5: 2 before the outage, then 3 more across two
    processes while Redis is down, and none after it restarts empty."""
    windows = parse_windows("5/1h")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    a = failover(private_redis.url, limiter_storage, windows, prefix)
    b = failover(private_redis.url, limiter_storage, windows, prefix)
    user = new_user()
    assert a.acquire(user, "before-a").allowed and b.acquire(user, "before-b").allowed
    assert not a.degraded
    direct = redis.Redis(port=private_redis.port, socket_timeout=2)
    assert sorted(direct.zrange(log_key(prefix, user), 0, -1)) == [b"before-a", b"before-b"]
    direct.close()

    private_redis.stop()
    limiters = (("a", a), ("b", b))
    during = [limiter.acquire(user, f"during-{name}-{i}").allowed for i in range(4) for name, limiter in limiters]
    assert during.count(True) == 3, during
    assert a.degraded and b.degraded
    a.release(user, "during-a-0")  # given back in the database: one more fits
    assert b.acquire(user, "during-again").allowed
    assert not a.acquire(user, "during-full").allowed

    private_redis.start()  # empty
    assert wait_until(lambda: not a.degraded and not b.degraded, timeout=2.0)
    after = [limiter.acquire(user, f"after-{name}-{i}").allowed for i in range(3) for name, limiter in limiters]
    assert after == [False] * 6, "Redis restarted empty, yet admitted past the limit"
    assert not a.degraded, "Redis answered, but the limiter fell back again"
    direct = redis.Redis(port=private_redis.port, socket_timeout=2)
    assert direct.zcard(log_key(prefix, user)) == 5, "the Redis log was not completed from the database"
    # Given back through Redis and the database alike.
    a.release(user, "before-a")
    assert direct.zcard(log_key(prefix, user)) == 4
    assert b.acquire(user, "after-release").allowed
    assert not a.acquire(user, "after-full").allowed
    direct.close()


def test_a_stalled_redis_admits_exactly_the_limit(private_redis, limiter_storage):
    """Redis stops answering for two seconds (SIGSTOP) under one requester's
    attempts from two processes: the limit still holds."""
    import os
    import signal
    import threading

    windows = parse_windows("5/1h")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    limiters = [failover(private_redis.url, limiter_storage, windows, prefix) for _ in range(2)]
    user = new_user()
    assert limiters[0].acquire(user, "before").allowed
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    resume = threading.Timer(2.0, os.kill, (private_redis.process.pid, signal.SIGCONT))
    resume.start()
    admitted = 1
    try:
        deadline = time.monotonic() + 3.5
        i = 0
        while time.monotonic() < deadline:
            for limiter in limiters:
                admitted += limiter.acquire(user, f"t-{i}").allowed
                i += 1
            time.sleep(0.05)
    finally:
        resume.join()
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert i > 20
    assert admitted == 5


