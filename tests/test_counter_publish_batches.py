"""Publishing counters to Redis in batches: while one store is in flight,
what other writers publish gathers into one batch, stored in one pipeline by
the first of them, and every writer returns only once its counters are in
Redis (or remembered for repair)."""

from __future__ import annotations

import threading
import uuid

import pytest

from cache import redis_client
from cache.redis_cache import RedisCounterCache
from storage.clock import now_us
from storage.types import Counts, VersionedCounts

from .support import REDIS_URL, redis_reachable, require

pytestmark = pytest.mark.redis


class _NoSql:
    def get(self, user_ids):
        raise AssertionError("publishing reads no SQL")


def entry(user_id: str, followers: int, version: int) -> dict[str, VersionedCounts]:
    return {user_id: VersionedCounts(Counts(user_id, followers=followers), version, now_us())}


def test_publishes_during_a_store_in_flight_share_the_next_one():
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, timeout=5.0)
    cache = RedisCounterCache(client, _NoSql(), ttl_seconds=60, prefix=f"test-{uuid.uuid4().hex[:12]}")
    stores: list[dict[str, VersionedCounts]] = []
    first_in_flight, release = threading.Event(), threading.Event()
    real_store = cache._store

    def store(entries: dict[str, VersionedCounts]) -> None:
        stores.append(dict(entries))
        if len(stores) == 1:
            first_in_flight.set()
            assert release.wait(10)
        real_store(entries)

    cache._store = store  # type: ignore[method-assign]
    users = [f"u{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
    first = threading.Thread(target=cache.publish, args=(entry(users[0], 0, 10),))
    first.start()
    assert first_in_flight.wait(10)
    # Five writers while the first store is in flight; one of them twice, an
    # older version after a newer one.
    published = [entry(u, i, 10 + i) for i, u in enumerate(users[1:], start=1)] + [entry(users[1], 99, 5)]
    waiting = [threading.Thread(target=cache.publish, args=(changed,)) for changed in published]
    for thread in waiting:
        thread.start()
    while len(cache._next.entries) < 5:  # all five gathered
        threading.Event().wait(0.01)
    assert all(thread.is_alive() for thread in waiting), "nobody returns before its counters are stored"
    release.set()
    for thread in (first, *waiting):
        thread.join(10)
        assert not thread.is_alive()
    assert [sorted(s) for s in stores] == [[users[0]], sorted(users[1:])], "two stores for six publishes"
    assert stores[1][users[1]].version == 11, "the newer of one user's two versions is stored"
    found = cache.get(users)
    assert {u: found[u].counts.followers for u in users} == {u: i for i, u in enumerate(users)}
    client.close()


@pytest.mark.parametrize("error", [redis_client.REDIS_ERRORS[0]("down"), ValueError("a bug")], ids=["redis", "other"])
def test_a_failed_batch_is_remembered_for_every_writer_in_it(error):
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, timeout=5.0)
    cache = RedisCounterCache(client, _NoSql(), ttl_seconds=60, prefix=f"test-{uuid.uuid4().hex[:12]}",
                              retry_after=60)
    first_in_flight, release = threading.Event(), threading.Event()
    stores: list[set[str]] = []

    def store(entries: dict[str, VersionedCounts]) -> None:
        stores.append(set(entries))
        if len(stores) == 1:
            first_in_flight.set()
            assert release.wait(10)
            return
        raise error

    cache._store = store  # type: ignore[method-assign]
    first = threading.Thread(target=cache.publish, args=(entry("first", 1, 1),))
    first.start()
    assert first_in_flight.wait(10)
    waiting = [threading.Thread(target=cache.publish, args=(entry(u, 1, 1),)) for u in ("a", "b", "c")]
    for thread in waiting:
        thread.start()
    while len(cache._next.entries) < 3:
        threading.Event().wait(0.01)
    release.set()
    for thread in (first, *waiting):
        thread.join(10)
        assert not thread.is_alive()
    assert stores == [{"first"}, {"a", "b", "c"}]
    assert cache._dirty == {"a", "b", "c"}, "every writer of the failed batch is remembered for repair"
    assert not cache.usable(), "Redis is rested after a failure"
    if cache._repair is not None:
        cache._repair.cancel()
    client.close()
