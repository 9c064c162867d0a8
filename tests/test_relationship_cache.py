"""The relationship caches (in-process and Redis) pass one suite: hits run no
SQL, both sides of a pair share one entry, any write to either user makes the
entry a miss, an entry read before a newer write is never served, and a
Redis outage falls back to SQL."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from cache import cached_readers, redis_client
from cache.redis_cache import RedisCounterCache, RedisRelationshipCache
from cache.sql import SqlCounters, SqlRelationships
from cache.versions import decode, encode
from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade

from .support import REDIS_URL, new_user, redis_reachable, require


class CountingReader:
    """The SQL relationship reader, counting the pairs it is asked for."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked: list[tuple[str, str]] = []

    def get(self, user_id, other_ids):
        return self.get_versioned(user_id, other_ids).relationships

    def get_versioned(self, user_id, other_ids):
        self.asked.extend((user_id, other) for other in other_ids)
        return self.inner.get_versioned(user_id, other_ids)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('relcache')}/relcache.db")
    upgrade(storage)
    yield storage
    storage.close()


def tiers(reader) -> list:
    """The caches from the top down (an in-process tier, Redis, ...)."""
    chain = []
    while hasattr(reader, "_inner") or hasattr(reader, "_local"):
        if hasattr(reader, "_local"):  # Near: the in-process tier over the Redis one
            reader = reader._local
        chain.append(reader)
        reader = reader._inner
    return chain


@pytest.fixture(
    params=[
        "in-process",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis only", marks=pytest.mark.redis),
    ]
)
def world(request, storage):
    """A graph whose relationships come through fresh caches over counted SQL reads:
    in-process, Redis behind an in-process tier (one Redis server), Redis alone (a cluster)."""
    listeners = list(storage._listeners)
    if request.param == "in-process":
        readers = cached_readers(storage)
    else:
        require("Redis", redis_reachable())
        client = redis_client.connect(REDIS_URL, timeout=1.0)
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        if request.param == "redis":
            readers = cached_readers(storage, client, ttl_seconds=60, prefix=prefix)
            assert readers["relationships"]._feed.wait_live(5)
        else:
            counters = RedisCounterCache(client, SqlCounters(storage), ttl_seconds=60, prefix=prefix)
            storage.on_counters_committed(counters.publish)
            readers = {
                "counters": counters,
                "relationships": RedisRelationshipCache(client, SqlRelationships(storage), counters, 60),
            }
    bottom = tiers(readers["relationships"])[-1]
    reader = CountingReader(bottom._inner)
    bottom._inner = reader
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), **readers)
    yield graph, reader
    storage._listeners[:] = listeners


def flags(relationship) -> dict:
    return dataclasses.asdict(relationship)


def test_a_miss_reads_sql_once_then_both_sides_hit(world):
    graph, reader = world
    a, b = new_user(), new_user()
    graph.follow(a, b)
    first = graph.get_relationship(a, b)
    assert reader.asked == [(a, b)]
    assert (first.following, first.followed_by) == (True, False)
    reader.asked.clear()
    assert flags(graph.get_relationship(a, b)) == flags(first)
    seen_by_b = graph.get_relationship(b, a)
    assert reader.asked == []
    assert (seen_by_b.other_user_id, seen_by_b.following, seen_by_b.followed_by) == (a, False, True)
    assert graph.can_interact(b, a) is True
    assert reader.asked == []


def test_every_write_to_either_user_is_seen_at_once(world):
    graph, reader = world
    a, b, c = new_user(), new_user(), new_user()
    graph.follow(a, b)
    graph.get_relationship(a, b)
    graph.send_connection_request(b, a, "")
    rel = graph.get_relationship(a, b)
    assert (rel.incoming_request_pending, rel.followed_by) == (True, True)
    graph.accept_connection_request(a, b)
    assert graph.get_relationship(b, a).connected
    # A third user's connection changes the pair's mutual count.
    graph.send_connection_request(c, a, "")
    graph.accept_connection_request(a, c)
    graph.send_connection_request(c, b, "")
    graph.accept_connection_request(b, c)
    assert graph.get_relationship(a, b).mutual_connections_count == 1
    graph.block(b, a, "")
    rel = graph.get_relationship(a, b)
    assert (rel.blocked_by, rel.connected, rel.following, rel.mutual_connections_count) == (True, False, False, 1)
    assert graph.can_interact(a, b) is False
    graph.unblock(b, a)
    assert graph.can_interact(b, a) is True
    reader.asked.clear()
    graph.get_relationship(a, b)
    assert reader.asked == []


def test_an_entry_read_before_a_newer_write_is_never_served(world, storage):
    graph, _reader = world
    a, b = new_user(), new_user()
    graph.follow(a, b)
    stale = storage.read_only(lambda tx: tx.relationships(a, [b]))  # a reader's SQL result...
    graph.unfollow(a, b)  # ...overtaken by a newer write
    for cache in tiers(graph.relationships):
        cache._store(a, stale)  # the reader stores it late, in every tier
    assert graph.get_relationship(a, b).following is False
    assert graph.batch_get_relationships(b, [a])[0].followed_by is False


def test_deleted_and_promoted_users(world):
    graph, _reader = world
    from storage.types import Role, User

    a, b = new_user(), new_user()
    graph.follow(a, b)
    graph.block(a, b, "")
    assert graph.get_relationship(b, a).blocked_by
    graph.upsert_user(User(b, Role.MODERATOR, "", "", 0))  # lifts the block against b (B3)
    assert graph.can_interact(a, b) is True
    graph.follow(b, a)
    assert graph.get_relationship(a, b).followed_by
    graph.delete_user(b)
    assert flags(graph.get_relationship(a, b))["followed_by"] is False


def test_batches_mix_hits_and_misses_in_request_order(world):
    graph, reader = world
    me, x, y, z = new_user(), new_user(), new_user(), new_user()
    graph.follow(me, x)
    graph.follow(z, me)
    graph.get_relationship(me, x)
    reader.asked.clear()
    found = graph.batch_get_relationships(me, [y, x, z, x])
    assert [r.other_user_id for r in found] == [y, x, z, x]
    assert [(r.following, r.followed_by) for r in found] == [
        (False, False), (True, False), (False, True), (True, False)
    ]
    assert sorted(reader.asked) == sorted([(me, y), (me, z)])


def test_entries_encode_both_versions_every_flag_and_when_they_were_read():
    from storage.types import Relationship

    other = new_user()
    for flags in ((True, False, True, False, True, False, True), (False, True, False, True, False, True, False)):
        rel = Relationship(other, *flags, 7)
        assert decode(encode((11, 22), rel, 1_700_000_000_000_000), other) == ((11, 22), rel, 1_700_000_000_000_000)


def test_an_entry_of_another_format_is_a_miss():
    """A rolling deploy may meet entries written by an older or newer release."""
    other = new_user()
    assert decode("11:22:1010101:7", other) is None
    assert decode("r2:5:11:22:1010101:7", other) is None


@pytest.mark.redis
def test_redis_outage_reads_sql(storage):
    """A Redis that does not answer: every read goes to SQL, and is right."""
    from .support import free_port

    client = redis_client.connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
    listeners = list(storage._listeners)
    readers = cached_readers(storage, client, ttl_seconds=60, prefix="test-down")
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), **readers)
    try:
        a, b = new_user(), new_user()
        graph.follow(a, b)
        assert graph.get_relationship(b, a).followed_by
        graph.unfollow(a, b)
        assert not graph.get_relationship(b, a).followed_by
    finally:
        storage._listeners[:] = listeners
