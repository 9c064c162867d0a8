"""Concurrent misses of the same relationships in the in-process tier share
one read below (an aged-out entry is missed by every call in flight at
once), except for a call that starts after a committed change reached the
counters, and for reads that need entries newer than a time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

from cache.local import InProcessCounterCache, InProcessRelationshipCache
from cache.sql import SqlCounters
from storage.types import Counts, Relationship, VersionedCounts, VersionedRelationships


class NoCounters(SqlCounters):
    def __init__(self) -> None:
        pass

    def get(self, user_ids: Sequence[str]) -> dict[str, VersionedCounts]:
        return {}


class SlowReader:
    """A layer below that holds every read until ``release`` is set, and counts them."""

    def __init__(self) -> None:
        self.reads = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def get_versioned(self, user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        with self._lock:
            self.reads += 1
        self.started.set()
        assert self.release.wait(10)
        relationships = {other: Relationship.of(other, [False] * 7, 0) for other in other_ids}
        return VersionedRelationships(relationships, {other: (0, 0) for other in other_ids}, time.time_ns() // 1000)

    def interactable(self, user_id: str, other_ids: Sequence[str]) -> dict[str, bool]:
        return dict.fromkeys(other_ids, True)


def caches() -> tuple[InProcessCounterCache, InProcessRelationshipCache, SlowReader]:
    below = SlowReader()
    counters = InProcessCounterCache(NoCounters())
    return counters, InProcessRelationshipCache(below, counters), below


def run_while_held(below: SlowReader, calls: list[threading.Thread], between: object = None) -> None:
    first, *rest = calls
    first.start()
    assert below.started.wait(10)
    if callable(between):
        between()
    for call in rest:
        call.start()
    time.sleep(0.2)  # the others are waiting (or reading)
    below.release.set()
    for call in calls:
        call.join(10)


def test_concurrent_misses_of_the_same_relationships_share_one_read():
    _counters, relationships, below = caches()
    viewer, others = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
    answers: list[dict[str, Relationship]] = []
    calls = [threading.Thread(target=lambda: answers.append(relationships.get(viewer, others))) for _ in range(5)]
    run_while_held(below, calls)
    assert below.reads == 1
    assert len(answers) == 5 and all(sorted(answer) == sorted(others) for answer in answers)


def test_a_call_after_a_committed_change_reads_again():
    counters, relationships, below = caches()
    viewer, others = str(uuid.uuid4()), [str(uuid.uuid4())]
    calls = [threading.Thread(target=lambda: relationships.get(viewer, others)) for _ in range(2)]
    write = {viewer: VersionedCounts(Counts(viewer, following=1), 5)}
    run_while_held(below, calls, between=lambda: counters.publish(write))
    assert below.reads == 2


def test_reads_newer_than_a_time_never_join():
    _counters, relationships, below = caches()
    viewer, others = str(uuid.uuid4()), [str(uuid.uuid4())]
    after = time.time_ns() // 1000
    calls = [threading.Thread(target=lambda: relationships.get(viewer, others, after)) for _ in range(2)]
    run_while_held(below, calls)
    assert below.reads == 2


def test_different_relationships_are_read_apart():
    _counters, relationships, below = caches()
    viewer = str(uuid.uuid4())
    calls = [threading.Thread(target=lambda: relationships.get(viewer, [str(uuid.uuid4())])) for _ in range(2)]
    run_while_held(below, calls)
    assert below.reads == 2


def test_a_failed_read_fails_the_calls_that_waited_for_it_without_reading_again():
    _counters, relationships, below = caches()
    viewer, others = str(uuid.uuid4()), [str(uuid.uuid4())]
    read = below.get_versioned

    def failing(user_id: str, other_ids: Sequence[str]) -> VersionedRelationships:
        read(user_id, other_ids)
        raise RuntimeError("the database went away")

    below.get_versioned = failing  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def call() -> None:
        try:
            relationships.get(viewer, others)
        except RuntimeError as exc:
            errors.append(exc)

    run_while_held(below, [threading.Thread(target=call) for _ in range(3)])
    assert below.reads == 1 and len(errors) == 3
