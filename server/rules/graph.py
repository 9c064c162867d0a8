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

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from uuid6 import uuid7

from cache.readers import CounterReader, RelationshipReader
from cache.sql import SqlCounters, SqlRelationships
from ratelimit import Limiter
from ratelimit.base import Decision, admit
from storage.deletion import JobKind
from storage.positions import InvalidToken
from storage.types import (
    Block,
    Cascade,
    Cause,
    Change,
    ConnectionRequest,
    CounterFix,
    Counts,
    Cursor,
    EventKind,
    FeedSource,
    Pair,
    RelatedUser,
    Relationship,
    Removed,
    Report,
    ReportReason,
    ReportStatus,
    Storage,
    Totals,
    Tx,
    User,
)

from . import paging
from .errors import (
    ConnectionLimitReached,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Reason,
)
from .jobs import Jobs, JobSettings
from .jobs import now_us as now_us  # the rules' clock, re-exported for the wiring and tests

DAY_US = 86_400 * 1_000_000
log = logging.getLogger(__name__)


def new_id() -> str:
    return str(uuid7())


@dataclass(frozen=True, slots=True)
class Policy:
    """The configurable rules, and the limits the edge checks before any
    transaction (it asks this object; the wire errors are its own)."""

    connection_limit: int = 2000
    # Most code points of each free-text field.
    message_max: int = 500  # C8: a connection request's message
    block_reason_max: int = 500  # B6: a block's reason
    report_details_max: int = 2000  # R1: a report's details
    note_max: int = 2000  # R2: a resolution's note
    display_name_max: int = 200  # R3
    avatar_url_max: int = 2048  # R3
    # GetMutualConnections: users returned when the request asks for 0, and at most.
    mutual_default: int = 10
    mutual_max: int = 100
    auto_follow: bool = True
    # URL schemes an avatar may use.
    avatar_schemes: tuple[str, ...] = ("https",)
    # Most bytes of items in one page; a page stops early rather than pass it.
    page_bytes: int = 512 * 1024
    # Most edges one transaction of a big account's deletion or promotion
    # removes; batches are sized to ``batch_seconds`` below that.
    edge_batch: int = 1000
    batch_seconds: float = 0.05
    # How long DeleteUser and UpsertUser run their own big-account job
    # before leaving it to the background runner; None: to the end.
    inline_seconds: float | None = None
    # How long a claimed job stays with a process that stops renewing it.
    job_lease_seconds: float = 10.0


class ConnectionState(enum.IntEnum):
    PENDING = 1
    CONNECTED = 2


@dataclass(frozen=True, slots=True)
class SendResult:
    state: ConnectionState
    created: bool
    request: ConnectionRequest | None = None
    connected_us: int | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    block: Block
    created: bool
    removed: Removed


@dataclass(frozen=True, slots=True)
class Stats:
    total: Totals
    last_24h: Totals


@dataclass(frozen=True, slots=True)
class Consistency:
    """How fresh a read must be (SPEC "Consistency"). The default may be
    answered from caches within the staleness bound; ``at_least_as_fresh``
    (a write's consistency token) reflects that write and every write
    committed before it; ``fully_consistent`` reads SQL."""

    at_least_as_fresh: str = ""
    fully_consistent: bool = False


MINIMIZE_LATENCY = Consistency()


@dataclass(frozen=True, slots=True)
class Page:
    items: list
    next_page_token: str


class Graph:
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

    # ------------------------------------------------------------ consistency

    def consistency_token(self) -> str:
        """The token of the calling thread's last committed write."""
        return self.storage.last_token()

    def _readers(self, consistency: Consistency) -> tuple[CounterReader, RelationshipReader]:
        """The counter and relationship readers that meet ``consistency``.
        A token is served from the caches only when this process has seen
        its position and the caches can prove their entries were read after
        that (caches straight over SQL); otherwise from SQL, after noting
        the position now, so that later reads of that token can use them."""
        if consistency.fully_consistent:
            return self._sql_counters, self._sql_relationships
        if not consistency.at_least_as_fresh:
            return self.counters, self.relationships
        position = self._token_position(consistency)
        proves = getattr(self.counters, "proves_tokens", False) and getattr(self.relationships, "proves_tokens", False)
        if not proves:
            return self._sql_counters, self._sql_relationships
        after = self.storage.positions.reflected_after(position)
        if after is not None:
            return _ReadAfter(self.counters, after), _ReadAfter(self.relationships, after)
        self.storage.observe_position()
        return self._sql_counters, self._sql_relationships

    def _token_position(self, consistency: Consistency) -> int | None:
        """Checks the token; reads that always go to SQL need nothing more."""
        if not consistency.at_least_as_fresh:
            return None
        try:
            return self.storage.token_position(consistency.at_least_as_fresh)
        except InvalidToken as exc:
            raise InvalidArgument(Reason.INVALID_CONSISTENCY_TOKEN, "consistency.at_least_as_fresh", str(exc)) from None

    def _interactable(self, user_id: str, other_ids: Sequence[str], consistency: Consistency) -> dict[str, bool]:
        """Whether no block stands between ``user_id`` and each other user:
        the one source of every safety check (CanInteract,
        FilterInteractable, viewer-scoped lists, a relationship's
        can_interact), so they agree for the same freshness. One pair reads
        (and caches) its whole relationship; a batch reads what is cached
        and only the blocks of the rest."""
        _counters, relationships = self._readers(consistency)
        if len(other_ids) == 1:
            return {other: r.can_interact for other, r in relationships.get(user_id, other_ids).items()}
        return relationships.interactable(user_id, other_ids)

    # ---------------------------------------------------------------- follows

    def follow(self, follower_id: str, followee_id: str) -> tuple[bool, int]:
        """F1-F3. Returns (created, since_us)."""
        _distinct("followee_id", follower_id, followee_id)

        def run(tx: Tx) -> tuple[bool, int]:
            _lock_present(tx, (follower_id, followee_id))
            pair = tx.pair(follower_id, followee_id)
            if pair.following_since is not None:
                return False, pair.following_since
            _refuse_if_blocked(pair)
            now = self._now()
            tx.insert_follow(follower_id, followee_id, now)
            _emit(tx, EventKind.FOLLOWED, follower_id, followee_id, now)
            return True, now

        return self.storage.read_write(run)

    def unfollow(self, follower_id: str, followee_id: str) -> bool:
        _distinct("followee_id", follower_id, followee_id)
        return self._removal(
            (follower_id, followee_id),
            lambda tx: tx.delete_follow(follower_id, followee_id),
            EventKind.UNFOLLOWED,
            follower_id,
            followee_id,
        )

    def remove_follower(self, user_id: str, follower_id: str) -> bool:
        """F4: the followee removes a follower."""
        _distinct("follower_id", user_id, follower_id)
        return self._removal(
            (user_id, follower_id),
            lambda tx: tx.delete_follow(follower_id, user_id),
            EventKind.FOLLOWER_REMOVED,
            user_id,
            follower_id,
        )

    # ------------------------------------------------------------ connections

    def send_connection_request(self, requester_id: str, recipient_id: str, message: str) -> SendResult:
        """C1-C7: the limiter first (what it writes to the database, first
        thing in the transaction), then the rules, in one transaction; the
        limiter slot is given back when the call creates nothing."""
        _distinct("recipient_id", requester_id, recipient_id)
        request_id = new_id()
        decision, limit_in_tx = admit(self.limiter, requester_id, request_id)
        _refuse_if_limited(requester_id, decision)

        def run(tx: Tx) -> SendResult:
            if limit_in_tx is not None:
                _refuse_if_limited(requester_id, limit_in_tx(tx))
            counts = _lock_present(tx, (requester_id, recipient_id))
            pair = tx.pair(requester_id, recipient_id)
            _refuse_if_blocked(pair)
            if pair.connected_since is not None:
                return SendResult(ConnectionState.CONNECTED, False, connected_us=pair.connected_since)
            if pair.outgoing is not None:
                return SendResult(ConnectionState.PENDING, False, request=pair.outgoing)
            self._check_limit(counts, requester_id, recipient_id)
            now = self._now()
            if pair.incoming is not None:
                # C3: crossing requests accept each other.
                tx.delete_request(recipient_id, requester_id)
                self._connect(tx, requester_id, recipient_id, now, pair, requester_id, _CROSSING, pair.incoming)
                return SendResult(ConnectionState.CONNECTED, True, connected_us=now)
            request = ConnectionRequest(request_id, requester_id, recipient_id, message, now)
            tx.insert_request(request)
            _emit(
                tx, EventKind.CONNECTION_REQUESTED, requester_id, recipient_id, now,
                request={"request_id": request_id, "message": message},
            )
            if self.policy.auto_follow and pair.following_since is None:
                tx.insert_follow(requester_id, recipient_id, now)
                _emit(tx, EventKind.FOLLOWED, requester_id, recipient_id, now, Cause.AUTO_FOLLOW)
            return SendResult(ConnectionState.PENDING, True, request=request)

        try:
            result = self.storage.read_write(run)
        except RateLimited:
            raise  # refused in the transaction: nothing was recorded
        except BaseException:
            self.limiter.release(requester_id, request_id)
            raise
        if not result.created:
            self.limiter.release(requester_id, request_id)
        return result

    def accept_connection_request(self, recipient_id: str, requester_id: str) -> int:
        """C2, C4, C6. Returns connected_us; a retry after success returns the same."""
        _distinct("requester_id", recipient_id, requester_id)

        def run(tx: Tx) -> int:
            counts = tx.lock_users((recipient_id, requester_id))
            # A user being deleted has no request to accept.
            pair = tx.pair(requester_id, recipient_id) if not tx.deleting(counts) else _NO_PAIR
            if pair.connected_since is not None:
                return pair.connected_since
            if pair.outgoing is None:
                raise NotFound(
                    Reason.REQUEST_NOT_FOUND,
                    f"no pending connection request from {requester_id} to {recipient_id}",
                )
            self._check_limit(counts, recipient_id, requester_id)
            now = self._now()
            tx.delete_request(requester_id, recipient_id)
            self._connect(tx, requester_id, recipient_id, now, pair, recipient_id, _ACCEPTED, pair.outgoing)
            return now

        return self.storage.read_write(run)

    def decline_connection_request(self, recipient_id: str, requester_id: str) -> bool:
        _distinct("requester_id", recipient_id, requester_id)
        return self._request_removal(
            (recipient_id, requester_id), requester_id, recipient_id, EventKind.CONNECTION_REQUEST_DECLINED
        )

    def cancel_connection_request(self, requester_id: str, recipient_id: str) -> bool:
        _distinct("recipient_id", requester_id, recipient_id)
        return self._request_removal(
            (requester_id, recipient_id), requester_id, recipient_id, EventKind.CONNECTION_REQUEST_CANCELLED
        )

    def remove_connection(self, user_id: str, other_id: str) -> bool:
        _distinct("other_user_id", user_id, other_id)
        return self._removal(
            (user_id, other_id),
            lambda tx: tx.delete_connection(user_id, other_id),
            EventKind.CONNECTION_REMOVED,
            user_id,
            other_id,
        )

    def _connect(
        self,
        tx: Tx,
        requester_id: str,
        recipient_id: str,
        now: int,
        pair: Pair,
        actor_id: str,
        via: int,
        request: ConnectionRequest,
    ) -> None:
        """Makes the connection; with auto-follow, the requester follows the
        recipient (from sending) and the recipient the requester (from
        accepting). ``pair`` is the state seen from the requester's side;
        ``actor_id`` connected them ``via`` accepting or crossing ``request``."""
        tx.insert_connection(requester_id, recipient_id, now)
        other_id = recipient_id if actor_id == requester_id else requester_id
        _emit(
            tx, EventKind.CONNECTED, actor_id, other_id, now,
            connected={"via": via, "request_id": request.request_id},
        )
        if self.policy.auto_follow:
            if pair.following_since is None:
                tx.insert_follow(requester_id, recipient_id, now)
                _emit(tx, EventKind.FOLLOWED, requester_id, recipient_id, now, Cause.AUTO_FOLLOW)
            if pair.followed_since is None:
                tx.insert_follow(recipient_id, requester_id, now)
                _emit(tx, EventKind.FOLLOWED, recipient_id, requester_id, now, Cause.AUTO_FOLLOW)

    def _check_limit(self, counts: dict[str, Counts], *user_ids: str) -> None:
        for user_id in user_ids:
            if counts[user_id].connections >= self.policy.connection_limit:
                raise ConnectionLimitReached(user_id, self.policy.connection_limit)

    # ----------------------------------------------------------------- blocks

    def block(self, blocker_id: str, blocked_id: str, reason: str) -> BlockResult:
        """B1-B3, B6: the block and its cascade in one transaction."""
        _distinct("blocked_id", blocker_id, blocked_id)

        def run(tx: Tx) -> BlockResult:
            _lock_present(tx, (blocker_id, blocked_id))
            pair = tx.pair(blocker_id, blocked_id)
            if pair.blocking is not None:
                return BlockResult(pair.blocking, False, Removed())
            if tx.role_of(blocked_id).is_staff:
                raise PermissionDenied(
                    Reason.CANNOT_BLOCK_STAFF, "moderators and admins cannot be blocked"
                )
            # Remove only what the pair read found: each removal is a statement.
            now = self._now()
            follows = connections = requests = 0
            for follower, followee, since in (
                (blocker_id, blocked_id, pair.following_since),
                (blocked_id, blocker_id, pair.followed_since),
            ):
                if since is not None and tx.delete_follow(follower, followee):
                    follows += 1
                    _emit(tx, EventKind.UNFOLLOWED, follower, followee, now, Cause.BLOCK)
            if pair.connected_since is not None and tx.delete_connection(blocker_id, blocked_id):
                connections += 1
                _emit(tx, EventKind.CONNECTION_REMOVED, blocker_id, blocked_id, now, Cause.BLOCK)
            for request in (pair.outgoing, pair.incoming):
                if request is not None and tx.delete_request(request.requester_id, request.recipient_id):
                    requests += 1
                    _emit(
                        tx, EventKind.CONNECTION_REQUEST_CANCELLED, request.requester_id, request.recipient_id,
                        now, Cause.BLOCK, request={"request_id": request.request_id},
                    )
            block = Block(new_id(), blocker_id, blocked_id, reason, now)
            tx.insert_block(block)
            _emit(
                tx, EventKind.BLOCKED, blocker_id, blocked_id, now,
                block={"block_id": block.block_id, "reason": reason},
            )
            return BlockResult(block, True, Removed(follows=follows, connections=connections, requests=requests))

        return self.storage.read_write(run)

    def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        """B5: restores nothing."""
        _distinct("blocked_id", blocker_id, blocked_id)
        return self._removal(
            (blocker_id, blocked_id),
            lambda tx: tx.delete_block(blocker_id, blocked_id),
            EventKind.UNBLOCKED,
            blocker_id,
            blocked_id,
        )

    # ------------------------------------------------------- users, reports

    def upsert_user(self, user: User) -> User:
        """R3; B3: a moderator or admin is blocked by nobody. The first batch
        of blocks against a promoted user is lifted with the role; when more
        are left, a job lifts them (see ``Jobs``)."""
        size = self.jobs.batch_size()

        def run(tx: Tx) -> tuple[User, bool]:
            _lock_present(tx, (user.user_id,))
            before = tx.get_user(user.user_id)
            now = self._now()
            stored = tx.upsert_user(user, now)
            more = stored.role.is_staff and self._lift_blocks(tx, stored.user_id, size, now)
            if more:
                tx.add_job(stored.user_id, JobKind.LIFT_BLOCKS, now)
            if before is None or (before.role, before.display_name, before.avatar_url) != (
                stored.role, stored.display_name, stored.avatar_url
            ):
                _emit(
                    tx, EventKind.USER_UPSERTED, stored.user_id, stored.user_id, now,
                    user={
                        "role": int(stored.role),
                        "previous_role": int(before.role) if before else 0,
                        "display_name": stored.display_name,
                        "avatar_url": stored.avatar_url,
                    },
                )
            return stored, more

        stored, more = self.storage.read_write(run)
        if more:
            self._run_job(user.user_id, JobKind.LIFT_BLOCKS)
        return stored

    def get_user(self, user_id: str, consistency: Consistency = MINIMIZE_LATENCY) -> User:
        self._token_position(consistency)
        user = self.storage.read_only(lambda tx: tx.get_user(user_id))
        if user is None:
            raise NotFound(Reason.USER_NOT_FOUND, f"user {user_id} is not registered")
        return user

    def delete_user(self, user_id: str) -> Removed:
        """R4: one short transaction tombstones the user (record gone, own
        counters zero, absent for every read and write from its commit on)
        and adds the job that removes their edges in batches, one event per
        edge, then USER_DELETED (``_delete_batch``). Returns what the job
        removes; a deletion already in progress returns zeros."""

        def start(tx: Tx) -> tuple[Removed, bool] | None:
            tx.lock_users((user_id,))
            return tx.start_deletion(user_id, self._now())

        started = self.storage.read_write(start)
        if started is None:
            return Removed()
        removed, job = started
        if job:
            self._run_job(user_id, JobKind.DELETE)
        return removed

    def _run_job(self, user_id: str, kind: JobKind) -> None:
        """Runs the job for the request's budget; its commit stands either
        way, and whatever is left the runner finishes."""
        try:
            self.jobs.run(user_id, kind, self.policy.inline_seconds)
        except Exception:
            if self.policy.inline_seconds is None:
                raise
            log.exception("big-account job of %s left to the background runner", user_id)

    def _delete_batch(self, tx: Tx, user_id: str, size: int) -> bool:
        """One batch of a deletion; the last one (it found fewer edges than
        ``size``) also drops the counters and the tombstone and appends
        USER_DELETED."""
        cascade = tx.delete_edges(user_id, size)
        self._cascade(tx, cascade)
        if cascade.more:
            return False
        tx.finish_deletion(user_id)
        _emit(tx, EventKind.USER_DELETED, user_id, user_id, self._now())
        return True

    def _lift_batch(self, tx: Tx, user_id: str, size: int) -> bool:
        """One batch of lifting the blocks against a promoted user. It stops
        when the user is no longer staff (blocks made after a demotion
        stand) or is being deleted (the deletion removes them)."""
        if not tx.role_of(user_id).is_staff or tx.deleting((user_id,)):
            tx.finish_job(user_id, JobKind.LIFT_BLOCKS)
            return True
        if self._lift_blocks(tx, user_id, size, self._now()):
            return False
        tx.finish_job(user_id, JobKind.LIFT_BLOCKS)
        return True

    def report_user(self, reporter_id: str, reported_id: str, reason: ReportReason, details: str) -> Report:
        """R1."""
        _distinct("reported_id", reporter_id, reported_id)
        report = Report(
            new_id(), reporter_id, reported_id, reason, details, ReportStatus.OPEN, "", "", self._now(), None
        )

        def run(tx: Tx) -> None:
            tx.insert_report(report)
            _emit(
                tx, EventKind.REPORT_FILED, reporter_id, reported_id, report.created_us,
                report={
                    "report_id": report.report_id,
                    "reason": int(reason),
                    "details": details,
                    "status": int(ReportStatus.OPEN),
                },
            )

        self.storage.read_write(run)
        return report

    def list_reports(
        self,
        moderator_id: str,
        status: ReportStatus,
        size: int,
        token: str,
        consistency: Consistency = MINIMIZE_LATENCY,
    ) -> Page:
        """R2."""
        scope = str(int(status))
        after = self.page_tokens.decode(token, "reports", scope)
        self._token_position(consistency)

        def run(tx: Tx) -> list[Report]:
            _require_staff(tx, moderator_id)
            return tx.list_reports(status, after, size + 1)

        rows = self.storage.read_only(run)
        return self._page("reports", scope, rows, size, lambda r: Cursor(r.created_us, r.report_id))

    def resolve_report(self, report_id: str, moderator_id: str, status: ReportStatus, note: str) -> Report:
        """R2: repeating the same resolution changes nothing."""

        def run(tx: Tx) -> Report:
            _require_staff(tx, moderator_id)
            report = tx.get_report(report_id)
            if report is None:
                raise NotFound(Reason.REPORT_NOT_FOUND, f"report {report_id} does not exist")
            if report.status == status:
                return report
            resolved = Report(
                report.report_id,
                report.reporter_id,
                report.reported_id,
                report.reason,
                report.details,
                status,
                moderator_id,
                note,
                report.created_us,
                self._now(),
            )
            tx.update_report(resolved)
            _emit(
                tx, EventKind.REPORT_RESOLVED, moderator_id, report.reported_id, resolved.resolved_us,
                report={
                    "report_id": report.report_id,
                    "reason": int(report.reason),
                    "status": int(status),
                    "note": note,
                },
            )
            return resolved

        return self.storage.read_write(run)

    # ------------------------------------------------------------------ reads

    def get_relationship(
        self, user_id: str, other_id: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Relationship:
        _distinct("other_user_id", user_id, other_id)
        return self._readers(consistency)[1].get(user_id, [other_id])[other_id]

    def batch_get_relationships(
        self, user_id: str, other_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY
    ) -> list[Relationship]:
        for other_id in other_ids:
            _distinct("other_user_ids", user_id, other_id)
        found = self._readers(consistency)[1].get(user_id, other_ids)
        return [found[other_id] for other_id in other_ids]

    def get_counts(self, user_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY) -> list[Counts]:
        found = self._readers(consistency)[0].get(user_ids)
        return [found[user_id].counts if user_id in found else Counts(user_id) for user_id in user_ids]

    def can_interact(self, user_id: str, other_id: str, consistency: Consistency = MINIMIZE_LATENCY) -> bool:
        _distinct("other_user_id", user_id, other_id)
        return self._interactable(user_id, [other_id], consistency)[other_id]

    def filter_interactable(
        self, user_id: str, candidate_ids: Sequence[str], consistency: Consistency = MINIMIZE_LATENCY
    ) -> list[str]:
        self._token_position(consistency)
        others = [c for c in candidate_ids if c != user_id]
        allowed = self._interactable(user_id, others, consistency) if others else {}
        return [c for c in candidate_ids if c == user_id or allowed[c]]

    def mutual_connections(
        self, user_id: str, other_id: str, limit: int, consistency: Consistency = MINIMIZE_LATENCY
    ) -> tuple[int, list[RelatedUser]]:
        _distinct("other_user_id", user_id, other_id)
        self._refuse_if_blocked(user_id, other_id, consistency)
        count, users = self.storage.read_only(
            lambda tx: (0, []) if tx.deleting((user_id, other_id)) else tx.mutual_connections(user_id, other_id, limit)
        )
        return count, paging.within(users, self.policy.page_bytes)

    def list_followers(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page:
        return self._list_users("followers", "list_followers", user_id, size, token, viewer_id, consistency)

    def list_following(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page:
        return self._list_users("following", "list_following", user_id, size, token, viewer_id, consistency)

    def list_connections(
        self, user_id: str, size: int, token: str, viewer_id: str | None, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page:
        return self._list_users("connections", "list_connections", user_id, size, token, viewer_id, consistency)

    def _list_users(
        self,
        kind: str,
        query: str,
        user_id: str,
        size: int,
        token: str,
        viewer_id: str | None,
        consistency: Consistency,
    ) -> Page:
        """B4: a viewer on either side of a block with the owner sees nothing,
        and users on either side of a block with the viewer are left out.
        Lists are read from SQL, which meets every consistency."""
        after = self.page_tokens.decode(token, kind, user_id)
        self._token_position(consistency)
        if viewer_id == user_id:
            viewer_id = None
        if viewer_id is not None:
            self._refuse_if_blocked(viewer_id, user_id, consistency)
        # Empty while the owner's deletion is in progress (the list's one statement checks).
        rows = self.storage.read_only(lambda tx: getattr(tx, query)(user_id, after, size + 1, viewer_id))
        return self._page(kind, user_id, rows, size, lambda u: Cursor(u.since_us, u.user_id))

    def _refuse_if_blocked(self, user_id: str, other_id: str, consistency: Consistency) -> None:
        if not self._interactable(user_id, [other_id], consistency)[other_id]:
            raise PermissionDenied(Reason.BLOCKED, "a block between these users forbids this")

    def list_requests(
        self, user_id: str, incoming: bool, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page:
        kind = "incoming" if incoming else "outgoing"
        after = self.page_tokens.decode(token, kind, user_id)
        self._token_position(consistency)
        rows = self.storage.read_only(
            lambda tx: _unless_deleting(tx, user_id, tx.list_requests, incoming, after, size + 1)
        )
        return self._page(kind, user_id, rows, size, lambda r: Cursor(r.created_us, r.request_id))

    def list_blocked(self, user_id: str, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY) -> Page:
        after = self.page_tokens.decode(token, "blocked", user_id)
        self._token_position(consistency)
        rows = self.storage.read_only(lambda tx: _unless_deleting(tx, user_id, tx.list_blocked, after, size + 1))
        return self._page("blocked", user_id, rows, size, lambda b: Cursor(b.created_us, b.blocked_id))

    def list_feed_sources(
        self, user_id: str, size: int, token: str, consistency: Consistency = MINIMIZE_LATENCY
    ) -> Page:
        """N1: authors followed; private posts only from connections."""
        after = self.page_tokens.decode(token, "feed", user_id)
        self._token_position(consistency)
        rows: list[FeedSource] = self.storage.read_only(
            lambda tx: _unless_deleting(tx, user_id, tx.list_feed_sources, after, size + 1)
        )
        return self._page("feed", user_id, rows, size, lambda s: Cursor(s.since_us, s.author_id))

    def stats(self, consistency: Consistency = MINIMIZE_LATENCY) -> Stats:
        self._token_position(consistency)
        since = self._now() - DAY_US
        return self.storage.read_only(lambda tx: Stats(tx.totals(None), tx.totals(since)))

    def recount(self) -> list[CounterFix]:
        """Counters as the rows say, except that users being deleted keep
        zero: their job has yet to remove the rows."""

        def run(tx: Tx) -> list[CounterFix]:
            fixes = tx.recount()
            deleting = set(tx.zero_deleting_counters())
            return [fix for fix in fixes if fix.user_id not in deleting]

        return self.storage.read_write(run)

    # ---------------------------------------------------------------- helpers

    def _page(self, kind: str, scope: str, rows: list, size: int, position: Callable[[object], Cursor]) -> Page:
        items, token = self.page_tokens.paginate(kind, scope, rows, size, position, self.policy.page_bytes)
        return Page(items, token)

    def _cascade(self, tx: Tx, cascade: Cascade) -> Removed:
        """One event for each edge a user deletion removed."""
        now = self._now()
        gone = Cause.USER_DELETED
        for follower, followee in cascade.follows:
            _emit(tx, EventKind.UNFOLLOWED, follower, followee, now, gone)
        for user, other in cascade.connections:
            _emit(tx, EventKind.CONNECTION_REMOVED, user, other, now, gone)
        for request_id, requester, recipient in cascade.requests:
            _emit(
                tx, EventKind.CONNECTION_REQUEST_CANCELLED, requester, recipient, now, gone,
                request={"request_id": request_id},
            )
        for blocker, blocked in cascade.blocks:
            _emit(tx, EventKind.UNBLOCKED, blocker, blocked, now, gone)
        return cascade.removed

    def _lift_blocks(self, tx: Tx, user_id: str, size: int, now: int) -> bool:
        """Lifts up to ``size`` blocks against a staff user, one UNBLOCKED
        event each; returns whether more may be left."""
        blockers, more = tx.lift_blocks(user_id, size)
        for blocker_id in blockers:
            _emit(tx, EventKind.UNBLOCKED, blocker_id, user_id, now, Cause.PROMOTION)
        return more

    def _removal(
        self, user_ids: tuple[str, ...], remove: Callable[[Tx], object], kind: EventKind, actor: str, subject: str
    ) -> bool:
        """Locks the users, removes one edge; an event when there was one."""

        def run(tx: Tx) -> bool:
            # A user being deleted has no edge left to remove: its job removes them.
            if tx.deleting(tx.lock_users(user_ids)) or not remove(tx):
                return False
            _emit(tx, kind, actor, subject, self._now())
            return True

        return self.storage.read_write(run)

    def _request_removal(
        self, user_ids: tuple[str, ...], requester_id: str, recipient_id: str, kind: EventKind
    ) -> bool:
        """Declines (the recipient acts) or cancels (the requester acts)."""
        actor, subject = (
            (recipient_id, requester_id)
            if kind is EventKind.CONNECTION_REQUEST_DECLINED
            else (requester_id, recipient_id)
        )

        def run(tx: Tx) -> bool:
            if tx.deleting(tx.lock_users(user_ids)):
                return False
            request_id = tx.delete_request(requester_id, recipient_id)
            if request_id is None:
                return False
            _emit(tx, kind, actor, subject, self._now(), request={"request_id": request_id})
            return True

        return self.storage.read_write(run)


_ACCEPTED, _CROSSING = 1, 2  # socialgraph.v1.ConnectedVia
_NO_PAIR = Pair(None, None, None, None, None, None, False)


def _emit(
    tx: Tx, kind: EventKind, actor: str, subject: str, now: int, cause: Cause = Cause.REQUEST, **details: dict
) -> None:
    """Appends one event; ``details`` is the kind's message (see ``Change``)."""
    tx.emit(Change(kind, actor, subject, now, {"cause": int(cause), **details}))


def _distinct(field: str, user_id: str, other_id: str) -> None:
    if user_id == other_id:
        raise InvalidArgument(Reason.SELF_RELATIONSHIP, field, "a user cannot relate to themself")


def _lock_present(tx: Tx, user_ids: tuple[str, ...]) -> dict[str, Counts]:
    """Locks the users of a write that creates something; a user whose
    deletion is in progress is USER_NOT_FOUND until it finishes."""
    counts = tx.lock_users(user_ids)
    for gone in sorted(tx.deleting(user_ids)):
        raise NotFound(Reason.USER_NOT_FOUND, f"user {gone} is being deleted; retry once the deletion has finished")
    return counts


def _unless_deleting(tx: Tx, user_id: str, read: Callable[..., list[Any]], *args: object) -> list[Any]:
    """A list of ``user_id``'s: empty while their deletion is in progress."""
    return [] if tx.deleting((user_id,)) else read(user_id, *args)


def _refuse_if_limited(requester_id: str, decision: Decision) -> None:
    if not decision.allowed:
        assert decision.window is not None
        raise RateLimited(requester_id, decision.window, decision.retry_after)


def _refuse_if_blocked(pair: Pair) -> None:
    if pair.blocked_either_way:
        raise PermissionDenied(Reason.BLOCKED, "a block between these users forbids this")


class _ReadAfter:
    """A cache read that serves only entries read after ``after`` (µs)."""

    def __init__(self, reader, after: int) -> None:
        self._reader = reader
        self._after = after

    def get(self, *args):
        return self._reader.get(*args, newer_than=self._after)

    def interactable(self, *args):
        return self._reader.interactable(*args, newer_than=self._after)


def _require_staff(tx: Tx, user_id: str) -> None:
    if not tx.role_of(user_id).is_staff:
        raise PermissionDenied(Reason.NOT_A_MODERATOR, f"user {user_id} is not a moderator or admin")
