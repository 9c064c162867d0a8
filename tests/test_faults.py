"""Faults from outside the service, against ``socialgraph serve`` as a real
process: database connections killed mid-transaction, the database becoming
unreachable, SIGKILL under write load, SIGTERM with RPCs in flight, and
client deadlines shorter than the work.

What every test checks afterwards, straight in SQL: nothing half-written
(mirror rows, counters equal to a GROUP BY recount, nothing beside a block)
and every write the client saw succeed is stored (I1, I2, I4, I6)."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, LiteralString

import grpc
import psycopg
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from harness import ServerProcess, free_port, health_status, running_server, schema_of
from socialgraph.v1 import social_graph_pb2 as pb

from .support import (
    BACKENDS,
    POSTGRES_DSN,
    Client,
    error_info,
    new_user,
    rpc_status_of,
    temporary_database,
)

pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 15.0  # a bound on every call; no test waits on the default (forever)
FAIL_FAST = 10.0  # an RPC that needs an unreachable database fails within this
HEALTH_BOUND = 10.0  # health follows the database within this (probes every 0.2 s)
SHARED_USERS = 6  # the small set of users the write load fights over
HEALTH_NAMES = ("", "socialgraph.v1.SocialGraphService")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def budget(long_run: bool, short: float, long: float) -> float:
    return long if long_run else short


# ------------------------------------------------------------ the process


@contextlib.contextmanager
def server(database_url: str, *flags: str) -> Iterator[ServerProcess]:
    """The server under test (its output drained by the harness); killed at the end."""
    with running_server(
        "--database-url",
        database_url,
        "--health-interval",
        "0.2",
        "--rate-limits",
        "100000/1h",
        "--threads",
        "16",
        *flags,
    ) as (_, srv):
        try:
            yield srv
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait(timeout=10)


@contextlib.contextmanager
def client_for(address: str) -> Iterator[Client]:
    channel = grpc.insecure_channel(address)
    try:
        yield Client(channel)
    finally:
        channel.close()


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def wait_health(address: str, status: int, timeout: float = HEALTH_BOUND) -> None:
    for name in HEALTH_NAMES:
        seen: list = []

        def reached(name=name, seen=seen):
            seen.append(health_status(address, name))
            return seen[-1] == status

        try:
            wait_for(reached, timeout, f"health of {name!r}", step=0.1)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; expected {status}, last saw {seen[-1]}"
            ) from None


def is_storage_unavailable(error: grpc.RpcError) -> bool:
    if (
        error.code() != grpc.StatusCode.UNAVAILABLE
        or rpc_status_of(error) is None
    ):
        return False
    info = error_info(error)
    return (info.domain, info.reason) == ("socialgraph.v1", "STORAGE_UNAVAILABLE")


def is_transport_error(error: grpc.RpcError) -> bool:
    """The server was not there to answer (no google.rpc.Status attached)."""
    return error.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    ) and (rpc_status_of(error) is None)


# ------------------------------------------------------------ the database


def with_application_name(url: str, name: str) -> str:
    return f"{url}&application_name={name}"


def sqlite_path(url: str) -> str:
    assert url.startswith("sqlite:///"), url
    return url[len("sqlite:///") :]


def admin_connection() -> psycopg.Connection:
    return psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5)


def backends_waiting_on_locks(application_name: str) -> int:
    return backends(application_name, "wait_event_type = 'Lock'")


def backends_active(application_name: str) -> int:
    return backends(application_name, "state <> 'idle'")


def backends(application_name: str, condition: LiteralString) -> int:
    """PostgreSQL's connections named ``application_name`` that meet ``condition``."""
    with admin_connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND " + condition,
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextlib.contextmanager
def sql(url: str):
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


COUNTED = {
    "followers": ("followee_id", "follows"),
    "following": ("follower_id", "follows"),
    "connections": ("user_id", "connections"),
    "incoming_requests": ("recipient_id", "connection_requests"),
    "outgoing_requests": ("requester_id", "connection_requests"),
    "blocked": ("blocker_id", "blocks"),
}

BESIDE_A_BLOCK = {
    "follow": ("follows", "follower_id", "followee_id"),
    "connection": ("connections", "user_id", "other_id"),
    "request": ("connection_requests", "requester_id", "recipient_id"),
}


def half_written(url: str) -> list[str]:
    """Everything that shows a write applied in part: I1, I2, I4 and the
    connection mirror rows, checked on the stored rows themselves."""
    problems: list[str] = []
    with sql(url) as conn:
        for row in conn.execute(
            text(
                "SELECT c.user_id, c.other_id FROM connections c WHERE NOT EXISTS ("
                " SELECT 1 FROM connections m WHERE m.user_id = c.other_id AND m.other_id = c.user_id)"
            )
        ):
            problems.append(f"connection {row[0]} -> {row[1]} has no mirror row")
        for kind, (table, a, b) in BESIDE_A_BLOCK.items():
            for row in conn.execute(
                text(
                    f"SELECT e.{a}, e.{b} FROM {table} e JOIN blocks k ON"
                    f" (k.blocker_id = e.{a} AND k.blocked_id = e.{b})"
                    f" OR (k.blocker_id = e.{b} AND k.blocked_id = e.{a})"
                )
            ):
                problems.append(f"{kind} {row[0]} -> {row[1]} beside a block (I1)")
        for row in conn.execute(
            text(
                "SELECT r.requester_id, r.recipient_id FROM connection_requests r JOIN connections c"
                " ON c.user_id = r.requester_id AND c.other_id = r.recipient_id"
            )
        ):
            problems.append(
                f"pending request {row[0]} -> {row[1]} beside a connection (I2)"
            )
        stored = {
            row.user_id: row._mapping
            for row in conn.execute(text("SELECT * FROM user_counters"))
        }
        for column, (owner, table) in COUNTED.items():
            actual = dict(
                conn.execute(
                    text(f"SELECT {owner}, COUNT(*) FROM {table} GROUP BY {owner}")
                ).all()
            )
            for user_id in set(actual) | set(stored):
                have = stored[user_id][column] if user_id in stored else 0
                want = actual.get(user_id, 0)
                if have != want:
                    problems.append(
                        f"counter {column} of {user_id} is {have}, rows say {want} (I4)"
                    )
    return problems


def stored_edges(url: str) -> tuple[set, set, set]:
    with sql(url) as conn:
        follows = set(
            map(
                tuple,
                conn.execute(text("SELECT follower_id, followee_id FROM follows")),
            )
        )
        requests = set(
            map(
                tuple,
                conn.execute(
                    text("SELECT requester_id, recipient_id FROM connection_requests")
                ),
            )
        )
        blocks = set(
            map(tuple, conn.execute(text("SELECT blocker_id, blocked_id FROM blocks")))
        )
    return follows, requests, blocks


# ------------------------------------------------------------ the write load


@dataclass
class Ledger:
    """What the clients saw. ``follows``, ``requests`` and ``blocks`` hold
    acknowledged writes that nothing later undoes: each involves a user made
    for that one call, so they must all be stored at the end (I6)."""

    follows: set = field(default_factory=set)
    requests: set = field(default_factory=set)
    blocks: set = field(default_factory=set)
    codes: Counter = field(default_factory=Counter)
    unexpected: list = field(default_factory=list)
    server_gone: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def missing(self, url: str) -> list[str]:
        follows, requests, blocks = stored_edges(url)
        return (
            [f"acknowledged follow {f} lost" for f in self.follows - follows]
            + [f"acknowledged request {r} lost" for r in self.requests - requests]
            + [f"acknowledged block {b} lost" for b in self.blocks - blocks]
        )


# Business outcomes the churn among the shared users may meet.
EXPECTED_REFUSALS = {
    (grpc.StatusCode.PERMISSION_DENIED, "BLOCKED"),
    (grpc.StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"),
}


def write_load(
    client: Client,
    shared: list[str],
    ledger: Ledger,
    stop: threading.Event,
    seed: int,
    *,
    transport_errors_end: bool,
) -> None:
    """One client thread: witness writes (acknowledgements recorded) and churn
    (follow, unfollow, request, accept, block, unblock) among ``shared``."""
    rng = random.Random(seed)
    g = client.graph
    while not stop.is_set():
        kind = rng.choice(("follow", "request", "block", "churn", "churn", "churn"))
        a, b = rng.sample(shared, 2)
        fresh = new_user()
        # The call with its request bound (``send(timeout=...)`` makes it),
        # and what its response proves.
        send: Callable[..., Message]
        record: Callable[[Any], None]
        if kind == "follow":
            send = partial(g.Follow, pb.FollowRequest(follower_id=a, followee_id=fresh))

            def record(_r, a=a, fresh=fresh):
                ledger.follows.add((a, fresh))
        elif kind == "request":
            send = partial(g.SendConnectionRequest, pb.SendConnectionRequestRequest(requester_id=fresh, recipient_id=a))

            def record(r, a=a, fresh=fresh):
                assert r.created, r
                ledger.requests.add((fresh, a))
                ledger.follows.add((fresh, a))  # auto-follow (C4)
        elif kind == "block":
            send = partial(g.Block, pb.BlockRequest(blocker_id=a, blocked_id=fresh))

            def record(_r, a=a, fresh=fresh):
                ledger.blocks.add((a, fresh))
        else:
            op = rng.choice(
                (
                    "follow",
                    "unfollow",
                    "send",
                    "accept",
                    "block",
                    "unblock",
                    "block",
                    "remove",
                )
            )
            churn: dict[str, Callable[..., Message]] = {
                "follow": partial(g.Follow, pb.FollowRequest(follower_id=a, followee_id=b)),
                "unfollow": partial(g.Unfollow, pb.UnfollowRequest(follower_id=a, followee_id=b)),
                "send": partial(
                    g.SendConnectionRequest, pb.SendConnectionRequestRequest(requester_id=a, recipient_id=b)
                ),
                "accept": partial(
                    g.AcceptConnectionRequest, pb.AcceptConnectionRequestRequest(recipient_id=a, requester_id=b)
                ),
                "block": partial(g.Block, pb.BlockRequest(blocker_id=a, blocked_id=b)),
                "unblock": partial(g.Unblock, pb.UnblockRequest(blocker_id=a, blocked_id=b)),
                "remove": partial(g.RemoveConnection, pb.RemoveConnectionRequest(user_id=a, other_user_id=b)),
            }
            send = churn[op]

            def record(_r):
                pass

            kind = f"churn:{op}"
        try:
            response = send(timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            if is_storage_unavailable(error):
                with ledger.lock:
                    ledger.codes["STORAGE_UNAVAILABLE"] += 1
                continue
            if is_transport_error(error) and transport_errors_end:
                with ledger.lock:
                    ledger.server_gone = True
                    ledger.codes["server gone"] += 1
                return
            reason = ""
            if rpc_status_of(error) is not None:
                reason = error_info(error).reason
            if kind.startswith("churn") and (error.code(), reason) in EXPECTED_REFUSALS:
                with ledger.lock:
                    ledger.codes[reason] += 1
                continue
            with ledger.lock:
                ledger.unexpected.append(
                    f"{kind}: {error.code()} {reason} {error.details()}"
                )
            continue
        with ledger.lock:
            ledger.codes["OK"] += 1
            record(response)


def start_load(
    address: str,
    ledger: Ledger,
    stop: threading.Event,
    *,
    threads: int = 8,
    transport_errors_end: bool = False,
) -> tuple[list[threading.Thread], list]:
    shared = [new_user() for _ in range(SHARED_USERS)]
    channels = [grpc.insecure_channel(address) for _ in range(threads)]
    workers = [
        threading.Thread(
            target=write_load,
            args=(Client(ch), shared, ledger, stop, i),
            kwargs={"transport_errors_end": transport_errors_end},
            name=f"load-{i}",
            daemon=True,
        )
        for i, ch in enumerate(channels)
    ]
    for worker in workers:
        worker.start()
    return workers, channels


def stop_load(workers, channels, stop: threading.Event) -> None:
    stop.set()
    for worker in workers:
        worker.join(timeout=RPC_TIMEOUT + 10)
    alive = [w.name for w in workers if w.is_alive()]
    for ch in channels:
        ch.close()
    assert not alive, f"load threads still running: {alive}"


# ------------------------------------------------------------ 1. connections killed


@pytest.mark.postgres
def test_connections_killed_mid_transaction(tmp_path, long_run):
    duration = budget(long_run, 4.0, 30.0)
    app_name = f"sg-fault-{uuid.uuid4().hex[:10]}"
    with (
        temporary_database("postgres", tmp_path) as url,
        server(with_application_name(url, app_name)) as srv,
    ):
        ledger, stop = Ledger(), threading.Event()
        workers, channels = start_load(srv.address, ledger, stop)
        killed = 0
        try:
            with admin_connection() as admin:
                deadline = time.monotonic() + duration
                while time.monotonic() < deadline:
                    time.sleep(random.uniform(0.02, 0.15))
                    killed += sum(
                        1
                        for (ok,) in admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = 'test' AND pid <> pg_backend_pid() AND application_name = %s",
                            (app_name,),
                        )
                        if ok
                    )
        finally:
            stop_load(workers, channels, stop)
        assert killed > 0, "the test killed no server connection"
        assert not ledger.unexpected, (ledger.unexpected[:10], srv.output(last=200))
        assert ledger.codes["OK"] > 0, ledger.codes

        # Recovers by itself: health comes back and writes succeed, no restart.
        wait_health(srv.address, SERVING)
        with client_for(srv.address) as client:
            for _ in range(20):
                a, b = new_user(), new_user()
                assert client.follow(a, b).created
                ledger.follows.add((a, b))
        assert srv.poll() is None

        assert half_written(url) == []
        assert ledger.missing(url) == []


# ------------------------------------------------------------ 2. database unreachable


class TcpProxy:
    """A loopback TCP forwarder that a test can take down (close every
    connection, refuse new ones), partition (accept, forward nothing) and
    bring back on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.partitioned = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting: threading.Event | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []

    def up(self) -> None:
        assert self._listener is None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener, self._accepting = listener, threading.Event()
        self._accepting.set()
        self._acceptor = self._spawn(self._accept, listener, self._accepting)

    def down(self) -> None:
        """Closes every connection and stops listening: new connects are refused."""
        if self._listener is not None:
            assert self._accepting is not None and self._acceptor is not None  # up() sets all three
            self._accepting.clear()
            # The accept loop polls the listener; once it has left, closing
            # the listener frees the port at once, so up() can bind it again.
            self._acceptor.join(timeout=5)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.partitioned = False

    def close(self) -> None:
        self.down()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name="proxy")
        self._threads.append(thread)
        thread.start()
        return thread

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self, listener: socket.socket, accepting: threading.Event) -> None:
        while accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._keep(client)
            if self.partitioned:
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.partitioned:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxied_database(tmp_path) -> Iterator[tuple[str, str, TcpProxy]]:
    """A fresh PostgreSQL schema; yields (direct URL, URL through the proxy, proxy)."""
    with temporary_database("postgres", tmp_path) as url:
        parsed = make_url(url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxy.up()
        try:
            through = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            )
            yield url, through, proxy
        finally:
            proxy.close()


def assert_fails_fast(call: Callable[[], object], what: str) -> float:
    started = time.monotonic()
    try:
        call()
    except grpc.RpcError as error:
        took = time.monotonic() - started
        assert is_storage_unavailable(error), (
            f"{what}: {error.code()} {error.details()}"
        )
        assert took < FAIL_FAST, f"{what} took {took:.1f} s to fail"
        return took
    raise AssertionError(f"{what} succeeded while the database is unreachable")


def needs_the_database(client: Client) -> list[tuple[str, Callable[[], object]]]:
    a, b = new_user(), new_user()
    return [
        (
            "Follow",
            lambda: client.graph.Follow(
                pb.FollowRequest(follower_id=a, followee_id=b), timeout=RPC_TIMEOUT
            ),
        ),
        (
            "GetRelationship",
            lambda: client.graph.GetRelationship(
                pb.GetRelationshipRequest(user_id=a, other_user_id=b),
                timeout=RPC_TIMEOUT,
            ),
        ),
        (
            "GetCounts",
            lambda: client.graph.GetCounts(
                pb.GetCountsRequest(user_ids=[a]), timeout=RPC_TIMEOUT
            ),
        ),
        (
            "Block",
            lambda: client.graph.Block(
                pb.BlockRequest(blocker_id=a, blocked_id=b), timeout=RPC_TIMEOUT
            ),
        ),
    ]


def assert_recovers(srv: ServerProcess, url: str) -> None:
    wait_health(srv.address, SERVING)
    with client_for(srv.address) as client:
        for _ in range(10):
            a, b = new_user(), new_user()
            assert client.follow(a, b).created
            assert client.relationship(a, b).following
    assert srv.poll() is None, "the server restarted or died"
    assert half_written(url) == []


@pytest.mark.postgres
def test_health_and_fast_failure_while_database_refuses(tmp_path, long_run):
    rounds = int(budget(long_run, 1, 3))
    with (
        proxied_database(tmp_path) as (url, through, proxy),
        server(through) as srv,
        client_for(srv.address) as client,
    ):
        a, b = new_user(), new_user()
        assert client.follow(a, b).created
        for _ in range(rounds):
            proxy.down()
            wait_health(srv.address, NOT_SERVING)
            for what, call in needs_the_database(client):
                assert_fails_fast(call, what)
            assert all(
                health_status(srv.address, name) == NOT_SERVING for name in HEALTH_NAMES
            )
            proxy.up()
            assert_recovers(srv, url)
        # What was written before the outage is still there.
        assert client.relationship(a, b).following


@pytest.mark.postgres
def test_health_and_fast_failure_while_database_hangs(tmp_path):
    """A network partition: the database neither answers nor refuses.
    Connections that were open hang; new ones meet the connect timeout.
    RPCs must still fail fast with STORAGE_UNAVAILABLE and health must say
    NOT_SERVING; every shortfall is collected before the test fails."""
    problems: list[str] = []
    with proxied_database(tmp_path) as (url, through, proxy), server(through) as srv:
        with client_for(srv.address) as client:
            for _ in range(4):  # several pooled connections, all open through the proxy
                assert client.follow(new_user(), new_user()).created
            proxy.partitioned = True
            try:
                for what, call in needs_the_database(client):
                    started = time.monotonic()
                    try:
                        call()
                        problems.append(f"{what} succeeded while the database hangs")
                    except grpc.RpcError as error:
                        took = time.monotonic() - started
                        if not is_storage_unavailable(error) or took >= FAIL_FAST:
                            problems.append(
                                f"{what}: {error.code().name} {error.details()!r} after {took:.1f} s"
                            )
                try:
                    wait_health(srv.address, NOT_SERVING, timeout=HEALTH_BOUND)
                except AssertionError as exc:
                    problems.append(str(exc))
            finally:
                proxy.down()
            proxy.up()
            assert_recovers(srv, url)
        assert not problems, "\n".join(problems) + "\n" + srv.output(last=200)[-3000:]


# ------------------------------------------------------------ 3. SIGKILL under load


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_under_write_load_loses_no_acknowledged_write(
    backend, tmp_path, long_run
):
    rounds = int(budget(long_run, 1, 5))
    with temporary_database(backend, tmp_path) as url:
        ledger = Ledger()
        for _ in range(rounds):
            with server(url) as srv:
                stop = threading.Event()
                workers, channels = start_load(
                    srv.address, ledger, stop, transport_errors_end=True
                )
                try:
                    wait_for(lambda: ledger.codes["OK"] >= 30, 30, "writes under load")
                    time.sleep(random.uniform(0.1, budget(long_run, 1.0, 3.0)))
                    srv.kill()
                    srv.wait(timeout=10)
                    wait_for(
                        lambda workers=workers: not any(w.is_alive() for w in workers),
                        RPC_TIMEOUT + 5,
                        "clients noticing the server is gone",
                    )
                finally:
                    stop_load(workers, channels, stop)
            assert ledger.server_gone, ledger.codes
            assert not ledger.unexpected, ledger.unexpected[:10]
            assert ledger.missing(url) == []
            assert half_written(url) == []

        # A new server on the same database serves, and sees every acknowledged write.
        with server(url) as srv, client_for(srv.address) as client:
            for follower, followee in random.sample(
                sorted(ledger.follows), min(20, len(ledger.follows))
            ):
                if (follower, followee) in ledger.follows:
                    assert client.relationship(follower, followee).following
            assert client.follow(new_user(), new_user()).created
        assert half_written(url) == []


# ------------------------------------------------------------ 4, 5. slow RPCs


@dataclass
class Held:
    """A write lock the test holds so that an RPC touching ``user`` waits."""

    user: str
    release: Callable[[], None]
    in_flight: Callable[[], bool]


@contextlib.contextmanager
def holding_lock_on(backend: str, url: str, app_name: str, user: str) -> Iterator[Held]:
    """PostgreSQL: the user's counter row ``FOR UPDATE``; SQLite: the file's
    write lock (``BEGIN IMMEDIATE``)."""
    if backend == "postgres":
        pg = psycopg.connect(
            POSTGRES_DSN, options=f"-csearch_path={schema_of(url)}", connect_timeout=5
        )
        rows = pg.execute(
            "SELECT * FROM user_counters WHERE user_id = %s FOR UPDATE", (user,)
        ).fetchall()
        assert len(rows) == 1, rows
        released = threading.Event()

        def release():
            if not released.is_set():
                released.set()
                pg.rollback()

        try:
            yield Held(user, release, lambda: backends_waiting_on_locks(app_name) > 0)
        finally:
            release()
            pg.close()
    else:
        lite = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=10)
        lite.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        released = threading.Event()

        def release():
            if not released.is_set():
                released.set()
                lite.execute("ROLLBACK")

        try:
            # Nothing shows a waiting SQLite writer from outside; give it a moment.
            yield Held(user, release, lambda: time.monotonic() - started > 1.0)
        finally:
            release()
            lite.close()


class Call(threading.Thread):
    """One RPC in a thread; ``result`` or ``error`` when it ends."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: object = None
        self.error: grpc.RpcError | None = None
        self.started_at = self.ended_at = 0.0

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            self.result = self.fn()
        except grpc.RpcError as error:
            self.error = error
        self.ended_at = time.monotonic()


def new_rpc_refused(address: str) -> bool:
    """A new connection cannot start an RPC (refused, or rejected as shutting down)."""
    with grpc.insecure_channel(address) as channel:
        try:
            # Bounded: a probe accepted just before SIGTERM took effect waits
            # on the same lock as the RPC under test, and must not hold the
            # test past the grace period.
            Client(channel).graph.Follow(
                pb.FollowRequest(follower_id=new_user(), followee_id=new_user()), timeout=1
            )
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAVAILABLE
    return False


def slow_setup(client: Client) -> tuple[str, str]:
    """A user whose lock the test will hold, already with a counter row."""
    x, y = new_user(), new_user()
    assert client.follow(x, new_user()).created
    return x, y


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_drains_in_flight_rpc(backend, tmp_path):
    app_name = f"sg-fault-{uuid.uuid4().hex[:10]}"
    with temporary_database(backend, tmp_path) as url:
        server_url = (
            with_application_name(url, app_name) if backend == "postgres" else url
        )
        with (
            server(server_url, "--grace-period", "10") as srv,
            client_for(srv.address) as client,
        ):
            x, y = slow_setup(client)
            with holding_lock_on(backend, url, app_name, x) as held:
                call = Call(
                    lambda: client.graph.Follow(
                        pb.FollowRequest(follower_id=x, followee_id=y), timeout=30
                    )
                )
                call.start()
                wait_for(held.in_flight, 10, "the Follow waiting on the lock")
                assert call.is_alive(), (call.result, call.error)

                sent = time.monotonic()
                srv.send_signal(signal.SIGTERM)
                wait_for(
                    lambda: new_rpc_refused(srv.address),
                    5,
                    "new RPCs refused after SIGTERM",
                    step=0.1,
                )
                assert health_status(srv.address) in (NOT_SERVING, grpc.StatusCode.UNAVAILABLE)
                assert call.is_alive(), (
                    "the in-flight RPC ended before the lock was released: "
                    f"{call.result!r} {call.error!r}\n{srv.output(last=200)[-3000:]}"
                )
                assert srv.poll() is None, (
                    "the server exited with an RPC in flight"
                )

                held.release()
                call.join(timeout=15)
                assert not call.is_alive()
                assert call.error is None, (
                    f"{call.error.code()}: {call.error.details()}\n{srv.output(last=200)}"
                )
                assert call.result.created

            code = srv.wait_for_exit(10 - (time.monotonic() - sent) + 3)
            assert code == 0, f"exit {code}\n{srv.output(last=200)}"
        follows, _, _ = stored_edges(url)
        assert (x, y) in follows
        assert half_written(url) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_cancels_rpc_still_blocked_after_grace_period(backend, tmp_path):
    grace = 1.0
    app_name = f"sg-fault-{uuid.uuid4().hex[:10]}"
    with temporary_database(backend, tmp_path) as url:
        server_url = (
            with_application_name(url, app_name) if backend == "postgres" else url
        )
        with (
            server(server_url, "--grace-period", str(grace)) as srv,
            client_for(srv.address) as client,
        ):
            x, y = slow_setup(client)
            # The Block's cascade would remove this connection and its follows.
            client.connect(x, y)
            with holding_lock_on(backend, url, app_name, x) as held:
                call = Call(
                    lambda: client.graph.Block(
                        pb.BlockRequest(blocker_id=x, blocked_id=y), timeout=30
                    )
                )
                call.start()
                wait_for(held.in_flight, 10, "the Block waiting on the lock")
                srv.send_signal(signal.SIGTERM)
                # The lock stays held: the RPC cannot finish in the grace period.
                call.join(timeout=grace + 5)
                assert not call.is_alive(), (
                    "the RPC was not cancelled when the grace period ended"
                )
                assert call.error is not None, "the blocked RPC reported success"
                assert call.error.code() in (
                    grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.UNAVAILABLE,
                ), (call.error.code(), call.error.details())
                code = srv.wait_for_exit(grace + 8)
                assert code is not None, (
                    f"the server did not exit within {grace + 8} s of SIGTERM while an RPC was "
                    f"still blocked\n{srv.output(last=200)}"
                )
        # Whatever became of the Block, it is whole or absent.
        wait_for(
            lambda: backend == "sqlite" or backends_active(app_name) == 0,
            10,
            "the server's transactions ending",
        )
        assert half_written(url) == []
        follows, _, blocks = stored_edges(url)
        if (x, y) in blocks:
            assert {(x, y), (y, x)}.isdisjoint(follows)
        else:
            assert {(x, y), (y, x)} <= follows


@pytest.mark.parametrize("backend", BACKENDS)
def test_deadline_shorter_than_the_work(backend, tmp_path):
    app_name = f"sg-fault-{uuid.uuid4().hex[:10]}"
    with temporary_database(backend, tmp_path) as url:
        server_url = (
            with_application_name(url, app_name) if backend == "postgres" else url
        )
        with server(server_url) as srv, client_for(srv.address) as client:
            x, y = slow_setup(client)
            client.connect(x, y)
            with holding_lock_on(backend, url, app_name, x) as held:
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as raised:
                    client.graph.Block(
                        pb.BlockRequest(blocker_id=x, blocked_id=y), timeout=0.5
                    )
                assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.monotonic() - started < 3
                # Other users are served meanwhile.
                if backend == "postgres":
                    assert client.follow(new_user(), new_user()).created
                held.release()

            # The abandoned Block ends one way or the other, wholly.
            def settled():
                if backend == "postgres" and backends_active(app_name) > 0:
                    return False
                return half_written(url) == []

            wait_for(settled, 15, "the abandoned write settling", step=0.2)
            if backend == "sqlite":
                # The server's thread may still be in SQLite's busy handler,
                # about to take the freed lock; give it time to finish.
                with contextlib.suppress(AssertionError):
                    wait_for(lambda: (x, y) in stored_edges(url)[2], 3, "the Block landing", step=0.1)
            follows, _, blocks = stored_edges(url)
            if (x, y) in blocks:
                assert {(x, y), (y, x)}.isdisjoint(follows)
                assert not client.relationship(x, y).connected
            else:
                assert {(x, y), (y, x)} <= follows
                assert client.relationship(x, y).connected

            # The service keeps serving, and a retry is answered consistently.
            response = client.block(x, y)
            assert client.relationship(x, y).blocking
            assert response.created == ((x, y) not in blocks)
            assert client.follow(new_user(), new_user()).created
            counts = {c.user_id: c for c in client.counts(x, y)}
            assert counts[x].connections == counts[y].connections == 0
            assert half_written(url) == []
