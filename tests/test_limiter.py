"""C7: the sliding-window limiter, as a unit and through the API."""

from __future__ import annotations

import math

import grpc
import pytest
from google.rpc import error_details_pb2

from ratelimit import InProcessLimiter, Window, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import upgrade

from .support import new_user, raises, serving, status_detail


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["in-process"])
def make_limiter(request, clock):
    """Builds a limiter of each kind for the given windows."""
    return lambda spec: InProcessLimiter(parse_windows(spec), clock=clock)


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


def test_window_slides_rather_than_resetting(make_limiter, clock):
    limiter = make_limiter("2/1h")
    assert limiter.acquire("u", "a").allowed
    clock.advance(1800)
    assert limiter.acquire("u", "b").allowed
    refused = limiter.acquire("u", "c")
    assert not refused.allowed
    # "a" leaves the window 1800 s from now, not at a fixed boundary.
    assert refused.retry_after == pytest.approx(1800)
    clock.advance(1799)
    assert not limiter.acquire("u", "d").allowed
    clock.advance(1)
    assert limiter.acquire("u", "e").allowed


def test_refused_attempts_are_not_recorded(make_limiter, clock):
    limiter = make_limiter("1/1m")
    assert limiter.acquire("u", "a").allowed
    for i in range(10):
        clock.advance(1)
        assert not limiter.acquire("u", f"x{i}").allowed
    clock.advance(50)
    assert limiter.acquire("u", "b").allowed


def test_every_window_must_have_room(make_limiter, clock):
    limiter = make_limiter("2/1m,3/1h")
    assert limiter.acquire("u", "a").allowed
    assert limiter.acquire("u", "b").allowed
    minute = limiter.acquire("u", "c")
    assert not minute.allowed and minute.window == Window(2, 60)
    clock.advance(60)
    assert limiter.acquire("u", "c").allowed
    hour = limiter.acquire("u", "d")
    assert not hour.allowed and hour.window == Window(3, 3600)
    assert hour.retry_after == pytest.approx(3600 - 60)


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
