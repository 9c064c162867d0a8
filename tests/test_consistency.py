"""Consistency across processes (SPEC "Consistency"): server processes share
only SQL (and Redis when configured), and a default read reflects every write
acknowledged at least the staleness bound earlier, whichever process answers."""

from __future__ import annotations

import contextlib
import time

import grpc
import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from .support import Client, counters, new_user, running_server, temporary_database, zero

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

BOUND = 0.5  # --max-staleness of the servers under test, in seconds


@contextlib.contextmanager
def processes(database_url: str, count: int, *extra: str):
    """``count`` servers on one database; yields a client for each."""
    args = ("--database-url", database_url, "--max-staleness", str(BOUND), *extra)
    with contextlib.ExitStack() as stack:
        addresses = [stack.enter_context(running_server(*args))[0] for _ in range(count)]
        yield [Client(stack.enter_context(grpc.insecure_channel(a))) for a in addresses]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    with temporary_database("postgres", tmp_path_factory.mktemp("consistency")) as url:
        yield url


def within_bound(read, expected, bound: float = BOUND):
    """Polls ``read`` until it returns ``expected`` or a few bounds have passed;
    returns the last value read."""
    deadline = time.monotonic() + 4 * bound + 1
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def snapshot(client: Client, a: str, b: str):
    relationship = client.relationship(a, b)
    allowed = client.graph.CanInteract(pb.CanInteractRequest(user_id=a, other_user_id=b)).can_interact
    return (
        allowed,
        relationship.following,
        relationship.blocked_by,
        relationship.can_interact,
        [counters(c) for c in client.counts(a, b)],
    )


def test_a_block_through_one_process_reaches_the_other_without_redis(postgres_url):
    with processes(postgres_url, 2) as (first, second):
        a, b = new_user(), new_user()
        first.follow(a, b)
        before = (True, True, False, True, [zero(following=1), zero(followers=1)])
        assert snapshot(first, a, b) == before  # the first process now holds both users in memory
        assert snapshot(second, a, b) == before

        second.block(b, a)

        after = (False, False, True, False, [zero(), zero(blocked=1)])
        assert within_bound(lambda: snapshot(first, a, b), after) == after
        with pytest.raises(grpc.RpcError) as refused:
            first.follow(a, b)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
