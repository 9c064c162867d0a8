"""The in-process layer: counters and relationships kept in this process's
memory (``cachetools`` LRUs), in front of SQL or of the Redis layer.

Writers publish what they committed (``publish``, wired to
``Storage.on_counters_committed``); a miss reads the layer below and fills
the cache the same guarded way (``cache/versions.py``), so an older value
never replaces a newer one. Entries are served only within the staleness
bound (``cache/freshness.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from cachetools import LRUCache

from storage.clock import now_us
from storage.types import VersionedCounts, VersionedRelationships

from . import versions
from .freshness import Freshness
from .readers import CounterReader
from .relationships import RelationshipCache, VersionedReader
from .sql import SqlCounters, SqlRelationships


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
        # Counts the changes made to the entries other than by reads (writes
        # published, announcements applied, entries dropped).
        self.generation = 0

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
        return versions.fill("in-process", found, missing, self._inner, self._keep)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def discard(self, user_ids: Iterable[str]) -> None:
        with self._lock:
            self.generation += 1
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
        """Committed counters (this process's writes, announcements of others')."""
        with self._lock:
            self.generation += 1
        self._keep(changed)

    def _keep(self, changed: dict[str, VersionedCounts]) -> None:
        with self._lock:
            for user_id, entry in changed.items():
                kept = versions.newer(self._entries.get(user_id), entry)
                if kept is not None:
                    self._entries[user_id] = kept


class InProcessRelationshipCache(RelationshipCache):
    """An LRU of relationships for one process, validated by the versions in
    an ``InProcessCounterCache``."""

    tier = "in-process"

    def __init__(
        self,
        inner: VersionedReader,
        counters: InProcessCounterCache,
        max_entries: int = 100_000,
        freshness: Freshness | None = None,
    ) -> None:
        super().__init__(inner, counters, freshness)
        self._local_counters = counters
        self.proves_tokens = isinstance(inner, SqlRelationships)  # as InProcessCounterCache
        # Entries are kept decoded: a hit parses nothing.
        self._entries: LRUCache[tuple[str, str], versions.Decoded] = LRUCache(max_entries)
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, tuple[str, ...]], _Flight] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _read_missing(
        self, user_id: str, missing: list[str], unknown_versions: list[str], newer_than: int
    ) -> VersionedRelationships:
        """Concurrent misses of the same relationships share one read below
        (after an entry ages out, every call in flight misses it at once):
        a call joins a read in flight unless it needs entries read after a
        time (``newer_than``) or a committed change reached the counters
        since that read began, so a call that starts after a write of this
        process answered never gets a read from before it."""
        if newer_than:
            return super()._read_missing(user_id, missing, unknown_versions, newer_than)
        key = (user_id, tuple(missing))
        with self._lock:
            flight = self._flights.get(key)
            joined = flight is not None and flight.generation == self._local_counters.generation
            if flight is None:
                flight = self._flights[key] = _Flight(self._local_counters.generation)
        if joined:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error  # the read failed for every call that waited for it, as it would have alone
            assert flight.read is not None
            return flight.read
        if flight.leader != threading.get_ident():
            return super()._read_missing(user_id, missing, unknown_versions, newer_than)
        try:
            flight.read = super()._read_missing(user_id, missing, unknown_versions, newer_than)
            return flight.read
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def _lookup(
        self, user_id: str, others: list[str], newer_than: int, fill: bool = True
    ) -> tuple[VersionedRelationships, list[str]]:
        if not fill and not self._local_counters.versions([user_id]):
            return VersionedRelationships({}, {}), []  # no entry of this user's can be valid
        current = self._local_counters.versions([user_id, *others])
        known = [other for other in others if other in current] if user_id in current else []
        with self._lock:
            entries = [self._entries.get(versions.pair(user_id, other)) for other in known]
        found = self._valid(user_id, known, entries, current, newer_than)
        return found, [u for u in dict.fromkeys([user_id, *others]) if u not in current]

    def _store(self, user_id: str, read: VersionedRelationships) -> None:
        with self._lock:
            for other, relationship in read.relationships.items():
                entry = versions.decoded(user_id, other, read.versions[other], relationship, read.read_us)
                self._entries[versions.pair(user_id, other)] = entry


class _Flight:
    """A read below in progress: who reads, the counters' generation when it
    began, and once done its result or what it raised."""

    __slots__ = ("leader", "generation", "done", "read", "error")

    def __init__(self, generation: int) -> None:
        self.leader = threading.get_ident()
        self.generation = generation
        self.done = threading.Event()
        self.read: VersionedRelationships | None = None
        self.error: Exception | None = None
