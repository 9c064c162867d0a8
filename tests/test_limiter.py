"""C7: the sliding-window limiter, as a unit and through the API."""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2

from cache import redis_client
from ratelimit import InProcessLimiter, Window, parse_windows
from ratelimit.redis import RedisLimiter
from server.rules import Graph, Policy
from socialgraph.v1 import social_graph_pb2 as pb
from storage import open_storage
from storage.limiter import SqlLimiter
from storage.migrate import upgrade

from .support import (
    REDIS_URL,
    new_user,
    raises,
    redis_reachable,
    require,
    serving,
    status_detail,
    temporary_database,
)


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RedisTime:
    """Redis keeps its own time: moving it forward means waiting."""

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        "in-process",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def kind(request):
    if request.param == "redis":
        require("Redis", redis_reachable())
    return request.param


@pytest.fixture
def timeline(kind, clock):
    return RedisTime() if kind == "redis" else clock


@pytest.fixture
def sql_storage(kind, tmp_path):
    """A fresh database for the database limiter (None for the other kinds)."""
    if kind not in ("sqlite", "postgres"):
        yield None
        return
    with temporary_database(kind, tmp_path) as url:
        storage = open_storage(url, pool_size=8)
        upgrade(storage)
        yield storage
        storage.close()


@pytest.fixture
def make_limiter(kind, clock, sql_storage):
    """Builds a limiter of the kind under test for the given windows; each
    Redis limiter gets its own key prefix, so tests never share logs."""

    def make(spec: str):
        if kind == "in-process":
            return InProcessLimiter(parse_windows(spec), clock=clock)
        if sql_storage is not None:
            return SqlLimiter(sql_storage, parse_windows(spec), clock=lambda: int(clock() * 1_000_000))
        client = redis_client.connect(REDIS_URL, timeout=1.0)
        return RedisLimiter(client, parse_windows(spec), prefix=f"test-{uuid.uuid4().hex[:12]}")

    return make


# Redis time passes while a test runs; the fake clock does not.
TOLERANCE = 0.25


# ---------------------------------------------------------------- parsing


def test_parse_windows_understands_units_and_sorts_by_length():
    assert parse_windows("100/24h, 20/1h") == (Window(20, 3600), Window(100, 86400))
    assert parse_windows("5/m,2/30s,1/d") == (Window(2, 30), Window(5, 60), Window(1, 86400))
    assert str(Window(20, 3600)) == "20/1h"


@pytest.mark.parametrize("spec", ["", "20", "20/h/", "x/1h", "0/1h", "20/0h", "20/1w", "20/1h,"])
def test_parse_windows_rejects_garbage(spec):
    with pytest.raises(ValueError):
        parse_windows(spec)


# ------------------------------------------------------------ sliding log


def test_admits_up_to_the_limit_then_refuses(make_limiter):
    limiter = make_limiter("3/1h")
    assert [limiter.acquire("u", f"t{i}").allowed for i in range(4)] == [True, True, True, False]


def test_window_slides_rather_than_resetting(make_limiter, timeline):
    limiter = make_limiter("2/2s")
    assert limiter.acquire("u", "a").allowed
    timeline.advance(1)
    assert limiter.acquire("u", "b").allowed
    refused = limiter.acquire("u", "c")
    assert not refused.allowed
    # "a" leaves the window one second from now, not at a fixed boundary.
    assert refused.retry_after == pytest.approx(1, abs=TOLERANCE)
    assert refused.window == Window(2, 2)
    timeline.advance(0.6)
    assert not limiter.acquire("u", "d").allowed
    timeline.advance(0.6)
    assert limiter.acquire("u", "e").allowed


def test_refused_attempts_are_not_recorded(make_limiter, timeline):
    limiter = make_limiter("1/2s")
    assert limiter.acquire("u", "a").allowed
    for i in range(5):
        timeline.advance(0.2)
        assert not limiter.acquire("u", f"x{i}").allowed
    timeline.advance(1.2)
    assert limiter.acquire("u", "b").allowed


def test_every_window_must_have_room(make_limiter, timeline):
    limiter = make_limiter("2/1s,3/4s")
    assert limiter.acquire("u", "a").allowed
    assert limiter.acquire("u", "b").allowed
    short = limiter.acquire("u", "c")
    assert not short.allowed and short.window == Window(2, 1)
    timeline.advance(1.1)
    assert limiter.acquire("u", "c").allowed
    long = limiter.acquire("u", "d")
    assert not long.allowed and long.window == Window(3, 4)
    assert long.retry_after == pytest.approx(4 - 1.1, abs=TOLERANCE)


def test_release_gives_the_slot_back(make_limiter):
    limiter = make_limiter("1/1h")
    assert limiter.acquire("u", "a").allowed
    limiter.release("u", "a")
    assert limiter.acquire("u", "b").allowed
    limiter.release("u", "unknown-token")
    assert not limiter.acquire("u", "c").allowed


def test_keys_are_independent(make_limiter):
    limiter = make_limiter("1/1h")
    assert limiter.acquire("u", "a").allowed
    assert limiter.acquire("v", "a").allowed
    assert not limiter.acquire("u", "b").allowed


def test_concurrent_attempts_are_admitted_exactly_up_to_the_limit(make_limiter):
    limiter = make_limiter("25/1h")
    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(lambda i: limiter.acquire("u", f"t{i}"), range(100)))
    assert sum(d.allowed for d in decisions) == 25


# --------------------------------------------------------- through the API

LIMITS = "3/1h,5/24h"


@pytest.fixture
def limited(tmp_path, clock):
    """A server whose limiter allows 3 requests an hour and 5 a day, on a fake clock."""
    storage = open_storage(f"sqlite:///{tmp_path}/limited.db")
    upgrade(storage)
    graph = Graph(storage, InProcessLimiter(parse_windows(LIMITS), clock=clock), Policy())
    with serving(graph) as client:
        yield client
    storage.close()


def test_refusal_carries_retry_info_quota_failure_and_retry_after(limited, clock):
    sender = new_user()
    for _ in range(3):
        limited.send(sender, new_user())
    clock.advance(600)
    with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED") as refused:
        limited.send(sender, new_user())
    retry = status_detail(refused.error, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta().total_seconds() == pytest.approx(3000, abs=0.01)
    quota = status_detail(refused.error, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == f"user:{sender}"
    assert "3" in quota.violations[0].description
    trailing = dict(refused.error.trailing_metadata())
    assert trailing["retry-after"] == str(math.ceil(3000))


def test_requests_that_create_nothing_give_their_slot_back(limited):
    sender, friend, blocker = new_user(), new_user(), new_user()
    limited.send(sender, friend)
    for _ in range(5):
        assert not limited.send(sender, friend).created  # repeats
    limited.block(blocker, sender)
    for _ in range(5):
        with raises(grpc.StatusCode.PERMISSION_DENIED, "BLOCKED"):
            limited.send(sender, blocker)
    # Only the first request used a slot: two more fit in the hour.
    assert limited.send(sender, new_user()).created
    assert limited.send(sender, new_user()).created
    with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"):
        limited.send(sender, new_user())


def test_refused_request_changes_nothing(limited):
    sender, target = new_user(), new_user()
    for _ in range(3):
        limited.send(sender, new_user())
    before = limited.counts(sender, target)
    with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"):
        limited.send(sender, target)
    assert limited.counts(sender, target) == before
    assert not limited.relationship(sender, target).following


def test_daily_window_holds_after_the_hourly_one_frees(limited, clock):
    sender = new_user()
    for _ in range(3):
        limited.send(sender, new_user())
    clock.advance(3600)
    limited.send(sender, new_user())
    limited.send(sender, new_user())
    with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED") as refused:
        limited.send(sender, new_user())
    assert refused.info.metadata["window"] == "5/1d"
    clock.advance(86400 - 3600)
    assert limited.send(sender, new_user()).created


def test_other_rpcs_are_not_limited(limited):
    sender = new_user()
    for _ in range(3):
        limited.send(sender, new_user())
    for _ in range(10):
        assert limited.follow(sender, new_user()).created


def test_a_crossing_request_that_connects_uses_a_slot(limited):
    sender = new_user()
    for _ in range(2):
        limited.send(new_user(), sender)  # others ask first
    # Replying to both connects (C3) and creates something: two slots used.
    admirers = [r.requester_id for r in limited.graph.ListIncomingConnectionRequests(
        pb.ListIncomingConnectionRequestsRequest(user_id=sender)).requests]
    for admirer in admirers:
        assert limited.send(sender, admirer).state == pb.CONNECTION_STATE_CONNECTED
    assert limited.send(sender, new_user()).created
    with raises(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"):
        limited.send(sender, new_user())


def test_in_process_memory_follows_active_requesters_only(clock):
    """200k one-off requesters must not stay in memory for ever: once their
    attempts leave the longest window they are dropped."""
    limiter = InProcessLimiter(parse_windows("5/1h,20/1d"), clock=clock)
    for i in range(20_000):
        assert limiter.acquire(f"one-off-{i}", "t").allowed
        if i % 1000 == 0:
            clock.advance(1)
    assert len(limiter) == 20_000
    clock.advance(86_400 - 10)  # the first ones have left the day window
    limiter.acquire("active", "t")
    assert 1 < len(limiter) < 20_000
    clock.advance(86_400)
    assert limiter.acquire("active", "u").allowed
    assert len(limiter) == 1
    # A released attempt does not keep its requester either.
    limiter.acquire("gone", "t")
    limiter.release("gone", "t")
    assert len(limiter) == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_database_limiter_deletes_entries_that_left_the_longest_window(backend, tmp_path, clock):
    """Every PRUNE_EVERY decisions, a batch of expired entries goes, whoever's they are."""
    from sqlalchemy import func, select

    from storage import limiter as sql_limiter
    from storage.schema import limiter_log

    with temporary_database(backend, tmp_path) as url:
        storage = open_storage(url, pool_size=2)
        upgrade(storage)
        try:
            limiter = SqlLimiter(storage, parse_windows("5/1h"), clock=lambda: int(clock() * 1_000_000))
            for i in range(40):
                assert limiter.acquire(f"gone-{i}", "t").allowed
            clock.advance(3600)
            for i in range(sql_limiter.PRUNE_EVERY - 40):
                limiter.acquire("active", f"t{i}")
            query = select(limiter_log.c.limiter_key, func.count()).group_by(limiter_log.c.limiter_key)
            with storage.engine.connect() as conn:
                assert dict(conn.execute(query).all()) == {"active": 5}
        finally:
            storage.close()
