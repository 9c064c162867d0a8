"""The rules layer: each method turns one intent ("A follows B") into its
checks and exactly one transaction, and appends the intent's change events
(``_emit``) in that transaction: one per edge or record it creates or
removes, none when it changes nothing.

Every write first locks the users it involves (``Tx.lock_users``), then reads
what it decides on, then writes. Because every write touching a user holds
that user's lock, the checks stay true until commit: two crossing requests
connect once (C3), acceptances racing toward the limit stop at it (C6), and
no follow, request or connection slips in beside a block (I1).
"""

from __future__ import annotations

from collections.abc import Callable

from cache.readers import CounterReader, RelationshipReader
from cache.sql import SqlCounters, SqlRelationships
from ratelimit import Limiter
from storage.deletion import JobKind
from storage.types import Storage

from . import paging
from .accounts import AccountRules
from .blocks import BlockRules
from .connections import ConnectionRules
from .core import new_id
from .follows import FollowRules
from .jobs import Jobs, JobSettings
from .jobs import now_us as now_us  # the rules' clock, re-exported for the wiring and tests
from .policy import (
    MINIMIZE_LATENCY,
    BlockResult,
    ConnectionState,
    Consistency,
    Page,
    Policy,
    SendResult,
    Stats,
)
from .reads import DAY_US, ReadRules

__all__ = [
    "DAY_US",
    "MINIMIZE_LATENCY",
    "BlockResult",
    "ConnectionState",
    "Consistency",
    "Graph",
    "Page",
    "Policy",
    "SendResult",
    "Stats",
    "new_id",
    "now_us",
]


class Graph(FollowRules, ConnectionRules, BlockRules, AccountRules, ReadRules):
    """The rules layer, one rule family per module (see the README's "Layout")."""

    def __init__(
        self,
        storage: Storage,
        limiter: Limiter,
        policy: Policy = Policy(),
        clock: Callable[[], int] = now_us,
        counters: CounterReader | None = None,
        relationships: RelationshipReader | None = None,
        page_tokens: paging.PageTokens | None = None,
    ) -> None:
        self.storage = storage
        self.limiter = limiter
        self.policy = policy
        self._now = clock
        self._sql_counters = SqlCounters(storage)
        self._sql_relationships = SqlRelationships(storage)
        self.counters = counters if counters is not None else self._sql_counters
        self.relationships = relationships if relationships is not None else self._sql_relationships
        self.page_tokens = page_tokens if page_tokens is not None else paging.PageTokens.random()
        self.jobs = Jobs(
            storage,
            {JobKind.DELETE: self._delete_batch, JobKind.LIFT_BLOCKS: self._lift_batch},
            JobSettings(
                max_batch=policy.edge_batch,
                batch_seconds=policy.batch_seconds,
                lease_seconds=policy.job_lease_seconds,
            ),
        )
