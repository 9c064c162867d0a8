"""Counter readers: straight from SQL, and the in-process cache in front of it.

A cache keeps, per user, the counters with the highest version it has seen.
Writers publish what they committed (``publish``, wired to
``Storage.on_counters_committed``); a miss reads SQL and fills the cache the
same guarded way, so an older value never replaces a newer one. Entries
are served only within the staleness bound (``storage/freshness.py``).
"""

from __future__ import annotations

import threading
from typing import Sequence

from cachetools import LRUCache
from prometheus_client import Counter

from .freshness import Freshness, now_us
from .types import CounterReader, Counts, Storage, VersionedCounts

CACHE_LOOKUPS = Counter(
    "socialgraph_counter_cache_lookups_total",
    "Counter cache lookups per user id, by tier (in-process, redis) and result (hit or miss).",
    ["tier", "result"],
)


def load_missing(inner: CounterReader, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
    """What a cache stores for ``user_ids`` after a miss: SQL's counters, and
    zeros at version 0 for users without a counter row (any write beats it)."""
    read_us = now_us()
    loaded = inner.get(user_ids)
    return {u: loaded.get(u) or VersionedCounts(Counts(u), 0, read_us) for u in user_ids}


class SqlCounters:
    """Reads ``user_counters``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        return self._storage.read_only(lambda tx: tx.counts(user_ids))


class InProcessCounterCache:
    """An LRU of versioned counters in front of ``inner``, for one process."""

    def __init__(self, inner: CounterReader, max_entries: int = 100_000, freshness: Freshness | None = None) -> None:
        self._inner = inner
        self._freshness = freshness or Freshness()
        # Entries of a cache straight over SQL were all read by this process,
        # so their times can be compared with the positions it has seen.
        self.proves_tokens = isinstance(inner, SqlCounters)
        self._entries: LRUCache[str, VersionedCounts] = LRUCache(max_entries)
        self._lock = threading.Lock()

    def get(self, user_ids: Sequence[str], newer_than: int = 0) -> dict[str, VersionedCounts]:
        """``newer_than``: serve only entries read after that time (µs)."""
        found: dict[str, VersionedCounts] = {}
        now = now_us()
        with self._lock:
            for user_id in user_ids:
                entry = self._entries.get(user_id)  # a hit becomes the most recently used
                if entry is not None and entry.read_us > newer_than and self._freshness.fresh(entry.read_us, now):
                    found[user_id] = entry
        missing = [u for u in dict.fromkeys(user_ids) if u not in found]
        CACHE_LOOKUPS.labels("in-process", "hit").inc(len(found))
        if missing:
            CACHE_LOOKUPS.labels("in-process", "miss").inc(len(missing))
            loaded = load_missing(self._inner, missing)
            self.publish(loaded)
            found.update(loaded)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def discard(self, user_ids) -> None:
        with self._lock:
            for user_id in user_ids:
                self._entries.pop(user_id, None)

    def versions(self, user_ids: Sequence[str]) -> dict[str, int]:
        """The cached version of each user that has a fresh entry; reads nothing."""
        now = now_us()
        with self._lock:
            return {
                u: entry.version
                for u in user_ids
                if (entry := self._entries.get(u)) is not None and self._freshness.fresh(entry.read_us, now)
            }

    def publish(self, changed: dict[str, VersionedCounts]) -> None:
        with self._lock:
            for user_id, entry in changed.items():
                current = self._entries.get(user_id)
                if current is None or current.version < entry.version:
                    self._entries[user_id] = entry
                elif current.version == entry.version and current.read_us < entry.read_us:
                    # The same state, read again later: only its age changes.
                    self._entries[user_id] = VersionedCounts(current.counts, current.version, entry.read_us)
