"""Accounts: the edges a user deletion (R4) or a promotion to staff (B3)
removes, with the counters of everyone they touch. Unlike the rest of
``SqlTx`` these run on ``Connection.execute``, their statements built per
call around the ids a batch found."""

from __future__ import annotations

from sqlalchemy import delete, or_, select

from ..schema import blocks, connection_requests, connections, follows, user_counters, users
from ..types import Cascade, Counts, VersionedCounts
from .base import TxBase


class Accounts(TxBase):
    def delete_blocks_against(self, blocked_id: str, limit: int | None = None) -> list[str]:
        """Lifts the blocks against ``blocked_id`` (at most ``limit`` of
        them, by blocker id); returns the blockers."""
        b = blocks.c
        blockers = select(b.blocker_id).where(b.blocked_id == blocked_id)
        if limit is None:
            self._bump(blockers, blocked=-1)
            deleted = self._c.execute(delete(blocks).where(b.blocked_id == blocked_id).returning(b.blocker_id))
            return sorted(row.blocker_id for row in deleted)
        ids = list(self._c.execute(blockers.order_by(b.blocker_id).limit(limit)).scalars())
        if ids:
            self._bump(ids, blocked=-1)
            self._c.execute(delete(blocks).where(b.blocked_id == blocked_id, b.blocker_id.in_(ids)))
        return ids

    # --------------------------------------------------------------- accounts

    def delete_user_edges(self, user_id: str, limit: int) -> Cascade:
        """Deletes up to ``limit`` edges of each kind that involve
        ``user_id``, keeping both sides' counters in step; the user's
        record and counters stay. Every other user it touches is one of at
        most ``limit`` per kind, so the transaction stays short."""
        f, c, r, b = follows.c, connections.c, connection_requests.c, blocks.c

        def others(column, where) -> list[str]:
            return list(self._c.execute(select(column).where(where).order_by(column).limit(limit)).scalars())

        def remove(table, where, other, theirs: str, mine: str, *returned) -> list:
            ids = others(other, where)
            if not ids:
                return []
            rows = self._c.execute(delete(table).where(where, other.in_(ids)).returning(*returned)).all()
            self._bump(ids, **{theirs: -1})
            self._add(user_id, {mine: -len(ids)})
            return rows

        follow = (f.follower_id, f.followee_id)
        removed_follows = remove(follows, f.follower_id == user_id, f.followee_id, "followers", "following", *follow)
        removed_follows += remove(follows, f.followee_id == user_id, f.follower_id, "following", "followers", *follow)
        connected = others(c.other_id, c.user_id == user_id)
        if connected:
            self._c.execute(delete(connections).where(c.user_id == user_id, c.other_id.in_(connected)))
            self._c.execute(delete(connections).where(c.other_id == user_id, c.user_id.in_(connected)))
            self._bump(connected, connections=-1)
            self._add(user_id, {"connections": -len(connected)})
        request = (r.request_id, r.requester_id, r.recipient_id)
        removed_requests = remove(
            connection_requests, r.requester_id == user_id, r.recipient_id, "incoming_requests", "outgoing_requests",
            *request,
        )
        removed_requests += remove(
            connection_requests, r.recipient_id == user_id, r.requester_id, "outgoing_requests", "incoming_requests",
            *request,
        )
        own_blocks = others(b.blocked_id, b.blocker_id == user_id)
        if own_blocks:
            self._c.execute(delete(blocks).where(b.blocker_id == user_id, b.blocked_id.in_(own_blocks)))
            self._add(user_id, {"blocked": -len(own_blocks)})
        blockers = self.delete_blocks_against(user_id, limit)
        return Cascade(
            follows=sorted((row.follower_id, row.followee_id) for row in removed_follows),
            connections=[(user_id, other) for other in connected],
            requests=sorted((row.request_id, row.requester_id, row.recipient_id) for row in removed_requests),
            blocks=sorted([(user_id, blocked) for blocked in own_blocks] + [(blocker, user_id) for blocker in blockers]),
        )

    def delete_user(self, user_id: str) -> Cascade:
        """Removes every edge that involves ``user_id``, keeping the other
        side's counters in step, then the user's counters and record."""
        f, c, r, b = follows.c, connections.c, connection_requests.c, blocks.c
        self._bump(select(f.followee_id).where(f.follower_id == user_id), followers=-1)
        self._bump(select(f.follower_id).where(f.followee_id == user_id), following=-1)
        self._bump(select(c.other_id).where(c.user_id == user_id), connections=-1)
        self._bump(select(r.recipient_id).where(r.requester_id == user_id), incoming_requests=-1)
        self._bump(select(r.requester_id).where(r.recipient_id == user_id), outgoing_requests=-1)
        self._bump(select(b.blocker_id).where(b.blocked_id == user_id), blocked=-1)
        execute = self._c.execute
        removed_follows = execute(
            delete(follows)
            .where(or_(f.follower_id == user_id, f.followee_id == user_id))
            .returning(f.follower_id, f.followee_id)
        ).all()
        removed_connections = execute(
            delete(connections)
            .where(or_(c.user_id == user_id, c.other_id == user_id))
            .returning(c.user_id, c.other_id)
        ).all()
        removed_requests = execute(
            delete(connection_requests)
            .where(or_(r.requester_id == user_id, r.recipient_id == user_id))
            .returning(r.request_id, r.requester_id, r.recipient_id)
        ).all()
        removed_blocks = execute(
            delete(blocks)
            .where(or_(b.blocker_id == user_id, b.blocked_id == user_id))
            .returning(b.blocker_id, b.blocked_id)
        ).all()
        execute(delete(user_counters).where(user_counters.c.user_id == user_id))
        existed = execute(delete(users).where(users.c.user_id == user_id)).rowcount > 0
        version = max(self._versions.get(user_id, 0) + 1, self._now_us)
        self.touched[user_id] = VersionedCounts(Counts(user_id), version, self.read_us)
        others = sorted({row.other_id if row.user_id == user_id else row.user_id for row in removed_connections})
        return Cascade(
            follows=sorted((row.follower_id, row.followee_id) for row in removed_follows),
            connections=[(user_id, other) for other in others],
            requests=sorted((row.request_id, row.requester_id, row.recipient_id) for row in removed_requests),
            blocks=sorted((row.blocker_id, row.blocked_id) for row in removed_blocks),
            user_existed=existed,
        )
