"""How long a big-account batch holds other users' counter locks (issue 11
point 3): each batch measures it, from its first lock of another user's
counter row to its commit, and the runner sizes batches by it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from server.rules import Graph
from server.rules.jobs import Jobs, JobSettings
from storage import SqlStorage, open_storage
from storage.deletion import JobKind
from storage.migrate import upgrade
from storage.sql import SqlTx
from storage.sql.run import Runner
from storage.types import Block, Cascade, Role, Storage, Tx, User

from .support import messages_sent, new_user, temporary_database
from .test_deletion import finish_jobs, make_graph

LOCK_HOLD = "socialgraph_big_account_lock_hold_seconds"


def _batches_measured() -> float:
    found = REGISTRY.get_sample_value(f"{LOCK_HOLD}_count", {"kind": "delete"})
    return found or 0.0


def _tombstone(storage: SqlStorage, user_id: str) -> None:
    """As the rules layer does: their lock first."""

    def run(tx: Tx) -> None:
        tx.lock_users((user_id,))
        assert tx.start_deletion(user_id, 1) is not None

    storage.read_write(run)


def _batch(storage: SqlStorage, user_id: str) -> tuple[Cascade, Tx]:
    """One batch of ``user_id``'s deletion; the transaction that committed it."""
    last: list[Tx] = []

    def run(tx: Tx) -> Cascade:
        last[:] = [tx]
        return tx.delete_edges(user_id, 10)

    cascade = storage.read_write(run)
    return cascade, last[0]


def _tombstoned_with_fans(storage: SqlStorage, user: Callable[[], str]) -> tuple[str, list[str]]:
    """A user three others follow, whose deletion has started."""
    graph: Graph = make_graph(storage)
    big, fans = user(), [user() for _ in range(3)]
    graph.upsert_user(User(big, Role.MEMBER, "Big", "", 0))
    for fan in fans:
        graph.follow(fan, big)
    _tombstone(storage, big)
    return big, fans


@contextlib.contextmanager
def _postgres(tmp_path: Path) -> Iterator[SqlStorage]:
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        try:
            upgrade(storage)
            yield storage
        finally:
            storage.close()


def test_a_batch_measures_how_long_it_held_other_users_locks(storage: SqlStorage, user: Callable[[], str]) -> None:
    big, _fans = _tombstoned_with_fans(storage, user)
    cascade, tx = _batch(storage, big)
    assert len(cascade.follows) == 3
    held = tx.lock_hold()
    assert held is not None and 0 <= held < 60


@pytest.mark.postgres
def test_a_batch_releases_other_users_locks_before_its_process_handles_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement that locks the other users' counter rows goes with the
    COMMIT: a process that is slow to handle its result (its other threads
    hold the GIL) does not keep them locked. Here the batch's handling of the
    rows waits until another transaction has locked one of those users."""
    with _postgres(tmp_path) as storage:
        _released_before_handling(storage, monkeypatch)


def _released_before_handling(storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    big, fans = _tombstoned_with_fans(storage, new_user)
    other_locked: list[bool] = []
    touch = SqlTx._touch

    def touch_when_the_other_has_locked(tx: SqlTx, rows: Any) -> None:
        rows = list(rows)
        if {row.user_id for row in rows} == set(fans):
            done = threading.Event()

            def lock_a_fan() -> None:
                storage.read_write(lambda other: other.lock_users((fans[0],)))
                done.set()

            threading.Thread(target=lock_a_fan, daemon=True).start()
            other_locked.append(done.wait(3.0))
        touch(tx, rows)

    monkeypatch.setattr(SqlTx, "_touch", touch_when_the_other_has_locked)
    cascade, tx = _batch(storage, big)
    assert len(cascade.follows) == 3
    assert other_locked == [True]
    held = tx.lock_hold()
    assert held is not None and held < 3.0


@pytest.mark.postgres
def test_a_batch_sends_the_statement_that_locks_others_in_one_message_with_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent separately (even pipelined), the statement would run and hold
    its locks while the process's thread waits for the GIL to send the
    COMMIT. libpq's trace shows what left for the server."""
    commits: list[list[str]] = []  # each commit's messages
    commit = Runner.commit

    def traced(runner: Runner, *args: Any) -> Any:
        with messages_sent(runner._conn.connection.dbapi_connection.pgconn) as messages:  # type: ignore[union-attr]
            commits.append(messages)
            return commit(runner, *args)

    monkeypatch.setattr(Runner, "commit", traced)
    with _postgres(tmp_path) as storage:
        big, _fans = _tombstoned_with_fans(storage, new_user)
        cascade, tx = _batch(storage, big)
    assert len(cascade.follows) == 3
    assert tx.lock_hold() is not None
    # The batch's; a statement prepared for its first use on the connection
    # went on its own before (once in the connection's life).
    sent = [message for message in commits[-1] if "PREPARE" not in message]
    assert len(sent) == 1, sent
    assert "UPDATE user_counters" in sent[0] and "FOR UPDATE" in sent[0] and "COMMIT" in sent[0], sent


def test_a_batch_that_locks_nobody_else_measures_nothing(storage: SqlStorage, user: Callable[[], str]) -> None:
    """The blocked side of a user's own blocks keeps no counter of them."""
    blocker, blocked = user(), user()

    def block(tx: Tx) -> None:
        tx.lock_users((blocker, blocked))
        tx.insert_block(Block(new_user(), blocker, blocked, "", 1))

    storage.read_write(block)
    _tombstone(storage, blocker)

    cascade, tx = _batch(storage, blocker)
    assert cascade.blocks == [(blocker, blocked)]
    assert tx.lock_hold() is None


def test_the_runner_records_lock_holds(storage: SqlStorage, user: Callable[[], str]) -> None:
    graph = make_graph(storage)
    big = user()
    for _ in range(5):
        graph.follow(user(), big)
    before = _batches_measured()
    graph.delete_user(big)
    finish_jobs(graph)
    assert graph.jobs.longest_lock_hold > 0
    assert _batches_measured() > before


def test_batches_are_sized_by_the_lock_hold_not_the_whole_batch(storage: Storage) -> None:
    work: dict[JobKind, Any] = {}
    settings = JobSettings(max_batch=1000, batch_seconds=0.05)

    # A batch of 100 that took 1 s but held other users' locks for 10 ms grows.
    jobs = Jobs(storage, work, settings)
    jobs._measured(JobKind.DELETE, 100, 1.0, 0.01)
    assert jobs.batch_size() == 200
    assert jobs.longest_lock_hold == 0.01
    # One that locked nobody is sized by its whole time: it stays at the floor.
    jobs = Jobs(storage, work, settings)
    jobs._measured(JobKind.DELETE, 100, 1.0, None)
    assert jobs.batch_size() == 100
    # One that held the locks too long shrinks (at most halving, not below the floor).
    jobs = Jobs(storage, work, JobSettings(max_batch=10_000, batch_seconds=0.05))
    jobs._measured(JobKind.DELETE, 1000, 0.2, 0.5)
    assert jobs.batch_size() == 1000
    jobs._measured(JobKind.DELETE, 4000, 0.05, 0.5)
    assert jobs.batch_size() == 2000


def test_a_batch_s_statements_have_one_text_for_every_size_on_postgresql() -> None:
    """A batch's ids go to PostgreSQL as one array: its statements are
    parsed and prepared once, not once per batch size (expanded into one
    parameter per id, sizes from a tenth of ``--edge-batch-size`` up to it
    gave up to a thousand texts of a thousand parameters each)."""
    from sqlalchemy.dialects import postgresql, sqlite

    import storage.deletion
    from storage.sql.run import Statement

    dialect = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    # The statements that take the batch's ids: expanded on SQLite.
    statements = {
        name: s
        for name, s in vars(storage.deletion).items()
        if isinstance(s, Statement) and "ids" in s.form(sqlite.pysqlite.dialect()).expanding  # type: ignore[attr-defined]
    }
    assert len(statements) >= 10
    for name, statement in statements.items():
        form = statement.form(dialect)
        texts = {
            form.bind({**dict.fromkeys(form.defaults, 0), "ids": [f"u{i}" for i in range(size)]})[0]
            for size in (1, 7, 700)
        }
        assert len(texts) == 1, name
