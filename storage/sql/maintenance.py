"""Maintenance: event sequencing and retention, the counters' recount, the
limiter's sliding logs and the service keys."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Update, bindparam, case, delete, func, literal, literal_column, select, text, tuple_, update

from ..schema import (
    COUNTER_COLUMNS,
    blocks,
    connection_requests,
    connections,
    event_horizon,
    events,
    follows,
    limiter_log,
    service_keys,
    user_counters,
)
from ..types import CounterFix, Event
from . import parts
from .reads import EVENT_HORIZON_QUERY, WAL_POSITION_QUERY, Reads
from .run import Statement

# Any fixed number: keeps the limiter's advisory locks apart from others.
_LIMITER_LOCK_SEED = 0x5A7E
# The PostgreSQL channel notified by every transaction that gives events
# positions: one per schema (NOTIFY reaches a whole database), named by a
# SQL expression so that the notifier and the listener name it alike.
EVENTS_CHANNEL = "'socialgraph_events_' || left(md5(current_schema()), 16)"


class Maintenance(Reads):
    # ----------------------------------------------------------------- events

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
        params = {"limit": limit}
        if not self._pg:
            if numbered is None:
                return self._d.run(_SEQUENCE_EVENTS, params)
            rows = self._d.rows(_SEQUENCE_EVENTS_RETURNING, params)
        else:
            self._d.value(_SEQUENCER_LOCK)
            rows = self._d.rows(_SEQUENCE_EVENTS_PG, params)
            if rows:
                self._d.value(_NOTIFY_EVENTS, {"head": str(max(row.seq for row in rows))})
        if numbered is not None:
            numbered.extend(sorted((parts.event(row) for row in rows), key=lambda event: event.seq))
        return len(rows)

    def prune_events(self, before_us: int, limit: int) -> int:
        oldest = self._d.rows(_OLDEST_EVENTS, {"limit": limit})
        through = None
        for row in oldest:
            if row.occurred_us >= before_us:
                break
            through = row.seq
        if through is None:
            return 0
        removed = self._d.run(_PRUNE_EVENTS, {"through": through})
        self._d.run(_RAISE_HORIZON, {"through": through})
        return removed

    # ----------------------------------------------------------- service keys

    def service_key(self, name: str, candidate: str) -> str:
        """The key stored under ``name``; ``candidate`` becomes it when there is none yet."""
        self._d.run(_ADD_SERVICE_KEY, {"name": name, "value": candidate})
        return str(self._d.value(_SERVICE_KEY, {"name": name}))

    # ---------------------------------------------------------------- limiter

    def lock_limiter_key(self, key: str) -> None:
        """Serialises the limiter's transactions on one key until COMMIT
        (SQLite's BEGIN IMMEDIATE already serialises every write)."""
        if self._pg:
            self._d.value(_LIMITER_LOCK, {"key": key})

    def limiter_times(self, key: str, since_us: int) -> list[int]:
        """The key's admitted attempts after ``since_us``, oldest first;
        older ones are deleted (on PostgreSQL by the same statement)."""
        params = {"key": key, "since_us": since_us}
        if self._pg:
            return [row[0] for row in self._d.rows(_LIMITER_EXPIRE_AND_TIMES, params)]
        self._d.run(_LIMITER_EXPIRE, params)
        return [row[0] for row in self._d.rows(_LIMITER_TIMES, {"key": key})]

    def limiter_entries(self, key: str, since_us: int) -> list[tuple[str, int]]:
        """The key's (token, time) entries after ``since_us``."""
        return [(row.token, row.at_us) for row in self._d.rows(_LIMITER_ENTRIES, {"key": key, "since_us": since_us})]

    def limiter_add(self, key: str, token: str, at_us: int) -> None:
        self._d.run(_LIMITER_ADD, {"limiter_key": key, "token": token, "at_us": at_us})

    def limiter_remove(self, key: str, token: str) -> None:
        self._d.run(_LIMITER_REMOVE, {"key": key, "token": token})

    def limiter_prune(self, before_us: int, limit: int) -> int:
        """Deletes up to ``limit`` entries of any key older than ``before_us``."""
        return self._d.run(_LIMITER_PRUNE, {"before_us": before_us, "limit": limit})

    # ------------------------------------------------------------ counters

    def recount(self) -> list[CounterFix]:
        if self._pg:
            # Edge writes hold row locks on user_counters until they commit;
            # this waits for them and keeps new ones out while we count.
            self._d.run(_LOCK_COUNTERS)
        actual: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTER_COLUMNS, 0))
        for column, statement in _ACTUAL_COUNTS.items():
            for user_id, n in self._d.rows(statement):
                actual[user_id][column] = n
        stored = {row.user_id: row for row in self._d.rows(_ALL_COUNTERS)}
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
                self._d.run(_INSERT_COUNTERS, {"user_id": user_id, **truth})
            elif wrong:
                # The columns already right are set to what they hold.
                self._d.run(_FIX_COUNTERS, {"key": user_id, "now": self._now_us, **truth})
            fixes.extend(
                CounterFix(user_id, column, getattr(row, column) if row is not None else 0, n)
                for column, n in wrong.items()
            )
        # Every counter as it now stands, so caches can be refreshed wholesale.
        self._touch(self._d.rows(_ALL_COUNTERS))
        return fixes


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
    pruned = func.coalesce(EVENT_HORIZON_QUERY.scalar_subquery(), 0)
    values: dict[str, Any] = {"seq": case((newest > pruned, newest), else_=pruned) + pending.c.n}
    if postgres:
        values["position"] = WAL_POSITION_QUERY.scalar_subquery()
    return update(events).where(e.id == pending.c.id).values(values)


def _actual_counts() -> dict[str, Statement]:
    f, c, r, b = follows.c, connections.c, connection_requests.c, blocks.c
    sources = {
        "followers": (f.followee_id, follows),
        "following": (f.follower_id, follows),
        "connections": (c.user_id, connections),
        "incoming_requests": (r.recipient_id, connection_requests),
        "outgoing_requests": (r.requester_id, connection_requests),
        "blocked": (b.blocker_id, blocks),
    }
    return {
        column: Statement(select(owner, func.count()).select_from(table).group_by(owner))
        for column, (owner, table) in sources.items()
    }


_SEQUENCE_EVENTS = Statement(_sequence_statement(postgres=False))
_SEQUENCE_EVENTS_RETURNING = Statement(_sequence_statement(postgres=False).returning(*events.c))
_SEQUENCE_EVENTS_PG = Statement(_sequence_statement(postgres=True).returning(*events.c))
# Keyed by the events table's oid, so databases sharing a server (or schemas
# sharing a database) do not wait on each other.
_SEQUENCER_LOCK = Statement(
    select(func.pg_advisory_xact_lock(literal(0x5E7E47), literal_column("'events'::regclass::oid::int")))
)
# The payload is the head after the sequencer's batch: a process whose feed
# already holds it has nothing to read.
_NOTIFY_EVENTS = Statement(select(func.pg_notify(literal_column(EVENTS_CHANNEL), bindparam("head"))))
_OLDEST_EVENTS = Statement(
    select(events.c.seq, events.c.occurred_us)
    .where(events.c.seq.is_not(None))
    .order_by(events.c.seq)
    .limit(bindparam("limit"))
)
_PRUNE_EVENTS = Statement(delete(events).where(events.c.seq <= bindparam("through")))
_RAISE_HORIZON = Statement(
    update(event_horizon)
    .where(event_horizon.c.id == 1, event_horizon.c.pruned_through < bindparam("through"))
    .values(pruned_through=bindparam("through"))
)
_ADD_SERVICE_KEY = Statement(
    lambda insert: insert(service_keys)
    .values(name=bindparam("name"), value=bindparam("value"))
    .on_conflict_do_nothing(index_elements=["name"])
)
_SERVICE_KEY = Statement(select(service_keys.c.value).where(service_keys.c.name == bindparam("name")))
_log = limiter_log.c
_LIMITER_LOCK = Statement(
    select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), _LIMITER_LOCK_SEED)))
)
_EXPIRE = delete(limiter_log).where(_log.limiter_key == bindparam("key"), _log.at_us <= bindparam("since_us"))
_LIMITER_EXPIRE = Statement(_EXPIRE)
_LIMITER_TIMES = Statement(select(_log.at_us).where(_log.limiter_key == bindparam("key")).order_by(_log.at_us))
# The expiry as a data-modifying CTE, which PostgreSQL runs whether or not
# the query reads it; the query's snapshot still has the rows it deletes.
_LIMITER_EXPIRE_AND_TIMES = Statement(
    select(_log.at_us)
    .add_cte(_EXPIRE.cte("expired"))
    .where(_log.limiter_key == bindparam("key"), _log.at_us > bindparam("since_us"))
    .order_by(_log.at_us)
)
_LIMITER_ENTRIES = Statement(
    select(_log.token, _log.at_us).where(_log.limiter_key == bindparam("key"), _log.at_us > bindparam("since_us"))
)
_LIMITER_ADD = Statement(
    lambda insert: insert(limiter_log)
    .values(limiter_key=bindparam("limiter_key"), token=bindparam("token"), at_us=bindparam("at_us"))
    .on_conflict_do_nothing(index_elements=["limiter_key", "token"])
)
_LIMITER_REMOVE = Statement(
    delete(limiter_log).where(_log.limiter_key == bindparam("key"), _log.token == bindparam("token"))
)
_LIMITER_PRUNE = Statement(
    delete(limiter_log).where(
        tuple_(_log.limiter_key, _log.token).in_(
            select(_log.limiter_key, _log.token).where(_log.at_us <= bindparam("before_us")).limit(bindparam("limit"))
        )
    )
)
_LOCK_COUNTERS = Statement(text("LOCK TABLE user_counters IN EXCLUSIVE MODE"))
_ACTUAL_COUNTS = _actual_counts()
_ALL_COUNTERS = Statement(select(user_counters))
_INSERT_COUNTERS = Statement(
    user_counters.insert().values(user_id=bindparam("user_id"), **{c: bindparam(c) for c in COUNTER_COLUMNS})
)
_FIX_COUNTERS = Statement(
    update(user_counters)
    .where(user_counters.c.user_id == bindparam("key"))
    .values({**{c: bindparam(c) for c in COUNTER_COLUMNS}, "version": parts.next_version(bindparam("now"))})
)
