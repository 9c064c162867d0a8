"""A writer SIGKILLed between its COMMIT and its publish to Redis (SPEC
"Consistency"): two ``socialgraph serve`` processes on PostgreSQL and one
Redis; the writer reaches Redis through a loopback proxy that the test
stalls, so its publish hangs after the commit, and the test SIGKILLs it. The
other process, whose caches (in process and in Redis) hold the state from
before the write and hear nothing about it, reflects the write within
``--max-staleness``.

The publish runs after COMMIT and before the response (``SqlStorage._notify``),
so the two ways a writer dies in that gap are both covered: its publish
fails (the Redis timeout) and it is killed right after answering, before its
repair timer deletes the entries it could not update; or its publish hangs
and it is killed before answering at all, the write committed regardless.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import redis as redis_py

from cache.redis_cache import counts_key
from harness import ServerProcess
from socialgraph.v1 import social_graph_pb2 as pb

from .support import POSTGRES_DSN, Client, RedisServer, counters, new_user, running_server, temporary_database, zero

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

BOUND = 1.0  # --max-staleness of both servers, in seconds
SLACK = 1.0  # polling and a loaded 2-core machine, on top of the bound


class StallableProxy:
    """Forwards loopback TCP connections to ``port``; while ``stalled``, it
    keeps every connection open and accepts new ones but moves no byte, as a
    Redis that hangs."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        peers = {one: other, other: one}
        while not self._closed.is_set():
            if self.stalled.is_set():
                time.sleep(0.01)
                continue
            readable, _, _ = select.select(list(peers), [], [], 0.05)
            if self.stalled.is_set():  # stalled while waiting: leave what arrived unread
                continue
            for source in readable:
                try:
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)
                except OSError:
                    return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporary_database("postgres", tmp_path_factory.mktemp("writer-killed")) as url:
        yield url


@contextlib.contextmanager
def writer_and_reader(
    postgres_url: str, directory: Path, redis_timeout: float
) -> Iterator[tuple[Client, ServerProcess, Client, StallableProxy, RedisServer]]:
    """A reader on Redis directly and a writer on Redis through a proxy;
    yields (writer client, writer process, reader client, proxy, Redis)."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer(directory))
        proxy = StallableProxy(redis.port)
        stack.callback(proxy.close)
        common = ("--database-url", postgres_url, "--max-staleness", str(BOUND))
        reader_address, _ = stack.enter_context(running_server(*common, "--redis-url", redis.url))
        writer_address, writer = stack.enter_context(
            running_server(
                *common,
                "--redis-url",
                f"redis://127.0.0.1:{proxy.port}/0",
                "--redis-timeout",
                str(redis_timeout),
            )
        )
        reader = Client(stack.enter_context(grpc.insecure_channel(reader_address)))
        yield Client(stack.enter_context(grpc.insecure_channel(writer_address))), writer, reader, proxy, redis


Snapshot = tuple[bool, bool, bool, list[dict[str, int]]]


def snapshot(client: Client, a: str, b: str) -> Snapshot:
    relationship = client.relationship(a, b)
    allowed = client.graph.CanInteract(pb.CanInteractRequest(user_id=a, other_user_id=b)).can_interact
    return allowed, relationship.following, relationship.blocked_by, [counters(c) for c in client.counts(a, b)]


BEFORE = (True, True, False, [zero(following=1), zero(followers=1)])
AFTER = (False, False, True, [zero(), zero(blocked=1)])


def warm(writer: Client, reader: Client, redis: RedisServer, a: str, b: str) -> None:
    """``a`` follows ``b``; the reader holds that state in memory and in
    Redis (its entries read from SQL just now)."""
    writer.follow(a, b)
    deadline = time.monotonic() + 10
    while snapshot(reader, a, b) != BEFORE:
        assert time.monotonic() < deadline, "the follow never reached the reader"
        time.sleep(0.05)
    assert cached_blocked(redis, b) == 0


def cached_blocked(redis: RedisServer, user: str) -> int | None:
    """The ``blocked`` counter Redis holds for ``user``."""
    value = redis_py.Redis(port=redis.port, socket_timeout=2).hget(counts_key("sg", user), "blocked")
    return None if value is None else int(value)


def seconds_until(expected: Snapshot, read: Callable[[], Snapshot]) -> float:
    """Polls ``read`` every 20 ms until it returns ``expected``; the seconds
    that took. Fails after far longer than the bound."""
    start = time.monotonic()
    while (value := read()) != expected:
        assert time.monotonic() - start < 4 * BOUND + 5, f"still {value!r}"
        time.sleep(0.02)
    return time.monotonic() - start


def committed_block(postgres_url: str, blocker: str, blocked: str) -> bool:
    schema = postgres_url.rpartition("%3D")[2]
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        query = f"SELECT 1 FROM {schema}.blocks WHERE blocker_id = %s AND blocked_id = %s"
        return conn.execute(query, (blocker, blocked)).fetchone() is not None


def test_a_writer_killed_after_answering_with_its_publish_failed(postgres_url: str, tmp_path: Path) -> None:
    """The publish times out (Redis hangs), the write is acknowledged, and the
    writer is SIGKILLed before its repair timer (one second) can delete the
    entries it could not update."""
    with writer_and_reader(postgres_url, tmp_path, redis_timeout=0.2) as (writer, process, reader, proxy, redis):
        a, b = new_user(), new_user()
        warm(writer, reader, redis, a, b)

        proxy.stalled.set()
        response = writer.block(b, a)  # acknowledged: committed, its publish failed
        acknowledged = time.monotonic()
        process.kill()
        process.wait(timeout=10)
        assert response.consistency_token

        assert cached_blocked(redis, b) == 0  # nothing reached Redis, so no feed told the reader
        waited = seconds_until(AFTER, lambda: snapshot(reader, a, b))
        assert time.monotonic() - acknowledged <= BOUND + SLACK, waited
        with pytest.raises(grpc.RpcError) as refused:
            reader.follow(a, b)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_writer_killed_while_its_publish_hangs_after_commit(postgres_url: str, tmp_path: Path) -> None:
    """The publish hangs (a Redis timeout far longer than the test), the
    write has committed but not answered, and the writer is SIGKILLed."""
    with writer_and_reader(postgres_url, tmp_path, redis_timeout=60) as (writer, process, reader, proxy, redis):
        a, b = new_user(), new_user()
        warm(writer, reader, redis, a, b)

        proxy.stalled.set()
        call = writer.graph.Block.future(pb.BlockRequest(blocker_id=b, blocked_id=a), timeout=30)
        deadline = time.monotonic() + 10
        while not committed_block(postgres_url, b, a):
            assert time.monotonic() < deadline and not call.done(), "the block did not commit while publishing hung"
            time.sleep(0.01)
        committed = time.monotonic()
        assert not call.done()  # between COMMIT and the response: publishing
        process.kill()
        process.wait(timeout=10)
        with pytest.raises(grpc.RpcError) as killed:
            call.result(timeout=10)
        assert killed.value.code() == grpc.StatusCode.UNAVAILABLE

        assert cached_blocked(redis, b) == 0  # the publish never reached Redis
        waited = seconds_until(AFTER, lambda: snapshot(reader, a, b))
        assert time.monotonic() - committed <= BOUND + SLACK, waited
