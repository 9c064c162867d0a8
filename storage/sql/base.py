"""What every concern of ``SqlTx`` shares: the transaction's connection and
runner, and the counter changes and events it collects until ``flush``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, case, update
from sqlalchemy.dialects import postgresql, sqlite
from uuid6 import uuid7

from ..clock import now_us
from ..schema import COUNTER_COLUMNS, events, user_counters
from ..types import Change, Event, VersionedCounts
from . import parts
from .run import Params, Runner, Statement


class TxBase:
    """One transaction on one connection. ``touched`` collects the counters
    the transaction changed, as they will be once it commits.

    Edge writes add their counter changes up per user; ``flush`` (run by the
    storage before COMMIT) applies them, two users a statement, so a write
    that changes several edges of one pair (a block's cascade, a request
    with its auto-follow) updates their counters once."""

    def __init__(self, conn: Connection, *, postgres: bool) -> None:
        self._c = conn
        self._d = Runner(conn)
        self._pg = postgres
        self._insert: Any = postgresql.insert if postgres else sqlite.insert
        self._now_us = time.time_ns() // 1000
        self.read_us = now_us()  # no snapshot of this transaction is older
        self.touched: dict[str, VersionedCounts] = {}
        self._versions: dict[str, int] = {}
        # Whether each user this transaction locked is being deleted, as the
        # locked row says (``lock_users``); ``deleting`` answers from it.
        self._locked_deleting: dict[str, bool] = {}
        self._deltas: dict[str, dict[str, int]] = {}
        self._changes: list[Change] = []
        self.emitted = False
        # Work ``flush`` runs last, after the events (``DeletionTx``: a
        # batch's counter updates, so that it locks other users late).
        self._last: list[Callable[[], None]] = []
        # The statement sent with the COMMIT (``with_commit``), and how long
        # PostgreSQL held what it locked, by its own clock.
        self._with_commit: tuple[Statement, Params, Callable[[list[Any]], None]] | None = None
        self.commit_held: float | None = None
        # Statements sent ahead of the COMMIT in its message (``_later``).
        self._ahead: list[tuple[Statement, Params, Callable[[list[Any]], None] | None]] = []

    # -------------------------------------------------------------- counters

    def _bump(self, user_id: str, **deltas: int) -> None:
        """Adds ``deltas`` to the counters of one user (at ``flush``)."""
        self._add(user_id, deltas)

    def _bump_pair(self, first: str, first_deltas: dict[str, int], second: str, second_deltas: dict[str, int]) -> None:
        """The counter changes of the two users an edge joins (at ``flush``)."""
        self._add(first, first_deltas)
        self._add(second, second_deltas)

    def _add(self, user_id: str, deltas: dict[str, int]) -> None:
        pending = self._deltas.setdefault(user_id, {})
        for name, delta in deltas.items():
            pending[name] = pending.get(name, 0) + delta

    def _touch(self, rows: Any) -> None:
        for row in rows:
            self.touched[row.user_id] = VersionedCounts(parts.counts(row), row.version, self.read_us)

    def flush(self, position: int | None = None) -> None:
        """Applies the counter changes added up so far, two users a statement,
        then appends the events (see ``_append_events``) with the
        transaction's commit position when it is known (SQLite), then runs
        the work left for last."""
        self._flush_counters()
        self._append_events(position)
        last, self._last = self._last, []
        for work in last:
            work()

    def with_commit(self, statement: Statement, params: Params, then: Callable[[list[Any]], None]) -> None:
        """Makes ``statement`` the transaction's last, after ``flush``; ``then``
        gets its rows. On PostgreSQL it is sent together with the COMMIT
        (``Reads.commit``), so the rows it locks stay locked for
        its execution and the commit only, never for a round trip through
        this process while its other threads hold the GIL."""
        self._with_commit = (statement, params, then)

    def _later(self, statement: Statement, params: Params, then: Callable[[list[Any]], None] | None = None) -> None:
        """Runs a statement whose outcome no rule decides on before the
        commit; ``then`` gets its rows. On PostgreSQL it goes in the COMMIT's
        message (``Reads.commit``), ahead of the COMMIT, and costs no round
        trip of its own; elsewhere it runs now. Every user whose counters it
        changes is locked already, so running it last changes no lock order."""
        if self._pg:
            self._ahead.append((statement, params, then))
        elif then is None:
            self._d.run(statement, params)
        else:
            then(self._d.rows(statement, params))

    def held_back(self) -> bool:
        """Whether statements wait for the COMMIT's message (``_later``)."""
        return bool(self._ahead)

    def _flush_counters(self) -> None:
        pending, self._deltas = list(self._deltas.items()), {}
        for i in range(0, len(pending), 2):
            first, first_deltas = pending[i]
            second, second_deltas = pending[i + 1] if i + 1 < len(pending) else pending[i]
            params: dict[str, Any] = {"first": first, "second": second, "now": self._now_us}
            for name in COUNTER_COLUMNS:
                params[f"first_{name}"] = first_deltas.get(name, 0)
                params[f"second_{name}"] = second_deltas.get(name, 0)
            self._later(_BUMP_PAIR, params, self._touch)

    # ---------------------------------------------------------------- events

    def emit(self, change: Change) -> None:
        self._changes.append(change)

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
        rows = [
            (
                str(uuid7()),
                int(change.kind),
                change.actor_id,
                change.subject_id,
                change.occurred_us,
                json.dumps(change.payload, separators=(",", ":")),
                position,
            )
            for change in changes
        ]
        # A few events are one statement: psycopg runs executemany as a
        # pipeline, which costs a follow 8 % more Python.
        if len(rows) <= _FEW_EVENTS:
            params = {
                key: value
                for row, keys in zip(rows, _EVENT_KEYS, strict=False)
                for key, value in zip(keys, row, strict=True)
            }
            self._later(_INSERT_EVENTS[len(rows)], params)
        else:
            self._d.run(_INSERT_EVENTS[1], [dict(zip(_EVENT_KEYS[0], row, strict=True)) for row in rows])
        if not self._pg:
            self.sequence_events(len(changes))
        self.emitted = True

    def sequence_events(self, limit: int, numbered: list[Event] | None = None) -> int:
        raise NotImplementedError  # maintenance.py


def _bump_pair_statement() -> Any:
    """Adds per-user deltas to two users' counters (the same user twice adds
    the first deltas once) and bumps their versions; returns the new rows."""
    uc = user_counters.c
    first: BindParameter[str] = bindparam("first")
    second: BindParameter[str] = bindparam("second")
    values: dict[str, Any] = {
        name: uc[name]
        + case(
            (uc.user_id == first, bindparam(f"first_{name}")),
            else_=bindparam(f"second_{name}"),
        )
        for name in COUNTER_COLUMNS
    }
    values["version"] = parts.next_version(bindparam("now"))
    return update(user_counters).where(uc.user_id.in_([first, second])).values(values).returning(user_counters)


_BUMP_PAIR = Statement(_bump_pair_statement())
_EVENT_COLUMNS = ("event_id", "kind", "actor_id", "subject_id", "occurred_us", "payload", "position")
_FEW_EVENTS = 8
# The parameters of the i-th event of an insert, and the insert of n events
# (built once for each n up to _FEW_EVENTS).
_EVENT_KEYS = [tuple(f"{name}_{i}" for name in _EVENT_COLUMNS) for i in range(_FEW_EVENTS)]
_INSERT_EVENTS = [
    Statement(
        events.insert().values(
            [{name: bindparam(key) for name, key in zip(_EVENT_COLUMNS, keys, strict=True)} for keys in _EVENT_KEYS[:n]]
        )
    )
    for n in range(_FEW_EVENTS + 1)
]
