"""Big-account batches racing writers and other deletions on PostgreSQL,
where transactions run side by side (SQLite serialises them): no deadlock
in a deletion's last batch, and a promotion's batch leaves a blocker whose
deletion started meanwhile to that deletion."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import pytest

from storage import open_storage
from storage.migrate import upgrade
from storage.sql import SqlTx
from storage.types import Block, Cascade, Counts, Tx

from .support import temporary_database

pytestmark = pytest.mark.postgres


def named(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10]


def test_the_last_batch_of_a_deletion_and_a_write_naming_the_user_do_not_deadlock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The last batch locks the deleted user's row with the rows it counts
    down, in user id order, as writers do: a fan whose id sorts first, writing
    to the deleted user meanwhile, waits for the batch instead of deadlocking."""
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        try:
            upgrade(storage)
            fan, doomed = named("a"), named("z")  # fan < doomed
            def follow(tx: Tx) -> None:
                tx.lock_users((fan, doomed))
                tx.insert_follow(fan, doomed, 1)

            storage.read_write(follow)
            storage.read_write(lambda tx: (tx.lock_users((doomed,)), tx.start_deletion(doomed, 1)))
            finished, go = threading.Event(), threading.Event()

            def last_batch(tx: Tx) -> Cascade:
                cascade = tx.delete_edges(doomed, 10)
                assert not cascade.more
                tx.finish_deletion(doomed)
                finished.set()
                assert go.wait(10)
                return cascade

            def writer(tx: Tx) -> set[str]:
                tx.lock_users((fan, doomed))  # as Unfollow(fan, doomed) does
                return tx.deleting((fan, doomed))

            seen: dict[str, object] = {}
            batch = threading.Thread(target=lambda: seen.update(batch=storage.read_write(last_batch)))
            with caplog.at_level(logging.DEBUG, logger="storage.engine"):
                batch.start()
                assert finished.wait(10)
                started = time.monotonic()
                write = threading.Thread(target=lambda: seen.update(deleting=storage.read_write(writer)))
                write.start()
                time.sleep(0.3)
                assert write.is_alive(), "the write waits for the batch's locks"
                go.set()
                batch.join(10)
                write.join(10)
            assert "deadlock" not in caplog.text.lower()
            assert time.monotonic() - started < 0.9, "no deadlock_timeout (1 s) was waited out"
            assert seen["deleting"] == set(), "the deletion had finished when the write got its locks"
            assert storage.read_only(lambda tx: tx.counts([fan]))[fan].counts == Counts(fan)
        finally:
            storage.close()


def test_lifting_blocks_leaves_a_blocker_whose_deletion_started_after_the_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        try:
            upgrade(storage)
            promoted, blocker = named("p"), named("b")
            block = Block(named("k"), blocker, promoted, "", 1)
            def insert(tx: Tx) -> None:
                tx.lock_users((blocker, promoted))
                tx.insert_block(block)

            storage.read_write(insert)
            lock_others = SqlTx._lock_others

            def tombstoned_meanwhile(tx: SqlTx, user_ids: object) -> None:
                def start(other: Tx) -> object:
                    other.lock_users((blocker,))
                    return other.start_deletion(blocker, 2)

                racing = threading.Thread(target=lambda: storage.read_write(start))
                racing.start()
                racing.join(10)
                lock_others(tx, user_ids)  # type: ignore[arg-type]

            monkeypatch.setattr(SqlTx, "_lock_others", tombstoned_meanwhile)
            lifted, more = storage.read_write(lambda tx: tx.lift_blocks(promoted, 10))
            monkeypatch.undo()
            assert (lifted, more) == ([], False), "the block is left to the blocker's deletion"
            counts = storage.read_only(lambda tx: tx.counts([blocker]))[blocker].counts
            assert counts.blocked == 0, "a user being deleted keeps zero counters"
            assert storage.read_only(lambda tx: tx.deleting([blocker])) == {blocker}
        finally:
            storage.close()
