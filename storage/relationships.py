"""Relationship readers: straight from SQL, and caches in front of it.

A cached relationship carries the counter versions of its two users as the
SQL statement that read it saw them. Every edge change bumps the counter
version of at least one of the pair (see ``VersionedRelationships``), and
every committed change is published to the counter cache before the write
returns, so an entry is served only while both users' versions in the
counter cache still equal the ones it was read with. Writes therefore never
touch this cache: a newer version makes older entries misses, and a miss
reads SQL and stores the result under the versions it was read with.

An entry is kept once per unordered pair, from the side of the user whose id
sorts first, and turned around for the other user.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

from prometheus_client import Counter

from .cache import REDIS_ERRORS, RedisCounterCache, counts_key
from .counters import InProcessCounterCache
from .types import Relationship, Storage, VersionedRelationships

LOOKUPS = Counter(
    "socialgraph_relationship_cache_lookups_total",
    "Relationship cache lookups per pair, by result (hit or miss).",
    ["result"],
)

_FLAGS = (
    "following",
    "followed_by",
    "connected",
    "outgoing_request_pending",
    "incoming_request_pending",
    "blocking",
    "blocked_by",
)


class SqlRelationships:
    """Reads relationships from SQL, with the versions they were read at."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        return self.get_versioned(user_id, other_ids).relationships

    def get_versioned(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        return self._storage.read_only(lambda tx: tx.relationships(user_id, other_ids))


def encode(first: str, relationship: Relationship, versions: dict[str, int], second: str) -> str:
    """``first`` and ``second`` versions, flags and mutual count, from ``first``'s side."""
    if relationship.other_user_id != second:
        raise ValueError("relationship must be seen from the first user")
    flags = "".join("1" if getattr(relationship, name) else "0" for name in _FLAGS)
    return f"{versions[first]}:{versions[second]}:{flags}:{relationship.mutual_connections_count}"


def decode(value: str, first: str, second: str) -> tuple[int, int, Relationship]:
    first_version, second_version, flags, mutual = value.split(":")
    relationship = Relationship(second, *(bit == "1" for bit in flags), int(mutual))
    return int(first_version), int(second_version), relationship


def _pair(user_id: str, other_id: str) -> tuple[str, str]:
    return (user_id, other_id) if user_id < other_id else (other_id, user_id)


def _from_side(user_id: str, first: str, relationship: Relationship) -> Relationship:
    """A stored entry (seen by ``first``) as ``user_id`` sees it."""
    return relationship if user_id == first else relationship.seen_by_other(first)


def _first_side(user_id: str, first: str, relationship: Relationship) -> Relationship:
    """A relationship read by ``user_id`` as ``first`` sees it."""
    return relationship if user_id == first else relationship.seen_by_other(user_id)


class _Cache:
    """What the in-process and Redis caches share: misses read SQL once for
    every missing pair, store what they read, and make sure the counter
    cache holds the versions that validate it."""

    def __init__(self, inner: SqlRelationships, counters) -> None:
        self._inner = inner
        self._counters = counters

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        others = list(dict.fromkeys(other_ids))
        found, unknown_versions = self._lookup(user_id, others)
        missing = [other for other in others if other not in found]
        LOOKUPS.labels("hit").inc(len(found))
        if missing:
            LOOKUPS.labels("miss").inc(len(missing))
            read = self._inner.get_versioned(user_id, missing)
            self._store(user_id, read)
            found.update(read.relationships)
            if unknown_versions:
                self._counters.get(unknown_versions)  # fills the counter cache
        return found

    def _lookup(self, user_id: str, others: list[str]) -> tuple[dict[str, Relationship], list[str]]:
        raise NotImplementedError

    def _store(self, user_id: str, read: VersionedRelationships) -> None:
        raise NotImplementedError


class InProcessRelationshipCache(_Cache):
    """An LRU of relationships for one process, validated by the versions in
    an ``InProcessCounterCache``."""

    def __init__(self, inner: SqlRelationships, counters: InProcessCounterCache, max_entries: int = 100_000) -> None:
        super().__init__(inner, counters)
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def _lookup(self, user_id, others):
        found: dict[str, Relationship] = {}
        versions = self._counters.versions([user_id, *others])
        with self._lock:
            for other in others:
                first, second = _pair(user_id, other)
                value = self._entries.get((first, second))
                if value is None:
                    continue
                first_version, second_version, relationship = decode(value, first, second)
                if (first_version, second_version) == (versions.get(first), versions.get(second)):
                    self._entries.move_to_end((first, second))
                    found[other] = _from_side(user_id, first, relationship)
        return found, [u for u in dict.fromkeys([user_id, *others]) if u not in versions]

    def _store(self, user_id, read):
        with self._lock:
            for other, relationship in read.relationships.items():
                first, second = _pair(user_id, other)
                seen = _first_side(user_id, first, relationship)
                self._entries[(first, second)] = encode(first, seen, read.versions, second)
                self._entries.move_to_end((first, second))
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class RedisRelationshipCache(_Cache):
    """Relationships in Redis (``{prefix}:r:{FIRST}:SECOND``, a string with
    the versions, flags and mutual count), validated by the versions of the
    ``RedisCounterCache`` in the same round trip. While the counter cache
    considers Redis down, every read goes to SQL."""

    def __init__(self, client, inner: SqlRelationships, counters: RedisCounterCache, ttl_seconds: int = 3600) -> None:
        super().__init__(inner, counters)
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = counters.prefix

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        if not self._counters.usable():
            return self._inner.get(user_id, other_ids)
        return super().get(user_id, other_ids)

    def _key(self, first: str, second: str) -> str:
        return f"{self._prefix}:r:{{{first}}}:{second}"

    def _lookup(self, user_id, others):
        users = list(dict.fromkeys([user_id, *others]))
        pairs = [_pair(user_id, other) for other in others]
        try:
            pipe = self._client.pipeline(transaction=False)
            for first, second in pairs:
                pipe.get(self._key(first, second))
            for user in users:
                pipe.hget(counts_key(self._prefix, user), "v")
            replies = pipe.execute()
        except REDIS_ERRORS as exc:
            self._counters.failed(exc)
            return {}, []
        versions = {user: int(v) for user, v in zip(users, replies[len(pairs):]) if v is not None}
        found: dict[str, Relationship] = {}
        for other, (first, second), value in zip(others, pairs, replies):
            if value is None:
                continue
            first_version, second_version, relationship = decode(value.decode(), first, second)
            if (first_version, second_version) == (versions.get(first), versions.get(second)):
                found[other] = _from_side(user_id, first, relationship)
        return found, [user for user in users if user not in versions]

    def _store(self, user_id, read):
        try:
            pipe = self._client.pipeline(transaction=False)
            for other, relationship in read.relationships.items():
                first, second = _pair(user_id, other)
                seen = _first_side(user_id, first, relationship)
                pipe.set(self._key(first, second), encode(first, seen, read.versions, second), ex=self._ttl)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._counters.failed(exc)
