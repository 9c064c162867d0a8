"""Lists: keyset pages of users, requests, blocks, feed sources and reports,
the totals, and the event log read by Watch. Each shape of a list (with or
without a cursor, a viewer, filters) is its own statement, built once."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, Table, bindparam, func, literal, or_, select

from ..deletion import not_deleting
from ..schema import blocks, connection_requests, connections, events, follows, reports, users
from ..types import (
    Block,
    ConnectionRequest,
    Cursor,
    EventRange,
    FeedSource,
    RelatedUser,
    Report,
    ReportStatus,
    Totals,
)
from . import parts
from .reads import Reads
from .run import Statement

# The users a list of each kind names: (table, owner column, listed column).
_USER_LISTS: dict[str, tuple[Table, Any, Any]] = {
    "followers": (follows, follows.c.followee_id, follows.c.follower_id),
    "following": (follows, follows.c.follower_id, follows.c.followee_id),
    "connections": (connections, connections.c.user_id, connections.c.other_id),
}
# The records a list of each kind returns: (table, owner column, key column,
# the other user's column: a record naming a user whose deletion is in
# progress is left out).
_RECORD_LISTS: dict[str, tuple[Table, Any, Any, Any]] = {
    "incoming": (
        connection_requests,
        connection_requests.c.recipient_id,
        connection_requests.c.request_id,
        connection_requests.c.requester_id,
    ),
    "outgoing": (
        connection_requests,
        connection_requests.c.requester_id,
        connection_requests.c.request_id,
        connection_requests.c.recipient_id,
    ),
    "blocked": (blocks, blocks.c.blocker_id, blocks.c.blocked_id, blocks.c.blocked_id),
    "reports": (reports, reports.c.status, reports.c.report_id, None),
}


class Lists(Reads):
    def list_followers(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]:
        return self._page_of_users("followers", user_id, after, limit, viewer_id)

    def list_following(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]:
        return self._page_of_users("following", user_id, after, limit, viewer_id)

    def list_connections(
        self, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]:
        return self._page_of_users("connections", user_id, after, limit, viewer_id)

    def _page_of_users(
        self, kind: str, user_id: str, after: Cursor | None, limit: int, viewer_id: str | None
    ) -> list[RelatedUser]:
        """A page of ``user_id``'s list, empty while their deletion is in
        progress: one statement, which checks that too."""
        params = _page({"user_id": user_id, "viewer_id": viewer_id}, after, limit)
        rows = self._d.rows(_users_page(kind, viewer_id is not None, after is not None), params)
        return [parts.related_user(row) for row in rows]

    def list_requests(self, user_id: str, incoming: bool, after: Cursor | None, limit: int) -> list[ConnectionRequest]:
        kind = "incoming" if incoming else "outgoing"
        rows = self._d.rows(_records_page(kind, after is not None), _page({"owner": user_id}, after, limit))
        return [parts.request(row) for row in rows]

    def list_blocked(self, user_id: str, after: Cursor | None, limit: int) -> list[Block]:
        rows = self._d.rows(_records_page("blocked", after is not None), _page({"owner": user_id}, after, limit))
        return [parts.block(row) for row in rows]

    def list_feed_sources(self, user_id: str, after: Cursor | None, limit: int) -> list[FeedSource]:
        rows = self._d.rows(_feed_page(after is not None), _page({"user_id": user_id}, after, limit))
        return [FeedSource(row.followee_id, bool(row.connected), row.created_us) for row in rows]

    def list_reports(self, status: ReportStatus, after: Cursor | None, limit: int) -> list[Report]:
        rows = self._d.rows(_records_page("reports", after is not None), _page({"owner": int(status)}, after, limit))
        return [parts.report(row) for row in rows]

    def totals(self, since_us: int | None) -> Totals:
        row = self._d.first(_totals(since_us is not None), {"since_us": since_us})
        return Totals(*row)

    def events_after(
        self, after: int, kinds: Sequence[int], user_ids: Sequence[str], limit: int, scan: int
    ) -> EventRange:
        head = self.event_head()
        upto = min(head, after + scan)
        if upto <= after:
            return EventRange([], after, head)
        params = {
            "after": after,
            "upto": upto,
            "kinds": sorted(set(kinds)),
            "user_ids": list(user_ids),
            "limit": limit,
        }
        rows = self._d.rows(_events_page(bool(kinds), bool(user_ids)), params)
        found = [parts.event(row) for row in rows]
        return EventRange(found, found[-1].seq if len(found) == limit else upto, head)


def _page(params: dict[str, Any], after: Cursor | None, limit: int) -> dict[str, Any]:
    params["limit"] = limit
    if after is not None:
        params["after_created"], params["after_key"] = after.created_us, after.key
    return params


@cache
def _users_page(kind: str, viewer: bool, after: bool) -> Statement:
    table, owner, listed = _USER_LISTS[kind]
    created = table.c.created_us
    user_id: BindParameter[str] = bindparam("user_id")
    query = parts.related(listed, created, table).where(owner == user_id, not_deleting(listed), not_deleting(user_id))
    if viewer:
        query = query.where(~parts.block_between(bindparam("viewer_id"), listed))
    return Statement(parts.keyset(query, created, listed, after))


@cache
def _records_page(kind: str, after: bool) -> Statement:
    """Whole rows of one owner (``:owner``), keyed as ``_RECORD_LISTS`` says."""
    table, owner, key, other = _RECORD_LISTS[kind]
    query = select(table).where(owner == bindparam("owner"))
    if other is not None:
        query = query.where(not_deleting(other))
    return Statement(parts.keyset(query, table.c.created_us, key, after))


@cache
def _feed_page(after: bool) -> Statement:
    f, c = follows.c, connections.c
    user_id: BindParameter[str] = bindparam("user_id")
    connected = select(literal(1)).where(c.user_id == user_id, c.other_id == f.followee_id).exists()
    query = select(f.followee_id, connected.label("connected"), f.created_us).where(
        f.follower_id == user_id, not_deleting(f.followee_id)
    )
    return Statement(parts.keyset(query, f.created_us, f.followee_id, after))


@cache
def _totals(since: bool) -> Statement:
    def count(table: Table, *where: ColumnElement[bool]) -> Any:
        clauses = list(where)
        if since:
            clauses.append(table.c.created_us >= bindparam("since_us"))
        return select(func.count()).select_from(table).where(*clauses).scalar_subquery()

    return Statement(
        select(
            count(users),
            count(follows),
            count(connections, connections.c.user_id < connections.c.other_id),
            count(connection_requests),
            count(blocks),
            count(reports, reports.c.status == int(ReportStatus.OPEN)),
        )
    )


@cache
def _events_page(kinds: bool, user_ids: bool) -> Statement:
    e = events.c
    query: Select[Any] = select(events).where(e.seq > bindparam("after"), e.seq <= bindparam("upto"))
    if kinds:
        query = query.where(e.kind.in_(bindparam("kinds", expanding=True)))
    if user_ids:
        ids: BindParameter[list[str]] = bindparam("user_ids", expanding=True)
        query = query.where(or_(e.actor_id.in_(ids), e.subject_id.in_(ids)))
    return Statement(query.order_by(e.seq).limit(bindparam("limit")))
