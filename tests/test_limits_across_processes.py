"""I5: with several server processes sharing one Redis, concurrent requests
from one requester are admitted exactly up to the limit."""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from .support import REDIS_URL, Client, error_info, new_user, redis_reachable, require, running_server

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

PROCESSES = 3
LIMIT = 7
ATTEMPTS = 60


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    require("Redis", redis_reachable())
    database = f"sqlite:///{tmp_path_factory.mktemp('i5')}/shared.db"
    args = ("--database-url", database, "--redis-url", REDIS_URL, "--rate-limits", f"{LIMIT}/1h,1000/24h")
    with contextlib.ExitStack() as stack:
        addresses = [stack.enter_context(running_server(*args))[0] for _ in range(PROCESSES)]
        channels = [stack.enter_context(grpc.insecure_channel(a)) for a in addresses]
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
        assert client.counts(requester)[0].outgoing_requests == LIMIT


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
