"""R4 under concurrency: a write that waits for the lock of a user whose
deletion starts meanwhile sees the deletion once it has the lock. Writers
learn it from the counter row they lock (``deleting``), read as the
deletion left it, not from a snapshot taken before they waited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.rules import Graph, NotFound, Policy, Reason
from storage.types import Removed, Role, Storage, Tx, User

from .domain import limiter
from .edges import tick


def test_r4_a_write_waiting_for_a_user_being_tombstoned_is_refused(storage: Storage, user: Callable[[], str]) -> None:
    graph = Graph(storage, limiter(), Policy())
    doomed, fan, other = user(), user(), user()
    graph.upsert_user(User(doomed, Role.MEMBER, "", "", 0))
    graph.follow(other, doomed)
    tombstoned, release = threading.Event(), threading.Event()

    def start(tx: Tx) -> tuple[Removed, bool] | None:
        tx.lock_users((doomed,))
        started = tx.start_deletion(doomed, tick())
        tombstoned.set()
        assert release.wait(10)
        return started

    with ThreadPoolExecutor(2) as pool:
        deletion = pool.submit(storage.read_write, start)
        assert tombstoned.wait(10)
        follow = pool.submit(graph.follow, fan, doomed)
        time.sleep(0.3)
        assert not follow.done(), "the follow waits for the lock the deletion holds"
        release.set()
        assert deletion.result(10) == (Removed(follows=1), True)
        with pytest.raises(NotFound) as refused:
            follow.result(10)
    assert refused.value.reason is Reason.USER_NOT_FOUND
    found = storage.read_only(lambda tx: tx.counts([fan]))
    assert fan not in found or found[fan].counts.following == 0, "the refused follow left nothing"
