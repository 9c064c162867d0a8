"""Relationship readers: straight from SQL, and caches in front of it.

A cached relationship carries the counter versions of its two users as the
SQL statement that read it saw them. Every edge change bumps the counter
version of at least one of the pair (see ``VersionedRelationships``), and
every committed change is published to the counter cache before the write
returns, so an entry is served only while both users' versions in the
counter cache still equal the ones it was read with. Writes therefore never
touch this cache: a newer version makes older entries misses, and a miss
reads SQL and stores the result under the versions it was read with.

An entry is served only within the staleness bound after the SQL snapshot
it came from (``storage/freshness.py``), whatever the versions say: a writer
that died before publishing leaves versions that validate stale entries.

An entry is kept once per unordered pair, from the side of the user whose id
sorts first, and turned around for the other user. Its text starts with a
format version; an entry of another format is a miss.
"""

from __future__ import annotations

import threading
from typing import Sequence

from cachetools import LRUCache
from prometheus_client import Counter

from .cache import REDIS_ERRORS, RedisCounterCache, counts_key
from .counters import InProcessCounterCache
from .freshness import Freshness, now_us
from .types import FLAGS, Relationship, Storage, VersionedRelationships

LOOKUPS = Counter(
    "socialgraph_relationship_cache_lookups_total",
    "Relationship cache lookups per pair, by tier (in-process, redis) and result (hit or miss).",
    ["tier", "result"],
)

class SqlRelationships:
    """Reads relationships from SQL, with the versions they were read at."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        return self.get_versioned(user_id, other_ids).relationships

    def get_versioned(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        return self._storage.read_only(lambda tx: tx.relationships(user_id, other_ids))

    def interactable(self, user_id: str, other_ids: Sequence[str]) -> dict[str, bool]:
        blocked = self._storage.read_only(lambda tx: tx.blocked_among(user_id, other_ids))
        return {other: other not in blocked for other in other_ids}


FORMAT = "r1"


def encode(versions: tuple[int, int], relationship: Relationship, read_us: int) -> str:
    """An entry: its format, when it was read, the two users' versions, the
    flags and the mutual count."""
    flags = "".join("1" if getattr(relationship, name) else "0" for name in FLAGS)
    return f"{FORMAT}:{read_us}:{versions[0]}:{versions[1]}:{flags}:{relationship.mutual_connections_count}"


def decode(value: str, other_id: str) -> tuple[tuple[int, int], Relationship, int] | None:
    """An entry as stored, seen by the pair's first user (``other_id`` is the
    second), with its ``read_us``; None for an entry of another format."""
    parts = value.split(":")
    if len(parts) != 6 or parts[0] != FORMAT or len(parts[4]) != len(FLAGS):
        return None
    _format, read_us, first_version, second_version, flags, mutual = parts
    relationship = Relationship.of(other_id, [bit == "1" for bit in flags], int(mutual))
    return (int(first_version), int(second_version)), relationship, int(read_us)


def _pair(user_id: str, other_id: str) -> tuple[str, str]:
    return (user_id, other_id) if user_id < other_id else (other_id, user_id)


def _turned(versions: tuple[int, int], relationship: Relationship, viewer_id: str):
    """The versions and relationship seen by ``viewer_id`` from the other side."""
    return (versions[1], versions[0]), relationship.seen_by_other(viewer_id)


def _entry(user_id: str, first: str, versions: tuple[int, int], relationship: Relationship, read_us: int) -> str:
    """What ``user_id`` read, stored as the pair's first user sees it."""
    if user_id != first:
        versions, relationship = _turned(versions, relationship, user_id)
    return encode(versions, relationship, read_us)


class _Cache:
    """What the in-process and Redis caches share: misses read the tier
    below once for every missing pair, store what they read, and make sure
    the counter cache holds the versions that validate it."""

    def __init__(self, inner, counters, freshness: Freshness | None = None) -> None:
        self._inner = inner
        self._counters = counters
        self._freshness = freshness or Freshness()

    def get(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, Relationship]:
        """``newer_than``: serve only entries read after that time (µs)."""
        return self.get_versioned(user_id, other_ids, newer_than).relationships

    def get_versioned(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> VersionedRelationships:
        others = list(dict.fromkeys(other_ids))
        found, unknown_versions = self._lookup(user_id, others, newer_than)
        missing = [other for other in others if other not in found.relationships]
        LOOKUPS.labels(self.tier, "hit").inc(len(found.relationships))
        if missing:
            LOOKUPS.labels(self.tier, "miss").inc(len(missing))
            read = self._inner.get_versioned(user_id, missing)
            self._store(user_id, read)
            found.relationships.update(read.relationships)
            found.versions.update(read.versions)
            found = VersionedRelationships(found.relationships, found.versions, min(found.read_us, read.read_us))
            if unknown_versions:
                self._counters.get(unknown_versions)  # fills the counter cache
        return found

    def interactable(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, bool]:
        others = list(dict.fromkeys(other_ids))
        found, _unknown_versions = self._lookup(user_id, others, newer_than)
        allowed = {other: relationship.can_interact for other, relationship in found.relationships.items()}
        missing = [other for other in others if other not in allowed]
        LOOKUPS.labels(self.tier, "hit").inc(len(allowed))
        if missing:
            LOOKUPS.labels(self.tier, "miss").inc(len(missing))
            allowed.update(self._inner.interactable(user_id, missing))
        return allowed

    def _lookup(self, user_id: str, others: list[str], newer_than: int) -> tuple[VersionedRelationships, list[str]]:
        """The entries found valid, and the users whose versions the counter cache lacks."""
        raise NotImplementedError

    def _store(self, user_id: str, read: VersionedRelationships) -> None:
        raise NotImplementedError

    def _valid(self, user_id, others, entries, versions, newer_than: int) -> VersionedRelationships:
        """The entries (stored value or None per other) whose versions are the current ones."""
        now = oldest = now_us()
        found = VersionedRelationships({}, {})
        for other, value in zip(others, entries):
            decoded = None if value is None else decode(value, _pair(user_id, other)[1])
            if decoded is None:
                continue
            first, second = _pair(user_id, other)
            stored, relationship, read_us = decoded
            current = stored == (versions.get(first), versions.get(second))
            if current and read_us > newer_than and self._freshness.fresh(read_us, now):
                if user_id != first:
                    stored, relationship = _turned(stored, relationship, first)
                found.relationships[other] = relationship
                found.versions[other] = stored
                oldest = min(oldest, read_us)
        return VersionedRelationships(found.relationships, found.versions, oldest)


class InProcessRelationshipCache(_Cache):
    """An LRU of relationships for one process, validated by the versions in
    an ``InProcessCounterCache``."""

    tier = "in-process"

    def __init__(
        self, inner, counters: InProcessCounterCache, max_entries: int = 100_000, freshness: Freshness | None = None
    ) -> None:
        super().__init__(inner, counters, freshness)
        self.proves_tokens = isinstance(inner, SqlRelationships)  # as InProcessCounterCache
        self._entries: LRUCache[tuple[str, str], str] = LRUCache(max_entries)
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _lookup(self, user_id, others, newer_than):
        versions = self._counters.versions([user_id, *others])
        with self._lock:
            entries = [self._entries.get(_pair(user_id, other)) for other in others]
        found = self._valid(user_id, others, entries, versions, newer_than)
        return found, [u for u in dict.fromkeys([user_id, *others]) if u not in versions]

    def _store(self, user_id, read):
        with self._lock:
            for other, relationship in read.relationships.items():
                pair = _pair(user_id, other)
                self._entries[pair] = _entry(user_id, pair[0], read.versions[other], relationship, read.read_us)


class RedisRelationshipCache(_Cache):
    """Relationships in Redis (``{prefix}:r:{FIRST}:SECOND``, a string with
    the versions, flags and mutual count), validated by the versions of the
    ``RedisCounterCache`` in the same round trip. While the counter cache
    considers Redis down, every read goes to SQL."""

    tier = "redis"

    def __init__(
        self,
        client,
        inner: SqlRelationships,
        counters: RedisCounterCache,
        ttl_seconds: int = 3600,
        freshness: Freshness | None = None,
    ) -> None:
        super().__init__(inner, counters, freshness)
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = counters.prefix

    def get_versioned(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> VersionedRelationships:
        if not self._counters.usable():
            return self._inner.get_versioned(user_id, other_ids)
        return super().get_versioned(user_id, other_ids, newer_than)

    def interactable(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, bool]:
        if not self._counters.usable():
            return self._inner.interactable(user_id, other_ids)
        return super().interactable(user_id, other_ids, newer_than)

    def _key(self, first: str, second: str) -> str:
        return f"{self._prefix}:r:{{{first}}}:{second}"

    def _lookup(self, user_id, others, newer_than):
        users = list(dict.fromkeys([user_id, *others]))
        try:
            pipe = self._client.pipeline(transaction=False)
            for other in others:
                pipe.get(self._key(*_pair(user_id, other)))
            for user in users:
                pipe.hget(counts_key(self._prefix, user), "v")
            replies = pipe.execute()
        except REDIS_ERRORS as exc:
            self._counters.failed(exc)
            return VersionedRelationships({}, {}), []
        versions = {user: int(v) for user, v in zip(users, replies[len(others):]) if v is not None}
        entries = [None if value is None else value.decode() for value in replies[: len(others)]]
        return self._valid(user_id, others, entries, versions, newer_than), [u for u in users if u not in versions]

    def _store(self, user_id, read):
        try:
            pipe = self._client.pipeline(transaction=False)
            for other, relationship in read.relationships.items():
                first, second = _pair(user_id, other)
                entry = _entry(user_id, first, read.versions[other], relationship, read.read_us)
                pipe.set(self._key(first, second), entry, ex=self._ttl)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._counters.failed(exc)
