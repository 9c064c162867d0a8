"""Reads of single records and of what stands between users: a pair's
edges, relationships, counters, blocks, mutual connections, the commit
position."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, literal, select, text, update

from ..deletion import not_deleting
from ..schema import commit_position, connections, event_horizon, events, reports, user_counters, users
from ..types import (
    FLAGS,
    Block,
    ConnectionRequest,
    Pair,
    RelatedUser,
    Relationship,
    Report,
    Role,
    User,
    VersionedCounts,
    VersionedRelationships,
)
from . import parts
from .base import TxBase
from .run import Statement


class Reads(TxBase):
    def get_user(self, user_id: str) -> User | None:
        row = self._d.first(_GET_USER, {"user_id": user_id})
        return parts.user(row) if row else None

    def role_of(self, user_id: str) -> Role:
        role = self._d.value(_ROLE_OF, {"user_id": user_id})
        return Role(role) if role is not None else Role.MEMBER

    def get_report(self, report_id: str) -> Report | None:
        row = self._d.first(_GET_REPORT_FOR_UPDATE if self._pg else _GET_REPORT, {"report_id": report_id})
        return parts.report(row) if row else None

    def identity(self) -> str:
        return str(self._d.value(_IDENTITY))

    def position(self) -> int:
        """The commit position now: the WAL write position on PostgreSQL,
        the commit counter on SQLite."""
        return int(self._d.value(WAL_POSITION if self._pg else _COUNTER))

    def commit(self) -> int | None:
        """Run by the storage last, as a write commits: the statements held
        back for the COMMIT (``_later``) and the ``with_commit`` statement,
        if any; then on PostgreSQL the COMMIT, in one message with them and
        with the read of the WAL position after it (the write's position),
        which it returns (None when that read failed after the COMMIT: the
        storage reads it again). On SQLite, where nothing is held back, it
        returns None and the storage's own commit follows; on PostgreSQL
        that finds the transaction ended."""
        last, self._with_commit = self._with_commit, None
        if not self._pg:
            if last is not None:
                statement, params, then = last
                then(self._d.rows(statement, params))
            return None
        ahead, self._ahead = self._ahead, []
        held = None if last is None else last[:2]
        committed = self._d.commit(WAL_POSITION, [(statement, params) for statement, params, _then in ahead], held)
        for (_statement, _params, use), rows in zip(ahead, committed.ahead, strict=True):
            if use is not None:
                use(rows)
        if last is not None:
            self.commit_held = committed.held
            last[2](committed.rows)
        return None if committed.value is None else int(committed.value)

    def bump_position(self) -> int:
        """SQLite: this write's commit position (run just before COMMIT)."""
        return int(self._d.value(_BUMP_COUNTER))

    def ping(self) -> None:
        self._d.rows(_PING)

    def event_head(self) -> int:
        newest, pruned = self._d.rows(EVENT_HEAD)[0]
        return max(newest or 0, pruned or 0)

    def event_horizon(self) -> int:
        return int(self._d.value(_EVENT_HORIZON) or 0)

    def pair(self, user_id: str, other_id: str) -> Pair:
        found = {row.tag: row for row in self._d.rows(_PAIR, {"a": user_id, "b": other_id})}

        def since(flag: str) -> int | None:
            return found[flag].created_us if flag in found else None

        def request(flag: str, requester: str, recipient: str) -> ConnectionRequest | None:
            row = found.get(flag)
            return ConnectionRequest(row.record_id, requester, recipient, row.text, row.created_us) if row else None

        blocking = found.get("blocking")
        return Pair(
            following_since=since("following"),
            followed_since=since("followed_by"),
            connected_since=since("connected"),
            outgoing=request("outgoing_request_pending", user_id, other_id),
            incoming=request("incoming_request_pending", other_id, user_id),
            blocking=(
                Block(blocking.record_id, user_id, other_id, blocking.text, blocking.created_us) if blocking else None
            ),
            blocked_by="blocked_by" in found,
        )

    def relationships(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        """Every relation between ``user_id`` and ``other_ids``, and the
        counter versions of all of them, in one statement (one snapshot)."""
        found: dict[str, dict[str, Any]] = defaultdict(dict)
        versions = dict.fromkeys((user_id, *other_ids), 0)
        deleting: set[str] = set()
        for tag, other, n in self._d.rows(_RELATIONSHIPS, {"me": user_id, "others": list(set(other_ids))}):
            if tag == "version":
                versions[other] = int(n)
            elif tag == "deleting":
                deleting.add(other)
            else:
                found[other][tag] = n
        # A user whose deletion is in progress relates to nobody.
        for other in set(other_ids) if user_id in deleting else deleting & set(other_ids):
            found.pop(other, None)
        relationships = {
            other: Relationship.of(other, [flag in found[other] for flag in FLAGS], int(found[other].get("mutual", 0)))
            for other in set(other_ids)
        }
        return VersionedRelationships(
            relationships, {other: (versions[user_id], versions[other]) for other in relationships}, self.read_us
        )

    def counts(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        rows = self._d.rows(_COUNTS, {"ids": list(set(user_ids))})
        return {row.user_id: VersionedCounts(parts.counts(row), row.version, self.read_us) for row in rows}

    def blocked_among(self, user_id: str, candidate_ids: Sequence[str]) -> set[str]:
        rows = self._d.rows(_BLOCKED_AMONG, {"me": user_id, "candidates": list(set(candidate_ids))})
        return {row[0] for row in rows}

    def mutual_connections(self, user_id: str, other_id: str, limit: int) -> tuple[int, list[RelatedUser]]:
        params = {"user_id": user_id, "other_id": other_id}
        count = int(self._d.value(_MUTUAL_COUNT, params))
        rows = self._d.rows(_MUTUAL, {**params, "limit": limit})
        return count, [parts.related_user(row) for row in rows]


def _mutual() -> tuple[Any, Any]:
    c = connections.c
    c2 = connections.alias("c2")
    shared = (c.user_id == bindparam("user_id"), c2.c.user_id == bindparam("other_id"), not_deleting(c.other_id))
    joined = connections.join(c2, c2.c.other_id == c.other_id)
    count = select(func.count()).select_from(joined).where(*shared)
    page = (
        parts.related(c.other_id, c.created_us, joined)
        .where(*shared)
        .order_by(c.created_us.desc(), c.other_id.desc())
        .limit(bindparam("limit"))
    )
    return count, page


COUNTS_QUERY = select(user_counters).where(user_counters.c.user_id.in_(bindparam("ids", expanding=True)))
_COUNTS = Statement(COUNTS_QUERY)
_RELATIONSHIPS = Statement(parts.relationships_query())
_BLOCKED_AMONG = Statement(parts.blocked_among_query())
_PAIR = Statement(parts.pair_query())
_GET_USER = Statement(select(users).where(users.c.user_id == bindparam("user_id")))
_ROLE_OF = Statement(select(users.c.role).where(users.c.user_id == bindparam("user_id")))
_REPORT_QUERY = select(reports).where(reports.c.report_id == bindparam("report_id"))
_GET_REPORT = Statement(_REPORT_QUERY)
_GET_REPORT_FOR_UPDATE = Statement(_REPORT_QUERY.with_for_update())
_IDENTITY = Statement(select(commit_position.c.identity))
_COUNTER = Statement(select(commit_position.c.position))
_BUMP_COUNTER = Statement(
    update(commit_position).values(position=commit_position.c.position + 1).returning(commit_position.c.position)
)
WAL_POSITION_QUERY = select(text("pg_current_wal_lsn() - '0/0'::pg_lsn"))
WAL_POSITION = Statement(WAL_POSITION_QUERY)
_PING = Statement(select(literal(1)))
_MUTUAL_COUNT, _MUTUAL = (Statement(stmt) for stmt in _mutual())
EVENT_HORIZON_QUERY = select(event_horizon.c.pruned_through).where(event_horizon.c.id == 1)
_EVENT_HORIZON = Statement(EVENT_HORIZON_QUERY)
EVENT_HEAD = Statement(
    select(
        select(func.max(events.c.seq)).scalar_subquery().label("newest"),
        EVENT_HORIZON_QUERY.scalar_subquery().label("pruned"),
    )
)
