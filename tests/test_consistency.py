"""Consistency across processes (SPEC "Consistency"): server processes share
only SQL (and Redis when configured), and a default read reflects every write
acknowledged at least the staleness bound earlier, whichever process answers."""

from __future__ import annotations

import contextlib
import subprocess
import time

import grpc
import pytest

from socialgraph.v1 import social_graph_pb2 as pb

from .support import (
    POSTGRES_DSN,
    Client,
    RedisServer,
    counters,
    new_user,
    running_server,
    socialgraph_command,
    temporary_database,
    zero,
)

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


BEFORE = (True, True, False, True, [zero(following=1), zero(followers=1)])
AFTER = (False, False, True, False, [zero(), zero(blocked=1)])


@pytest.fixture
def redis(tmp_path):
    with RedisServer(tmp_path) as server:
        yield server


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


def test_a_block_through_one_process_reaches_two_others_with_redis(postgres_url, redis):
    with processes(postgres_url, 3, "--redis-url", redis.url) as (first, second, third):
        a, b = new_user(), new_user()
        first.follow(a, b)
        assert snapshot(first, a, b) == BEFORE
        assert snapshot(third, a, b) == BEFORE
        second.block(b, a)
        assert within_bound(lambda: snapshot(first, a, b), AFTER) == AFTER
        assert within_bound(lambda: snapshot(third, a, b), AFTER) == AFTER


def test_writes_reach_other_processes_while_redis_is_killed_and_restarted(postgres_url, redis):
    with processes(postgres_url, 2, "--redis-url", redis.url) as (first, second):
        a, b = new_user(), new_user()
        first.follow(a, b)
        assert snapshot(first, a, b) == BEFORE
        redis.stop()
        second.block(b, a)  # committed; its publish fails
        assert within_bound(lambda: snapshot(first, a, b), AFTER) == AFTER
        redis.start()  # empty, on the same port
        second.unblock(b, a)
        second.follow(a, b)
        assert within_bound(lambda: snapshot(first, a, b), BEFORE) == BEFORE


def test_recount_fixes_reach_running_servers(postgres_url):
    import psycopg

    with processes(postgres_url, 1) as (server,):
        a, b = new_user(), new_user()
        server.follow(a, b)
        assert counters(server.counts(b)[0]) == zero(followers=1)
        schema = postgres_url.rpartition("%3D")[2]
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # a counter drifts
            conn.execute(
                f"UPDATE {schema}.user_counters SET followers = 7, version = version + 1 WHERE user_id = %s", (b,)
            )
        drifted = zero(followers=7)
        assert within_bound(lambda: counters(server.counts(b)[0]), drifted) == drifted
        fixed = subprocess.run(
            [*socialgraph_command(), "recount", "--database-url", postgres_url],
            capture_output=True, text=True, timeout=60,
        )
        assert f"{b} followers: 7 -> 1" in fixed.stdout, (fixed.stdout, fixed.stderr)
        assert within_bound(lambda: counters(server.counts(b)[0]), zero(followers=1)) == zero(followers=1)


def test_a_writer_that_dies_between_commit_and_publish_leaves_nothing_stale_past_the_bound(postgres_url, redis):
    """Two processes' caches over one database and one Redis; the second
    commits and never publishes, as a writer SIGKILLed right after COMMIT."""
    from cache import cached_readers, redis_client
    from ratelimit import InProcessLimiter, parse_windows
    from server.rules import Graph, Policy
    from storage import open_storage
    from storage.migrate import upgrade

    opened = [open_storage(postgres_url) for _ in range(2)]
    upgrade(opened[0])
    try:
        one, two = (
            Graph(
                storage,
                InProcessLimiter(parse_windows("1000/1h")),
                Policy(),
                **cached_readers(storage, redis_client.connect(redis.url, 0.2), max_staleness=BOUND),
            )
            for storage in opened
        )
        assert one.relationships._feed.wait_live(5)
        a, b = new_user(), new_user()
        one.follow(a, b)
        two.get_counts([a, b]), two.get_relationship(a, b)  # in Redis and both processes' memory
        assert one.can_interact(a, b) and one.get_counts([b])[0].followers == 1
        opened[1]._listeners.clear()  # its commits are never published
        two.block(b, a, "")

        def seen():
            return one.can_interact(a, b), one.get_relationship(a, b).following, one.get_counts([b])[0].blocked

        assert within_bound(seen, (False, False, 1)) == (False, False, 1)
    finally:
        for storage in opened:
            storage.close()


@pytest.mark.parametrize("shape", ["without Redis", "with Redis"])
def test_a_token_read_on_another_process_is_fresh_on_its_first_try(postgres_url, tmp_path, shape):
    from socialgraph.v1 import common_pb2

    with contextlib.ExitStack() as stack:
        extra = ()
        if shape == "with Redis":
            extra = ("--redis-url", stack.enter_context(RedisServer(tmp_path)).url)
        reader, writer = stack.enter_context(processes(postgres_url, 2, *extra))
        fresh = []
        for i in range(100):
            a, b = new_user(), new_user()
            writer.follow(a, b)
            assert snapshot(reader, a, b) == BEFORE  # the reader holds the state before the write
            if i % 2:
                token = writer.block(b, a).consistency_token
            else:
                writer.unfollow(a, b)
                token = writer.follow(b, a).consistency_token
            consistency = common_pb2.Consistency(at_least_as_fresh=token)
            relationship = reader.graph.GetRelationship(
                pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=consistency)
            ).relationship
            allowed = reader.graph.CanInteract(
                pb.CanInteractRequest(user_id=a, other_user_id=b, consistency=consistency)
            ).can_interact
            [counted] = reader.graph.GetCounts(pb.GetCountsRequest(user_ids=[b], consistency=consistency)).counts
            if i % 2:
                seen = (relationship.blocked_by, allowed, counted.blocked, counted.followers)
                fresh.append(seen == (True, False, 1, 0))
            else:
                fresh.append((relationship.following, relationship.followed_by, counted.following) == (False, True, 1))
        assert sum(fresh) == 100
