"""I5: with several server processes sharing one Redis, or only one
database (no Redis), or one port (``--workers``), concurrent requests from
one requester are admitted exactly up to the limit."""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from .support import (
    REDIS_URL,
    Client,
    error_info,
    new_user,
    redis_reachable,
    require,
    running_server,
    temporary_database,
)

pytestmark = pytest.mark.e2e

PROCESSES = 3
LIMIT = 7
ATTEMPTS = 60


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        "sqlite without redis",
        pytest.param("postgres without redis", marks=pytest.mark.postgres),
        "workers without redis",
    ],
)
def servers(request, tmp_path_factory):
    shape = request.param
    directory = tmp_path_factory.mktemp("i5")
    limits = ("--rate-limits", f"{LIMIT}/1h,1000/24h")
    with contextlib.ExitStack() as stack:
        if shape == "postgres without redis":
            database = stack.enter_context(temporary_database("postgres", directory))
        else:
            database = f"sqlite:///{directory}/shared.db"
        args = ("--database-url", database, *limits)
        if shape == "redis":
            require("Redis", redis_reachable())
            args += ("--redis-url", REDIS_URL)
        if shape == "workers without redis":
            # One address, two processes: each new channel lands on either.
            address = stack.enter_context(running_server(*args, "--workers", "2"))[0]
            addresses = [address] * PROCESSES
        else:
            addresses = [stack.enter_context(running_server(*args))[0] for _ in range(PROCESSES)]
        channels = [
            stack.enter_context(grpc.insecure_channel(a, options=[("grpc.use_local_subchannel_pool", 1)]))
            for a in addresses
        ]
        yield [Client(channel) for channel in channels]


def test_requests_across_processes_are_admitted_exactly_up_to_the_limit(servers):
    requester = new_user()
    targets = itertools.cycle(servers)
    calls = [(next(targets), new_user()) for _ in range(ATTEMPTS)]

    def send(call):
        client, recipient = call
        try:
            return client.send(requester, recipient).created
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(send, calls))
    admitted = [r for r in results if r is True]
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(admitted) == LIMIT
    assert len(refused) == ATTEMPTS - LIMIT
    assert {(e.code(), error_info(e).reason) for e in refused} == {(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")}
    assert all(int(dict(e.trailing_metadata())["retry-after"]) > 3000 for e in refused)
    # Every process sees the same outgoing requests.
    for client in servers:
        listed = client.graph.ListOutgoingConnectionRequests(
            pb.ListOutgoingConnectionRequestsRequest(user_id=requester, page_size=100)
        )
        assert len(listed.requests) == LIMIT


def test_each_requester_has_its_own_budget_across_processes(servers):
    requesters = [new_user() for _ in range(4)]
    calls = [(servers[i % PROCESSES], requester) for requester in requesters for i in range(LIMIT)]
    with ThreadPoolExecutor(12) as pool:
        created = list(pool.map(lambda c: c[0].send(c[1], new_user()).created, calls))
    assert all(created)
    for requester in requesters:
        with pytest.raises(grpc.RpcError) as refused:
            servers[0].send(requester, new_user())
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
