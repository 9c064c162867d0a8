"""The innermost layer: counters and relationships straight from SQL."""

from __future__ import annotations

from collections.abc import Sequence

from storage.types import Relationship, Storage, VersionedCounts, VersionedRelationships


class SqlCounters:
    """Reads ``user_counters``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        return self._storage.read_only(lambda tx: tx.counts(user_ids))


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
