"""The fair executor keeps a quarter of its threads for reads: writes that
wait on a lock (every block of one celebrity waits for that user's counter
row) cannot take every thread, so unrelated reads still find one."""

from __future__ import annotations

import threading
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
        assert sum(name.startswith("block") for name in ran) == 6, "writes run on 8 - 8 // 4 threads"
        release.set()
        assert sorted(f.result(10) for f in blocked) == sorted(f"block-{i}" for i in range(20)), "every write runs"
    finally:
        release.set()
        executor.shutdown()


def test_a_call_without_a_method_is_a_read_and_a_connection_keeps_its_order() -> None:
    executor = FairExecutor(max_workers=4, limit=1000)
    release = threading.Event()
    ran: list[str] = []
    try:
        writes = [
            submit(executor, call(release, ran, f"w{i}"), event("Follow", "one"))
            for i in range(4)
        ]
        unknown = submit(executor, call(None, ran, "plain"), None)
        assert unknown.result(5) == "plain"
        assert ran.count("w0") == 1 and "w3" not in ran, "3 writes at most (4 - 1), in the connection's order"
        release.set()
        assert [f.result(10) for f in writes] == ["w0", "w1", "w2", "w3"]
    finally:
        release.set()
        executor.shutdown()
