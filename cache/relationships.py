"""What the in-process and Redis relationship layers share.

A miss reads the layer below once for every missing pair, stores what it
read under the versions it was read at, and makes sure the counter layer
beside it holds the versions that validate it (``cache/versions.py``).
A batch of safety checks (``interactable``) takes the relationships that are
cached and asks the layer below only about the blocks of the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.clock import now_us
from storage.types import Relationship, VersionedCounts, VersionedRelationships

from . import versions
from .freshness import Freshness
from .readers import RELATIONSHIP_LOOKUPS


class VersionedReader(Protocol):
    """The layer below a relationship cache."""

    def get_versioned(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships: ...

    def interactable(self, user_id: str, other_ids: Sequence[str]) -> dict[str, bool]: ...


class CounterLayer(Protocol):
    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]: ...


class RelationshipCache:
    """A relationship layer over ``inner``, validated by ``counters``."""

    tier = ""

    def __init__(self, inner: VersionedReader, counters: CounterLayer, freshness: Freshness | None = None) -> None:
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
        RELATIONSHIP_LOOKUPS.labels(self.tier, "hit").inc(len(found.relationships))
        if missing:
            RELATIONSHIP_LOOKUPS.labels(self.tier, "miss").inc(len(missing))
            read = self._read_missing(user_id, missing, unknown_versions, newer_than)
            found.relationships.update(read.relationships)
            found.versions.update(read.versions)
            found = VersionedRelationships(found.relationships, found.versions, min(found.read_us, read.read_us))
        return found

    def _read_missing(
        self, user_id: str, missing: list[str], unknown_versions: list[str], newer_than: int
    ) -> VersionedRelationships:
        """Reads the missing relationships below, stores them, and fills
        the counter layer with the versions it lacks."""
        read = self._inner.get_versioned(user_id, missing)
        self._store(user_id, read)
        if unknown_versions:
            self._counters.get(unknown_versions)  # fills the counter layer
        return read

    def interactable(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, bool]:
        others = list(dict.fromkeys(other_ids))
        found, _unknown_versions = self._lookup(user_id, others, newer_than, fill=False)
        allowed = {other: relationship.can_interact for other, relationship in found.relationships.items()}
        missing = [other for other in others if other not in allowed]
        RELATIONSHIP_LOOKUPS.labels(self.tier, "hit").inc(len(allowed))
        if missing:
            RELATIONSHIP_LOOKUPS.labels(self.tier, "miss").inc(len(missing))
            allowed.update(self._inner.interactable(user_id, missing))
        return allowed

    def _lookup(
        self, user_id: str, others: list[str], newer_than: int, fill: bool = True
    ) -> tuple[VersionedRelationships, list[str]]:
        """The entries found valid, and the users whose versions the counter
        layer lacks; without ``fill`` (the caller stores nothing), only
        those of users that entries were found for. An entry is valid only
        while both users' versions are known, so a layer may skip the
        entries of users without one."""
        raise NotImplementedError

    def _store(self, user_id: str, read: VersionedRelationships) -> None:
        raise NotImplementedError

    def _valid(
        self,
        user_id: str,
        others: list[str],
        entries: Sequence[versions.Decoded | None],
        current: dict[str, int],
        newer_than: int,
    ) -> VersionedRelationships:
        """The entries (decoded, or None, per other) that may be served."""
        now = oldest = now_us()
        found = VersionedRelationships({}, {})
        for other, value in zip(others, entries, strict=False):
            served = versions.valid(user_id, other, value, current, self._freshness, newer_than, now)
            if served is not None:
                found.versions[other], found.relationships[other], read_us = served
                oldest = min(oldest, read_us)
        return VersionedRelationships(found.relationships, found.versions, oldest)
