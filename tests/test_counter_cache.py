"""The counter caches (in-process and Redis) pass one suite: hits run no SQL,
older values never replace newer ones, misses fill, writes publish after
commit, and recount refreshes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from cache import redis_client
from cache.local import InProcessCounterCache
from cache.redis_cache import RedisCounterCache, counts_key
from cache.sql import SqlCounters
from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade
from storage.types import Counts, VersionedCounts

from .support import REDIS_URL, new_user, redis_reachable, require


class CountingReader:
    """The SQL reader, counting the ids it is asked for."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked: list[str] = []

    def get(self, user_ids):
        self.asked.extend(user_ids)
        return self.inner.get(user_ids)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('cache')}/cache.db")
    upgrade(storage)
    yield storage
    storage.close()


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def make_cache(request):
    def make(inner):
        if request.param == "in-process":
            return InProcessCounterCache(inner)
        require("Redis", redis_reachable())
        client = redis_client.connect(REDIS_URL, timeout=1.0)
        return RedisCounterCache(client, inner, ttl_seconds=60, prefix=f"test-{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture
def world(storage, make_cache):
    """A graph whose counters come through a fresh cache over counted SQL reads."""
    reader = CountingReader(SqlCounters(storage))
    cache = make_cache(reader)
    listeners = storage._listeners
    storage.on_counters_committed(cache.publish)
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), counters=cache)
    yield graph, cache, reader
    listeners.remove(cache.publish)


def test_a_miss_reads_sql_once_then_hits(world):
    graph, _cache, reader = world
    a, b = new_user(), new_user()
    graph.storage.read_write(lambda tx: (tx.lock_users([a, b]), tx.insert_follow(a, b, 1)))
    reader.asked.clear()
    # The write above published already; a user never written is a miss.
    stranger = new_user()
    assert graph.get_counts([stranger]) == [Counts(stranger)]
    assert reader.asked == [stranger]
    reader.asked.clear()
    assert graph.get_counts([stranger, a]) == [Counts(stranger), Counts(a, following=1)]
    assert reader.asked == []


def test_committed_writes_are_served_without_sql(world):
    graph, _cache, reader = world
    a, b, c = new_user(), new_user(), new_user()
    graph.follow(a, b)
    graph.send_connection_request(c, b, "")
    graph.block(b, a, "")
    reader.asked.clear()
    [ca, cb, cc] = graph.get_counts([a, b, c])
    assert reader.asked == []
    assert ca == Counts(a)
    assert cb == Counts(b, followers=1, incoming_requests=1, blocked=1)
    assert cc == Counts(c, following=1, outgoing_requests=1)


def test_an_older_version_never_replaces_a_newer_one(world):
    _graph, cache, _reader = world
    user = new_user()
    cache.publish({user: VersionedCounts(Counts(user, followers=5), 20)})
    cache.publish({user: VersionedCounts(Counts(user, followers=3), 10)})
    cache.publish({user: VersionedCounts(Counts(user, followers=4), 20)})
    assert cache.get([user])[user] == VersionedCounts(Counts(user, followers=5), 20)
    cache.publish({user: VersionedCounts(Counts(user, followers=6), 21)})
    assert cache.get([user])[user].counts.followers == 6


def test_a_slow_miss_fill_cannot_overwrite_a_newer_write(world, storage):
    graph, cache, _reader = world
    a, b = new_user(), new_user()
    graph.follow(a, b)
    stale = storage.read_only(lambda tx: tx.counts([b]))  # a reader's SQL result...
    graph.unfollow(a, b)  # ...overtaken by a newer write, published at once
    cache.publish(stale)  # the reader fills late
    assert graph.get_counts([b])[0].followers == 0


def test_a_deleted_user_reads_zero_and_can_come_back(world):
    graph, _cache, reader = world
    a, b = new_user(), new_user()
    graph.follow(a, b)
    graph.delete_user(b)
    reader.asked.clear()
    assert graph.get_counts([a, b]) == [Counts(a), Counts(b)]
    assert reader.asked == []
    graph.follow(a, b)
    assert graph.get_counts([b])[0].followers == 1


def test_recount_refreshes_the_cache(world, storage):
    graph, _cache, reader = world
    a, b = new_user(), new_user()
    graph.follow(a, b)
    with storage.engine.begin() as conn:
        conn.execute(text("UPDATE user_counters SET followers = 9 WHERE user_id = :b"), {"b": b})
    fixes = graph.recount()
    assert [(f.user_id, f.column, f.stored, f.actual) for f in fixes] == [(b, "followers", 9, 1)]
    reader.asked.clear()
    assert graph.get_counts([a, b]) == [Counts(a, following=1), Counts(b, followers=1)]
    assert reader.asked == []


@pytest.mark.redis
def test_redis_entries_are_hash_tagged_and_expire():
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, timeout=1.0)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    cache = RedisCounterCache(client, SqlCounters(None), ttl_seconds=120, prefix=prefix)
    user = new_user()
    cache.publish({user: VersionedCounts(Counts(user, blocked=2), 7)})
    key = counts_key(prefix, user)
    assert key == f"{prefix}:c1:{{{user}}}"  # the format in the key, the user's id its hash tag
    assert 0 < client.ttl(key) <= 120
    assert client.hget(key, "v") == b"7"
    client.delete(key)


@pytest.mark.redis
def test_publishing_survives_a_flushed_script_cache():
    """Publishes run the script by its hash; a Redis that lost its scripts
    (a restart, SCRIPT FLUSH) gets the script again and stores the value."""
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, timeout=1.0)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    cache = RedisCounterCache(client, SqlCounters(None), ttl_seconds=120, prefix=prefix)
    user = new_user()
    client.script_flush()
    cache.publish({user: VersionedCounts(Counts(user, followers=3), 5)})
    assert client.hget(counts_key(prefix, user), "followers") == b"3"
    cache.publish({user: VersionedCounts(Counts(user, followers=4), 6)})
    assert client.hget(counts_key(prefix, user), "followers") == b"4"
    client.delete(counts_key(prefix, user))
