"""Big-account work off the request path: deleting a user and lifting the
blocks against a promoted one.

``DeleteUser`` commits a tombstone (a ``user_jobs`` row of kind
``DELETE``) in one short transaction: the user's record goes, their own
counters read zero, and from that commit every read leaves their edges out
(``not_deleting``) and every write naming them is refused by the rules
layer. Their edges are then removed by a job in transactions of a bounded
number of edges (``delete_edges``), each keeping the other users' counters
exact; the last one (``finish_deletion``) drops the counter row and the
tombstone. Lifting a promoted user's blocks runs the same way
(``lift_blocks``).

A job row carries a lease: whoever claims it (``claim_job``) owns it until
the lease runs out, and every batch renews it in its own transaction, so a
process that dies leaves a job any other process picks up once the lease
ends, and a batch of a process that lost its lease rolls back.

``DeletionTx`` is mixed into the SQL transaction (``storage/sql/``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, case, delete, func, literal, select, update

from .schema import COUNTER_COLUMNS, blocks, connection_requests, connections, follows, user_counters, user_jobs, users
from .sql.run import Runner, Statement, id_list, matches
from .types import Cascade, Counts, Removed, VersionedCounts


class JobKind(enum.IntEnum):
    """What a ``user_jobs`` row asks for."""

    DELETE = 1
    LIFT_BLOCKS = 2


def not_deleting(user_id: Any) -> ColumnElement[bool]:
    """True where ``user_id`` (a column or value) has no deletion in
    progress: what every read adds so that a tombstoned user's edges
    disappear from the commit of the tombstone on."""
    j = user_jobs.c
    return ~select(literal(1)).where(j.user_id == user_id, j.kind == int(JobKind.DELETE)).exists()


class DeletionTx:
    """The statements of tombstones, jobs and their batches, mixed into
    ``SqlTx``, which provides what is declared here. Every statement runs
    on the transaction's ``Runner`` (compiled once, ``storage/sql/run.py``)."""

    _d: Runner
    _pg: bool
    _now_us: int
    read_us: int
    touched: dict[str, VersionedCounts]
    _locked_deleting: dict[str, bool]
    # When this transaction took its first lock on other users' counter
    # rows for a batch, and when it committed (``time.monotonic()``; set by
    # the storage): what ``lock_hold`` measures.
    others_locked_at: float | None = None
    committed_at: float | None = None
    # A batch's counter changes by user, applied at ``flush``.
    _countdown: dict[str, dict[str, int]] | None = None
    _last: list[Callable[[], None]]
    commit_held: float | None

    def with_commit(self, statement: Statement, params: dict[str, Any], then: Callable[[list[Any]], None]) -> None:
        raise NotImplementedError

    def lock_users(self, user_ids: Iterable[str]) -> dict[str, Counts]:
        raise NotImplementedError

    def _touch(self, rows: Any) -> None:
        raise NotImplementedError

    def lock_hold(self) -> float | None:
        """Seconds this transaction held other users' counter rows locked
        for a batch (from its first such lock to its commit); None when it
        took none or has not committed. When its only such locks were taken
        by the statement sent with the COMMIT (PostgreSQL), as measured by
        PostgreSQL's clock; otherwise by this process's, which adds the
        time its thread waited for the GIL."""
        if self.commit_held is not None:
            return self.commit_held
        if self.others_locked_at is None or self.committed_at is None:
            return None
        return max(0.0, self.committed_at - self.others_locked_at)

    def _lock_others(self, user_ids: Iterable[str]) -> None:
        """Locks other users' counter rows (in user id order); none for an
        empty ``user_ids``, when the next statement locks them itself."""
        if self.others_locked_at is None:
            self.others_locked_at = time.monotonic()
        ids = list(user_ids)
        if ids:
            self.lock_users(ids)

    # --------------------------------------------------------------- tombstone

    def deleting(self, user_ids: Iterable[str]) -> set[str]:
        """The users among ``user_ids`` whose deletion is in progress: from
        their locked counter rows when this transaction holds every one of
        their locks (a deletion starts and ends under that lock, so no
        statement is needed), otherwise from their tombstones."""
        ids = set(user_ids)
        locked = self._locked_deleting
        if ids <= locked.keys():
            return {user_id for user_id in ids if locked[user_id]}
        return {row.user_id for row in self._d.rows(_TOMBSTONES, {"ids": sorted(ids)})} if ids else set()

    def start_deletion(self, user_id: str, now_us: int) -> tuple[Removed, bool] | None:
        """Tombstones ``user_id`` (the caller holds their lock): removes the
        record, zeroes their own counters and, when they had a record or any
        edge, adds the deletion job. Returns what the job will remove and
        whether there is a job; None when a deletion is already in progress.
        No edge can be added or removed by anyone else once it commits, so
        what it counts now is exactly what the job removes."""
        if self.deleting([user_id]):
            return None
        row = self._d.first(_COUNTERS, {"user_id": user_id})
        counts = Counts(*row[: 1 + len(COUNTER_COLUMNS)]) if row is not None else Counts(user_id)
        against = int(self._d.value(_COUNT_BLOCKS_AGAINST, {"user_id": user_id}) or 0)
        removed = Removed(
            follows=counts.followers + counts.following,
            connections=counts.connections,
            requests=counts.incoming_requests + counts.outgoing_requests,
            blocks=counts.blocked + against,
        )
        existed = self._d.run(_DELETE_USER, {"user_id": user_id}) > 0
        job = existed or removed != Removed()
        if not job:
            self._drop_counters(user_id)
            return removed, False
        # The tombstone's trigger (migration 0006) marks the user's counter
        # row, creating it if need be; the zeroing marks it too.
        self._d.run(_INSERT_JOB, {"user_id": user_id, "kind": int(JobKind.DELETE), "created_us": now_us})
        self._touch(self._d.rows(_ZERO_COUNTERS, {"ids": [user_id], "now": self._now_us}))
        self._locked_deleting[user_id] = True
        return removed, True

    def delete_edges(self, user_id: str, limit: int) -> Cascade:
        """Removes up to ``limit`` edges of a tombstoned user, kind after
        kind, keeping the other users' counters exact. ``more`` is whether
        it found ``limit`` edges: another job (a promotion's, or the deletion
        of a user at the other end) may remove some of them between the
        picks and the DELETEs, so what was removed does not tell. No edge of
        a tombstoned user appears afterwards, so finding fewer means none are
        left. Other users being deleted keep their counters at zero: their
        own jobs count nothing either.

        Each kind found is one ``DELETE ... RETURNING``; the other users'
        counters change at ``flush``, after the events are appended, as the
        last statements before COMMIT (``_count_down``), so that the batch
        holds their locks for two statements and the commit. Their edges
        can go before their locks are taken: no write touches an edge of a
        tombstoned user (the rules refuse it under that user's lock), only
        jobs do, and a deletion's batch takes counter locks after its edge
        rows, in user id order. A promotion's batch takes the blockers'
        locks first (``Unblock`` may touch the same block), so a batch
        lifting blocks against a user whose deletion starts meanwhile can
        deadlock once with it: PostgreSQL detects it and the storage reruns
        the batch."""
        left = limit
        picked: dict[str, list[Any]] = {}
        for name, pick in _PICKS:
            rows = self._d.rows(pick, {"user_id": user_id, "limit": left}) if left > 0 else []
            picked[name] = rows
            left -= len(rows)

        def others(name: str) -> list[str]:
            return [row.other for row in picked[name]]

        # Each kind counts only what its DELETE returned: a promotion's job
        # may lift blocks against the user at the same time.
        following = self._removed(_DELETE_FOLLOWING, user_id, others("following"))
        followers = self._removed(_DELETE_FOLLOWERS, user_id, others("followers"))
        connected = others("connections")
        if connected:
            self._d.run(_DELETE_CONNECTIONS_TO, {"user_id": user_id, "ids": connected})
        connected = self._removed(_DELETE_CONNECTIONS, user_id, connected)
        outgoing, incoming = picked["outgoing"], picked["incoming"]
        requests = [row.request_id for row in (*outgoing, *incoming)]
        gone = (
            {row.request_id for row in self._d.rows(_DELETE_REQUESTS, {"ids": requests})}
            if requests
            else set()
        )
        outgoing = [row for row in outgoing if row.request_id in gone]
        incoming = [row for row in incoming if row.request_id in gone]
        blocking = self._removed(_DELETE_BLOCKING, user_id, others("blocking"))
        blocked_by = self._removed(_DELETE_BLOCKED_BY, user_id, others("blocked_by"))
        # The blocked side of the user's own blocks keeps no counter of them.
        for ids, column in (
            (following, "followers"),
            (followers, "following"),
            (connected, "connections"),
            ([row.other for row in outgoing], "incoming_requests"),
            ([row.other for row in incoming], "outgoing_requests"),
            (blocked_by, "blocked"),
        ):
            for other in ids:
                self._count_later(other, column)
        return Cascade(
            follows=sorted([(user_id, other) for other in following] + [(other, user_id) for other in followers]),
            connections=[(user_id, other) for other in sorted(connected)],
            requests=sorted(
                [(row.request_id, user_id, row.other) for row in outgoing]
                + [(row.request_id, row.other, user_id) for row in incoming]
            ),
            blocks=sorted([(user_id, other) for other in blocking] + [(other, user_id) for other in blocked_by]),
            more=left == 0,
        )

    def _count_later(self, user_id: str, column: str) -> None:
        """One edge of ``user_id`` counted in ``column`` is gone: counted
        down by ``_count_down`` at ``flush``."""
        if self._countdown is None:
            self._countdown = {}
            self._last.append(self._count_down)
        change = self._countdown.setdefault(user_id, {})
        change[column] = change.get(column, 0) - 1

    def _count_down(self) -> None:
        """Locks the counter rows of the users whose edges the batch removed
        (in user id order, as every write locks them) and applies their
        changes, except to users being deleted (zero until the end)."""
        deltas, self._countdown = self._countdown or {}, None
        groups = _grouped(deltas)
        if len(groups) == 1:
            # The common batch (one kind of edge): one statement locks the
            # rows in user id order and updates them.
            ((key, ids),) = groups.items()
            params = self._delta_params(key, ids)
            if self._pg and self.others_locked_at is None:
                # Its only locks of other users: sent with the COMMIT, and
                # held for as long as PostgreSQL says (``lock_hold``).
                self.with_commit(_LOCK_AND_ADD, params, self._touch)
                return
            self._lock_others(())
            self._touch(self._d.rows(_LOCK_AND_ADD, params))
            return
        if not deltas:
            return
        self._lock_others(deltas)
        for other in self.deleting(deltas):
            del deltas[other]
        self._apply(deltas)

    def _removed(self, statement: Statement, user_id: str, ids: list[str]) -> list[str]:
        """Deletes the edges of ``user_id`` with the users ``ids``; returns
        the ids it found, in order."""
        if not ids:
            return []
        return sorted(row.other for row in self._d.rows(statement, {"user_id": user_id, "ids": ids}))

    def _apply(self, deltas: dict[str, dict[str, int]]) -> None:
        """Adds each user's counter deltas (their rows are locked): one
        ``UPDATE`` for all the users with the same deltas, in user id order."""
        for key, ids in _grouped(deltas).items():
            self._touch(self._d.rows(_ADD_COUNTERS, self._delta_params(key, ids)))

    def _delta_params(self, key: tuple[int, ...], ids: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = dict(zip(_DELTA_NAMES, key, strict=True))
        params.update(ids=sorted(ids), now=self._now_us)
        return params

    def finish_deletion(self, user_id: str) -> None:
        """The deletion's last step, once no edge is left: the user's counter
        row (published as zeros at a newer version) and the tombstone go.
        The user's row is locked together with those of the users the same
        batch counts down, in user id order, as writers lock them."""
        self._lock_others({user_id, *(self._countdown or {})})
        self._drop_counters(user_id)
        self._d.run(_DELETE_USER, {"user_id": user_id})
        self._finish_job(user_id, JobKind.DELETE)

    def _drop_counters(self, user_id: str) -> None:
        """Deletes the user's counter row; caches learn zeros at a newer version."""
        self._locked_deleting.pop(user_id, None)
        version = self._d.value(_DROP_COUNTERS, {"user_id": user_id})
        self.touched[user_id] = VersionedCounts(Counts(user_id), max(int(version or 0) + 1, self._now_us), self.read_us)

    def zero_deleting_counters(self) -> list[str]:
        """Zeroes the own counters of every user whose deletion is in
        progress (after ``recount``, which counts the edges their job has
        yet to remove); returns them."""
        ids = [row.user_id for row in self._d.rows(_DELETING_USERS)]
        if ids:
            self._touch(self._d.rows(_ZERO_COUNTERS, {"ids": ids, "now": self._now_us}))
        return ids

    # ------------------------------------------------------------ promotions

    def lift_blocks(self, blocked_id: str, limit: int) -> tuple[list[str], bool]:
        """Lifts up to ``limit`` blocks against ``blocked_id``, by blocker
        id, keeping the blockers' counters exact; returns the blockers, and
        whether more may be left (``limit`` were found: a blocker's deletion
        may remove some meanwhile). Blocks by users being deleted are left
        to their deletion, which keeps their counters at zero."""
        picked = [row.other for row in self._d.rows(_PICK_BLOCKERS, {"user_id": blocked_id, "limit": limit})]
        ids: list[str] = []
        if picked:
            self._lock_others(picked)
            # A blocker whose deletion started since the pick is left to it.
            gone = self.deleting(picked)
            ids = self._removed(_DELETE_BLOCKED_BY, blocked_id, [p for p in picked if p not in gone])
        if ids:
            self._apply({blocker: {"blocked": -1} for blocker in ids})
        return ids, len(picked) == limit

    # ------------------------------------------------------------------ jobs

    def add_job(self, user_id: str, kind: JobKind, now_us: int) -> None:
        self._d.run(_ADD_JOB, {"user_id": user_id, "kind": int(kind), "created_us": now_us})

    def claim_job(
        self, owner: str, now_us: int, lease_us: int, job: tuple[str, JobKind] | None = None
    ) -> tuple[str, JobKind] | None:
        """Takes the oldest job whose lease has run out (``job`` only, when
        given) for ``owner`` until ``now_us + lease_us``. On PostgreSQL
        claimers skip rows another claimer holds (SKIP LOCKED)."""
        if job is None:
            query = _OPEN_JOB_SKIP_LOCKED if self._pg else _OPEN_JOB
            row = self._d.first(query, {"now": now_us})
        else:
            query = _THE_JOB_SKIP_LOCKED if self._pg else _THE_JOB
            row = self._d.first(query, {"now": now_us, "user_id": job[0], "kind": int(job[1])})
        if row is None:
            return None
        self._d.run(_LEASE_JOB, {"user_id": row.user_id, "kind": row.kind, "owner": owner, "until": now_us + lease_us})
        return row.user_id, JobKind(row.kind)

    def renew_job(self, user_id: str, kind: JobKind, owner: str, until_us: int) -> bool:
        """Extends ``owner``'s lease; False when the job is no longer theirs
        (or gone), and the caller must stop."""
        return self._d.run(_RENEW_JOB, {"user_id": user_id, "kind": int(kind), "owner": owner, "until": until_us}) > 0

    def release_jobs(self, owner: str, job: tuple[str, JobKind] | None = None) -> int:
        """Gives up ``owner``'s leases (of ``job`` only, when given) at once."""
        if job is None:
            return self._d.run(_RELEASE_JOBS, {"owner": owner})
        return self._d.run(_RELEASE_JOB, {"owner": owner, "user_id": job[0], "kind": int(job[1])})

    def finish_job(self, user_id: str, kind: JobKind) -> None:
        self._finish_job(user_id, kind)

    def _finish_job(self, user_id: str, kind: JobKind) -> None:
        self._d.run(_FINISH_JOB, {"user_id": user_id, "kind": int(kind)})

    def pending_jobs(self) -> list[tuple[str, JobKind]]:
        return [(row.user_id, JobKind(row.kind)) for row in self._d.rows(_PENDING_JOBS)]


def _next_version(now: ColumnElement[Any]) -> ColumnElement[Any]:
    """A counter row's next version: ``max(version + 1, now)`` (as ``parts.next_version``)."""
    version = user_counters.c.version
    return case((version + 1 > now, version + 1), else_=now)


_USER: BindParameter[str] = bindparam("user_id")
_LIMIT: BindParameter[int] = bindparam("limit")
_f, _c, _r, _b, _j, _uc = follows.c, connections.c, connection_requests.c, blocks.c, user_jobs.c, user_counters.c

# ----------------------------------------------------------------- tombstone

_COUNTERS = Statement(select(user_counters).where(_uc.user_id == _USER))
_COUNT_BLOCKS_AGAINST = Statement(select(func.count()).select_from(blocks).where(_b.blocked_id == _USER))
_DELETE_USER = Statement(delete(users).where(users.c.user_id == _USER))
_INSERT_JOB = Statement(
    user_jobs.insert().values(user_id=_USER, kind=bindparam("kind"), created_us=bindparam("created_us"))
)
_DROP_COUNTERS = Statement(delete(user_counters).where(_uc.user_id == _USER).returning(_uc.version))
_DELETING_USERS = Statement(select(_j.user_id).where(_j.kind == int(JobKind.DELETE)))

# ------------------------------------------------------------------- batches

# A batch's picks, in the order it takes them, each as the other user
# (``other``) and, for requests, ``request_id``.
_PICKS: tuple[tuple[str, Statement], ...] = tuple(
    (name, Statement(query.limit(_LIMIT)))
    for name, query in (
        ("following", select(_f.followee_id.label("other")).where(_f.follower_id == _USER).order_by(_f.followee_id)),
        (
            "followers",
            select(_f.follower_id.label("other"))
            .where(_f.followee_id == _USER)
            .order_by(_f.created_us, _f.follower_id),
        ),
        ("connections", select(_c.other_id.label("other")).where(_c.user_id == _USER).order_by(_c.other_id)),
        (
            "outgoing",
            select(_r.request_id, _r.recipient_id.label("other"))
            .where(_r.requester_id == _USER)
            .order_by(_r.created_us, _r.request_id),
        ),
        (
            "incoming",
            select(_r.request_id, _r.requester_id.label("other"))
            .where(_r.recipient_id == _USER)
            .order_by(_r.created_us, _r.request_id),
        ),
        ("blocking", select(_b.blocked_id.label("other")).where(_b.blocker_id == _USER).order_by(_b.blocked_id)),
        ("blocked_by", select(_b.blocker_id.label("other")).where(_b.blocked_id == _USER).order_by(_b.blocker_id)),
    )
)
_PICK_BLOCKERS = Statement(
    select(_b.blocker_id.label("other"))
    .where(_b.blocked_id == _USER, not_deleting(_b.blocker_id))
    .order_by(_b.blocker_id)
    .limit(_LIMIT)
)


_DELTA_NAMES = tuple(f"d_{name}" for name in COUNTER_COLUMNS)


def _grouped(deltas: dict[str, dict[str, int]]) -> dict[tuple[int, ...], list[str]]:
    """The users by their deltas (in ``COUNTER_COLUMNS`` order)."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for user_id, change in deltas.items():
        groups.setdefault(tuple(change.get(name, 0) for name in COUNTER_COLUMNS), []).append(user_id)
    return groups


def _add_counters(where: ColumnElement[bool]) -> Statement:
    """Adds the deltas ``d_<column>`` to the counter rows ``where`` selects
    and bumps their versions; returns the new rows."""
    deltas = {name: _uc[name] + bindparam(delta) for name, delta in zip(COUNTER_COLUMNS, _DELTA_NAMES, strict=True)}
    return Statement(
        update(user_counters)
        .where(where)
        .values({**deltas, "version": _next_version(bindparam("now"))})
        .returning(user_counters)
    )


_IDS = id_list("ids")


def _delete_edges(table: Any, own: Any, other: Any) -> Statement:
    """Deletes the edges of ``table`` whose ``own`` column is the user and
    whose ``other`` column is one of ``ids``; returns ``other``."""
    return Statement(delete(table).where(own == _USER, matches(other, _IDS)).returning(other.label("other")))


_TOMBSTONES = Statement(select(_j.user_id).where(_j.kind == int(JobKind.DELETE), matches(_j.user_id, _IDS)))
_ZERO_COUNTERS = Statement(
    update(user_counters)
    .where(matches(_uc.user_id, _IDS))
    .values(**dict.fromkeys(COUNTER_COLUMNS, 0), version=_next_version(bindparam("now")), deleting=True)
    .returning(user_counters)
)
_DELETE_FOLLOWING = _delete_edges(follows, _f.follower_id, _f.followee_id)
_DELETE_FOLLOWERS = _delete_edges(follows, _f.followee_id, _f.follower_id)
_DELETE_CONNECTIONS = _delete_edges(connections, _c.user_id, _c.other_id)
_DELETE_CONNECTIONS_TO = Statement(delete(connections).where(_c.other_id == _USER, matches(_c.user_id, _IDS)))
_DELETE_REQUESTS = Statement(delete(connection_requests).where(matches(_r.request_id, _IDS)).returning(_r.request_id))
_DELETE_BLOCKING = _delete_edges(blocks, _b.blocker_id, _b.blocked_id)
_DELETE_BLOCKED_BY = _delete_edges(blocks, _b.blocked_id, _b.blocker_id)
_ADD_COUNTERS = _add_counters(matches(_uc.user_id, _IDS))
# The same for the users ``ids`` not being deleted, whose rows it locks first
# in user id order (PostgreSQL: the sub-select's FOR UPDATE sits above its
# sort), as every write locks them.
_locked = user_counters.alias("locked")
_LOCK_AND_ADD = _add_counters(
    _uc.user_id.in_(
        select(_locked.c.user_id)
        .where(matches(_locked.c.user_id, _IDS), ~_locked.c.deleting)
        .order_by(_locked.c.user_id)
        .with_for_update()
    )
)

# ---------------------------------------------------------------------- jobs

_KIND: BindParameter[int] = bindparam("kind")
_OWNER: BindParameter[str] = bindparam("owner")
_THIS_JOB = and_(_j.user_id == _USER, _j.kind == _KIND)
_ADD_JOB = Statement(
    lambda insert: (
        insert(user_jobs)
        .values(user_id=_USER, kind=_KIND, created_us=bindparam("created_us"))
        .on_conflict_do_nothing(index_elements=["user_id", "kind"])
    )
)
_OPEN = select(_j.user_id, _j.kind).where(_j.lease_until_us < bindparam("now"))
_OPEN_ORDER = (_j.created_us, _j.user_id, _j.kind)
_OPEN_JOB = Statement(_OPEN.order_by(*_OPEN_ORDER).limit(1))
_OPEN_JOB_SKIP_LOCKED = Statement(_OPEN.order_by(*_OPEN_ORDER).limit(1).with_for_update(skip_locked=True))
_THE_JOB = Statement(_OPEN.where(_THIS_JOB).order_by(*_OPEN_ORDER).limit(1))
_THE_JOB_SKIP_LOCKED = Statement(
    _OPEN.where(_THIS_JOB).order_by(*_OPEN_ORDER).limit(1).with_for_update(skip_locked=True)
)
_LEASE_JOB = Statement(update(user_jobs).where(_THIS_JOB).values(lease_owner=_OWNER, lease_until_us=bindparam("until")))
_RENEW_JOB = Statement(
    update(user_jobs).where(_THIS_JOB, _j.lease_owner == _OWNER).values(lease_until_us=bindparam("until"))
)
_RELEASE = update(user_jobs).where(_j.lease_owner == _OWNER).values(lease_owner="", lease_until_us=0)
_RELEASE_JOBS = Statement(_RELEASE)
_RELEASE_JOB = Statement(_RELEASE.where(_THIS_JOB))
_FINISH_JOB = Statement(delete(user_jobs).where(_THIS_JOB))
_PENDING_JOBS = Statement(select(_j.user_id, _j.kind).order_by(*_OPEN_ORDER))
