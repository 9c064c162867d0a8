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
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, delete, func, literal, select, update

from .schema import COUNTER_COLUMNS, blocks, connection_requests, connections, follows, user_counters, user_jobs, users
from .sql.run import Runner, Statement
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
    ``SqlTx``, which provides what is declared here."""

    _c: Connection
    _d: Runner
    _pg: bool
    _now_us: int
    _insert: Any  # the dialect's INSERT ... ON CONFLICT
    read_us: int
    touched: dict[str, VersionedCounts]
    _locked_deleting: dict[str, bool]

    def lock_users(self, user_ids: Iterable[str]) -> dict[str, Counts]:
        raise NotImplementedError

    def _bump(self, user_id: list[str], **deltas: int) -> None:
        raise NotImplementedError

    def _touch(self, rows: Any) -> None:
        raise NotImplementedError

    def _next_version(self) -> ColumnElement[int]:
        raise NotImplementedError

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
        uc = user_counters.c
        row = self._c.execute(select(user_counters).where(uc.user_id == user_id)).first()
        counts = Counts(*row[: 1 + len(COUNTER_COLUMNS)]) if row is not None else Counts(user_id)
        b = blocks.c
        against = self._c.execute(
            select(func.count()).select_from(blocks).where(b.blocked_id == user_id)
        ).scalar_one()
        removed = Removed(
            follows=counts.followers + counts.following,
            connections=counts.connections,
            requests=counts.incoming_requests + counts.outgoing_requests,
            blocks=counts.blocked + against,
        )
        existed = self._c.execute(delete(users).where(users.c.user_id == user_id)).rowcount > 0
        job = existed or removed != Removed()
        if not job:
            self._drop_counters(user_id)
            return removed, False
        self._c.execute(user_jobs.insert().values(user_id=user_id, kind=int(JobKind.DELETE), created_us=now_us))
        if row is None:
            self._c.execute(user_counters.insert().values(user_id=user_id))
        self._touch(
            self._c.execute(
                update(user_counters)
                .where(uc.user_id == user_id)
                .values(**dict.fromkeys(COUNTER_COLUMNS, 0), version=self._next_version(), deleting=True)
                .returning(user_counters)
            )
        )
        self._locked_deleting[user_id] = True
        return removed, True

    def delete_edges(self, user_id: str, limit: int) -> Cascade:
        """Removes up to ``limit`` edges of a tombstoned user, kind after
        kind, keeping the other users' counters exact (their rows locked in
        user id order, as every write locks them). ``more`` is whether it
        found ``limit`` edges: another job (a promotion's, or the deletion of
        a user at the other end) may remove some of them between the picks
        and the DELETEs, so what was removed does not tell. No edge of a
        tombstoned user appears afterwards, so finding fewer means none are
        left. Other users being deleted keep their counters at zero: their
        own jobs count nothing either."""
        f, c, r, b = follows.c, connections.c, connection_requests.c, blocks.c
        left = limit
        picked: dict[str, list[Any]] = {}

        def pick(name: str, query: Select[Any]) -> None:
            nonlocal left
            rows = list(self._c.execute(query.limit(left))) if left > 0 else []
            picked[name] = rows
            left -= len(rows)

        pick("following", select(f.followee_id).where(f.follower_id == user_id).order_by(f.followee_id))
        pick("followers", select(f.follower_id).where(f.followee_id == user_id).order_by(f.created_us, f.follower_id))
        pick("connections", select(c.other_id).where(c.user_id == user_id).order_by(c.other_id))
        pick(
            "outgoing",
            select(r.request_id, r.recipient_id)
            .where(r.requester_id == user_id)
            .order_by(r.created_us, r.request_id),
        )
        pick(
            "incoming",
            select(r.request_id, r.requester_id)
            .where(r.recipient_id == user_id)
            .order_by(r.created_us, r.request_id),
        )
        pick("blocking", select(b.blocked_id).where(b.blocker_id == user_id).order_by(b.blocked_id))
        pick("blocked_by", select(b.blocker_id).where(b.blocked_id == user_id).order_by(b.blocker_id))

        def others(name: str, column: int = 0) -> list[str]:
            return [row[column] for row in picked[name]]

        following, followers, connected = others("following"), others("followers"), others("connections")
        outgoing, incoming = picked["outgoing"], picked["incoming"]
        blocking, blocked_by = others("blocking"), others("blocked_by")
        # The blocked side of the user's own blocks keeps no counter of them.
        counted = {*following, *followers, *connected, *blocked_by}
        counted.update(row[1] for row in (*outgoing, *incoming))
        if counted:
            self.lock_users(counted)
        # Their own counters are zero until their deletion finishes.
        counted -= self.deleting(counted)
        # Each kind bumps only what its DELETE returned: a promotion's job
        # may lift blocks against the user at the same time.
        following = self._removed(follows, f.follower_id == user_id, f.followee_id, following)
        followers = self._removed(follows, f.followee_id == user_id, f.follower_id, followers)
        if connected:
            self._c.execute(delete(connections).where(c.other_id == user_id, c.user_id.in_(connected)))
        connected = self._removed(connections, c.user_id == user_id, c.other_id, connected)
        requests = [row[0] for row in (*outgoing, *incoming)]
        gone = self._c.execute(
            delete(connection_requests).where(r.request_id.in_(requests)).returning(r.request_id)
        ).scalars().all() if requests else []
        removed_requests = set(gone)
        outgoing = [row for row in outgoing if row[0] in removed_requests]
        incoming = [row for row in incoming if row[0] in removed_requests]
        blocking = self._removed(blocks, b.blocker_id == user_id, b.blocked_id, blocking)
        blocked_by = self._removed(blocks, b.blocked_id == user_id, b.blocker_id, blocked_by)
        for ids, column in (
            (following, "followers"),
            (followers, "following"),
            (connected, "connections"),
            ([row[1] for row in outgoing], "incoming_requests"),
            ([row[1] for row in incoming], "outgoing_requests"),
            (blocked_by, "blocked"),
        ):
            ids = [other for other in ids if other in counted]
            if ids:
                self._bump(ids, **{column: -1})
        return Cascade(
            follows=sorted([(user_id, other) for other in following] + [(other, user_id) for other in followers]),
            connections=[(user_id, other) for other in sorted(connected)],
            requests=sorted(
                [(row[0], user_id, row[1]) for row in outgoing] + [(row[0], row[1], user_id) for row in incoming]
            ),
            blocks=sorted([(user_id, other) for other in blocking] + [(other, user_id) for other in blocked_by]),
            more=left == 0,
        )

    def _removed(self, table: Any, where: ColumnElement[bool], other: Any, ids: list[str]) -> list[str]:
        """Deletes the rows of ``table`` matching ``where`` whose ``other``
        is one of ``ids``; returns the ids it found, in order."""
        if not ids:
            return []
        return sorted(self._c.execute(delete(table).where(where, other.in_(ids)).returning(other)).scalars())

    def finish_deletion(self, user_id: str) -> None:
        """The deletion's last step, once no edge is left: the user's counter
        row (published as zeros at a newer version) and the tombstone go."""
        self._drop_counters(user_id)
        self._c.execute(delete(users).where(users.c.user_id == user_id))
        self._finish_job(user_id, JobKind.DELETE)

    def _drop_counters(self, user_id: str) -> None:
        """Deletes the user's counter row; caches learn zeros at a newer version."""
        self._locked_deleting.pop(user_id, None)
        uc = user_counters.c
        version = self._c.execute(
            delete(user_counters).where(uc.user_id == user_id).returning(uc.version)
        ).scalar()
        self.touched[user_id] = VersionedCounts(
            Counts(user_id), max(int(version or 0) + 1, self._now_us), self.read_us
        )

    def zero_deleting_counters(self) -> list[str]:
        """Zeroes the own counters of every user whose deletion is in
        progress (after ``recount``, which counts the edges their job has
        yet to remove); returns them."""
        j, uc = user_jobs.c, user_counters.c
        ids = list(self._c.execute(select(j.user_id).where(j.kind == int(JobKind.DELETE))).scalars())
        if ids:
            zero = dict.fromkeys(COUNTER_COLUMNS, 0)
            self._touch(
                self._c.execute(
                    update(user_counters)
                    .where(uc.user_id.in_(ids))
                    .values(**zero, version=self._next_version())
                    .returning(user_counters)
                )
            )
        return ids

    # ------------------------------------------------------------ promotions

    def lift_blocks(self, blocked_id: str, limit: int) -> tuple[list[str], bool]:
        """Lifts up to ``limit`` blocks against ``blocked_id``, by blocker
        id, keeping the blockers' counters exact; returns the blockers, and
        whether more may be left (``limit`` were found: a blocker's deletion
        may remove some meanwhile). Blocks by users being deleted are left
        to their deletion, which keeps their counters at zero."""
        b = blocks.c
        picked = list(
            self._c.execute(
                select(b.blocker_id)
                .where(b.blocked_id == blocked_id, not_deleting(b.blocker_id))
                .order_by(b.blocker_id)
                .limit(limit)
            ).scalars()
        )
        ids: list[str] = []
        if picked:
            self.lock_users(picked)
            ids = self._removed(blocks, b.blocked_id == blocked_id, b.blocker_id, picked)
        if ids:
            self._bump(ids, blocked=-1)
        return ids, len(picked) == limit

    # ------------------------------------------------------------------ jobs

    def add_job(self, user_id: str, kind: JobKind, now_us: int) -> None:
        self._c.execute(
            self._insert(user_jobs)
            .values(user_id=user_id, kind=int(kind), created_us=now_us)
            .on_conflict_do_nothing(index_elements=["user_id", "kind"])
        )

    def claim_job(
        self, owner: str, now_us: int, lease_us: int, job: tuple[str, JobKind] | None = None
    ) -> tuple[str, JobKind] | None:
        """Takes the oldest job whose lease has run out (``job`` only, when
        given) for ``owner`` until ``now_us + lease_us``. On PostgreSQL
        claimers skip rows another claimer holds (SKIP LOCKED)."""
        j = user_jobs.c
        query = select(j.user_id, j.kind).where(j.lease_until_us < now_us)
        if job is not None:
            query = query.where(j.user_id == job[0], j.kind == int(job[1]))
        query = query.order_by(j.created_us, j.user_id, j.kind).limit(1)
        if self._pg:
            query = query.with_for_update(skip_locked=True)
        row = self._c.execute(query).first()
        if row is None:
            return None
        self._c.execute(
            update(user_jobs)
            .where(j.user_id == row.user_id, j.kind == row.kind)
            .values(lease_owner=owner, lease_until_us=now_us + lease_us)
        )
        return row.user_id, JobKind(row.kind)

    def renew_job(self, user_id: str, kind: JobKind, owner: str, until_us: int) -> bool:
        """Extends ``owner``'s lease; False when the job is no longer theirs
        (or gone), and the caller must stop."""
        j = user_jobs.c
        renewed: int = self._c.execute(
            update(user_jobs)
            .where(j.user_id == user_id, j.kind == int(kind), j.lease_owner == owner)
            .values(lease_until_us=until_us)
        ).rowcount
        return renewed > 0

    def release_jobs(self, owner: str, job: tuple[str, JobKind] | None = None) -> int:
        """Gives up ``owner``'s leases (of ``job`` only, when given) at once."""
        j = user_jobs.c
        query = update(user_jobs).where(j.lease_owner == owner)
        if job is not None:
            query = query.where(j.user_id == job[0], j.kind == int(job[1]))
        released: int = self._c.execute(query.values(lease_owner="", lease_until_us=0)).rowcount
        return released

    def finish_job(self, user_id: str, kind: JobKind) -> None:
        self._finish_job(user_id, kind)

    def _finish_job(self, user_id: str, kind: JobKind) -> None:
        j = user_jobs.c
        self._c.execute(delete(user_jobs).where(j.user_id == user_id, j.kind == int(kind)))

    def pending_jobs(self) -> list[tuple[str, JobKind]]:
        j = user_jobs.c
        rows = self._c.execute(select(j.user_id, j.kind).order_by(j.created_us, j.user_id, j.kind))
        return [(row.user_id, JobKind(row.kind)) for row in rows]


_TOMBSTONES = Statement(
    select(user_jobs.c.user_id).where(
        user_jobs.c.kind == int(JobKind.DELETE), user_jobs.c.user_id.in_(bindparam("ids", expanding=True))
    )
)
