"""The socialgraph-client distribution (clients/python): its helpers against a
real server process, and what installing it brings in."""

from __future__ import annotations

import asyncio
import contextlib
import email
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from socialgraph.client import (
    SERVICE_CONFIG,
    Error,
    Session,
    at_least_as_fresh,
    channel_options,
    connect,
    decode_error,
    pages,
)
from socialgraph.v1 import common_pb2, error_reason_pb2, social_graph_pb2_grpc
from socialgraph.v1 import social_graph_pb2 as pb

from .support import new_user, running_server

CLIENT_DIR = Path(__file__).parent.parent / "clients" / "python"


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    database = tmp_path_factory.mktemp("client") / "client.db"
    with running_server("--database-url", f"sqlite:///{database}", "--rate-limits", "2/1h") as (address, _):
        yield address


@pytest.fixture
def client(address):
    with connect(address) as client:
        yield client


def failure(call) -> Error:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return decode_error(raised.value)


@pytest.mark.e2e
def test_follow_connect_accept_and_block(client):
    graph = client.graph
    alice, bob, carol = new_user(), new_user(), new_user()
    assert graph.Follow(pb.FollowRequest(follower_id=alice, followee_id=bob)).created
    sent = graph.SendConnectionRequest(pb.SendConnectionRequestRequest(requester_id=carol, recipient_id=alice))
    assert sent.state == pb.CONNECTION_STATE_PENDING
    graph.AcceptConnectionRequest(pb.AcceptConnectionRequestRequest(recipient_id=alice, requester_id=carol))
    rel = graph.GetRelationship(pb.GetRelationshipRequest(user_id=alice, other_user_id=carol)).relationship
    assert (rel.connected, rel.following, rel.followed_by) == (True, True, True)

    graph.Block(pb.BlockRequest(blocker_id=bob, blocked_id=alice))
    refused = failure(lambda: graph.Follow(pb.FollowRequest(follower_id=alice, followee_id=bob)))
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.reason == error_reason_pb2.BLOCKED
    rel = graph.GetRelationship(pb.GetRelationshipRequest(user_id=alice, other_user_id=bob)).relationship
    assert (rel.following, rel.blocked_by, rel.can_interact) == (False, True, False)


@pytest.mark.e2e
def test_an_error_decodes_into_its_reason_constant(client):
    error = failure(lambda: client.graph.Follow(pb.FollowRequest(follower_id=new_user(), followee_id="not-a-uuid")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == error_reason_pb2.INVALID_USER_ID
    assert (error.reason_name, error.domain) == ("INVALID_USER_ID", "socialgraph.v1")
    assert error.metadata["field"] == "followee_id"
    assert error.retry_after is None


@pytest.mark.e2e
def test_an_asyncio_error_decodes_the_same(address):
    async def refused() -> Error:
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            graph = social_graph_pb2_grpc.SocialGraphServiceStub(channel)
            user = new_user()
            try:
                await graph.Follow(pb.FollowRequest(follower_id=user, followee_id=user))
            except grpc.aio.AioRpcError as error:
                return decode_error(error)
            raise AssertionError("following oneself succeeded")

    error = asyncio.run(refused())
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, error_reason_pb2.SELF_RELATIONSHIP)


@pytest.mark.e2e
def test_a_rate_limit_refusal_decodes_into_its_retry_after(client):
    requester = new_user()
    for _ in range(2):
        client.graph.SendConnectionRequest(
            pb.SendConnectionRequestRequest(requester_id=requester, recipient_id=new_user())
        )
    error = failure(
        lambda: client.graph.SendConnectionRequest(
            pb.SendConnectionRequestRequest(requester_id=requester, recipient_id=new_user())
        )
    )
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == error_reason_pb2.RATE_LIMITED
    assert error.metadata["user_id"] == requester
    assert error.retry_after is not None and 3500 < error.retry_after <= 3600


@pytest.mark.e2e
def test_paging_to_the_end(client):
    star = new_user()
    followers = [new_user() for _ in range(7)]
    for follower in followers:
        client.graph.Follow(pb.FollowRequest(follower_id=follower, followee_id=star))
    walked = list(pages(client.graph.ListFollowers, pb.ListFollowersRequest(user_id=star, page_size=3), timeout=5))
    assert [len(page.users) for page in walked] == [3, 3, 1]
    assert [user.user_id for page in walked for user in page.users] == followers[::-1]


@pytest.mark.e2e
def test_a_session_carries_a_writes_token_into_the_next_reads(client):
    graph = client.graph
    alice, bob = new_user(), new_user()
    session = Session()
    assert session.consistency() == common_pb2.Consistency(minimize_latency=True)
    followed = graph.Follow(pb.FollowRequest(follower_id=alice, followee_id=bob))
    assert session.observe(followed) is followed
    assert followed.consistency_token
    assert session.consistency() == common_pb2.Consistency(at_least_as_fresh=followed.consistency_token)

    rel = graph.GetRelationship(
        pb.GetRelationshipRequest(user_id=alice, other_user_id=bob, consistency=session.consistency())
    ).relationship
    assert rel.following
    counts = graph.GetCounts(pb.GetCountsRequest(user_ids=[alice, bob], consistency=session.consistency())).counts
    assert [(count.user_id, count.following, count.followers) for count in counts] == [(alice, 1, 0), (bob, 0, 1)]

    session.observe(pb.FollowResponse())
    assert session.token == followed.consistency_token


def test_at_least_as_fresh_of_an_empty_token_minimizes_latency():
    assert at_least_as_fresh("") == common_pb2.Consistency(minimize_latency=True)
    assert at_least_as_fresh("t").WhichOneof("requirement") == "at_least_as_fresh"
    assert Session("t").consistency() == at_least_as_fresh("t")


@pytest.mark.e2e
def test_a_malformed_token_decodes_into_its_reason_constant(client):
    request = pb.GetCountsRequest(user_ids=[new_user()], consistency=at_least_as_fresh("not-a-token"))
    error = failure(lambda: client.graph.GetCounts(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == error_reason_pb2.INVALID_CONSISTENCY_TOKEN


class _GetCounts(grpc.GenericRpcHandler):
    """A GetCounts that fails UNAVAILABLE the first ``failures`` times and
    takes ``delay`` seconds to answer."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.failures, self.delay, self.attempts = failures, delay, 0

    def service(self, handler_call_details):
        if handler_call_details.method != "/socialgraph.v1.SocialGraphService/GetCounts":
            return None
        return grpc.unary_unary_rpc_method_handler(
            self.get_counts,
            request_deserializer=pb.GetCountsRequest.FromString,
            response_serializer=pb.GetCountsResponse.SerializeToString,
        )

    def get_counts(self, request, context):
        self.attempts += 1
        if self.attempts <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        time.sleep(self.delay)
        return pb.GetCountsResponse(counts=[common_pb2.Counts(user_id=request.user_ids[0], followers=5)])


@contextlib.contextmanager
def serving(handler: _GetCounts) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_the_service_config_retries_unavailable():
    handler = _GetCounts(failures=2)
    with serving(handler) as address, connect(address) as client:
        assert client.graph.GetCounts(pb.GetCountsRequest(user_ids=[new_user()]), timeout=5).counts[0].followers == 5
    assert handler.attempts == 3


def test_the_service_config_sets_the_default_deadline():
    config = {"methodConfig": [{**SERVICE_CONFIG["methodConfig"][0], "timeout": "0.2s"}]}
    with serving(_GetCounts(delay=1)) as address, connect(address, service_config=config) as client:
        request = pb.GetCountsRequest(user_ids=[new_user()])
        assert failure(lambda: client.graph.GetCounts(request)).code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert SERVICE_CONFIG["methodConfig"][0]["timeout"] == "10s"


def test_a_deadline_decodes_without_a_reason():
    with serving(_GetCounts(delay=1)) as address, connect(address) as client:
        request = pb.GetCountsRequest(user_ids=[new_user()])
        error = failure(lambda: client.graph.GetCounts(request, timeout=0.1))
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.reason == error_reason_pb2.ERROR_REASON_UNSPECIFIED


class _TrailerOnly(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self):
        return "slow down"

    def trailing_metadata(self):
        return (("retry-after", "42"),)


def test_retry_after_falls_back_to_the_trailer():
    error = decode_error(_TrailerOnly())
    assert (error.code, error.message, error.retry_after) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", 42.0)
    assert error.reason == error_reason_pb2.ERROR_REASON_UNSPECIFIED


def test_the_distribution_is_the_client_alone(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(tmp_path), str(CLIENT_DIR)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("socialgraph_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        requires = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist")
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {"socialgraph"}
    for name in ("socialgraph/client.py", "socialgraph/service_config.json", "socialgraph/v1/error_reason_pb2.py"):
        assert name in names
    assert sorted(requirement.split(">")[0].split("=")[0] for requirement in requires) == [
        "googleapis-common-protos",
        "grpcio",
        "protobuf",
    ]
