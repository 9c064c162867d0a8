"""The Redis counter cache: one hash per user, ``{prefix}:c:{user_id}``,
holding the six counters and their version ``v``.

Reads try Redis first; on a hit no SQL runs. Committed writes publish their
counters through ``set_counts.lua``, which keeps the higher version, so a
slower, older write can never overwrite a newer value; a miss fills the cache
the same way. Entries expire after a TTL as a safety net.

While Redis is down or slow, reads go to SQL and the users whose publishes
failed are remembered; once Redis answers again their entries are deleted
(the next read refills them from SQL) before the cache is trusted again. A
timer keeps retrying that repair, so it happens even if this process serves
nothing more; only a process that dies first leaves entries to the TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources
from typing import Callable, Sequence

from prometheus_client import Counter
from redis.exceptions import RedisClusterException, RedisError

from .counters import CACHE_LOOKUPS, load_missing
from .schema import COUNTER_COLUMNS
from .types import CounterReader, Counts, VersionedCounts

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, RedisClusterException)
SCRIPT = resources.files(__package__).joinpath("lua/set_counts.lua").read_text()
_FIELDS = (*COUNTER_COLUMNS, "v")

CACHE_ERRORS = Counter(
    "socialgraph_counter_cache_errors_total",
    "Redis errors met by the counter cache (the call was served from SQL).",
)


def counts_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:c:{{{user_id}}}"


class RedisCounterCache:
    def __init__(
        self,
        client,
        inner: CounterReader,
        ttl_seconds: int = 3600,
        prefix: str = "sg",
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._inner = inner
        self._ttl = ttl_seconds
        self.prefix = prefix
        self._retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0
        self._dirty: set[str] = set()
        self._repair: threading.Timer | None = None
        self._lock = threading.Lock()

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
        missing = []
        for user_id, values in zip(unique, rows):
            if values[-1] is None:
                missing.append(user_id)
            else:
                *counters, version = (int(v) for v in values)
                found[user_id] = VersionedCounts(Counts(user_id, *counters), version)
        CACHE_LOOKUPS.labels("hit").inc(len(found))
        if missing:
            CACHE_LOOKUPS.labels("miss").inc(len(missing))
            loaded = load_missing(self._inner, missing)
            self.publish(loaded)
            found.update(loaded)
        return found

    # ----------------------------------------------------------------- writes

    def publish(self, changed: dict[str, VersionedCounts]) -> None:
        """Stores committed counters, keeping the higher version. Never raises."""
        if not changed:
            return
        if not self.usable():
            self._remember(changed)
            return
        try:
            self._store(changed)
        except REDIS_ERRORS as exc:
            self.failed(exc, changed)

    def _store(self, changed: dict[str, VersionedCounts]) -> None:
        # EVAL rather than EVALSHA: Redis Cluster pipelines refuse EVALSHA,
        # and Redis caches the compiled script by its hash either way.
        pipe = self._client.pipeline(transaction=False)
        for user_id, entry in changed.items():
            counts = entry.counts
            args = [entry.version, self._ttl]
            for name in COUNTER_COLUMNS:
                args += [name, getattr(counts, name)]
            pipe.execute_command("EVAL", SCRIPT, 1, counts_key(self.prefix, user_id), *args)
        pipe.execute()

    # ---------------------------------------------------------------- outages

    def usable(self) -> bool:
        """False while Redis is considered down; after the pause, the entries
        that may have missed a publish are dropped before the cache is trusted."""
        if self._clock() < self._down_until:
            return False
        return self._drop_stale()

    def _drop_stale(self) -> bool:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        if not dirty:
            return True
        try:
            pipe = self._client.pipeline(transaction=False)
            for user_id in dirty:
                pipe.delete(counts_key(self.prefix, user_id))
            pipe.execute()
        except REDIS_ERRORS as exc:
            self.failed(exc, dirty)
            return False
        log.info("counter cache: Redis is back; dropped %d possibly stale entries", len(dirty))
        return True

    def failed(self, exc: Exception, user_ids=()) -> None:
        """Redis failed a call: it is not used for a while, and ``user_ids``
        (whose entries may now be stale) are dropped once it is back."""
        CACHE_ERRORS.inc()
        with self._lock:
            first = self._clock() >= self._down_until
            self._down_until = self._clock() + self._retry_after
        self._remember(user_ids)
        if first:
            log.warning("counter cache: Redis unavailable (%s); reading counters from SQL", exc)

    def _remember(self, user_ids) -> None:
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
