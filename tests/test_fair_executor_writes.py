"""The fair executor keeps a quarter of its threads for reads: writes that
wait on a lock (every block of one celebrity waits for that user's counter
row) cannot take every thread, so unrelated reads still find one."""

from __future__ import annotations

import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from server.fairness import FairExecutor

SVC = "/socialgraph.v1.SocialGraphService/"


def event(method: str, peer: str) -> Any:
    """The call's event, which grpc passes to ``submit`` after the behaviour:
    a method registered with the server is named by its tag, its call
    details left empty (a generic handler's call names it there instead)."""
    return SimpleNamespace(tag=SVC + method, call_details=SimpleNamespace(method=b""),
                           call=SimpleNamespace(peer=lambda: peer))


def submit(executor: FairExecutor, fn: Any, rpc_event: Any) -> Any:
    """As grpc does: ``submit(context.run, behaviour, event, ...)``."""
    return executor.submit(lambda behaviour, e: behaviour(e), fn, rpc_event)


def call(release: threading.Event | None, ran: list[str], name: str) -> Any:
    def fn(_event: Any) -> str:
        ran.append(name)
        if release is not None:
            assert release.wait(10)
        return name

    return fn


def test_reads_find_a_thread_while_writes_wait_on_a_lock() -> None:
    executor = FairExecutor(max_workers=8, limit=1000)
    release = threading.Event()
    ran: list[str] = []
    try:
        blocked = [
            submit(executor, call(release, ran, f"block-{i}"), event("Block", f"w{i}"))
            for i in range(20)
        ]
        reads = [
            submit(executor, call(None, ran, f"read-{i}"), event("GetRelationship", "r"))
            for i in range(5)
        ]
        assert [read.result(5) for read in reads] == [f"read-{i}" for i in range(5)], "reads are not starved"
        assert running(ran, "block", 6) == 6, "writes run on 8 - 8 // 4 threads"
        release.set()
        assert sorted(f.result(10) for f in blocked) == sorted(f"block-{i}" for i in range(20)), "every write runs"
    finally:
        release.set()
        executor.shutdown()


def running(ran: list[str], prefix: str, expected: int) -> int:
    """How many ``prefix`` calls started, once ``expected`` did (or 2 s passed)
    and a moment more showed no other starting."""
    deadline = time.monotonic() + 2
    while sum(name.startswith(prefix) for name in ran) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    return sum(name.startswith(prefix) for name in ran)


def test_a_connection_s_reads_run_ahead_of_its_writes_waiting_for_a_thread() -> None:
    """One channel for everything (a gateway): its reads do not wait behind
    its own writes once the writes' threads are busy; CancelConnectionRequest
    is a write; a call without a method is a read."""
    executor = FairExecutor(max_workers=4, limit=1000)
    release = threading.Event()
    ran: list[str] = []
    try:
        writes = [
            submit(executor, call(release, ran, f"w{i}"), event("CancelConnectionRequest", "one"))
            for i in range(5)
        ]
        read = submit(executor, call(None, ran, "read"), event("CanInteract", "one"))
        unknown = submit(executor, call(None, ran, "plain"), None)
        assert (read.result(5), unknown.result(5)) == ("read", "plain")
        assert running(ran, "w", 3) == 3, "3 writes at most (4 - 4 // 4)"
        release.set()
        assert [f.result(10) for f in writes] == ["w0", "w1", "w2", "w3", "w4"]
        assert ran.index("w3") > ran.index("read"), "the writes started in the connection's order, after the read"
    finally:
        release.set()
        executor.shutdown()


def test_streams_holding_threads_leave_a_quarter_of_the_rest_to_reads() -> None:
    executor = FairExecutor(max_workers=8, limit=1000)
    release = threading.Event()
    ran: list[str] = []
    try:

        def stream(_behaviour: Any, _event: Any) -> str:
            ran.append("stream")
            assert release.wait(10)
            return "stream"

        stream.__name__ = "_stream_response_in_pool"  # what grpc submits for a streaming response
        streams = [executor.submit(lambda _b, e: stream(_b, e), stream, event("Watch", f"s{i}")) for i in range(4)]
        assert running(ran, "stream", 4) == 4
        writes = [submit(executor, call(release, ran, f"write-{i}"), event("Block", f"w{i}")) for i in range(6)]
        read = submit(executor, call(None, ran, "read"), event("GetRelationship", "r"))
        assert read.result(5) == "read", "a thread is left for reads"
        assert running(ran, "write", 3) == 3, "writes take 3 of the 4 threads the streams leave"
        release.set()
        assert len([f.result(10) for f in (*streams, *writes)]) == 10
    finally:
        release.set()
        executor.shutdown()


def test_a_thread_stays_for_reads_with_as_few_as_two() -> None:
    """A quarter of two or three threads rounds down to none: writes waiting
    on a lock could take them all."""
    for threads in (2, 3):
        executor = FairExecutor(max_workers=threads, limit=1000)
        release = threading.Event()
        ran: list[str] = []
        try:
            writes = [submit(executor, call(release, ran, f"write-{i}"), event("Block", f"w{i}")) for i in range(4)]
            read = submit(executor, call(None, ran, "read"), event("GetRelationship", "r"))
            assert read.result(5) == "read", f"a thread is left for reads of {threads}"
            assert running(ran, "write", threads - 1) == threads - 1
            release.set()
            assert len([f.result(10) for f in writes]) == 4
        finally:
            release.set()
            executor.shutdown()


def test_a_call_wakes_one_idle_thread_not_every_one() -> None:
    """Each woken thread takes the lock and looks for work; waking every
    idle thread for one call made them queue for the lock in turn."""
    executor = FairExecutor(max_workers=16, limit=1000)
    looked = []
    runnable = executor._runnable

    def counted(writes_full: bool) -> Any:
        looked.append(writes_full)
        return runnable(writes_full)

    executor._runnable = counted  # type: ignore[method-assign]
    try:
        time.sleep(0.2)  # every thread idle, waiting
        looked.clear()
        ran: list[str] = []
        assert submit(executor, call(None, ran, "read"), event("GetRelationship", "r")).result(5) == "read"
        time.sleep(0.2)  # any other woken thread looks meanwhile
        # The woken thread found the call, and looked again once it was done.
        assert len(looked) <= 3, len(looked)
    finally:
        executor.shutdown()


def test_looking_for_a_read_walks_no_queued_writes_when_none_is_queued() -> None:
    """While the writes' threads are all busy, a thread that wakes looks for
    a queued read; with only writes queued it must not walk them (under a
    flood of writes every wake-up walked every queued call)."""
    executor = FairExecutor(max_workers=4, limit=1000)
    release = threading.Event()
    ran: list[str] = []
    walked: list[int] = []

    class Walked(deque[Any]):
        def __iter__(self) -> Any:
            walked.append(len(self))
            return super().__iter__()

    try:
        writes = [submit(executor, call(release, ran, f"write-{i}"), event("Block", f"w{i}")) for i in range(40)]
        assert running(ran, "write", 3) == 3, "writes run on 4 - 4 // 4 threads"
        with executor._lock:
            for key in list(executor._queues):
                executor._queues[key] = Walked(executor._queues[key])
            assert executor._runnable(True) is None
        assert walked == [], "queued writes were walked"
        read = submit(executor, call(None, ran, "read"), event("GetRelationship", "w39"))
        assert read.result(5) == "read", "a read queued behind writes still runs"
        release.set()
        assert len([f.result(10) for f in writes]) == 40
    finally:
        release.set()
        executor.shutdown()
