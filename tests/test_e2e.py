"""The server as a real process: ``socialgraph serve`` on 127.0.0.1, driven
by a client that knows the API only through server reflection.

Nothing here imports the generated ``socialgraph.v1`` code: message classes
are built from descriptors the server hands out over reflection."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import cast

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from harness import ProcessFailed, ServerProcess, clean_env, free_port, health_stub, run_socialgraph, start_server

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT = 20.0  # seconds until health reports SERVING
STOP_TIMEOUT = 20.0  # seconds from SIGTERM to exit (grace period is 10 s by default)
RPC_TIMEOUT = 10.0

GRAPH = "socialgraph.v1.SocialGraphService"
ADMIN = "socialgraph.v1.AdminService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


# ------------------------------------------------------------ the process


def start(directory: Path, database_url: str, *flags: str) -> ServerProcess:
    """One ``socialgraph serve`` process, SERVING; its output also goes to a log file in ``directory``."""
    return start_server(
        "--database-url", database_url, *flags,
        cwd=directory, env=clean_env(), log=directory / f"server-{uuid.uuid4().hex[:6]}.log", timeout=STARTUP_TIMEOUT,
    )


def terminate(server: ServerProcess, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then the exit code; kills and fails when it takes longer than ``timeout``."""
    server.terminate()
    code = server.wait_for_exit(timeout)
    if code is None:
        server.kill()
        pytest.fail(f"server did not exit within {timeout} s of SIGTERM:\n{server.output()}")
    return code


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("e2e")
    srv = start(directory, f"sqlite:///{directory}/e2e.db")
    try:
        yield srv
        code = terminate(srv)
        assert code == 0, f"exit code {code} after SIGTERM:\n{srv.output()}"
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


# ------------------------------------------------- a reflection-only client


class ReflectionClient:
    """Calls any method the server describes over reflection, with message
    classes built in a private descriptor pool."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def services(self) -> list[str]:
        return list(self.database.get_services())

    def message(self, full_name: str):
        """The message class for ``full_name`` (e.g. socialgraph.v1.User)."""
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def enum_value(self, enum_full_name: str, name: str) -> int:
        return self.pool.FindEnumTypeByName(enum_full_name).values_by_name[name].number

    def method(self, service: str, name: str):
        method = self.pool.FindServiceByName(service).methods_by_name[name]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        call: grpc.UnaryUnaryMultiCallable[Message, Message] = self.channel.unary_unary(
            f"/{service}/{name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        return request_cls, call

    def call(self, service: str, name: str, **fields):
        request_cls, call = self.method(service, name)
        return call(request_cls(**fields), timeout=RPC_TIMEOUT)

    def graph(self, name: str, **fields):
        return self.call(GRAPH, name, **fields)

    def admin(self, name: str, **fields):
        return self.call(ADMIN, name, **fields)


def new_id() -> str:
    return str(uuid.uuid4())


def decode_error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(cast(grpc.Call, error))  # what a call raises is a grpc.Call too
    assert status is not None, f"no google.rpc.Status on {error.code()}: {error.details()}"
    assert status.code == error.code().value[0]
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


# ------------------------------------------------------------------ tests


def test_reflection_lists_every_service(channel):
    client = ReflectionClient(channel)
    services = set(client.services())
    assert {GRAPH, ADMIN, HEALTH} <= services, services
    assert REFLECTION in services or "grpc.reflection.v1.ServerReflection" in services, services
    # Every RPC in the spec's API table is described.
    graph = client.pool.FindServiceByName(GRAPH)
    assert {
        "Follow", "Unfollow", "RemoveFollower", "ListFollowers", "ListFollowing",
        "SendConnectionRequest", "AcceptConnectionRequest", "DeclineConnectionRequest",
        "CancelConnectionRequest", "RemoveConnection", "ListConnections",
        "ListIncomingConnectionRequests", "ListOutgoingConnectionRequests", "GetMutualConnections",
        "Block", "Unblock", "ListBlocked", "GetRelationship", "BatchGetRelationships", "GetCounts",
        "CanInteract", "FilterInteractable", "ListFeedSources", "ReportUser",
    } <= set(graph.methods_by_name)
    admin = client.pool.FindServiceByName(ADMIN)
    assert {"UpsertUser", "GetUser", "DeleteUser", "ListReports", "ResolveReport", "GetStats"} <= set(
        admin.methods_by_name
    )


@pytest.mark.parametrize("service", [REFLECTION, "grpc.reflection.v1.ServerReflection"])
def test_reflection_v1_and_v1alpha_both_answer(channel, service):
    # v1 is v1alpha's protocol under a new package name: the same messages on the wire.
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=GRAPH),
        # A method is a symbol too (ghz asks this way).
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{GRAPH}.Follow"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{GRAPH}.NoSuchMethod"),
    ]
    listed, by_service, by_method, missing = call(iter(requests), timeout=RPC_TIMEOUT)
    assert {GRAPH, ADMIN, HEALTH} <= {entry.name for entry in listed.list_services_response.service}
    for described in (by_service, by_method):
        files = described.file_descriptor_response.file_descriptor_proto
        names = {descriptor_pb2.FileDescriptorProto.FromString(blob).name for blob in files}
        assert "socialgraph/v1/social_graph.proto" in names
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_scenario_through_reflection_only(channel):
    client = ReflectionClient(channel)
    # Built from the server's descriptors, not the generated code's.
    User = client.message("socialgraph.v1.User")
    assert User.DESCRIPTOR.file.pool is client.pool
    assert client.pool is not descriptor_pool.Default()

    role = lambda name: client.enum_value("socialgraph.v1.Role", name)  # noqa: E731
    state = lambda name: client.enum_value("socialgraph.v1.ConnectionState", name)  # noqa: E731

    admin_id, a, b = new_id(), new_id(), new_id()
    before = client.admin("GetStats")

    stored = client.admin(
        "UpsertUser", user=User(user_id=admin_id.upper(), role=role("ROLE_ADMIN"), display_name="Ada")
    ).user
    assert (stored.user_id, stored.role, stored.display_name) == (admin_id, role("ROLE_ADMIN"), "Ada")
    assert stored.created_at.seconds > 0
    client.admin("UpsertUser", user=User(user_id=a, role=role("ROLE_MEMBER"), display_name="Alice"))

    followed = client.graph("Follow", follower_id=a, followee_id=b)
    assert followed.created and followed.since.seconds > 0

    pending = client.graph("SendConnectionRequest", requester_id=b, recipient_id=a, message="hello")
    assert pending.state == state("CONNECTION_STATE_PENDING")
    assert pending.created
    assert (pending.request.requester_id, pending.request.recipient_id, pending.request.message) == (b, a, "hello")

    crossing = client.graph("SendConnectionRequest", requester_id=a, recipient_id=b)
    assert crossing.state == state("CONNECTION_STATE_CONNECTED")
    assert crossing.connected_at.seconds > 0

    rel = client.graph("GetRelationship", user_id=a, other_user_id=b).relationship
    assert rel.other_user_id == b
    assert (rel.following, rel.followed_by, rel.connected) == (True, True, True)
    assert not rel.outgoing_request_pending and not rel.incoming_request_pending
    assert (rel.blocking, rel.blocked_by, rel.can_interact) == (False, False, True)

    counts = client.graph("GetCounts", user_ids=[a, b]).counts
    assert [c.user_id for c in counts] == [a, b]
    for c in counts:
        assert (c.followers, c.following, c.connections, c.incoming_requests, c.outgoing_requests, c.blocked) == (
            1, 1, 1, 0, 0, 0,
        )

    blocked = client.graph("Block", blocker_id=a, blocked_id=b, reason="spam")
    assert blocked.created
    assert (blocked.removed_follows, blocked.removed_connections, blocked.removed_requests) == (2, 1, 0)
    assert (blocked.block.blocker_id, blocked.block.blocked_id, blocked.block.reason) == (a, b, "spam")
    uuid.UUID(blocked.block.block_id)

    listed = client.graph("ListBlocked", user_id=a)
    assert [(x.block_id, x.blocked_id, x.reason) for x in listed.blocks] == [(blocked.block.block_id, b, "spam")]
    assert listed.next_page_token == ""

    rel = client.graph("GetRelationship", user_id=b, other_user_id=a).relationship
    assert (rel.following, rel.followed_by, rel.connected, rel.blocked_by, rel.can_interact) == (
        False, False, False, True, False,
    )

    after = client.admin("GetStats")
    assert after.users == before.users + 2
    assert after.blocks == before.blocks + 1
    assert after.follows == before.follows
    assert after.connections == before.connections
    assert after.pending_requests == before.pending_requests
    assert after.created_last_24h.users >= 2
    assert after.created_last_24h.blocks >= 1


def test_errors_through_reflection_carry_error_info(channel):
    client = ReflectionClient(channel)
    with pytest.raises(grpc.RpcError) as raised:
        client.graph("Follow", follower_id="not-a-uuid", followee_id=new_id())
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details()
    info = decode_error_info(error)
    assert (info.domain, info.reason) == ("socialgraph.v1", "INVALID_USER_ID")
    assert info.metadata.get("field") == "follower_id", dict(info.metadata)


def test_health_reports_serving(channel):
    stub = health_stub(channel)
    for service in ("", GRAPH, ADMIN):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


def test_health_of_an_unknown_service_is_not_found(channel):
    stub = health_stub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=RPC_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_command_reports_on_the_running_server(server, tmp_path):
    ok = run_socialgraph("health", "--listen", server.address, cwd=tmp_path, env=clean_env(), timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "SERVING"
    nobody = f"127.0.0.1:{free_port()}"
    down = run_socialgraph("health", "--listen", nobody, cwd=tmp_path, env=clean_env(), timeout=30)
    assert down.returncode != 0
    assert nobody in down.stderr, down.stderr


def test_a_second_server_on_the_same_port_exits_with_a_clear_message(server, tmp_path, channel):
    try:
        second = run_socialgraph(
            "serve", "--listen", server.address, "--database-url", f"sqlite:///{tmp_path}/second.db",
            cwd=tmp_path, env=clean_env(), timeout=STARTUP_TIMEOUT,
        )
    except ProcessFailed as kept_running:
        pytest.fail(f"second server on {server.address} kept running (shares the port?):\n{kept_running}")
    err = second.stderr
    assert second.returncode != 0
    assert server.address in err, err
    assert "Traceback" not in err, err
    # The first server is untouched and still answers.
    stub = health_stub(channel)
    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert server.poll() is None


def test_sigterm_stops_the_server_cleanly(tmp_path):
    srv = start(tmp_path, f"sqlite:///{tmp_path}/stop.db")
    try:
        with grpc.insecure_channel(srv.address) as channel:
            client = ReflectionClient(channel)
            assert client.graph("Follow", follower_id=new_id(), followee_id=new_id()).created
        started = time.monotonic()
        code = terminate(srv)
        elapsed = time.monotonic() - started
    finally:
        srv.kill()
    log = srv.output()
    assert code == 0, log
    # Nothing was in flight, so it need not wait out the grace period.
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert "received SIGTERM" in log, log
    assert log.rstrip().splitlines()[-1].endswith("stopped"), log
    assert "Traceback" not in log, log


def test_sigterm_lets_an_idle_server_with_open_channels_exit(tmp_path):
    """A connected but idle client must not hold the server up past the grace period."""
    srv = start(tmp_path, f"sqlite:///{tmp_path}/idle.db", "--grace-period", "2")
    try:
        with grpc.insecure_channel(srv.address) as channel:
            ReflectionClient(channel).graph("GetCounts", user_ids=[new_id()])
            code = terminate(srv, timeout=10)
    finally:
        srv.kill()
    assert code == 0, srv.output()


def test_data_survives_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/restart.db"
    a, b, c = new_id(), new_id(), new_id()

    first = start(tmp_path, url)
    try:
        with grpc.insecure_channel(first.address) as channel:
            client = ReflectionClient(channel)
            User = client.message("socialgraph.v1.User")
            client.admin(
                "UpsertUser",
                user=User(user_id=a, role=client.enum_value("socialgraph.v1.Role", "ROLE_MEMBER"), display_name="Ann"),
            )
            assert client.graph("Follow", follower_id=a, followee_id=b).created
            client.graph("SendConnectionRequest", requester_id=c, recipient_id=a, message="hey")
            block_id = client.graph("Block", blocker_id=b, blocked_id=c).block.block_id
        code = terminate(first)
    finally:
        first.kill()
    assert code == 0, first.output()

    second = start(tmp_path, url)
    try:
        with grpc.insecure_channel(second.address) as channel:
            client = ReflectionClient(channel)
            user = client.admin("GetUser", user_id=a).user
            assert (user.user_id, user.display_name) == (a, "Ann")
            rel = client.graph("GetRelationship", user_id=a, other_user_id=b).relationship
            assert rel.following and not rel.followed_by
            rel = client.graph("GetRelationship", user_id=a, other_user_id=c).relationship
            assert rel.incoming_request_pending
            incoming = client.graph("ListIncomingConnectionRequests", user_id=a).requests
            assert [(r.requester_id, r.message) for r in incoming] == [(c, "hey")]
            assert [x.block_id for x in client.graph("ListBlocked", user_id=b).blocks] == [block_id]
            [ca, cb] = client.graph("GetCounts", user_ids=[a, b]).counts
            assert (ca.following, ca.incoming_requests, cb.followers, cb.blocked) == (1, 1, 1, 1)
            # And it still takes writes.
            assert not client.graph("Follow", follower_id=a, followee_id=b).created
        code = terminate(second)
    finally:
        second.kill()
    assert code == 0, second.output()
