"""Writes: the per-user locks, users, edges and reports. Each edge write
adds its counter changes (applied at ``flush``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, delete, or_, update

from ..schema import blocks, connection_requests, connections, follows, reports, user_counters, users
from ..types import Block, ConnectionRequest, Counts, Report, User
from . import parts
from .base import TxBase
from .reads import COUNTS_QUERY
from .run import Statement

_LOCK_ATTEMPTS = 3


class Writes(TxBase):
    def lock_users(self, user_ids: Iterable[str]) -> dict[str, Counts]:
        ids = sorted(set(user_ids))
        lock = _LOCK_FOR_UPDATE if self._pg else _LOCK
        for _ in range(_LOCK_ATTEMPTS):
            rows = {}
            for row in self._d.rows(lock, {"ids": ids}):
                rows[row.user_id] = parts.counts(row)
                self._versions[row.user_id] = row.version
                self._locked_deleting[row.user_id] = row.deleting
            if len(rows) == len(ids):
                return rows
            # First write for a user, or a concurrent DeleteUser removed the
            # row: create it, then lock again.
            self._d.run(_CREATE_COUNTERS, [{"user_id": u} for u in ids if u not in rows])
        raise RuntimeError("could not lock user counter rows")

    # ------------------------------------------------------------------ users

    def upsert_user(self, user: User, now_us: int) -> User:
        row = self._d.first(
            _UPSERT_USER,
            {
                "user_id": user.user_id,
                "role": int(user.role),
                "display_name": user.display_name,
                "avatar_url": user.avatar_url,
                "created_us": now_us,
                "updated_us": now_us,
            },
        )
        return parts.user(row)

    # ---------------------------------------------------------------- follows

    def insert_follow(self, follower_id: str, followee_id: str, now_us: int) -> None:
        self._d.run(_INSERT_FOLLOW, {"follower_id": follower_id, "followee_id": followee_id, "created_us": now_us})
        self._bump_pair(follower_id, {"following": 1}, followee_id, {"followers": 1})

    def delete_follow(self, follower_id: str, followee_id: str) -> bool:
        if not self._d.run(_DELETE_FOLLOW, {"a": follower_id, "b": followee_id}):
            return False
        self._bump_pair(follower_id, {"following": -1}, followee_id, {"followers": -1})
        return True

    # ------------------------------------------------------------ connections

    def insert_connection(self, user_id: str, other_id: str, now_us: int) -> None:
        self._d.run(
            _INSERT_CONNECTION,
            [
                {"user_id": user_id, "other_id": other_id, "created_us": now_us},
                {"user_id": other_id, "other_id": user_id, "created_us": now_us},
            ],
        )
        self._bump_pair(user_id, {"connections": 1}, other_id, {"connections": 1})

    def delete_connection(self, user_id: str, other_id: str) -> bool:
        if not self._d.run(_DELETE_CONNECTION, {"a": user_id, "b": other_id}):
            return False
        self._bump_pair(user_id, {"connections": -1}, other_id, {"connections": -1})
        return True

    def insert_request(self, request: ConnectionRequest) -> None:
        low, high = sorted((request.requester_id, request.recipient_id))
        self._d.run(
            _INSERT_REQUEST,
            {
                "request_id": request.request_id,
                "requester_id": request.requester_id,
                "recipient_id": request.recipient_id,
                "user_low": low,
                "user_high": high,
                "message": request.message,
                "created_us": request.created_us,
            },
        )
        self._bump_pair(request.requester_id, {"outgoing_requests": 1}, request.recipient_id, {"incoming_requests": 1})

    def delete_request(self, requester_id: str, recipient_id: str) -> str | None:
        request_id: str | None = self._d.value(_DELETE_REQUEST, {"a": requester_id, "b": recipient_id})
        if request_id is None:
            return None
        self._bump_pair(requester_id, {"outgoing_requests": -1}, recipient_id, {"incoming_requests": -1})
        return request_id

    # ----------------------------------------------------------------- blocks

    def insert_block(self, block: Block) -> None:
        self._d.run(
            _INSERT_BLOCK,
            {
                "block_id": block.block_id,
                "blocker_id": block.blocker_id,
                "blocked_id": block.blocked_id,
                "reason": block.reason,
                "created_us": block.created_us,
            },
        )
        self._bump(block.blocker_id, blocked=1)

    def delete_block(self, blocker_id: str, blocked_id: str) -> bool:
        if not self._d.run(_DELETE_BLOCK, {"a": blocker_id, "b": blocked_id}):
            return False
        self._bump(blocker_id, blocked=-1)
        return True

    # ---------------------------------------------------------------- reports

    def insert_report(self, report: Report) -> None:
        self._d.run(_INSERT_REPORT, parts.report_values(report))

    def update_report(self, report: Report) -> None:
        values = parts.report_values(report)
        self._d.run(_UPDATE_REPORT, {"key": values.pop("report_id"), **values})


def _upsert_user(insert: Any) -> Any:
    columns = ("user_id", "role", "display_name", "avatar_url", "created_us", "updated_us")
    stmt = insert(users).values({name: bindparam(name) for name in columns})
    return stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "role": stmt.excluded.role,
            "display_name": stmt.excluded.display_name,
            "avatar_url": stmt.excluded.avatar_url,
            "updated_us": stmt.excluded.updated_us,
        },
    ).returning(users)


_LOCK_QUERY = COUNTS_QUERY.order_by(user_counters.c.user_id)
_LOCK = Statement(_LOCK_QUERY)
_LOCK_FOR_UPDATE = Statement(_LOCK_QUERY.with_for_update())
_CREATE_COUNTERS = Statement(
    lambda insert: insert(user_counters)
    .values(user_id=bindparam("user_id"))
    .on_conflict_do_nothing(index_elements=["user_id"])
)
_UPSERT_USER = Statement(_upsert_user)
_A: BindParameter[str] = bindparam("a")
_B: BindParameter[str] = bindparam("b")
_INSERT_FOLLOW = Statement(follows.insert())
_DELETE_FOLLOW = Statement(delete(follows).where(follows.c.follower_id == _A, follows.c.followee_id == _B))
_INSERT_CONNECTION = Statement(connections.insert())
_DELETE_CONNECTION = Statement(
    delete(connections).where(
        or_(
            and_(connections.c.user_id == _A, connections.c.other_id == _B),
            and_(connections.c.user_id == _B, connections.c.other_id == _A),
        )
    )
)
_INSERT_REQUEST = Statement(connection_requests.insert())
_DELETE_REQUEST = Statement(
    delete(connection_requests)
    .where(connection_requests.c.requester_id == _A, connection_requests.c.recipient_id == _B)
    .returning(connection_requests.c.request_id)
)
_INSERT_BLOCK = Statement(blocks.insert())
_DELETE_BLOCK = Statement(delete(blocks).where(blocks.c.blocker_id == _A, blocks.c.blocked_id == _B))
_REPORT_COLUMNS = [column.name for column in reports.c]
_INSERT_REPORT = Statement(reports.insert().values({name: bindparam(name) for name in _REPORT_COLUMNS}))
_UPDATE_REPORT = Statement(
    update(reports)
    .where(reports.c.report_id == bindparam("key"))
    .values({name: bindparam(name) for name in _REPORT_COLUMNS if name != "report_id"})
)
