"""The Redis layer: counters and relationships in Redis, shared by every
process on that Redis (a server or a Cluster), in front of SQL.

**Counters**: one hash per user, ``{prefix}:c1:{user_id}`` (its format,
``COUNTS_FORMAT`` in ``cache/versions.py``, in the key), holding the six
counters, their version ``v`` and ``t``, when they were read from SQL. Reads
try Redis first; on a hit no SQL runs. Committed writes publish their
counters through ``lua/set_counts.lua``, which applies the version rule
(``cache/versions.py``) inside Redis; a miss fills the cache the same way.
Entries expire after a TTL as a safety net, and are served only within the
staleness bound after ``t`` (``cache/freshness.py``), so a writer that
committed and died before publishing leaves nothing stale for longer.

**Relationships**: ``{prefix}:r:{FIRST}:SECOND``, a string entry
(``cache/versions.py``), validated by the counter versions read in the same
round trip.

While Redis is down or slow, reads go to SQL and the users whose publishes
failed are remembered; once Redis answers again their entries are deleted
(the next read refills them from SQL) before the cache is trusted again. A
timer keeps retrying that repair, so it happens even if this process serves
nothing more; only a process that dies first leaves entries to the staleness
bound.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from prometheus_client import Counter
from redis import Redis

from storage.clock import now_us
from storage.schema import COUNTER_COLUMNS
from storage.types import Counts, VersionedCounts, VersionedRelationships

from . import versions
from .freshness import Freshness
from .readers import CounterReader
from .redis_client import REDIS_ERRORS, Client, lua_source, script
from .relationships import RelationshipCache
from .sql import SqlRelationships

log = logging.getLogger(__name__)

SCRIPT = lua_source("cache", "set_counts.lua")
_FIELDS = (*COUNTER_COLUMNS, "t", "v")
_BATCH = 100  # users a script call stores on one server
_NAMES = " ".join((*COUNTER_COLUMNS, "t"))

CACHE_ERRORS = Counter(
    "socialgraph_counter_cache_errors_total",
    "Redis errors met by the counter cache (the call was served from SQL).",
)


def counts_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:{versions.COUNTS_FORMAT}:{{{user_id}}}"


class RedisCounterCache:
    """Counters in Redis hashes, in front of ``inner`` (SQL)."""

    def __init__(
        self,
        client: Client,
        inner: CounterReader,
        ttl_seconds: int = 3600,
        prefix: str = "sg",
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        announce: bool = False,
        freshness: Freshness | None = None,
    ) -> None:
        """``announce``: every entry stored, and every entry dropped after an
        outage, is also published on ``channel`` (see ``cache/near.py``)."""
        self._client = client
        self._script = script(client, SCRIPT)
        self._inner = inner
        self._ttl = ttl_seconds
        self.prefix = prefix
        self.channel = f"{prefix}:counts"
        self.origin = uuid.uuid4().hex
        self._announce_to = self.channel if announce else ""
        self._retry_after = retry_after
        self._clock = clock
        self._freshness = freshness or Freshness()
        self._down_until = 0.0
        self._dirty: set[str] = set()
        self._repair: threading.Timer | None = None
        self._lock = threading.Lock()
        # Publishing in batches: the one being gathered, and whether a store is in flight.
        self._batching = threading.Condition()
        self._next = _Batch()
        self._storing = False

    # ------------------------------------------------------------------ reads

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        unique = list(dict.fromkeys(user_ids))
        if not self.usable():
            return self._inner.get(unique)
        try:
            pipe = self._client.pipeline(transaction=False)
            for user_id in unique:
                pipe.hmget(counts_key(self.prefix, user_id), _FIELDS)
            rows = pipe.execute()
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return self._inner.get(unique)
        found: dict[str, VersionedCounts] = {}
        missing: list[str] = []
        now = now_us()
        for user_id, values in zip(unique, rows, strict=False):
            if None in values or not self._freshness.fresh(int(values[-2]), now):
                missing.append(user_id)
            else:
                *counters, read_us, version = (int(v) for v in values)
                found[user_id] = VersionedCounts(Counts(user_id, *counters), version, read_us)
        return versions.fill("redis", found, missing, self._inner, self.publish)

    # ----------------------------------------------------------------- writes

    def publish(self, changed: dict[str, VersionedCounts]) -> None:
        """Stores committed counters, keeping the higher version, and returns
        once they are stored (or remembered for repair). Never raises.

        Concurrent writers share round trips: while one store is in flight,
        what others publish gathers into the next batch, which the first of
        them then stores for all, in one pipeline."""
        if not changed:
            return
        if not self.usable():
            self._remember(changed)
            return
        if not isinstance(self._client, Redis):
            # A cluster stores one user a call: a batch would only queue them.
            self._store_or_remember(changed)
            return
        with self._batching:
            batch = self._next
            batch.add(changed)
            while not batch.stored:
                if not self._storing:
                    self._storing, self._next = True, _Batch()
                    break
                self._batching.wait()
            else:
                return
        try:
            if self.usable():  # the store before this one may have failed
                self._store_or_remember(batch.entries)
            else:
                self._remember(batch.entries)
        finally:
            with self._batching:
                batch.stored, self._storing = True, False
                self._batching.notify_all()

    def _store_or_remember(self, changed: dict[str, VersionedCounts]) -> None:
        try:
            self._store(changed)
        except REDIS_ERRORS as exc:
            self.failed(exc, changed)
        except Exception as exc:  # a bug: still, the entries are repaired once Redis is trusted again
            log.exception("counter cache: publishing failed")
            self.failed(exc, changed)

    def _store(self, changed: dict[str, VersionedCounts]) -> None:
        """Runs ``set_counts.lua`` through redis-py's ``Script`` (EVALSHA,
        loaded again after NOSCRIPT). One server: up to ``_BATCH`` users a
        call, several calls in one pipeline. A cluster: one user a call (its
        keys sit on different slots; cluster pipelines run no scripts)."""
        entries = list(changed.items())
        size = _BATCH if isinstance(self._client, Redis) else 1
        calls = [self._call(entries[i : i + size]) for i in range(0, len(entries), size)]
        if len(calls) == 1 or not isinstance(self._client, Redis):
            for keys, args in calls:
                self._script(keys=keys, args=args)
            return
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            self._script(keys=keys, args=args, client=pipe)
        pipe.execute()

    def _call(self, batch: list[tuple[str, VersionedCounts]]) -> tuple[list[str], list[Any]]:
        keys = [counts_key(self.prefix, user_id) for user_id, _entry in batch]
        values = [
            " ".join(map(str, (entry.version, *(getattr(entry.counts, n) for n in COUNTER_COLUMNS), entry.read_us)))
            for _user_id, entry in batch
        ]
        return keys, [self._ttl, self._announce_to, self.origin, _NAMES, *values]

    # ---------------------------------------------------------------- outages

    def usable(self) -> bool:
        """False while Redis is considered down; after the pause, the entries
        that may have missed a publish are dropped before the cache is trusted."""
        if self._down_until and self._clock() < self._down_until:
            return False
        return not self._dirty or self._drop_stale()

    def _drop_stale(self) -> bool:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        if not dirty:
            return True
        try:
            pipe = self._client.pipeline(transaction=False)
            for user_id in dirty:
                key = counts_key(self.prefix, user_id)
                pipe.delete(key)
                if self._announce_to:  # other processes drop their in-process copies too
                    pipe.publish(self._announce_to, f"{self.origin} {key}")
            pipe.execute()
        except REDIS_ERRORS as exc:
            self.failed(exc, dirty)
            return False
        log.info("counter cache: Redis is back; dropped %d possibly stale entries", len(dirty))
        return True

    def failed(self, exc: Exception, user_ids: Iterable[str] = ()) -> None:
        """Redis failed a call: it is not used for a while, and ``user_ids``
        (whose entries may now be stale) are dropped once it is back."""
        CACHE_ERRORS.inc()
        with self._lock:
            first = self._clock() >= self._down_until
            self._down_until = self._clock() + self._retry_after
        self._remember(user_ids)
        if first:
            log.warning("counter cache: Redis unavailable (%s); reading counters from SQL", exc)

    def _remember(self, user_ids: Iterable[str]) -> None:
        """Marks entries as possibly stale and makes sure a repair is coming,
        even if this process gets no further calls."""
        with self._lock:
            self._dirty.update(user_ids)
            if not self._dirty or self._repair is not None:
                return
            self._repair = threading.Timer(self._retry_after, self._run_repair)
            self._repair.daemon = True
            self._repair.start()

    def _run_repair(self) -> None:
        with self._lock:
            self._repair = None
        if self._clock() >= self._down_until:
            self._drop_stale()
        elif self._dirty:
            self._remember(())


class _Batch:
    """Counters gathered for one store: the newest version of each user's."""

    __slots__ = ("entries", "stored")

    def __init__(self) -> None:
        self.entries: dict[str, VersionedCounts] = {}
        self.stored = False

    def add(self, changed: dict[str, VersionedCounts]) -> None:
        entries = self.entries
        for user_id, entry in changed.items():
            held = entries.get(user_id)
            if held is None or (entry.version, entry.read_us) > (held.version, held.read_us):
                entries[user_id] = entry


class RedisRelationshipCache(RelationshipCache):
    """Relationships in Redis (``{prefix}:r:{FIRST}:SECOND``, a string with
    the versions, flags and mutual count), validated by the versions of the
    ``RedisCounterCache`` in the same round trip. While the counter cache
    considers Redis down, every read goes to SQL."""

    tier = "redis"

    def __init__(
        self,
        client: Client,
        inner: SqlRelationships,
        counters: RedisCounterCache,
        ttl_seconds: int = 3600,
        freshness: Freshness | None = None,
    ) -> None:
        super().__init__(inner, counters, freshness)
        self._sql = inner
        self._redis_counters = counters
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = counters.prefix

    def get_versioned(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> VersionedRelationships:
        if not self._redis_counters.usable():
            return self._sql.get_versioned(user_id, other_ids)
        return super().get_versioned(user_id, other_ids, newer_than)

    def interactable(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, bool]:
        if not self._redis_counters.usable():
            return self._sql.interactable(user_id, other_ids)
        return super().interactable(user_id, other_ids, newer_than)

    def _key(self, first: str, second: str) -> str:
        return f"{self._prefix}:r:{{{first}}}:{second}"

    def _lookup(
        self, user_id: str, others: list[str], newer_than: int, fill: bool = True
    ) -> tuple[VersionedRelationships, list[str]]:
        """Two round trips: the entries (one MGET on one server), then the
        counter versions of the users they concern (all of them to ``fill``).
        Versions read after the entries are as new or newer, so an entry
        they validate was valid when it was read."""
        try:
            stored = self._entries([self._key(*versions.pair(user_id, other)) for other in others])
            present = [other for other, value in zip(others, stored, strict=True) if value is not None]
            users = list(dict.fromkeys([user_id, *(others if fill else present)])) if fill or present else []
            pipe = self._client.pipeline(transaction=False)
            for user in users:
                pipe.hget(counts_key(self._prefix, user), "v")
            replies = pipe.execute() if users else []
        except REDIS_ERRORS as exc:
            self._redis_counters.failed(exc)
            return VersionedRelationships({}, {}), []
        current = {user: int(v) for user, v in zip(users, replies, strict=False) if v is not None}
        entries = [
            versions.decode_entry(user_id, other, value.decode())
            for other, value in zip(others, stored, strict=True)
            if value is not None
        ]
        return self._valid(user_id, present, entries, current, newer_than), [u for u in users if u not in current]

    def _entries(self, keys: list[str]) -> list[bytes | None]:
        """The values at ``keys``: one MGET on one server; on a cluster,
        whose keys sit on different slots, one GET each in a pipeline."""
        if not keys:
            return []
        if isinstance(self._client, Redis):
            return cast(list[bytes | None], self._client.mget(keys))  # the client does not decode
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return list(pipe.execute())

    def _store(self, user_id: str, read: VersionedRelationships) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for other, relationship in read.relationships.items():
                entry = versions.entry(user_id, other, read.versions[other], relationship, read.read_us)
                pipe.set(self._key(*versions.pair(user_id, other)), entry, ex=self._ttl)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._redis_counters.failed(exc)
