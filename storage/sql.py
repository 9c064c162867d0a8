"""The SQL implementation of ``Tx``, shared by SQLite and PostgreSQL.

The two engines differ only in ``INSERT ... ON CONFLICT`` (each dialect has
its own construct) and row locks (PostgreSQL takes ``FOR UPDATE``; SQLite
already holds the database write lock from ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Iterable, Sequence

from sqlalchemy import (
    Connection,
    String,
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from uuid6 import uuid7

from .deletion import DeletionTx, JobKind, not_deleting
from .direct import Direct, DirectCursor
from .clock import now_us
from .schema import (
    COUNTER_COLUMNS,
    blocks,
    commit_position,
    connection_requests,
    connections,
    event_horizon,
    events,
    follows,
    limiter_log,
    reports,
    service_keys,
    user_counters,
    user_jobs,
    users,
)
from .types import (
    Block,
    Change,
    Event,
    EventKind,
    EventRange,
    ConnectionRequest,
    CounterFix,
    Counts,
    Cursor,
    FeedSource,
    RelatedUser,
    Relationship,
    Pair,
    VersionedRelationships,
    Report,
    ReportReason,
    ReportStatus,
    Role,
    Totals,
    User,
    VersionedCounts,
)

_LOCK_ATTEMPTS = 3
# Any fixed number: keeps the limiter's advisory locks apart from others.
_LIMITER_LOCK_SEED = 0x5A7E
# PostgreSQL channel notified by every transaction that gives events positions.
EVENTS_CHANNEL = "socialgraph_events"


class SqlTx(DeletionTx):
    """One transaction on one connection. ``touched`` collects the counters
    the transaction changed, as they will be once it commits.

    Edge writes add their counter changes up per user; ``flush`` (run by the
    storage before COMMIT) applies them, two users a statement, so a write
    that changes several edges of one pair (a block's cascade, a request
    with its auto-follow) updates their counters once."""

    def __init__(self, conn: Connection, *, postgres: bool) -> None:
        self._c = conn
        self._d = DirectCursor(conn)
        self._pg = postgres
        self._insert = postgresql.insert if postgres else sqlite.insert
        self._now_us = time.time_ns() // 1000
        self.read_us = now_us()  # no snapshot of this transaction is older
        self.touched: dict[str, VersionedCounts] = {}
        self._versions: dict[str, int] = {}
        self._deltas: dict[str, dict[str, int]] = {}
        self._changes: list[Change] = []
        self.emitted = False

    # ------------------------------------------------------------------ locks

    def lock_users(self, user_ids: Iterable[str]) -> dict[str, Counts]:
        ids = sorted(set(user_ids))
        lock = _LOCK_FOR_UPDATE if self._pg else _LOCK
        for _ in range(_LOCK_ATTEMPTS):
            rows = {}
            for row in self._d.rows(lock, {"ids": ids}):
                rows[row.user_id] = _counts(row)
                self._versions[row.user_id] = row.version
            if len(rows) == len(ids):
                return rows
            # First write for a user, or a concurrent DeleteUser removed the
            # row: create it, then lock again.
            self._c.execute(
                self._insert(user_counters)
                .values([{"user_id": u} for u in ids if u not in rows])
                .on_conflict_do_nothing(index_elements=["user_id"])
            )
        raise RuntimeError("could not lock user counter rows")

    def _next_version(self) -> ColumnElement:
        version = user_counters.c.version
        return case((version + 1 > self._now_us, version + 1), else_=self._now_us)

    def _bump(self, user_id: str | list[str] | ColumnElement, **deltas: int) -> None:
        """Adds ``deltas`` to the counters of one user (at ``flush``), or of
        every user a list names or a subquery selects (at once)."""
        if isinstance(user_id, str):
            self._add(user_id, deltas)
            return
        values = {name: user_counters.c[name] + delta for name, delta in deltas.items()}
        values["version"] = self._next_version()
        where = user_counters.c.user_id.in_(user_id)
        self._touch(self._c.execute(update(user_counters).where(where).values(values).returning(user_counters)))

    def _bump_pair(self, first: str, first_deltas: dict[str, int], second: str, second_deltas: dict[str, int]) -> None:
        """The counter changes of the two users an edge joins (at ``flush``)."""
        self._add(first, first_deltas)
        self._add(second, second_deltas)

    def _add(self, user_id: str, deltas: dict[str, int]) -> None:
        pending = self._deltas.setdefault(user_id, {})
        for name, delta in deltas.items():
            pending[name] = pending.get(name, 0) + delta

    def flush(self, position: int | None = None) -> None:
        """Applies the counter changes added up so far, two users a statement,
        then appends the events (see ``_append_events``) with the
        transaction's commit position when it is known (SQLite)."""
        self._flush_counters()
        self._append_events(position)

    def _flush_counters(self) -> None:
        pending, self._deltas = list(self._deltas.items()), {}
        for i in range(0, len(pending), 2):
            first, first_deltas = pending[i]
            second, second_deltas = pending[i + 1] if i + 1 < len(pending) else pending[i]
            params = {"first": first, "second": second, "now": self._now_us}
            for name in COUNTER_COLUMNS:
                params[f"first_{name}"] = first_deltas.get(name, 0)
                params[f"second_{name}"] = second_deltas.get(name, 0)
            self._touch(self._d.rows(_BUMP_PAIR, params))

    def _append_events(self, position: int | None) -> None:
        """Appends the transaction's events, last thing before COMMIT.

        They are inserted without a position. On SQLite the transaction
        gives them theirs at once: writers are serialised, so positions are
        commit order. On PostgreSQL a position taken before COMMIT would not
        be: two writers could commit out of number order, and a reader
        tailing by number would skip the later-committing smaller one. So the
        sequencer gives positions after commit (``sequence_events``), and
        writers never wait on each other for them."""
        changes, self._changes = self._changes, []
        if not changes:
            return
        self._d.run(
            _INSERT_EVENT,
            [
                {
                    "event_id": str(uuid7()),
                    "kind": int(change.kind),
                    "actor_id": change.actor_id,
                    "subject_id": change.subject_id,
                    "occurred_us": change.occurred_us,
                    "payload": json.dumps(change.payload, separators=(",", ":")),
                    "position": position,
                }
                for change in changes
            ],
        )
        if not self._pg:
            self.sequence_events(len(changes))
        self.emitted = True

    def _touch(self, rows) -> None:
        for row in rows:
            self.touched[row.user_id] = VersionedCounts(_counts(row), row.version, self.read_us)

    # ------------------------------------------------------------------ users

    def get_user(self, user_id: str) -> User | None:
        row = self._c.execute(select(users).where(users.c.user_id == user_id)).first()
        return _user(row) if row else None

    def upsert_user(self, user: User, now_us: int) -> User:
        stmt = self._insert(users).values(
            user_id=user.user_id,
            role=int(user.role),
            display_name=user.display_name,
            avatar_url=user.avatar_url,
            created_us=now_us,
            updated_us=now_us,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "role": stmt.excluded.role,
                "display_name": stmt.excluded.display_name,
                "avatar_url": stmt.excluded.avatar_url,
                "updated_us": stmt.excluded.updated_us,
            },
        ).returning(users)
        return _user(self._c.execute(stmt).one())

    def role_of(self, user_id: str) -> Role:
        role = self._d.first_value(_ROLE_OF, {"user_id": user_id})
        return Role(role) if role is not None else Role.MEMBER

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
        request_id = self._d.first_value(_DELETE_REQUEST, {"a": requester_id, "b": recipient_id})
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

    # ----------------------------------------------------------------- events

    def emit(self, change: Change) -> None:
        self._changes.append(change)

    def sequence_events(self, limit: int, numbered: list[Event] | None = None) -> int:
        """Gives up to ``limit`` committed events without a position the next
        positions, in insertion order; returns how many, and appends them
        (with their positions, in order) to ``numbered`` when it is given.

        On PostgreSQL sequencers are serialised by a transaction-level
        advisory lock (one per events table) held to COMMIT, and a NOTIFY
        whose payload is the new head wakes every watching process at
        COMMIT: a reader that sees a position sees every smaller one, and
        positions follow commit order. The head is read by the numbering
        statement itself, which starts after the lock is held, so its
        snapshot sees every earlier sequencer's commit. Insertion order
        within one batch keeps the order of writes that touched the same
        users: the later one inserted its events after the earlier one
        committed."""
        if not self._pg:
            if numbered is None:
                return self._d.run(_SEQUENCE_EVENTS, {"limit": limit})
            rows = self._d.rows(_SEQUENCE_EVENTS_RETURNING, {"limit": limit})
        else:
            self._d.first_value(_SEQUENCER_LOCK, {})
            rows = self._d.rows(_SEQUENCE_EVENTS_PG, {"limit": limit})
            if rows:
                self._d.first_value(_NOTIFY_EVENTS, {"head": str(max(row.seq for row in rows))})
        if numbered is not None:
            numbered.extend(sorted((_event(row) for row in rows), key=lambda event: event.seq))
        return len(rows)

    def event_head(self) -> int:
        newest, pruned = self._d.rows(_EVENT_HEAD, {})[0]
        return max(newest or 0, pruned or 0)

    def event_horizon(self) -> int:
        return int(self._d.first_value(_EVENT_HORIZON, {}) or 0)

    def events_after(
        self, after: int, kinds: Sequence[int], user_ids: Sequence[str], limit: int, scan: int
    ) -> EventRange:
        head = self.event_head()
        upto = min(head, after + scan)
        if upto <= after:
            return EventRange([], after, head)
        e = events.c
        query = select(events).where(e.seq > after, e.seq <= upto)
        if kinds:
            query = query.where(e.kind.in_(sorted(set(kinds))))
        if user_ids:
            query = query.where(or_(e.actor_id.in_(user_ids), e.subject_id.in_(user_ids)))
        rows = self._c.execute(query.order_by(e.seq).limit(limit)).all()
        found = [_event(row) for row in rows]
        return EventRange(found, found[-1].seq if len(found) == limit else upto, head)

    def prune_events(self, before_us: int, limit: int) -> int:
        e = events.c
        oldest = self._c.execute(
            select(e.seq, e.occurred_us).where(e.seq.is_not(None)).order_by(e.seq).limit(limit)
        ).all()
        through = None
        for row in oldest:
            if row.occurred_us >= before_us:
                break
            through = row.seq
        if through is None:
            return 0
        removed = self._c.execute(delete(events).where(e.seq <= through)).rowcount
        self._c.execute(
            update(event_horizon)
            .where(event_horizon.c.id == 1, event_horizon.c.pruned_through < through)
            .values(pruned_through=through)
        )
        return removed

    # ----------------------------------------------------------- service keys

    def service_key(self, name: str, candidate: str) -> str:
        """The key stored under ``name``; ``candidate`` becomes it when there is none yet."""
        self._c.execute(
            self._insert(service_keys)
            .values(name=name, value=candidate)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return self._c.execute(select(service_keys.c.value).where(service_keys.c.name == name)).scalar_one()

    # ---------------------------------------------------------------- limiter

    def lock_limiter_key(self, key: str) -> None:
        """Serialises the limiter's transactions on one key until COMMIT
        (SQLite's BEGIN IMMEDIATE already serialises every write)."""
        if self._pg:
            self._c.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, _LIMITER_LOCK_SEED))))

    def limiter_times(self, key: str, since_us: int) -> list[int]:
        """The key's admitted attempts after ``since_us``, oldest first;
        older ones are deleted."""
        log = limiter_log.c
        self._c.execute(delete(limiter_log).where(log.limiter_key == key, log.at_us <= since_us))
        query = select(log.at_us).where(log.limiter_key == key).order_by(log.at_us)
        return list(self._c.execute(query).scalars())

    def limiter_entries(self, key: str, since_us: int) -> list[tuple[str, int]]:
        """The key's (token, time) entries after ``since_us``."""
        log = limiter_log.c
        query = select(log.token, log.at_us).where(log.limiter_key == key, log.at_us > since_us)
        return [(row.token, row.at_us) for row in self._c.execute(query)]

    def limiter_add(self, key: str, token: str, at_us: int) -> None:
        self._c.execute(
            self._insert(limiter_log)
            .values(limiter_key=key, token=token, at_us=at_us)
            .on_conflict_do_nothing(index_elements=["limiter_key", "token"])
        )

    def limiter_remove(self, key: str, token: str) -> None:
        log = limiter_log.c
        self._c.execute(delete(limiter_log).where(log.limiter_key == key, log.token == token))

    def limiter_prune(self, before_us: int, limit: int) -> int:
        """Deletes up to ``limit`` entries of any key older than ``before_us``."""
        log = limiter_log.c
        old = select(log.limiter_key, log.token).where(log.at_us <= before_us).limit(limit)
        return self._c.execute(
            delete(limiter_log).where(tuple_(log.limiter_key, log.token).in_(old))
        ).rowcount

    # ---------------------------------------------------------------- reports

    def insert_report(self, report: Report) -> None:
        self._c.execute(reports.insert().values(**_report_values(report)))

    def get_report(self, report_id: str) -> Report | None:
        query = select(reports).where(reports.c.report_id == report_id)
        if self._pg:
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _report(row) if row else None

    def update_report(self, report: Report) -> None:
        self._c.execute(
            update(reports)
            .where(reports.c.report_id == report.report_id)
            .values(**_report_values(report))
        )

    # ------------------------------------------------------------------ reads

    def identity(self) -> str:
        return self._d.first_value(_IDENTITY, {})

    def position(self) -> int:
        """The commit position now: the WAL write position on PostgreSQL,
        the commit counter on SQLite."""
        return int(self._d.first_value(_WAL_POSITION if self._pg else _COUNTER, {}))

    def bump_position(self) -> int:
        """SQLite: this write's commit position (run just before COMMIT)."""
        return int(self._d.first_value(_BUMP_COUNTER, {}))

    def ping(self) -> None:
        self._c.execute(select(literal(1)))

    def pair(self, user_id: str, other_id: str) -> Pair:
        found = {row.tag: row for row in self._d.rows(_PAIR, {"a": user_id, "b": other_id})}

        def since(tag):
            return found[tag].created_us if tag in found else None

        def request(tag, requester, recipient):
            row = found.get(tag)
            return ConnectionRequest(row.record_id, requester, recipient, row.text, row.created_us) if row else None

        blocking = found.get("blocking")
        return Pair(
            following_since=since("following"),
            followed_since=since("followed_by"),
            connected_since=since("connected"),
            outgoing=request("outgoing", user_id, other_id),
            incoming=request("incoming", other_id, user_id),
            blocking=Block(blocking.record_id, user_id, other_id, blocking.text, blocking.created_us) if blocking else None,
            blocked_by="blocked_by" in found,
        )

    def relationships(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        """Every relation between ``user_id`` and ``other_ids``, and the
        counter versions of all of them, in one statement (one snapshot)."""
        found: dict[str, dict] = defaultdict(dict)
        versions = dict.fromkeys((user_id, *other_ids), 0)
        deleting = set()
        for tag, other, n in self._d.rows(_RELATIONSHIPS, {"me": user_id, "others": list(set(other_ids))}):
            if tag == "version":
                versions[other] = int(n)
            elif tag == "deleting":
                deleting.add(other)
            else:
                found[other][tag] = n
        # A user whose deletion is in progress relates to nobody.
        for other in (set(other_ids) if user_id in deleting else deleting & set(other_ids)):
            found.pop(other, None)
        relationships = {
            other: Relationship(
                other_user_id=other,
                following="following" in found[other],
                followed_by="followed_by" in found[other],
                connected="connected" in found[other],
                outgoing_request_pending="outgoing" in found[other],
                incoming_request_pending="incoming" in found[other],
                blocking="blocking" in found[other],
                blocked_by="blocked_by" in found[other],
                mutual_connections_count=int(found[other].get("mutual", 0)),
            )
            for other in set(other_ids)
        }
        return VersionedRelationships(
            relationships, {other: (versions[user_id], versions[other]) for other in relationships}, self.read_us
        )

    def counts(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        rows = self._d.rows(_COUNTS, {"ids": list(set(user_ids))})
        return {row.user_id: VersionedCounts(_counts(row), row.version, self.read_us) for row in rows}

    def blocked_among(self, user_id: str, candidate_ids: Sequence[str]) -> set[str]:
        rows = self._d.rows(_BLOCKED_AMONG, {"me": user_id, "candidates": list(set(candidate_ids))})
        return {row[0] for row in rows}

    def mutual_connections(
        self, user_id: str, other_id: str, limit: int
    ) -> tuple[int, list[RelatedUser]]:
        c = connections.c
        c2 = connections.alias("c2")
        shared = (c.user_id == user_id, c2.c.user_id == other_id, not_deleting(c.other_id))
        joined = connections.join(c2, c2.c.other_id == c.other_id)
        count = self._c.execute(
            select(func.count()).select_from(joined).where(*shared)
        ).scalar_one()
        rows = self._c.execute(
            _related(c.other_id, c.created_us, joined)
            .where(*shared)
            .order_by(c.created_us.desc(), c.other_id.desc())
            .limit(limit)
        )
        return count, [_related_user(row) for row in rows]

    def list_followers(self, user_id, after, limit, viewer_id):
        f = follows.c
        query = _related(f.follower_id, f.created_us, follows).where(f.followee_id == user_id)
        return self._page_of_users(query, f.created_us, f.follower_id, after, limit, viewer_id)

    def list_following(self, user_id, after, limit, viewer_id):
        f = follows.c
        query = _related(f.followee_id, f.created_us, follows).where(f.follower_id == user_id)
        return self._page_of_users(query, f.created_us, f.followee_id, after, limit, viewer_id)

    def list_connections(self, user_id, after, limit, viewer_id):
        c = connections.c
        query = _related(c.other_id, c.created_us, connections).where(c.user_id == user_id)
        return self._page_of_users(query, c.created_us, c.other_id, after, limit, viewer_id)

    def _page_of_users(self, query, created, key, after, limit, viewer_id) -> list[RelatedUser]:
        query = query.where(not_deleting(key))
        if viewer_id is not None:
            query = query.where(~_block_between(viewer_id, key))
        rows = self._c.execute(_keyset(query, created, key, after, limit))
        return [_related_user(row) for row in rows]

    def list_requests(self, user_id, incoming, after, limit) -> list[ConnectionRequest]:
        r = connection_requests.c
        owner = r.recipient_id if incoming else r.requester_id
        other = r.requester_id if incoming else r.recipient_id
        query = select(connection_requests).where(owner == user_id, not_deleting(other))
        rows = self._c.execute(_keyset(query, r.created_us, r.request_id, after, limit))
        return [_request(row) for row in rows]

    def list_blocked(self, user_id, after, limit) -> list[Block]:
        b = blocks.c
        query = select(blocks).where(b.blocker_id == user_id, not_deleting(b.blocked_id))
        rows = self._c.execute(_keyset(query, b.created_us, b.blocked_id, after, limit))
        return [_block(row) for row in rows]

    def list_feed_sources(self, user_id, after, limit) -> list[FeedSource]:
        f, c = follows.c, connections.c
        connected = (
            select(literal(1))
            .where(c.user_id == user_id, c.other_id == f.followee_id)
            .exists()
        )
        query = select(f.followee_id, connected.label("connected"), f.created_us).where(
            f.follower_id == user_id, not_deleting(f.followee_id)
        )
        rows = self._c.execute(_keyset(query, f.created_us, f.followee_id, after, limit))
        return [FeedSource(row.followee_id, bool(row.connected), row.created_us) for row in rows]

    def list_reports(self, status, after, limit) -> list[Report]:
        r = reports.c
        query = select(reports).where(r.status == int(status))
        rows = self._c.execute(_keyset(query, r.created_us, r.report_id, after, limit))
        return [_report(row) for row in rows]

    def totals(self, since_us: int | None) -> Totals:
        def count(table, *where) -> Select:
            clauses = list(where)
            if since_us is not None:
                clauses.append(table.c.created_us >= since_us)
            return select(func.count()).select_from(table).where(*clauses).scalar_subquery()

        row = self._c.execute(
            select(
                count(users),
                count(follows),
                count(connections, connections.c.user_id < connections.c.other_id),
                count(connection_requests),
                count(blocks),
                count(reports, reports.c.status == int(ReportStatus.OPEN)),
            )
        ).one()
        return Totals(*row)

    # ------------------------------------------------------------ maintenance

    def recount(self) -> list[CounterFix]:
        if self._pg:
            # Edge writes hold row locks on user_counters until they commit;
            # this waits for them and keeps new ones out while we count.
            self._c.exec_driver_sql("LOCK TABLE user_counters IN EXCLUSIVE MODE")
        f, c, r, b = follows.c, connections.c, connection_requests.c, blocks.c
        sources = {
            "followers": (f.followee_id, follows),
            "following": (f.follower_id, follows),
            "connections": (c.user_id, connections),
            "incoming_requests": (r.recipient_id, connection_requests),
            "outgoing_requests": (r.requester_id, connection_requests),
            "blocked": (b.blocker_id, blocks),
        }
        actual: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTER_COLUMNS, 0))
        for column, (owner, table) in sources.items():
            for user_id, n in self._c.execute(
                select(owner, func.count()).select_from(table).group_by(owner)
            ):
                actual[user_id][column] = n
        stored = {row.user_id: row for row in self._c.execute(select(user_counters))}
        fixes: list[CounterFix] = []
        for user_id in sorted(set(actual) | set(stored)):
            truth = actual.get(user_id) or dict.fromkeys(COUNTER_COLUMNS, 0)
            row = stored.get(user_id)
            wrong = {
                column: n
                for column, n in truth.items()
                if (getattr(row, column) if row is not None else 0) != n
            }
            if row is None and not any(truth.values()):
                continue
            if row is None:
                self._c.execute(user_counters.insert().values(user_id=user_id, **truth))
            elif wrong:
                self._c.execute(
                    update(user_counters)
                    .where(user_counters.c.user_id == user_id)
                    .values(**wrong, version=self._next_version())
                )
            fixes.extend(
                CounterFix(user_id, column, getattr(row, column) if row is not None else 0, n)
                for column, n in wrong.items()
            )
        # Every counter as it now stands, so caches can be refreshed wholesale.
        self._touch(self._c.execute(select(user_counters)))
        return fixes


# ---------------------------------------------------------------- query parts


def _block_between(user_id, other_id) -> ColumnElement[bool]:
    b = blocks.c
    return (
        select(literal(1))
        .where(
            or_(
                and_(b.blocker_id == user_id, b.blocked_id == other_id),
                and_(b.blocker_id == other_id, b.blocked_id == user_id),
            ),
            not_deleting(user_id),
        )
        .exists()
    )


def _relationships_query() -> Select:
    me, others = bindparam("me"), bindparam("others", expanding=True)
    f, c, r, b, uc = follows.c, connections.c, connection_requests.c, blocks.c, user_counters.c
    c2 = connections.alias("c2")

    def tagged(tag: str, other, where, n=literal(1)) -> Select:
        return select(literal(tag).label("tag"), other.label("other"), n.label("n")).where(*where)

    return union_all(
        tagged("following", f.followee_id, [f.follower_id == me, f.followee_id.in_(others)]),
        tagged("followed_by", f.follower_id, [f.followee_id == me, f.follower_id.in_(others)]),
        tagged("connected", c.other_id, [c.user_id == me, c.other_id.in_(others)]),
        tagged("outgoing", r.recipient_id, [r.requester_id == me, r.recipient_id.in_(others)]),
        tagged("incoming", r.requester_id, [r.recipient_id == me, r.requester_id.in_(others)]),
        tagged("blocking", b.blocked_id, [b.blocker_id == me, b.blocked_id.in_(others)]),
        tagged("blocked_by", b.blocker_id, [b.blocked_id == me, b.blocker_id.in_(others)]),
        tagged(
            "mutual",
            c2.c.user_id,
            [c.user_id == me, c2.c.other_id == c.other_id, c2.c.user_id.in_(others), not_deleting(c.other_id)],
            func.count(),
        )
        .select_from(connections.join(c2, c2.c.other_id == c.other_id))
        .group_by(c2.c.user_id),
        tagged("version", uc.user_id, [or_(uc.user_id == me, uc.user_id.in_(others))], uc.version),
        tagged(
            "deleting",
            user_jobs.c.user_id,
            [user_jobs.c.kind == int(JobKind.DELETE), or_(user_jobs.c.user_id == me, user_jobs.c.user_id.in_(others))],
        ),
    )


def _bump_pair_statement():
    """Adds per-user deltas to two users' counters (the same user twice adds
    the first deltas once) and bumps their versions; returns the new rows."""
    uc = user_counters.c
    first, second = bindparam("first"), bindparam("second")
    values = {
        name: uc[name]
        + case(
            (uc.user_id == first, bindparam(f"first_{name}")),
            else_=bindparam(f"second_{name}"),
        )
        for name in COUNTER_COLUMNS
    }
    now = bindparam("now")
    values["version"] = case((uc.version + 1 > now, uc.version + 1), else_=now)
    return update(user_counters).where(uc.user_id.in_([first, second])).values(values).returning(user_counters)


def _pair_query() -> Select:
    a, b = bindparam("a"), bindparam("b")
    f, c, r, bl = follows.c, connections.c, connection_requests.c, blocks.c
    none = literal(None, String)

    def tagged(tag: str, created, record_id, text_, *where) -> Select:
        return select(
            literal(tag).label("tag"),
            created.label("created_us"),
            record_id.label("record_id"),
            text_.label("text"),
        ).where(*where)

    return union_all(
        tagged("following", f.created_us, none, none, f.follower_id == a, f.followee_id == b),
        tagged("followed_by", f.created_us, none, none, f.follower_id == b, f.followee_id == a),
        tagged("connected", c.created_us, none, none, c.user_id == a, c.other_id == b),
        tagged("outgoing", r.created_us, r.request_id, r.message, r.requester_id == a, r.recipient_id == b),
        tagged("incoming", r.created_us, r.request_id, r.message, r.requester_id == b, r.recipient_id == a),
        tagged("blocking", bl.created_us, bl.block_id, bl.reason, bl.blocker_id == a, bl.blocked_id == b),
        tagged("blocked_by", bl.created_us, none, none, bl.blocker_id == b, bl.blocked_id == a),
    )


def _blocked_among_query() -> Select:
    me, candidates = bindparam("me"), bindparam("candidates", expanding=True)
    b = blocks.c
    return union_all(
        select(b.blocked_id).where(
            b.blocker_id == me, b.blocked_id.in_(candidates), not_deleting(b.blocked_id), not_deleting(me)
        ),
        select(b.blocker_id).where(
            b.blocked_id == me, b.blocker_id.in_(candidates), not_deleting(b.blocker_id), not_deleting(me)
        ),
    )


# Hot statements: built once, run on the driver's cursor (see direct.py).
_COUNTS_QUERY = select(user_counters).where(user_counters.c.user_id.in_(bindparam("ids", expanding=True)))
_RELATIONSHIPS = Direct(_relationships_query())
_BLOCKED_AMONG = Direct(_blocked_among_query())
_COUNTS = Direct(_COUNTS_QUERY)
_IDENTITY = Direct(select(commit_position.c.identity))
_COUNTER = Direct(select(commit_position.c.position))
_BUMP_COUNTER = Direct(
    update(commit_position).values(position=commit_position.c.position + 1).returning(commit_position.c.position)
)
_WAL_POSITION = Direct(select(text("pg_current_wal_lsn() - '0/0'::pg_lsn")))
_LOCK_QUERY = _COUNTS_QUERY.order_by(user_counters.c.user_id)
_LOCK = Direct(_LOCK_QUERY)
_LOCK_FOR_UPDATE = Direct(_LOCK_QUERY.with_for_update())
_BUMP_PAIR = Direct(_bump_pair_statement())
_PAIR = Direct(_pair_query())
_ROLE_OF = Direct(select(users.c.role).where(users.c.user_id == bindparam("user_id")))
_A, _B = bindparam("a"), bindparam("b")
_INSERT_FOLLOW = Direct(follows.insert())
_DELETE_FOLLOW = Direct(delete(follows).where(follows.c.follower_id == _A, follows.c.followee_id == _B))
_INSERT_CONNECTION = Direct(connections.insert())
_DELETE_CONNECTION = Direct(
    delete(connections).where(
        or_(
            and_(connections.c.user_id == _A, connections.c.other_id == _B),
            and_(connections.c.user_id == _B, connections.c.other_id == _A),
        )
    )
)
_INSERT_REQUEST = Direct(connection_requests.insert())
_DELETE_REQUEST = Direct(
    delete(connection_requests).where(
        connection_requests.c.requester_id == _A, connection_requests.c.recipient_id == _B
    ).returning(connection_requests.c.request_id)
)
_INSERT_BLOCK = Direct(blocks.insert())
_DELETE_BLOCK = Direct(delete(blocks).where(blocks.c.blocker_id == _A, blocks.c.blocked_id == _B))
_INSERT_EVENT = Direct(
    events.insert().values(
        {name: bindparam(name) for name in ("event_id", "kind", "actor_id", "subject_id", "occurred_us", "payload", "position")}
    )
)
# Keyed by the events table's oid, so databases sharing a server (or schemas
# sharing a database) do not wait on each other.
_SEQUENCER_LOCK = Direct(
    select(func.pg_advisory_xact_lock(literal(0x5E7E47), literal_column("'events'::regclass::oid::int")))
)
# The payload is the head after the sequencer's batch: a process whose feed
# already holds it has nothing to read.
_NOTIFY_EVENTS = Direct(select(func.pg_notify(EVENTS_CHANNEL, bindparam("head"))))
_EVENT_HORIZON = Direct(select(event_horizon.c.pruned_through).where(event_horizon.c.id == 1))
_EVENT_HEAD = Direct(
    select(
        select(func.max(events.c.seq)).scalar_subquery().label("newest"),
        _EVENT_HORIZON.stmt.scalar_subquery().label("pruned"),
    )
)


def _sequence_statement(*, postgres: bool) -> Update:
    """Numbers up to ``:limit`` events without a position, in insertion
    order, after the head (``event_head()``, read by the statement itself:
    the newest position, or the horizon once pruning removed every event);
    on PostgreSQL it also records the WAL position, read after the writers
    committed, so at or after each commit."""
    e, older = events.c, events.alias("older").c
    pending = (
        select(e.id, func.row_number().over(order_by=e.id).label("n"))
        .where(e.seq.is_(None))
        .order_by(e.id)
        .limit(bindparam("limit"))
        .subquery()
    )
    newest = func.coalesce(select(func.max(older.seq)).scalar_subquery(), 0)
    pruned = func.coalesce(_EVENT_HORIZON.stmt.scalar_subquery(), 0)
    values = {"seq": case((newest > pruned, newest), else_=pruned) + pending.c.n}
    if postgres:
        values["position"] = _WAL_POSITION.stmt.scalar_subquery()
    return update(events).where(e.id == pending.c.id).values(values)


_SEQUENCE_EVENTS = Direct(_sequence_statement(postgres=False))
_SEQUENCE_EVENTS_RETURNING = Direct(_sequence_statement(postgres=False).returning(*events.c))
_SEQUENCE_EVENTS_PG = Direct(_sequence_statement(postgres=True).returning(*events.c))


def _related(key, created, from_) -> Select:
    return select(
        key.label("user_id"),
        created.label("since_us"),
        func.coalesce(users.c.display_name, "").label("display_name"),
        func.coalesce(users.c.avatar_url, "").label("avatar_url"),
    ).select_from(from_.outerjoin(users, users.c.user_id == key))


def _keyset(query: Select, created, key, after: Cursor | None, limit: int) -> Select:
    """Newest first; strictly after the cursor, so concurrent inserts and
    deletes never repeat or skip an item that stays for the whole walk."""
    if after is not None:
        query = query.where(tuple_(created, key) < tuple_(after.created_us, after.key))
    return query.order_by(created.desc(), key.desc()).limit(limit)


# ------------------------------------------------------------------- row maps


def _counts(row) -> Counts:
    """A ``user_counters`` row (its columns in table order) as Counts."""
    return Counts(*row[: 1 + len(COUNTER_COLUMNS)])


def _event(row) -> Event:
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


def _user(row) -> User:
    return User(row.user_id, Role(row.role), row.display_name, row.avatar_url, row.created_us)


def _related_user(row) -> RelatedUser:
    return RelatedUser(row.user_id, row.since_us, row.display_name, row.avatar_url)


def _request(row) -> ConnectionRequest:
    return ConnectionRequest(
        row.request_id, row.requester_id, row.recipient_id, row.message, row.created_us
    )


def _block(row) -> Block:
    return Block(row.block_id, row.blocker_id, row.blocked_id, row.reason, row.created_us)


def _report(row) -> Report:
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


def _report_values(report: Report) -> dict:
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
