"""The storage contract: value types, and the transaction interface the
rules layer works through.

``Storage.read_write(fn)`` runs ``fn(tx)`` in one transaction that commits
when ``fn`` returns and rolls back when it raises; transient conflicts
(serialization failures, deadlocks, a busy SQLite file) rerun ``fn`` from the
start a bounded number of times, so ``fn`` must not have side effects outside
the transaction. ``read_only(fn)`` is the same for reads.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .clock import now_us
from .positions import Positions

if TYPE_CHECKING:  # storage/deletion.py imports this module
    from .deletion import JobKind

T = TypeVar("T")


class Role(enum.IntEnum):
    MEMBER = 1
    MODERATOR = 2
    ADMIN = 3

    @property
    def is_staff(self) -> bool:
        return self is not Role.MEMBER


class ReportReason(enum.IntEnum):
    SPAM = 1
    HARASSMENT = 2
    HATE = 3
    INAPPROPRIATE_CONTENT = 4
    IMPERSONATION = 5
    OTHER = 6


class ReportStatus(enum.IntEnum):
    OPEN = 1
    DISMISSED = 2
    ACTIONED = 3


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    role: Role
    display_name: str
    avatar_url: str
    created_us: int


@dataclass(frozen=True, slots=True)
class RelatedUser:
    user_id: str
    since_us: int
    display_name: str
    avatar_url: str


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    request_id: str
    requester_id: str
    recipient_id: str
    message: str
    created_us: int


@dataclass(frozen=True, slots=True)
class Block:
    block_id: str
    blocker_id: str
    blocked_id: str
    reason: str
    created_us: int


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    reporter_id: str
    reported_id: str
    reason: ReportReason
    details: str
    status: ReportStatus
    resolved_by: str
    note: str
    created_us: int
    resolved_us: int | None


@dataclass(frozen=True, slots=True)
class Counts:
    user_id: str
    followers: int = 0
    following: int = 0
    connections: int = 0
    incoming_requests: int = 0
    outgoing_requests: int = 0
    blocked: int = 0


@dataclass(frozen=True, slots=True)
class VersionedCounts:
    """Counters as committed, with the row's version. Versions only grow
    (each change sets ``max(version + 1, now in microseconds)``, so a user
    deleted and seen again still gets larger versions); a cache keeps the
    highest version it has seen. ``read_us``: when the SQL snapshot that
    holds this state was taken at the latest (see ``cache/freshness.py``);
    entries made without one count as read now."""

    counts: Counts
    version: int
    read_us: int = field(default_factory=now_us, compare=False)


_SEEN_BY_OTHER = "seen_by_other"  # a flag's metadata: the flag the other user sees


def blocked_either_way(blocking: bool, blocked_by: bool) -> bool:
    """The block predicate: a block in either direction stands between two
    users (I1). Every check that two users may interact asks this."""
    return blocking or blocked_by


@dataclass(frozen=True, slots=True)
class Relationship:
    """How ``other_user_id`` relates to the viewer. Its boolean fields are
    the relationship's flags (``FLAGS``), each one stored edge seen from one
    side; storage, the caches and the wire all take the list from here."""

    other_user_id: str
    following: bool = field(metadata={_SEEN_BY_OTHER: "followed_by"})
    followed_by: bool = field(metadata={_SEEN_BY_OTHER: "following"})
    connected: bool = field(metadata={_SEEN_BY_OTHER: "connected"})
    outgoing_request_pending: bool = field(metadata={_SEEN_BY_OTHER: "incoming_request_pending"})
    incoming_request_pending: bool = field(metadata={_SEEN_BY_OTHER: "outgoing_request_pending"})
    blocking: bool = field(metadata={_SEEN_BY_OTHER: "blocked_by"})
    blocked_by: bool = field(metadata={_SEEN_BY_OTHER: "blocking"})
    mutual_connections_count: int

    @property
    def can_interact(self) -> bool:
        return not blocked_either_way(self.blocking, self.blocked_by)

    @classmethod
    def of(cls, other_user_id: str, flags: Iterable[bool], mutual_connections_count: int) -> Relationship:
        """A relationship from its flags' values, in ``FLAGS`` order."""
        return cls(other_user_id, *flags, mutual_connections_count)  # type: ignore[call-arg]

    def seen_by_other(self, viewer_id: str) -> Relationship:
        """The same relationship from the other user's side; ``viewer_id`` is
        the user this one is seen from."""
        return Relationship.of(viewer_id, _mirrored(self), self.mutual_connections_count)


# The relationship's flags, in field order (the relationship caches store
# them in this order), and for each the flag the other user sees.
FLAGS: tuple[str, ...] = tuple(f.name for f in fields(Relationship) if _SEEN_BY_OTHER in f.metadata)
_mirrored = operator.attrgetter(*(f.metadata[_SEEN_BY_OTHER] for f in fields(Relationship) if f.name in FLAGS))


@dataclass(frozen=True, slots=True)
class VersionedRelationships:
    """Relationships with, for each, the counter-row versions of its two
    users (the viewer's, the other's) as the statement that read it saw them
    (0 for a user without a counter row). Every edge change bumps the version
    of at least one of its two users, so a relationship cached with both
    versions is current for as long as both versions are. ``read_us``: when
    the snapshot of the oldest of them was taken at the latest."""

    relationships: dict[str, Relationship]
    versions: dict[str, tuple[int, int]]
    read_us: int = field(default_factory=now_us, compare=False)


@dataclass(frozen=True, slots=True)
class Pair:
    """Every stored edge between two users, from the first user's side: what
    a write decides on, read in one round trip."""

    following_since: int | None
    followed_since: int | None
    connected_since: int | None
    outgoing: ConnectionRequest | None
    incoming: ConnectionRequest | None
    blocking: Block | None
    blocked_by: bool

    @property
    def blocked_either_way(self) -> bool:
        return blocked_either_way(self.blocking is not None, self.blocked_by)


@dataclass(frozen=True, slots=True)
class FeedSource:
    author_id: str
    include_private: bool
    since_us: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """Keyset position: the last item returned, as (created_us, key)."""

    created_us: int
    key: str


@dataclass(frozen=True, slots=True)
class Totals:
    users: int
    follows: int
    connections: int
    pending_requests: int
    blocks: int
    open_reports: int


@dataclass(frozen=True, slots=True)
class Removed:
    """What a cascade removed."""

    follows: int = 0
    connections: int = 0
    requests: int = 0
    blocks: int = 0


class EventKind(enum.IntEnum):
    """What an event says happened (socialgraph.v1.EventKind)."""

    FOLLOWED = 1
    UNFOLLOWED = 2
    FOLLOWER_REMOVED = 3
    CONNECTION_REQUESTED = 4
    CONNECTION_REQUEST_CANCELLED = 5
    CONNECTION_REQUEST_DECLINED = 6
    CONNECTED = 7
    CONNECTION_REMOVED = 8
    BLOCKED = 9
    UNBLOCKED = 10
    USER_UPSERTED = 11
    USER_DELETED = 12
    REPORT_FILED = 13
    REPORT_RESOLVED = 14


class Cause(enum.IntEnum):
    """Why a change happened (socialgraph.v1.ChangeCause)."""

    REQUEST = 1
    AUTO_FOLLOW = 2
    BLOCK = 3
    USER_DELETED = 4
    PROMOTION = 5


@dataclass(frozen=True, slots=True)
class Change:
    """One event a write appends to the outbox. ``payload`` holds the
    kind's fields in the shape of socialgraph.v1.Event's JSON form (``cause``
    and one of ``request``, ``connected``, ``block``, ``user``, ``report``),
    with enums as numbers."""

    kind: EventKind
    actor_id: str
    subject_id: str
    occurred_us: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A committed event at position ``seq`` of the log."""

    seq: int
    event_id: str
    kind: EventKind
    actor_id: str
    subject_id: str
    occurred_us: int
    payload: dict[str, Any]
    # A commit position at or after its transaction's commit (None: unknown).
    position: int | None = None


@dataclass(frozen=True, slots=True)
class EventRange:
    """What one read of the log found: the matching events after a
    position, the position the reader has now seen everything up to, and
    the newest committed position when it read."""

    events: list[Event]
    through: int
    head: int


@dataclass(frozen=True, slots=True)
class Cascade:
    """The edges a user deletion (or one batch of it) removed, each as its
    users; whether it removed the user's record; and, for a batch, whether
    more may be left (it found as many edges as its limit: what it removed
    may be fewer, when other jobs took some of them meanwhile)."""

    follows: list[tuple[str, str]]  # (follower, followee)
    connections: list[tuple[str, str]]  # (user, other), one per pair
    requests: list[tuple[str, str, str]]  # (request_id, requester, recipient)
    blocks: list[tuple[str, str]]  # (blocker, blocked)
    user_existed: bool = False
    more: bool = False

    @property
    def removed(self) -> Removed:
        return Removed(len(self.follows), len(self.connections), len(self.requests), len(self.blocks))


@dataclass(frozen=True, slots=True)
class CounterFix:
    """A counter that ``recount`` found wrong: what was stored, what is true."""

    user_id: str
    column: str
    stored: int
    actual: int


class Tx(Protocol):
    """Operations inside one transaction. Edge writes keep the counters of
    the users they involve in step; callers never touch counters."""

    # Locks and users.
    def lock_users(self, user_ids: Iterable[str]) -> dict[str, Counts]: ...
    def get_user(self, user_id: str) -> User | None: ...
    def upsert_user(self, user: User, now_us: int) -> User: ...
    def role_of(self, user_id: str) -> Role: ...

    def pair(self, user_id: str, other_id: str) -> Pair: ...

    # Follows.
    def insert_follow(self, follower_id: str, followee_id: str, now_us: int) -> None: ...
    def delete_follow(self, follower_id: str, followee_id: str) -> bool: ...

    # Connections and requests.
    def insert_connection(self, user_id: str, other_id: str, now_us: int) -> None: ...
    def delete_connection(self, user_id: str, other_id: str) -> bool: ...
    def insert_request(self, request: ConnectionRequest) -> None: ...
    def delete_request(self, requester_id: str, recipient_id: str) -> str | None:
        """Removes the pending request; returns its id, or None when there was none."""

    # Blocks.
    def insert_block(self, block: Block) -> None: ...
    def delete_block(self, blocker_id: str, blocked_id: str) -> bool: ...

    # Big accounts (storage/deletion.py): tombstones, jobs and their batches.
    def deleting(self, user_ids: Iterable[str]) -> set[str]:
        """The users among ``user_ids`` whose deletion is in progress."""
    def start_deletion(self, user_id: str, now_us: int) -> tuple[Removed, bool] | None: ...
    def delete_edges(self, user_id: str, limit: int) -> Cascade:
        """Removes up to ``limit`` edges of a tombstoned user; ``more`` says whether any may be left."""
    def finish_deletion(self, user_id: str) -> None: ...
    def lock_hold(self) -> float | None:
        """Seconds a committed batch held other users' counter rows locked; None when it took none."""
    def zero_deleting_counters(self) -> list[str]: ...
    def lift_blocks(self, blocked_id: str, limit: int) -> tuple[list[str], bool]:
        """Lifts up to ``limit`` blocks against ``blocked_id`` (not those of
        users being deleted: their deletion removes them); returns the
        blockers, and whether more may be left."""
    def add_job(self, user_id: str, kind: JobKind, now_us: int) -> None: ...
    def claim_job(
        self, owner: str, now_us: int, lease_us: int, job: tuple[str, JobKind] | None = None
    ) -> tuple[str, JobKind] | None: ...
    def renew_job(self, user_id: str, kind: JobKind, owner: str, until_us: int) -> bool: ...
    def release_jobs(self, owner: str, job: tuple[str, JobKind] | None = None) -> int: ...
    def finish_job(self, user_id: str, kind: JobKind) -> None: ...
    def pending_jobs(self) -> list[tuple[str, JobKind]]: ...

    # Reports.
    def insert_report(self, report: Report) -> None: ...
    def get_report(self, report_id: str) -> Report | None: ...
    def update_report(self, report: Report) -> None: ...

    # Reads.
    def relationships(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships: ...
    def counts(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]: ...
    def blocked_among(self, user_id: str, candidate_ids: Sequence[str]) -> set[str]: ...
    def mutual_connections(self, user_id: str, other_id: str, limit: int) -> tuple[int, list[RelatedUser]]: ...
    # The three user lists are empty while the owner's deletion is in progress.
    def list_followers(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]: ...
    def list_following(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]: ...
    def list_connections(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]: ...
    def list_requests(
        self, user_id: str, incoming: bool, after: Cursor | None, limit: int
    ) -> list[ConnectionRequest]: ...
    def list_blocked(self, user_id: str, after: Cursor | None, limit: int) -> list[Block]: ...
    def list_feed_sources(self, user_id: str, after: Cursor | None, limit: int) -> list[FeedSource]: ...
    def list_reports(self, status: ReportStatus, after: Cursor | None, limit: int) -> list[Report]: ...
    def totals(self, since_us: int | None) -> Totals: ...

    # Events.
    def emit(self, change: Change) -> None:
        """Appends ``change`` to the outbox when the transaction commits
        (with a position at once on SQLite, from ``sequence_events`` on
        PostgreSQL)."""
    def sequence_events(self, limit: int, numbered: list[Event] | None = None) -> int:
        """Gives up to ``limit`` committed events without a position their
        positions, in commit order; returns how many, and appends them (in
        order) to ``numbered`` when it is given."""
    def event_head(self) -> int:
        """The position of the newest committed event (or of the retention horizon)."""
    def event_horizon(self) -> int:
        """The highest position retention has removed; a reader behind it lost events."""
    def events_after(
        self, after: int, kinds: Sequence[int], user_ids: Sequence[str], limit: int, scan: int
    ) -> EventRange:
        """At most ``limit`` committed events after ``after`` that match the
        filters (empty: any), looking at no more than ``scan`` positions."""
    def prune_events(self, before_us: int, limit: int) -> int:
        """Removes up to ``limit`` of the oldest events that occurred before
        ``before_us``, oldest first, never past a newer one; returns how many."""

    # Maintenance.
    def recount(self) -> list[CounterFix]: ...

    # The limiter's sliding logs (storage/limiter.py).
    def lock_limiter_key(self, key: str) -> None: ...
    def limiter_times(self, key: str, since_us: int) -> list[int]: ...
    def limiter_entries(self, key: str, since_us: int) -> list[tuple[str, int]]: ...
    def limiter_add(self, key: str, token: str, at_us: int) -> None: ...
    def limiter_remove(self, key: str, token: str) -> None: ...
    def limiter_prune(self, before_us: int, limit: int) -> int: ...

    def service_key(self, name: str, candidate: str) -> str:
        """The key stored under ``name``, shared by every process on the
        database; ``candidate`` becomes it when there is none yet."""
        ...


CountersListener = Callable[[dict[str, VersionedCounts]], None]


class Storage(Protocol):
    positions: Positions  # the commit positions this process has seen

    def read_write(self, fn: Callable[[Tx], T]) -> T: ...
    def on_counters_committed(self, listener: CountersListener) -> None:
        """``listener`` gets the counters each write transaction changed, after it commits."""
    def on_events_committed(self, listener: Callable[[], None]) -> None:
        """``listener`` is called after each write transaction that appended events commits."""
    def read_only(self, fn: Callable[[Tx], T]) -> T: ...
    def last_token(self) -> str:
        """The consistency token of the calling thread's last committed write."""
    def token_at(self, position: int) -> str:
        """The consistency token of commit position ``position``."""
    def token_position(self, token: str) -> int:
        """The commit position a token names; ``positions.InvalidToken`` unless it is this database's."""
    def observe_position(self) -> None:
        """Reads the commit position now into ``positions``."""
    def ping(self) -> None: ...
    def close(self) -> None: ...
