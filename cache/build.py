"""Stacks the layers a deployment shape needs.

- ``IN_PROCESS``, no Redis and one process per server (embedded SQLite, or
  one ``socialgraph serve`` per host on PostgreSQL): in-process -> SQL;
- ``SQL``, no Redis and ``--workers N`` processes on one port: SQL alone;
- ``REDIS``, one Redis server: near (in-process, fed by Redis pub/sub) ->
  Redis -> SQL;
- ``REDIS_CLUSTER``, a Redis Cluster: Redis -> SQL.

Every caching layer serves an entry only within the staleness bound
(``cache/freshness.py``), so processes that hear nothing of each other's
writes (the first shape, twice) still answer alike within it. Every
committed write publishes its counters to each counter layer before it
answers, innermost first.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from redis import Redis

from storage.types import Storage

from .freshness import DEFAULT_MAX_STALENESS, Freshness
from .local import InProcessCounterCache, InProcessRelationshipCache
from .near import CounterFeed, Near
from .redis_cache import RedisCounterCache, RedisRelationshipCache
from .redis_client import Client
from .sql import SqlCounters, SqlRelationships


class Shape(enum.Enum):
    IN_PROCESS = "in-process"
    SQL = "sql"
    REDIS = "redis"
    REDIS_CLUSTER = "redis-cluster"

    @classmethod
    def of(cls, client: Client | None, workers: int = 1) -> Shape:
        """The shape of a server with Redis ``client`` (None without) and ``workers`` processes."""
        if client is not None:
            return cls.REDIS if isinstance(client, Redis) else cls.REDIS_CLUSTER
        return cls.IN_PROCESS if workers == 1 else cls.SQL


class Readers(NamedTuple):
    """The outermost counter and relationship layers (``Graph``'s readers)."""

    counters: Any
    relationships: Any


def build(
    storage: Storage,
    client: Client | None = None,
    *,
    workers: int = 1,
    ttl_seconds: int = 3600,
    prefix: str = "sg",
    max_staleness: float = DEFAULT_MAX_STALENESS,
) -> Readers:
    """The layers over ``storage`` for the shape of ``client`` and ``workers``,
    subscribed to its committed writes. ``client``: a Redis client
    (``cache.redis_client.connect``) or None."""
    shape = Shape.of(client, workers)
    freshness = Freshness(max_staleness)
    sql = Readers(SqlCounters(storage), SqlRelationships(storage))
    if shape is Shape.SQL:
        # An in-process cache would hear nothing of the other workers' writes.
        return sql
    if shape is Shape.IN_PROCESS:
        counters = InProcessCounterCache(sql.counters, freshness=freshness)
        storage.on_counters_committed(counters.publish)
        return Readers(counters, InProcessRelationshipCache(sql.relationships, counters, freshness=freshness))
    near = shape is Shape.REDIS
    redis_counters = RedisCounterCache(
        client, sql.counters, ttl_seconds=ttl_seconds, prefix=prefix, announce=near, freshness=freshness
    )
    redis_relationships = RedisRelationshipCache(
        client, sql.relationships, redis_counters, ttl_seconds=ttl_seconds, freshness=freshness
    )
    storage.on_counters_committed(redis_counters.publish)
    if not near:
        return Readers(redis_counters, redis_relationships)
    local_counters = InProcessCounterCache(redis_counters, freshness=freshness)
    local_relationships = InProcessRelationshipCache(redis_relationships, local_counters, freshness=freshness)
    storage.on_counters_committed(local_counters.publish)
    feed = CounterFeed(client, redis_counters.channel, redis_counters.origin, local_counters, local_relationships)
    feed.start()
    return Readers(Near(feed, local_counters, redis_counters), Near(feed, local_relationships, redis_relationships))


def cached_readers(
    storage: Storage,
    client: Client | None = None,
    ttl_seconds: int = 3600,
    prefix: str = "sg",
    max_staleness: float = DEFAULT_MAX_STALENESS,
) -> dict[str, Any]:
    """``build`` for one process, as ``Graph`` keyword arguments."""
    return build(storage, client, ttl_seconds=ttl_seconds, prefix=prefix, max_staleness=max_staleness)._asdict()
