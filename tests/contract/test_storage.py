"""``Storage``: units of work that commit whole or not at all, reruns after
transient conflicts, errors in the storage layer's terms, listeners called
after commit, and consistency tokens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from storage import StorageConflict, StorageUnavailable, open_storage
from storage.migrate import upgrade
from storage.positions import InvalidToken
from storage.types import Change, EventKind, Storage, Tx, VersionedCounts

from ..support import POSTGRES_DSN, free_port, messages_sent, temporary_database
from .edges import counts, follow, short, tick

# ------------------------------------------------------ commit, rollback


def test_read_write_commits_and_returns_what_the_work_returns(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()

    def run(tx: Tx) -> str:
        tx.lock_users((a, b))
        tx.insert_follow(a, b, tick())
        return "done"

    assert storage.read_write(run) == "done"
    assert storage.read_only(lambda tx: tx.pair(a, b)).following_since is not None


def test_an_exception_rolls_back_every_write_and_counter(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, b, a)
    failure = ValueError("the rules said no")

    def run(tx: Tx) -> None:
        tx.lock_users((a, b))
        tx.insert_follow(a, b, tick())
        tx.delete_follow(b, a)
        tx.insert_connection(a, b, tick())
        tx.emit(Change(EventKind.FOLLOWED, a, b, tick(), {"cause": 1}))
        raise failure

    with pytest.raises(ValueError) as raised:
        storage.read_write(run)
    assert raised.value is failure
    pair = storage.read_only(lambda tx: tx.pair(a, b))
    assert (pair.following_since, pair.connected_since, pair.followed_since is not None) == (None, None, True)
    assert [short(c) for c in counts(storage, a, b)] == [(1, 0, 0, 0, 0, 0), (0, 1, 0, 0, 0, 0)]


def test_a_database_refusal_rolls_back_the_whole_unit(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, a, b)
    c = user()

    def run(tx: Tx) -> None:
        tx.lock_users((a, b, c))
        tx.insert_follow(a, c, tick())
        tx.insert_follow(a, b, tick())  # already there

    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        storage.read_write(run)
    assert storage.read_only(lambda tx: tx.pair(a, c)).following_since is None
    assert short(counts(storage, a)[0]) == (0, 1, 0, 0, 0, 0)


def test_concurrent_writes_to_one_user_serialise(storage: Storage, user: Callable[[], str]) -> None:
    """Writers that lock the same user take turns: no counter update is
    lost (I4), whatever the backend's concurrency."""
    star = user()
    fans = [[user() for _ in range(4)] for _ in range(6)]
    start = threading.Barrier(len(fans))
    errors: list[BaseException] = []

    def worker(group: list[str]) -> None:
        start.wait()
        try:
            for fan in group:
                follow(storage, fan, star)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(g,)) for g in fans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert counts(storage, star)[0].followers == 24
    assert len(storage.read_only(lambda tx: tx.list_followers(star, None, 100, None))) == 24


# ---------------------------------------------------------------- retries


def test_a_transient_conflict_reruns_the_work_from_the_start(
    storage: Storage, user: Callable[[], str], retryable_error: DBAPIError
) -> None:
    a, b = user(), user()
    attempts = 0

    def run(tx: Tx) -> int:
        nonlocal attempts
        attempts += 1
        tx.lock_users((a, b))
        tx.insert_follow(a, b, tick())  # a second insert would fail if the first stayed
        if attempts < 3:
            raise retryable_error
        return attempts

    assert storage.read_write(run) == 3
    assert [short(c) for c in counts(storage, a, b)] == [(0, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0)]


def test_a_conflict_that_keeps_recurring_is_a_storage_conflict(
    storage: Storage, user: Callable[[], str], retryable_error: DBAPIError
) -> None:
    a, b = user(), user()
    attempts = 0

    def run(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        tx.lock_users((a, b))
        tx.insert_follow(a, b, tick())
        raise retryable_error

    with pytest.raises(StorageConflict):
        storage.read_write(run)
    assert 1 < attempts <= 20
    assert isinstance(StorageConflict(), StorageUnavailable)  # callers may retry it
    assert storage.read_only(lambda tx: tx.pair(a, b)).following_since is None


def test_other_errors_are_not_retried(storage: Storage) -> None:
    attempts = 0

    def run(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        raise KeyError("not a database problem")

    with pytest.raises(KeyError):
        storage.read_write(run)
    assert attempts == 1


@pytest.mark.parametrize("mode", ["read_write", "read_only"])
def test_a_lost_connection_is_storage_unavailable(
    storage: Storage, lost_connection_error: DBAPIError, mode: str
) -> None:
    """A connection that died before COMMIT is retried once (it may have
    gone stale in the pool); then the storage gives up, in its own terms."""
    attempts = 0

    def run(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        raise lost_connection_error

    with pytest.raises(StorageUnavailable):
        getattr(storage, mode)(run)
    assert attempts == 2
    storage.ping()  # the pool recovers


def test_an_unreachable_database_is_storage_unavailable(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/missing/directory/graph.db"
    else:
        url = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1).replace(
            "127.0.0.1:5432", f"127.0.0.1:{free_port()}"
        )
    storage = open_storage(url, pool_size=1)
    try:
        with pytest.raises(StorageUnavailable):
            storage.ping()
        with pytest.raises(StorageUnavailable):
            storage.read_write(lambda tx: tx.lock_users(["x"]))
    finally:
        storage.close()


# -------------------------------------------------------------- listeners


def test_counter_listeners_get_the_committed_counters(empty_storage: Storage, user: Callable[[], str]) -> None:
    seen: list[dict[str, VersionedCounts]] = []
    empty_storage.on_counters_committed(seen.append)
    a, b = user(), user()
    follow(empty_storage, a, b)
    assert len(seen) == 1
    assert {u: short(v.counts) for u, v in seen[0].items()} == {a: (0, 1, 0, 0, 0, 0), b: (1, 0, 0, 0, 0, 0)}
    stored = empty_storage.read_only(lambda tx: tx.counts([a, b]))
    assert {u: v.version for u, v in seen[0].items()} == {u: v.version for u, v in stored.items()}

    def fail(tx: Tx) -> None:
        tx.lock_users((a, b))
        tx.delete_follow(a, b)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        empty_storage.read_write(fail)
    empty_storage.read_only(lambda tx: tx.counts([a]))
    assert len(seen) == 1


def test_a_failing_listener_does_not_fail_the_committed_write(empty_storage: Storage, user: Callable[[], str]) -> None:
    def broken(_changed: dict[str, VersionedCounts]) -> None:
        raise RuntimeError("listener bug")

    empty_storage.on_counters_committed(broken)
    a, b = user(), user()
    follow(empty_storage, a, b)
    assert empty_storage.read_only(lambda tx: tx.pair(a, b)).following_since is not None


def test_event_listeners_are_called_after_commits_that_appended_events(
    empty_storage: Storage, user: Callable[[], str]
) -> None:
    calls: list[int] = []
    empty_storage.on_events_committed(lambda: calls.append(1))
    a, b = user(), user()
    follow(empty_storage, a, b)  # no events emitted
    assert calls == []
    empty_storage.read_write(lambda tx: tx.emit(Change(EventKind.FOLLOWED, a, b, tick(), {"cause": 1})))
    assert calls == [1]

    def fail(tx: Tx) -> None:
        tx.emit(Change(EventKind.FOLLOWED, a, b, tick(), {"cause": 1}))
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        empty_storage.read_write(fail)
    assert calls == [1]


# ----------------------------------------------------------------- tokens


def test_a_write_token_names_its_commit_position(storage: Storage, user: Callable[[], str]) -> None:
    follow(storage, user(), user())
    first = storage.last_token()
    follow(storage, user(), user())
    second = storage.last_token()
    assert first and second and first != second
    p1, p2 = storage.token_position(first), storage.token_position(second)
    assert p1 < p2
    assert storage.token_at(p2) == second
    assert storage.positions.reflected_after(p1) is not None  # seen, and a later one too


@pytest.mark.postgres
def test_a_write_reads_its_position_in_the_message_of_its_commit(tmp_path: Path, user: Callable[[], str]) -> None:
    """PostgreSQL: the WAL position is read right after COMMIT, in the same
    message, so it costs the write no round trip of its own."""
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=1)
        try:
            upgrade(storage)
            follow(storage, user(), user())
            with contextlib.ExitStack() as tracing:

                def trace(dbapi_connection: Any, record: Any, proxy: Any) -> None:
                    sent.append(tracing.enter_context(messages_sent(dbapi_connection.pgconn)))

                sent: list[list[str]] = []
                event.listen(storage.engine, "checkout", trace)
                try:
                    follow(storage, user(), user())
                finally:
                    event.remove(storage.engine, "checkout", trace)
            token = storage.last_token()
        finally:
            storage.close()
    messages = [message for checkout in sent for message in checkout]
    with_commit = [message for message in messages if "COMMIT" in message]
    assert len(with_commit) == 1, messages
    assert "pg_current_wal_lsn()" in with_commit[0], messages
    assert sum("pg_current_wal_lsn()" in message for message in messages) == 1, messages
    assert token


@pytest.mark.postgres
def test_a_write_whose_position_cannot_be_read_after_its_commit_succeeds(
    tmp_path: Path, user: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read after COMMIT shares the COMMIT's message; its failure does
    not turn the committed write into a failed call."""
    import storage.sql.reads as reads
    from storage.sql.run import Statement

    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=1)
        try:
            upgrade(storage)
            monkeypatch.setattr(reads, "WAL_POSITION", Statement(text("SELECT 1 / 0")))
            a, b = user(), user()
            follow(storage, a, b)
            monkeypatch.undo()
            assert counts(storage, a)[0].following == 1
        finally:
            storage.close()


def test_observing_the_position_covers_writes_of_other_processes(
    storage: Storage, database_url: str, user: Callable[[], str]
) -> None:
    other = open_storage(database_url, pool_size=1)
    try:
        follow(other, user(), user())
        position = storage.token_position(other.last_token())
        follow(other, user(), user())
    finally:
        other.close()
    assert storage.positions.reflected_after(position) is None
    storage.observe_position()
    assert storage.positions.reflected_after(position) is not None


@pytest.mark.parametrize("token", ["", "garbage", "AAAA", "e30"])
def test_a_malformed_token_is_invalid(storage: Storage, token: str) -> None:
    with pytest.raises(InvalidToken):
        storage.token_position(token)


def test_a_token_of_another_database_is_invalid(storage: Storage, empty_storage: Storage) -> None:
    with pytest.raises(InvalidToken):
        storage.token_position(empty_storage.token_at(1))


def test_tokens_are_per_thread(storage: Storage, user: Callable[[], str]) -> None:
    follow(storage, user(), user())
    mine = storage.last_token()
    theirs: list[str] = []

    def other() -> None:
        follow(storage, user(), user())
        theirs.append(storage.last_token())

    t = threading.Thread(target=other)
    t.start()
    t.join(30)
    assert storage.last_token() == mine != theirs[0]
