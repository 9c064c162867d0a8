"""Test support shared by every suite: databases, error decoding, a client."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Iterator

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import admin_pb2_grpc, common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc, watch_pb2_grpc

POSTGRES_DSN = os.environ.get("SOCIALGRAPH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SOCIALGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require(service: str, reachable: bool) -> None:
    """A missing service fails the test in CI and skips it elsewhere."""
    if reachable:
        return
    message = f"{service} is not reachable"
    if in_ci():
        pytest.fail(f"{message}, and CI requires it", pytrace=False)
    pytest.skip(message)


def postgres_reachable() -> bool:
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def temporary_database(backend: str, directory) -> Iterator[str]:
    """A fresh, empty database of the given backend; yields its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/graph-{uuid.uuid4().hex[:8]}.db"
        return
    require("PostgreSQL", postgres_reachable())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_user() -> str:
    return str(uuid.uuid4())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------- errors


def status_detail(error: grpc.RpcError, kind):
    """The first detail of type ``kind`` in the error's google.rpc.Status."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status on {error.code()}: {error.details()}"
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            return message
    raise AssertionError(f"no {kind.__name__} in {status}")


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    return status_detail(error, error_details_pb2.ErrorInfo)


@dataclass
class Raised:
    error: grpc.RpcError | None = None

    @property
    def info(self) -> error_details_pb2.ErrorInfo:
        assert self.error is not None
        return error_info(self.error)


@contextlib.contextmanager
def raises(code: grpc.StatusCode, reason: str) -> Iterator[Raised]:
    """Asserts the block fails with ``code`` and an ErrorInfo of ``reason``
    in the socialgraph.v1 domain."""
    raised = Raised()
    try:
        yield raised
    except grpc.RpcError as error:
        raised.error = error
        assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
        info = error_info(error)
        assert (info.domain, info.reason) == ("socialgraph.v1", reason), info
        return
    raise AssertionError(f"expected {code}/{reason}, but the call succeeded")


# --------------------------------------------------------------------- client


class Client:
    """Both stubs plus shorthands for the calls most tests make."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.graph = social_graph_pb2_grpc.SocialGraphServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.watch = watch_pb2_grpc.WatchServiceStub(channel)

    def follow(self, follower: str, followee: str) -> pb.FollowResponse:
        return self.graph.Follow(pb.FollowRequest(follower_id=follower, followee_id=followee))

    def unfollow(self, follower: str, followee: str) -> bool:
        return self.graph.Unfollow(pb.UnfollowRequest(follower_id=follower, followee_id=followee)).removed

    def send(self, requester: str, recipient: str, message: str = "") -> pb.SendConnectionRequestResponse:
        return self.graph.SendConnectionRequest(
            pb.SendConnectionRequestRequest(requester_id=requester, recipient_id=recipient, message=message)
        )

    def accept(self, recipient: str, requester: str) -> pb.AcceptConnectionRequestResponse:
        return self.graph.AcceptConnectionRequest(
            pb.AcceptConnectionRequestRequest(recipient_id=recipient, requester_id=requester)
        )

    def connect(self, a: str, b: str) -> None:
        self.send(a, b)
        self.accept(b, a)

    def block(self, blocker: str, blocked: str, reason: str = "") -> pb.BlockResponse:
        return self.graph.Block(pb.BlockRequest(blocker_id=blocker, blocked_id=blocked, reason=reason))

    def unblock(self, blocker: str, blocked: str) -> bool:
        return self.graph.Unblock(pb.UnblockRequest(blocker_id=blocker, blocked_id=blocked)).removed

    def relationship(self, user: str, other: str):
        return self.graph.GetRelationship(
            pb.GetRelationshipRequest(user_id=user, other_user_id=other)
        ).relationship

    def counts(self, *users: str) -> list:
        return list(self.graph.GetCounts(pb.GetCountsRequest(user_ids=users)).counts)

    def upsert(self, user: str, role: int = 1, display_name: str = "", avatar_url: str = ""):
        return self.admin.UpsertUser(
            apb.UpsertUserRequest(
                user=common_pb2.User(user_id=user, role=role, display_name=display_name, avatar_url=avatar_url)
            )
        ).user

    def stats(self) -> apb.GetStatsResponse:
        return self.admin.GetStats(apb.GetStatsRequest())


@contextlib.contextmanager
def serving(graph) -> Iterator[Client]:
    """A real gRPC server over ``graph`` on a free loopback port, with a client."""
    from concurrent import futures

    from server.app import add_services

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add_services(server, graph)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Client(channel)
    finally:
        channel.close()
        server.stop(None)


def counters(c) -> dict:
    """A Counts message as a dict with short names, for comparisons."""
    return {
        "followers": c.followers,
        "following": c.following,
        "connections": c.connections,
        "incoming": c.incoming_requests,
        "outgoing": c.outgoing_requests,
        "blocked": c.blocked,
    }


ZERO = {"followers": 0, "following": 0, "connections": 0, "incoming": 0, "outgoing": 0, "blocked": 0}


def zero(**changes) -> dict:
    return {**ZERO, **changes}


# ------------------------------------------------------------------- process


def socialgraph_command() -> list[str]:
    """The ``socialgraph`` console script of this environment."""
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "socialgraph"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "server.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any SOCIALGRAPH_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALGRAPH_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0):
    """Runs ``socialgraph serve`` as a real process on a free loopback port
    until the block ends; yields (address, process)."""
    import subprocess
    import sys
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--listen", address, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited early: {process.stdout.read()}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not SERVING within {timeout} s")
                time.sleep(0.1)
        yield address, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------- redis


def redis_reachable(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class RedisServer:
    """A private ``redis-server`` on a free loopback port that a test can
    stop and start again (same port, empty data)."""

    def __init__(self, directory, *extra: str) -> None:
        self.port = free_port()
        self.directory = str(directory)
        self.extra = extra
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError(f"redis-server on port {self.port} did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
