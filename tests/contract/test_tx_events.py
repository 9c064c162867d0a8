"""``Tx`` events: appended with the transaction that emits them, given
positions in commit order, read back by range and filter, pruned oldest
first. Each test has a log of its own (``empty_storage``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from storage.types import Change, Event, EventKind, EventRange, Storage, Tx

from .edges import tick


def change(kind: EventKind, actor: str, subject: str, at: int | None = None, **payload: object) -> Change:
    return Change(kind, actor, subject, tick() if at is None else at, {"cause": 1, **payload})


def emit(storage: Storage, *changes: Change) -> None:
    def run(tx: Tx) -> None:
        for c in changes:
            tx.emit(c)

    storage.read_write(run)


def sequence(storage: Storage) -> None:
    """Gives every committed event its position (PostgreSQL does it after
    commit; SQLite at commit, so there is nothing left to do)."""
    storage.read_write(lambda tx: tx.sequence_events(1000))
    assert storage.read_write(lambda tx: tx.sequence_events(1000)) == 0


def read(storage: Storage, after: int = 0, kinds: tuple[int, ...] = (), users: tuple[str, ...] = (),
         limit: int = 100, scan: int = 1000) -> EventRange:
    return storage.read_only(lambda tx: tx.events_after(after, kinds, users, limit, scan))


def summary(events: list[Event]) -> list[tuple[EventKind, str, str, int, dict[str, object]]]:
    return [(e.kind, e.actor_id, e.subject_id, e.occurred_us, e.payload) for e in events]


def test_events_read_back_in_commit_order(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    first = change(EventKind.FOLLOWED, a, b)
    second = change(EventKind.CONNECTION_REQUESTED, a, b, request={"request_id": "r1", "message": "hi"})
    third = change(EventKind.BLOCKED, b, a, block={"block_id": "b1", "reason": ""})
    emit(empty_storage, first, second)
    emit(empty_storage, third)
    sequence(empty_storage)
    found = read(empty_storage)
    assert summary(found.events) == summary([_as_event(c) for c in (first, second, third)])
    seqs = [e.seq for e in found.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert found.through == found.head == seqs[-1] == empty_storage.read_only(lambda tx: tx.event_head())
    assert all(e.position is not None for e in found.events)
    assert len({e.event_id for e in found.events}) == 3


def _as_event(c: Change) -> Event:
    return Event(0, "", c.kind, c.actor_id, c.subject_id, c.occurred_us, c.payload)


def test_a_rolled_back_transaction_appends_nothing(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()

    def fail(tx: Tx) -> None:
        tx.emit(change(EventKind.FOLLOWED, a, b))
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        empty_storage.read_write(fail)
    sequence(empty_storage)
    assert read(empty_storage) == EventRange([], 0, 0)


def test_reading_after_a_position_returns_only_later_events(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    emit(empty_storage, change(EventKind.FOLLOWED, a, b))
    sequence(empty_storage)
    head = read(empty_storage).head
    emit(empty_storage, change(EventKind.UNFOLLOWED, a, b))
    sequence(empty_storage)
    later = read(empty_storage, after=head)
    assert [e.kind for e in later.events] == [EventKind.UNFOLLOWED]
    assert read(empty_storage, after=later.through) == EventRange([], later.through, later.through)


def test_filters_by_kind_and_by_user_on_either_side(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    emit(
        empty_storage,
        change(EventKind.FOLLOWED, a, b),
        change(EventKind.FOLLOWED, b, c),
        change(EventKind.BLOCKED, c, a),
        change(EventKind.USER_DELETED, c, c),
    )
    sequence(empty_storage)

    def pairs(found: EventRange) -> list[tuple[EventKind, str, str]]:
        return [(e.kind, e.actor_id, e.subject_id) for e in found.events]

    assert pairs(read(empty_storage, kinds=(EventKind.FOLLOWED,))) == [
        (EventKind.FOLLOWED, a, b), (EventKind.FOLLOWED, b, c)
    ]
    assert pairs(read(empty_storage, users=(a,))) == [(EventKind.FOLLOWED, a, b), (EventKind.BLOCKED, c, a)]
    assert pairs(read(empty_storage, kinds=(EventKind.BLOCKED, EventKind.USER_DELETED), users=(b,))) == []
    everything = read(empty_storage, users=(b,), kinds=(EventKind.BLOCKED,))
    assert everything.through == everything.head  # nothing matched, all was looked at


def test_limit_and_scan_bound_one_read(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    emit(empty_storage, *(change(EventKind.FOLLOWED, a, b) for _ in range(5)))
    sequence(empty_storage)
    every = read(empty_storage).events
    limited = read(empty_storage, limit=2)
    assert limited.events == every[:2] and limited.through == every[1].seq
    scanned = read(empty_storage, scan=3)
    assert scanned.events == every[:3] and scanned.through == every[0].seq - 1 + 3
    other = read(empty_storage, users=(user(),), scan=3)
    assert (other.events, other.through) == ([], every[0].seq - 1 + 3)


def test_pruning_removes_the_oldest_and_moves_the_horizon(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    emit(empty_storage, change(EventKind.FOLLOWED, a, b, at=100))
    emit(empty_storage, change(EventKind.UNFOLLOWED, a, b, at=200))
    emit(empty_storage, change(EventKind.FOLLOWED, a, b, at=900))
    emit(empty_storage, change(EventKind.UNFOLLOWED, a, b, at=150))  # older, but after a newer one
    sequence(empty_storage)
    seqs = [e.seq for e in read(empty_storage).events]
    assert empty_storage.read_only(lambda tx: tx.event_horizon()) == 0
    assert empty_storage.read_write(lambda tx: tx.prune_events(300, 1)) == 1
    assert empty_storage.read_only(lambda tx: tx.event_horizon()) == seqs[0]
    assert empty_storage.read_write(lambda tx: tx.prune_events(300, 10)) == 1  # stops at the event of 900
    assert empty_storage.read_only(lambda tx: tx.event_horizon()) == seqs[1]
    assert [e.occurred_us for e in read(empty_storage, after=seqs[1]).events] == [900, 150]
    assert empty_storage.read_write(lambda tx: tx.prune_events(10_000, 10)) == 2
    assert empty_storage.read_only(lambda tx: (tx.event_horizon(), tx.event_head())) == (seqs[3], seqs[3])
    emit(empty_storage, change(EventKind.FOLLOWED, a, b))
    sequence(empty_storage)
    assert [e.seq for e in read(empty_storage, after=seqs[3]).events] == [seqs[3] + 1]
