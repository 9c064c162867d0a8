"""Consistency rows of ``make bench`` (bench/run.py names this module in
``SCENARIO_MODULES``).

* ``at_least_as_fresh`` reads (``scenarios``): GetRelationship, GetCounts
  and CanInteract carrying the consistency token of a write made just
  before each row runs (a recent token), on the bench's server. That server
  uses Redis, where token reads go to SQL (entries in Redis were read by
  other processes, so no cache can prove it holds the token's state): this
  is their cost. Target: >= 0.5 x floor.
* The staleness bound's overhead (``extra``): end to end it drowns in the
  noise of a shared machine, so it is measured in process: one hot user's
  counters read from an in-process cache with the 1 s bound and without,
  alternating, over a reader below that costs nothing (the bound's SQL cost
  is one read per hot key per bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from bench import seed
from bench.scenario import SVC, Context, Scenario
from harness import ServerProcess
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc as pbg

TARGETS = {  # row -> minimum ratio to its generator's floor
    "GetRelationship (at_least_as_fresh)": 0.50,
    "GetCounts (at_least_as_fresh)": 0.50,
    "CanInteract (at_least_as_fresh)": 0.50,
}
UNBOUNDED = 1e9  # seconds of --max-staleness: no bound in practice


def recent_token(server: ServerProcess) -> str:
    """The token of a write committed now: a scratch user follows and
    unfollows another (the graph stays as seeded)."""
    follower, followee = seed.USER_IDS[seed.FOLLOW[-1]], seed.USER_IDS[seed.FOLLOW[-2]]
    with grpc.insecure_channel(server.address) as channel:
        stub = pbg.SocialGraphServiceStub(channel)
        stub.Follow(pb.FollowRequest(follower_id=follower, followee_id=followee), timeout=30)
        unfollowed = stub.Unfollow(pb.UnfollowRequest(follower_id=follower, followee_id=followee), timeout=30)
    token: str = unfollowed.consistency_token
    return token


def token_reads(data: dict[str, Any], token: str) -> list[Message]:
    fresh = common_pb2.Consistency(at_least_as_fresh=token)
    a, b = data["a"], data["b"]
    return [
        pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=fresh),
        pb.GetCountsRequest(user_ids=[data["celeb"]], consistency=fresh),
        pb.CanInteractRequest(user_id=a, other_user_id=b, consistency=fresh),
    ]


class _Free:
    """A counter reader that costs nothing, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get(self, user_ids: Any) -> dict[str, Any]:
        from storage.types import Counts, VersionedCounts

        self.calls += 1
        return {u: VersionedCounts(Counts(u), 1) for u in user_ids}


def lookup_cost(gets: int = 400_000, rounds: int = 3) -> dict[str, float]:
    """Microseconds per in-process counter lookup of one hot user, with the
    1 s bound and without (best of ``rounds``, alternating), and the reads
    below per second of lookups with the bound."""
    from cache.freshness import Freshness
    from cache.local import InProcessCounterCache

    best: dict[str, float] = {}
    below_per_s = 0.0
    for _ in range(rounds):
        for label, bound in (("bound", 1.0), ("no bound", UNBOUNDED)):
            free = _Free()
            layer = InProcessCounterCache(free, freshness=Freshness(bound))
            users = ["hot"]
            start = time.perf_counter()
            for _ in range(gets):
                layer.get(users)
            seconds = time.perf_counter() - start
            best[label] = min(best.get(label, float("inf")), seconds / gets * 1e6)
            if label == "bound":
                below_per_s = max(below_per_s, (free.calls - 1) / seconds)
    return {"bound_us": round(best["bound"], 3), "no_bound_us": round(best["no bound"], 3),
            "overhead": round(best["bound"] / best["no bound"] - 1, 3), "reads_below_per_s": round(below_per_s, 2)}


def scenarios() -> list[Scenario]:
    """The three reads with a recent token (taken just before each row runs)."""

    def reads(index: int) -> Callable[[Context], Message]:
        def request(ctx: Context) -> Message:
            return token_reads(ctx.data, recent_token(ctx.server))[index]

        return request

    names = ("GetRelationship", "GetCounts", "CanInteract")
    return [
        Scenario(f"{name} (at_least_as_fresh)", (SVC + name,), reads(i), target=TARGETS[f"{name} (at_least_as_fresh)"])
        for i, name in enumerate(names)
    ]


def extra(args: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """The staleness bound's cost in process (``lookup_cost``)."""
    cost = lookup_cost(100_000 if args.quick else 400_000)
    log(f"staleness bound, in-process counter lookup of a hot user: {cost['bound_us']:.2f} us with the 1 s bound, "
        f"{cost['no_bound_us']:.2f} us without ({100 * cost['overhead']:+.1f}%); "
        f"{cost['reads_below_per_s']:.1f} reads below per second with it")
    return {"lookup_cost": cost}
