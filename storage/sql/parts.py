"""Query parts and row maps the concern modules share.

``EDGES`` is where a relationship flag meets the schema: for each flag of
``Relationship`` (``types.FLAGS``), the table and the columns that hold it
seen from one user. The pair and relationship reads and the block predicate
are built from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)

from ..deletion import JobKind, not_deleting
from ..schema import (
    COUNTER_COLUMNS,
    blocks,
    connection_requests,
    connections,
    follows,
    user_counters,
    user_jobs,
    users,
)
from ..types import (
    FLAGS,
    Block,
    ConnectionRequest,
    Counts,
    Event,
    EventKind,
    RelatedUser,
    Report,
    ReportReason,
    ReportStatus,
    Role,
    User,
)
from .run import id_list, matches

Row = Any  # a named tuple of a statement's columns (see run.py)


@dataclass(frozen=True)
class Edge:
    """Where a flag is stored: a row of ``table`` with ``mine`` the viewer and
    ``other`` the other user; ``record``: the row's id and text, when the
    viewer may see them (a block's reason only by its blocker)."""

    table: Table
    mine: Column[Any]
    other: Column[Any]
    record: tuple[Column[Any], Column[Any]] | None = None


_f, _c, _r, _b = follows.c, connections.c, connection_requests.c, blocks.c
EDGES: dict[str, Edge] = {
    "following": Edge(follows, _f.follower_id, _f.followee_id),
    "followed_by": Edge(follows, _f.followee_id, _f.follower_id),
    "connected": Edge(connections, _c.user_id, _c.other_id),
    "outgoing_request_pending": Edge(
        connection_requests, _r.requester_id, _r.recipient_id, (_r.request_id, _r.message)
    ),
    "incoming_request_pending": Edge(
        connection_requests, _r.recipient_id, _r.requester_id, (_r.request_id, _r.message)
    ),
    "blocking": Edge(blocks, _b.blocker_id, _b.blocked_id, (_b.block_id, _b.reason)),
    "blocked_by": Edge(blocks, _b.blocked_id, _b.blocker_id),
}
assert tuple(EDGES) == FLAGS, "every Relationship flag needs its edge"

# The block predicate's two directions (types.blocked_either_way).
_BLOCKS_EITHER_WAY = (EDGES["blocking"], EDGES["blocked_by"])


def block_between(user_id: ColumnElement[Any], other_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether a block stands between two users, in either direction (none
    does while ``user_id``'s deletion is in progress)."""
    return (
        select(literal(1))
        .where(
            or_(*(and_(e.mine == user_id, matches(e.other, other_id)) for e in _BLOCKS_EITHER_WAY)),
            not_deleting(user_id),
        )
        .exists()
    )


def blocked_among_query() -> Select[Any]:
    """The candidates a block stands between ``me`` and, in either direction;
    none of them, or no one while ``me``'s, has a deletion in progress.
    ``candidates``: a list of ids (``id_list``)."""
    me: BindParameter[str] = bindparam("me")
    candidates = id_list("candidates")
    return union_all(  # type: ignore[return-value]
        *(
            select(e.other).where(e.mine == me, matches(e.other, candidates), not_deleting(e.other), not_deleting(me))
            for e in _BLOCKS_EITHER_WAY
        )
    )


def relationships_query() -> Select[Any]:
    """(tag, other, n) rows: a flag's name for each stored edge between
    ``me`` and ``others``, the mutual-connection counts (of connections
    without a deletion in progress), the counter versions of all of them,
    and ``deleting`` for each of them whose deletion is in progress.
    ``others``: a list of ids (``id_list``)."""
    me: BindParameter[str] = bindparam("me")
    others = id_list("others")
    c, uc = connections.c, user_counters.c
    c2 = connections.alias("c2")

    one = literal(1)

    def tagged(tag: str, other: ColumnElement[Any], where: list[ColumnElement[bool]], n: Any = one) -> Select[Any]:
        return select(literal(tag).label("tag"), other.label("other"), n.label("n")).where(*where)

    return union_all(  # type: ignore[return-value]
        *(tagged(flag, e.other, [e.mine == me, matches(e.other, others)]) for flag, e in EDGES.items()),
        tagged(
            "mutual",
            c2.c.user_id,
            [c.user_id == me, c2.c.other_id == c.other_id, matches(c2.c.user_id, others), not_deleting(c.other_id)],
            func.count(),
        )
        .select_from(connections.join(c2, c2.c.other_id == c.other_id))
        .group_by(c2.c.user_id),
        tagged("version", uc.user_id, [or_(uc.user_id == me, matches(uc.user_id, others))], uc.version),
        tagged(
            "deleting",
            user_jobs.c.user_id,
            [
                user_jobs.c.kind == int(JobKind.DELETE),
                or_(user_jobs.c.user_id == me, matches(user_jobs.c.user_id, others)),
            ],
        ),
    )


def pair_query() -> Select[Any]:
    """(tag, created_us, record_id, text) rows: every stored edge between
    ``a`` and ``b`` from ``a``'s side, tagged with its flag."""
    a: BindParameter[str] = bindparam("a")
    b: BindParameter[str] = bindparam("b")
    none = literal(None, String)

    def tagged(tag: str, e: Edge) -> Select[Any]:
        record_id, text = e.record if e.record is not None else (none, none)
        created = e.table.c.created_us
        return select(
            literal(tag).label("tag"),
            created.label("created_us"),
            record_id.label("record_id"),
            text.label("text"),
        ).where(e.mine == a, e.other == b)

    return union_all(*(tagged(flag, e) for flag, e in EDGES.items()))  # type: ignore[return-value]


def next_version(now: ColumnElement[Any]) -> ColumnElement[Any]:
    """A counter row's next version: ``max(version + 1, now)``."""
    version = user_counters.c.version
    return case((version + 1 > now, version + 1), else_=now)


def related(key: ColumnElement[Any], created: ColumnElement[Any], from_: Any) -> Select[Any]:
    return select(
        key.label("user_id"),
        created.label("since_us"),
        func.coalesce(users.c.display_name, "").label("display_name"),
        func.coalesce(users.c.avatar_url, "").label("avatar_url"),
    ).select_from(from_.outerjoin(users, users.c.user_id == key))


def keyset(query: Select[Any], created: ColumnElement[Any], key: ColumnElement[Any], after: bool) -> Select[Any]:
    """Newest first, at most ``:limit``; with ``after``, strictly after the
    cursor ``(:after_created, :after_key)``, so concurrent inserts and deletes
    never repeat or skip an item that stays for the whole walk."""
    if after:
        query = query.where(tuple_(created, key) < tuple_(bindparam("after_created"), bindparam("after_key")))
    return query.order_by(created.desc(), key.desc()).limit(bindparam("limit"))


# ------------------------------------------------------------------- row maps


def counts(row: Row) -> Counts:
    """A ``user_counters`` row (its columns in table order) as Counts."""
    return Counts(*row[: 1 + len(COUNTER_COLUMNS)])


def event(row: Row) -> Event:
    return Event(
        row.seq,
        row.event_id,
        EventKind(row.kind),
        row.actor_id,
        row.subject_id,
        row.occurred_us,
        json.loads(row.payload),
        row.position,
    )


def user(row: Row) -> User:
    return User(row.user_id, Role(row.role), row.display_name, row.avatar_url, row.created_us)


def related_user(row: Row) -> RelatedUser:
    return RelatedUser(row.user_id, row.since_us, row.display_name, row.avatar_url)


def request(row: Row) -> ConnectionRequest:
    return ConnectionRequest(row.request_id, row.requester_id, row.recipient_id, row.message, row.created_us)


def block(row: Row) -> Block:
    return Block(row.block_id, row.blocker_id, row.blocked_id, row.reason, row.created_us)


def report(row: Row) -> Report:
    return Report(
        row.report_id,
        row.reporter_id,
        row.reported_id,
        ReportReason(row.reason),
        row.details,
        ReportStatus(row.status),
        row.resolved_by,
        row.note,
        row.created_us,
        row.resolved_us,
    )


def report_values(report: Report) -> dict[str, Any]:
    return {
        "report_id": report.report_id,
        "reporter_id": report.reporter_id,
        "reported_id": report.reported_id,
        "reason": int(report.reason),
        "details": report.details,
        "status": int(report.status),
        "resolved_by": report.resolved_by,
        "note": report.note,
        "created_us": report.created_us,
        "resolved_us": report.resolved_us,
    }
