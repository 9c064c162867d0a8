"""Test support shared by every suite: databases, error decoding, a client;
processes come from the harness package."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import harness

# The process harness, shared with the bench; re-exported for the suites.
from harness import (  # noqa: F401
    POSTGRES_DSN,
    RedisServer,
    clean_env,
    free_port,
    running_server,
    socialgraph_command,
)
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import admin_pb2_grpc, common_pb2, social_graph_pb2_grpc, watch_pb2_grpc
from socialgraph.v1 import social_graph_pb2 as pb

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
def temporary_database(backend: str, directory: str | Path) -> Iterator[str]:
    """A fresh, empty database of the given backend (harness.temporary_database);
    yields its URL. PostgreSQL unreachable: the test fails in CI, else skips."""
    if backend == "postgres":
        require("PostgreSQL", postgres_reachable())
    with harness.temporary_database(backend, directory, POSTGRES_DSN) as url:
        yield url


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def messages_sent(pgconn: psycopg.pq.abc.PGconn) -> Iterator[list[str]]:
    """The protocol messages a PostgreSQL connection sends to the server
    within the block (libpq's trace), one entry each, e.g. ``F\t12\tQuery\t "..."``."""
    sent: list[str] = []
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            # A query's text may span lines: a message starts at F or B and a tab.
            messages = re.split(r"\n(?=[FB]\t)", trace.read().decode())
            sent.extend(message for message in messages if message.startswith("F\t"))


def new_user() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------- errors


def rpc_status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the server attached to ``error``, if any."""
    # What a call raises is a grpc.Call too; the stubs type the exception as RpcError alone.
    return rpc_status.from_call(cast(grpc.Call, error))


def status_detail(error: grpc.RpcError, kind):
    """The first detail of type ``kind`` in the error's google.rpc.Status."""
    status = rpc_status_of(error)
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
                user=common_pb2.User(
                    user_id=user,
                    role=common_pb2.Role.ValueType(role),
                    display_name=display_name,
                    avatar_url=avatar_url,
                )
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


# --------------------------------------------------------------------- redis


def redis_reachable(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
