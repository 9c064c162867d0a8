"""``Tx`` limiter logs (what storage/limiter.py builds the database limiter
on) and service keys."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from storage.types import Storage, Tx


def key() -> str:
    return f"limiter-{uuid.uuid4()}"


def test_entries_are_kept_per_key_and_token(storage: Storage) -> None:
    k, other = key(), key()

    def add(tx: Tx) -> None:
        tx.limiter_add(k, "t1", 100)
        tx.limiter_add(k, "t2", 200)
        tx.limiter_add(k, "t1", 300)  # the same token again: no second entry
        tx.limiter_add(other, "t1", 150)

    storage.read_write(add)
    assert sorted(storage.read_only(lambda tx: tx.limiter_entries(k, 0))) == [("t1", 100), ("t2", 200)]
    assert storage.read_only(lambda tx: tx.limiter_entries(k, 100)) == [("t2", 200)]
    storage.read_write(lambda tx: tx.limiter_remove(k, "t1"))
    storage.read_write(lambda tx: tx.limiter_remove(k, "no such token"))
    assert storage.read_only(lambda tx: tx.limiter_entries(k, 0)) == [("t2", 200)]
    assert storage.read_only(lambda tx: tx.limiter_entries(other, 0)) == [("t1", 150)]


def test_times_are_oldest_first_and_drop_what_left_the_window(storage: Storage) -> None:
    k = key()

    def add(tx: Tx) -> None:
        for token, at in (("c", 300), ("a", 100), ("b", 200)):
            tx.limiter_add(k, token, at)

    storage.read_write(add)
    assert storage.read_write(lambda tx: tx.limiter_times(k, 0)) == [100, 200, 300]
    assert storage.read_write(lambda tx: tx.limiter_times(k, 100)) == [200, 300]
    assert sorted(storage.read_only(lambda tx: tx.limiter_entries(k, 0))) == [("b", 200), ("c", 300)]


def test_prune_removes_old_entries_of_every_key_in_batches(empty_storage: Storage) -> None:
    keys = [key() for _ in range(3)]

    def add(tx: Tx) -> None:
        for i, k in enumerate(keys):
            tx.limiter_add(k, "old", 10 + i)
            tx.limiter_add(k, "new", 1000)

    empty_storage.read_write(add)
    assert empty_storage.read_write(lambda tx: tx.limiter_prune(500, 2)) == 2
    assert empty_storage.read_write(lambda tx: tx.limiter_prune(500, 2)) == 1
    assert empty_storage.read_write(lambda tx: tx.limiter_prune(500, 2)) == 0
    left = empty_storage.read_only(lambda tx: [tx.limiter_entries(k, 0) for k in keys])
    assert left == [[("new", 1000)]] * 3


def test_locked_key_admits_exactly_the_limit_under_concurrency(storage: Storage) -> None:
    """``lock_limiter_key`` serialises the check-then-add of one key until
    commit, so racing transactions never admit more than the limit."""
    k, limit, threads = key(), 3, 8
    admitted: list[bool] = []
    start = threading.Barrier(threads)

    def attempt(i: int) -> None:
        def run(tx: Tx) -> bool:
            tx.lock_limiter_key(k)
            if len(tx.limiter_times(k, 0)) >= limit:
                return False
            tx.limiter_add(k, f"t{i}", 1000 + i)
            return True

        start.wait()
        admitted.append(storage.read_write(run))

    workers = [threading.Thread(target=attempt, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sorted(admitted) == [False] * (threads - limit) + [True] * limit
    assert len(storage.read_only(lambda tx: tx.limiter_entries(k, 0))) == limit


def test_service_key_keeps_the_first_candidate(storage: Storage, user: Callable[[], str]) -> None:
    name = f"key-{user()}"
    assert storage.read_write(lambda tx: tx.service_key(name, "first")) == "first"
    assert storage.read_write(lambda tx: tx.service_key(name, "second")) == "first"
    assert storage.read_write(lambda tx: tx.service_key(f"other-{name}", "second")) == "second"
