"""The Redis counter cache: one hash per user, ``{prefix}:c:{user_id}``,
holding the six counters and their version ``v``.

Reads try Redis first; on a hit no SQL runs. Committed writes publish their
counters through ``set_counts.lua``, which keeps the higher version, so a
slower, older write can never overwrite a newer value; a miss fills the cache
the same way. Entries expire after a TTL as a safety net. Each entry holds ``t``, when its
values were read from SQL; it is served only within the staleness bound
after that (``storage/freshness.py``), so a writer that committed and died
before publishing leaves nothing stale for longer.

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
import uuid
from importlib import resources
from typing import Callable, Sequence

from prometheus_client import Counter
from redis import Redis
from redis.exceptions import RedisClusterException, RedisError

from .counters import CACHE_LOOKUPS, load_missing
from .freshness import Freshness, now_us
from .schema import COUNTER_COLUMNS
from .types import CounterReader, Counts, VersionedCounts

log = logging.getLogger(__name__)

REDIS_ERRORS = (RedisError, RedisClusterException)
SCRIPT = resources.files(__package__).joinpath("lua/set_counts.lua").read_text()
_FIELDS = (*COUNTER_COLUMNS, "t", "v")
_BATCH = 100  # users a script call stores on one server
_NAMES = " ".join((*COUNTER_COLUMNS, "t"))

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
        announce: bool = False,
        freshness: Freshness | None = None,
    ) -> None:
        """``announce``: every entry stored, and every entry dropped after an
        outage, is also published on ``channel`` (see ``storage/near.py``)."""
        self._client = client
        self._script = client.register_script(SCRIPT)
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
        now = now_us()
        for user_id, values in zip(unique, rows):
            if None in values or not self._freshness.fresh(int(values[-2]), now):
                missing.append(user_id)
            else:
                *counters, read_us, version = (int(v) for v in values)
                found[user_id] = VersionedCounts(Counts(user_id, *counters), version, read_us)
        CACHE_LOOKUPS.labels("redis", "hit").inc(len(found))
        if missing:
            CACHE_LOOKUPS.labels("redis", "miss").inc(len(missing))
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

    def _call(self, batch) -> tuple[list[str], list]:
        keys = [counts_key(self.prefix, user_id) for user_id, _entry in batch]
        values = [
            " ".join(map(str, (entry.version, *(getattr(entry.counts, name) for name in COUNTER_COLUMNS), entry.read_us)))
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
