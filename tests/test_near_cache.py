"""The in-process tier in front of Redis (cache/near.py): several processes
sharing one Redis each keep what they read in memory, see each other's writes
through the counter feed, and read through to Redis and SQL whenever they
are not subscribed. Two sets of caches over one database and one Redis play
two server processes."""

from __future__ import annotations

import time
import uuid

import pytest

from cache import cached_readers, redis_client
from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade

from .support import REDIS_URL, RedisServer, new_user, redis_reachable, require

pytestmark = pytest.mark.redis


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def database(tmp_path):
    """One database; each process opens its own storage on it."""
    url = f"sqlite:///{tmp_path}/near.db"
    opened = [open_storage(url)]
    upgrade(opened[0])

    def open_one():
        opened.append(open_storage(url))
        return opened[-1]

    yield open_one
    for storage in opened:
        storage.close()


def process(database, url: str, prefix: str) -> Graph:
    """What one server process builds: its own storage, caches and feed; one shared Redis."""
    storage = database()
    readers = cached_readers(storage, redis_client.connect(url, timeout=0.2), ttl_seconds=60, prefix=prefix)
    return Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), **readers)


def feed(graph: Graph):
    return graph.relationships._feed  # type: ignore[attr-defined]  # a Near: cached_readers with a Redis server


def test_a_write_in_one_process_reaches_the_memory_of_another(database):
    require("Redis", redis_reachable())
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    one, two = process(database, REDIS_URL, prefix), process(database, REDIS_URL, prefix)
    assert feed(one).wait_live(5) and feed(two).wait_live(5)
    a, b = new_user(), new_user()
    # The second process reads both, so its memory holds the state before the write.
    assert not two.get_relationship(a, b).following
    assert two.get_counts([b])[0].followers == 0
    one.follow(a, b)
    assert wait_until(lambda: two.get_relationship(a, b).following and two.get_counts([b])[0].followers == 1)
    assert two.can_interact(b, a)
    one.block(b, a, "")
    assert wait_until(lambda: not two.can_interact(a, b))
    assert two.get_counts([a, b])[1].blocked == 1
    # Its own writes are in its memory before they return.
    two.unblock(b, a)
    assert two.can_interact(a, b)


def test_a_process_off_the_feed_reads_through_and_forgets(database, tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        one, two = process(database, redis.url, "sg"), process(database, redis.url, "sg")
        assert feed(one).wait_live(5) and feed(two).wait_live(5)
        a, b = new_user(), new_user()
        assert two.get_counts([b])[0].followers == 0  # in the second process's memory
        redis.stop()
        assert wait_until(lambda: not feed(two).live, timeout=10)
        one.follow(a, b)  # Redis is down: committed in SQL, not announced
        assert two.get_counts([b])[0].followers == 1
        assert two.get_relationship(b, a).followed_by
        redis.start()
        assert wait_until(lambda: feed(two).live, timeout=10)
        assert two.get_counts([b])[0].followers == 1
        assert two.get_relationship(a, b).following
    finally:
        redis.stop()


def test_counters_of_another_format_are_neither_read_nor_taken_from_the_feed(database):
    """A rolling deploy that changes the counter hash's shape: the other
    format's hashes and announcements are not this process's entries."""
    require("Redis", redis_reachable())
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    one = process(database, REDIS_URL, prefix)
    assert feed(one).wait_live(5)
    a, b = new_user(), new_user()
    one.follow(a, b)
    assert one.get_counts([b])[0].followers == 1
    client = redis_client.connect(REDIS_URL, timeout=1.0)
    # A process of another format stores and announces a different shape for b.
    other = f"{prefix}:c0:{{{b}}}"
    now_us = time.time_ns() // 1000
    client.hset(other, mapping={"v": 10**18, "followers": "x", "t": now_us})
    client.publish(f"{prefix}:counts", f"elsewhere {other} {10**18} followers 99 t {now_us}")
    time.sleep(0.2)
    assert one.get_counts([b])[0].followers == 1
    one.unfollow(a, b)
    assert wait_until(lambda: one.get_counts([b])[0].followers == 0)
    client.delete(other)
