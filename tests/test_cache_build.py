"""cache.build: the layers each deployment shape gets (cache/build.py), and
that every committed write reaches the outermost one before it returns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cache import Shape, build, redis_client
from cache.local import InProcessCounterCache, InProcessRelationshipCache
from cache.near import Near
from cache.redis_cache import RedisCounterCache, RedisRelationshipCache
from cache.sql import SqlCounters, SqlRelationships
from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import SqlStorage, open_storage
from storage.migrate import upgrade

from .support import REDIS_URL, new_user, redis_reachable, require


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqlStorage]:
    storage = open_storage(f"sqlite:///{tmp_path}/graph.db", pool_size=4)
    upgrade(storage)
    yield storage
    storage.close()


def test_the_shape_follows_redis_and_workers() -> None:
    assert Shape.of(None) is Shape.IN_PROCESS
    assert Shape.of(None, workers=2) is Shape.SQL
    assert Shape.of(redis_client.connect("redis://127.0.0.1:1/0", 0.1)) is Shape.REDIS
    assert Shape.of(redis_client.connect("redis+cluster://127.0.0.1:1", 0.1)) is Shape.REDIS_CLUSTER


def test_one_process_without_redis_caches_in_process_and_proves_tokens(sqlite: SqlStorage) -> None:
    readers = build(sqlite)
    assert isinstance(readers.counters, InProcessCounterCache)
    assert isinstance(readers.relationships, InProcessRelationshipCache)
    assert readers.counters.proves_tokens and readers.relationships.proves_tokens

    limiter: Any = InProcessLimiter(parse_windows("100/1h"))  # ratelimit's Limiter protocol is not strict-clean
    graph = Graph(sqlite, limiter, Policy(), **readers._asdict())
    a, b = new_user(), new_user()
    assert graph.get_counts([b])[0].followers == 0  # cached at version 0
    graph.follow(a, b)
    assert readers.counters.versions([b])[b] > 0  # the commit published before follow returned
    assert graph.get_counts([b])[0].followers == 1


def test_workers_without_redis_read_sql(sqlite: SqlStorage) -> None:
    readers = build(sqlite, workers=2)
    assert isinstance(readers.counters, SqlCounters)
    assert isinstance(readers.relationships, SqlRelationships)


@pytest.mark.redis
def test_one_redis_server_gets_the_near_layer_over_redis(sqlite: SqlStorage) -> None:
    require("Redis", redis_reachable())
    client = redis_client.connect(REDIS_URL, 1.0)
    readers = build(sqlite, client, prefix=f"test-build-{uuid.uuid4().hex[:8]}", ttl_seconds=60)
    try:
        assert isinstance(readers.counters, Near) and isinstance(readers.relationships, Near)
        assert isinstance(readers.counters._remote, RedisCounterCache)
        assert isinstance(readers.relationships._remote, RedisRelationshipCache)
        assert isinstance(readers.counters._local, InProcessCounterCache)
        assert not getattr(readers.counters, "proves_tokens", False)  # entries in Redis were read elsewhere
    finally:
        readers.counters._feed.stop()


def test_a_redis_cluster_gets_redis_alone(sqlite: SqlStorage) -> None:
    client = redis_client.connect("redis+cluster://127.0.0.1:1", 0.1)  # made on first use: nothing connects
    readers = build(sqlite, client)
    assert isinstance(readers.counters, RedisCounterCache)
    assert isinstance(readers.relationships, RedisRelationshipCache)
