"""How long a big-account batch holds other users' counter locks (issue 11
point 3): each batch measures it, from its first lock of another user's
counter row to its commit, and the runner sizes batches by it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from server.rules import Graph
from server.rules.jobs import Jobs, JobSettings
from storage import SqlStorage
from storage.deletion import JobKind
from storage.types import Block, Cascade, Role, Storage, Tx, User

from .support import new_user
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


def test_a_batch_measures_how_long_it_held_other_users_locks(storage: SqlStorage, user: Callable[[], str]) -> None:
    graph: Graph = make_graph(storage)
    big, fans = user(), [user() for _ in range(3)]
    graph.upsert_user(User(big, Role.MEMBER, "Big", "", 0))
    for fan in fans:
        graph.follow(fan, big)
    _tombstone(storage, big)

    cascade, tx = _batch(storage, big)
    assert len(cascade.follows) == 3
    held = tx.lock_hold()
    assert held is not None and 0 <= held < 60


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
