"""``Tx`` jobs: one row per user and kind, claimed oldest first under a
lease that only its owner renews, releases or loses once it runs out. Each
test has a database of its own: a claim without a named job takes the
oldest of the whole database."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from server.rules.jobs import Jobs, JobSettings
from storage.deletion import JobKind
from storage.types import Storage, Tx

from .edges import tick

LEASE = 1_000_000


def add(storage: Storage, user_id: str, kind: JobKind, created_us: int) -> None:
    storage.read_write(lambda tx: tx.add_job(user_id, kind, created_us))


def claim(storage: Storage, owner: str, at: int, job: tuple[str, JobKind] | None = None) -> tuple[str, JobKind] | None:
    return storage.read_write(lambda tx: tx.claim_job(owner, at, LEASE, job))


def test_add_job_keeps_one_row_per_user_and_kind(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    for u, kind in ((a, JobKind.LIFT_BLOCKS), (b, JobKind.LIFT_BLOCKS), (a, JobKind.LIFT_BLOCKS), (a, JobKind.DELETE)):
        add(empty_storage, u, kind, tick())
    pending = empty_storage.read_only(lambda tx: tx.pending_jobs())
    assert pending == [(a, JobKind.LIFT_BLOCKS), (b, JobKind.LIFT_BLOCKS), (a, JobKind.DELETE)]
    assert all(isinstance(kind, JobKind) for _, kind in pending)
    assert empty_storage.read_only(lambda tx: tx.deleting([a, b])) == {a}, "a DELETE job is a tombstone"


def test_claim_takes_the_oldest_free_job_and_skips_leased_ones(empty_storage: Storage, user: Callable[[], str]) -> None:
    first, second = user(), user()
    add(empty_storage, first, JobKind.LIFT_BLOCKS, 10)
    add(empty_storage, second, JobKind.DELETE, 20)
    now = tick()
    assert claim(empty_storage, "one", now) == (first, JobKind.LIFT_BLOCKS)
    assert claim(empty_storage, "two", now + 1) == (second, JobKind.DELETE)
    assert claim(empty_storage, "three", now + 2) is None, "both are leased"
    assert claim(empty_storage, "three", now + 2, (first, JobKind.LIFT_BLOCKS)) is None
    assert empty_storage.read_only(lambda tx: tx.pending_jobs()) == [
        (first, JobKind.LIFT_BLOCKS),
        (second, JobKind.DELETE),
    ], "claiming keeps the jobs"


def test_claim_of_a_named_job_takes_only_that_one(empty_storage: Storage, user: Callable[[], str]) -> None:
    older, younger = user(), user()
    add(empty_storage, older, JobKind.LIFT_BLOCKS, 10)
    add(empty_storage, younger, JobKind.LIFT_BLOCKS, 20)
    now = tick()
    assert claim(empty_storage, "one", now, (younger, JobKind.LIFT_BLOCKS)) == (younger, JobKind.LIFT_BLOCKS)
    assert claim(empty_storage, "one", now, (younger, JobKind.DELETE)) is None, "no such job"
    assert claim(empty_storage, "two", now) == (older, JobKind.LIFT_BLOCKS)


def test_an_expired_lease_passes_to_another_owner(empty_storage: Storage, user: Callable[[], str]) -> None:
    u = user()
    job = (u, JobKind.LIFT_BLOCKS)
    add(empty_storage, u, JobKind.LIFT_BLOCKS, 10)
    now = tick()
    assert claim(empty_storage, "one", now) == job
    assert empty_storage.read_write(lambda tx: tx.renew_job(u, JobKind.LIFT_BLOCKS, "one", now + 2 * LEASE))
    assert claim(empty_storage, "two", now + LEASE + 1) is None, "renewed"
    assert claim(empty_storage, "two", now + 2 * LEASE + 1) == job, "the lease ran out"
    assert not empty_storage.read_write(lambda tx: tx.renew_job(u, JobKind.LIFT_BLOCKS, "one", now + 3 * LEASE))
    assert empty_storage.read_write(lambda tx: tx.release_jobs("one")) == 0, "no longer one's"
    assert empty_storage.read_write(lambda tx: tx.renew_job(u, JobKind.LIFT_BLOCKS, "two", now + 4 * LEASE))
    assert claim(empty_storage, "one", now + 3 * LEASE + 1) is None


def test_release_frees_the_owners_leases_at_once(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    for i, u in enumerate((a, b, c)):
        add(empty_storage, u, JobKind.LIFT_BLOCKS, 10 + i)
    now = tick()
    assert [claim(empty_storage, "one", now) for _ in range(2)] == [(a, JobKind.LIFT_BLOCKS), (b, JobKind.LIFT_BLOCKS)]
    assert claim(empty_storage, "two", now) == (c, JobKind.LIFT_BLOCKS)
    assert empty_storage.read_write(lambda tx: tx.release_jobs("one", (b, JobKind.LIFT_BLOCKS))) == 1
    assert claim(empty_storage, "three", now) == (b, JobKind.LIFT_BLOCKS), "released before its lease ran out"
    assert not empty_storage.read_write(lambda tx: tx.renew_job(b, JobKind.LIFT_BLOCKS, "one", now + LEASE))
    assert empty_storage.read_write(lambda tx: tx.release_jobs("one")) == 1
    assert empty_storage.read_write(lambda tx: tx.release_jobs("one")) == 0
    assert claim(empty_storage, "three", now) == (a, JobKind.LIFT_BLOCKS)
    assert claim(empty_storage, "four", now) is None, "c is still two's, a and b three's"


def test_finish_job_removes_it(empty_storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    add(empty_storage, a, JobKind.LIFT_BLOCKS, 10)
    add(empty_storage, a, JobKind.DELETE, 20)
    add(empty_storage, b, JobKind.LIFT_BLOCKS, 30)
    now = tick()
    assert claim(empty_storage, "one", now) == (a, JobKind.LIFT_BLOCKS)
    empty_storage.read_write(lambda tx: tx.finish_job(a, JobKind.LIFT_BLOCKS))
    assert empty_storage.read_only(lambda tx: tx.pending_jobs()) == [(a, JobKind.DELETE), (b, JobKind.LIFT_BLOCKS)]
    assert not empty_storage.read_write(lambda tx: tx.renew_job(a, JobKind.LIFT_BLOCKS, "one", now + LEASE))
    assert claim(empty_storage, "one", now) == (a, JobKind.DELETE)


def test_a_job_whose_batches_fail_is_tried_again_once_a_poll_not_in_a_loop(
    empty_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """The runner pauses ``poll_seconds`` after a failed batch before
    claiming the job again (the failed job's release must not wake it)."""
    empty_storage.read_write(lambda tx: tx.add_job("user-a", JobKind.DELETE, 1))
    attempts: list[float] = []

    def failing(tx: Tx, user_id: str, size: int) -> bool:
        attempts.append(time.monotonic())
        raise RuntimeError("this batch always fails")

    caplog.set_level(logging.CRITICAL, logger="server.rules.jobs")
    jobs = Jobs(empty_storage, {JobKind.DELETE: failing}, JobSettings(poll_seconds=0.5)).start()
    try:
        deadline = time.monotonic() + 10
        while not attempts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert attempts, "the runner never claimed the job"
        time.sleep(1.2)
    finally:
        jobs.stop()
    assert len(attempts) <= 4, f"{len(attempts)} attempts in 1.2 s with a 0.5 s pause"
