"""The one reader interface every cache layer implements and wraps.

A layer is a ``CounterReader`` and a ``RelationshipReader`` in front of
another one (its ``inner``), the way a datastore proxy wraps a datastore:
SQL at the bottom (``cache/sql.py``), then Redis (``cache/redis_cache.py``),
then process memory (``cache/local.py``, switched by ``cache/near.py``).
``cache/build.py`` stacks the layers a deployment needs. Caching layers also
take ``newer_than`` (µs): serve only entries read from SQL after it, which
``at_least_as_fresh`` reads use when the layer ``proves_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client import Counter

from storage.types import Relationship, VersionedCounts

COUNTER_LOOKUPS = Counter(
    "socialgraph_counter_cache_lookups_total",
    "Counter cache lookups per user id, by tier (in-process, redis) and result (hit or miss).",
    ["tier", "result"],
)
RELATIONSHIP_LOOKUPS = Counter(
    "socialgraph_relationship_cache_lookups_total",
    "Relationship cache lookups per pair, by tier (in-process, redis) and result (hit or miss).",
    ["tier", "result"],
)


class RelationshipReader(Protocol):
    """Reads relationships; the relationship caches wrap one of these."""

    def get(self, user_id: str, other_ids: Sequence[str]) -> dict[str, Relationship]:
        """The relationship with every distinct id of ``other_ids``, from ``user_id``'s side."""
        ...

    def interactable(self, user_id: str, other_ids: Sequence[str]) -> dict[str, bool]:
        """Whether no block stands between ``user_id`` and each distinct id of
        ``other_ids``: cached relationships where there are, and for the rest
        only the blocks (cheaper than whole relationships, and not cached)."""
        ...


class CounterReader(Protocol):
    """Reads per-user counters; the counter caches wrap one of these."""

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        """Counters of the users that have any; others are absent."""
        ...


class TokenCounterReader(CounterReader, Protocol):
    """A counter cache that ``proves_tokens``: ``newer_than`` (µs) serves
    only entries read from SQL after it."""

    proves_tokens: bool

    def get(self, user_ids: Sequence[str], newer_than: int = 0) -> dict[str, VersionedCounts]: ...


class TokenRelationshipReader(RelationshipReader, Protocol):
    """A relationship cache that ``proves_tokens``, as ``TokenCounterReader``."""

    proves_tokens: bool

    def get(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, Relationship]: ...

    def interactable(self, user_id: str, other_ids: Sequence[str], newer_than: int = 0) -> dict[str, bool]: ...
