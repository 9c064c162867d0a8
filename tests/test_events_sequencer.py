"""The sequencer's run as the event feed uses it: ``EventLog.sequence``
returns the events it numbered (so the feed need not read them back),
PostgreSQL's NOTIFY carries the new head (so a process whose feed already
holds it reads nothing), and the feed reads the log instead when a run's
events do not follow its head (another process numbered some in between)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from server.rules import EventLog
from server.rules.events import READ_LIMIT
from server.rules.graph import now_us
from storage import open_storage
from storage.engine import SqlStorage
from storage.feed import EventFeed, listen
from storage.migrate import upgrade
from storage.types import Change, Event, EventKind, EventRange

from .support import temporary_database


def follow(storage: SqlStorage, a: str, b: str) -> None:
    storage.read_write(lambda tx: tx.emit(Change(EventKind.FOLLOWED, a, b, now_us(), {"cause": 1})))


def head(storage: SqlStorage) -> int:
    return storage.read_only(lambda tx: tx.event_head())


def held(feed: EventFeed, after: int) -> EventRange:
    """What the feed serves from memory after ``after`` (never the log)."""
    found = feed.recent(after, (), (), READ_LIMIT)
    assert found is not None, "outside the feed's window"
    return found


def logged(storage: SqlStorage, after: int) -> list[Event]:
    return storage.read_only(lambda tx: tx.events_after(after, (), (), 100, 1000)).events


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[SqlStorage]:
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        upgrade(storage)
        yield storage
        storage.close()


def test_a_run_returns_the_events_it_numbered(storage: SqlStorage, user: Callable[[], str]) -> None:
    log = EventLog(storage, now_us)
    log.sequence()
    before = head(storage)
    a, followed = user(), [user() for _ in range(3)]
    for b in followed:
        follow(storage, a, b)
    numbered = log.sequence()
    found = logged(storage, before)
    assert [(e.actor_id, e.subject_id) for e in found] == [(a, b) for b in followed]
    # PostgreSQL numbers after commit; SQLite's writers numbered their own.
    assert numbered == (found if storage.dialect == "postgresql" else [])
    assert log.sequence() == []


@pytest.mark.postgres
def test_notify_carries_the_new_head(postgres: SqlStorage, user: Callable[[], str]) -> None:
    log = EventLog(postgres, now_us)
    url = postgres.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        listen(conn)
        a = user()
        follow(postgres, a, user())
        follow(postgres, a, user())
        numbered = log.sequence()
        new_head = head(postgres)
        assert [e.seq for e in numbered] == [new_head - 1, new_head]
        payloads = [note.payload for note in conn.notifies(timeout=5, stop_after=1)]
        assert payloads == [str(new_head)]


@pytest.mark.postgres
def test_the_feed_takes_a_run_that_follows_its_head_and_reads_the_log_otherwise(
    postgres: SqlStorage, user: Callable[[], str]
) -> None:
    log = EventLog(postgres, now_us)
    feed = EventFeed(postgres, log.sequence, poll=0.01)  # not started: the test plays its threads
    feed._refresh()
    start = head(postgres)
    a = user()
    follow(postgres, a, user())
    elsewhere = log.sequence()  # another process's run: this feed never saw it
    follow(postgres, a, user())
    numbered = log.sequence()
    assert [e.seq for e in elsewhere + numbered] == [start + 1, start + 2]
    assert not feed._extend(numbered)  # a gap before it: not taken
    assert held(feed, start).events == []
    assert not feed._covered(str(start + 2)) and not feed._covered("")
    feed._refresh()
    assert held(feed, start).events == logged(postgres, start)
    assert feed._covered(str(start + 2))

    follow(postgres, a, user())
    numbered = log.sequence()
    assert feed._extend(numbered)  # right after the head: taken as returned
    window = held(feed, start)
    assert window.events == logged(postgres, start) and window.head == start + 3
    assert feed._extend(numbered)  # already held: nothing to do
    assert held(feed, start + 2).events == numbered


@pytest.mark.postgres
def test_finding_the_events_to_number_does_not_grow_with_the_numbered_ones(postgres: SqlStorage) -> None:
    """Each numbered event leaves a dead index entry until VACUUM. The
    sequencer finds the events left to number through an index of its own,
    in id order, which skips entries its earlier scans found dead; over the
    ``seq`` index with ``seq IS NULL``, a bitmap scan visited each of them
    on every run (6.8 ms a run after 200k events, against 0.7)."""
    from sqlalchemy.dialects import postgresql

    from storage.sql.maintenance import _SEQUENCE_EVENTS_PG

    with postgres.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE events SET (autovacuum_enabled = false)")
        conn.exec_driver_sql(
            "INSERT INTO events (event_id, kind, actor_id, subject_id, occurred_us) "
            "SELECT gen_random_uuid()::text, 1, 'a', 'b', 1 FROM generate_series(1, 20000)"
        )
        conn.exec_driver_sql("ANALYZE events")
    log = EventLog(postgres, now_us)
    while log.sequence():
        pass
    follow(postgres, "a", "b")
    sql, params = _SEQUENCE_EVENTS_PG.form(postgresql.psycopg.dialect()).bind({"limit": 1000})  # type: ignore[attr-defined]
    with postgres.engine.begin() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params))
        conn.rollback()
    assert "ix_events_pending" in plan, plan
