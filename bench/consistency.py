"""Consistency scenarios of ``make bench`` (bench/run.py calls ``run``).

* ``at_least_as_fresh`` reads: GetRelationship, GetCounts and CanInteract
  carrying the consistency token of a write made just before each scenario
  (a recent token), on the main server. That server uses Redis, where token
  reads go to SQL (entries in Redis were read by other processes, so no
  cache can prove it holds the token's state): this is their cost.
  Target: >= 0.5 x floor.
* The staleness bound's overhead: the default reads (GetRelationship,
  GetCounts hit, CanInteract) on a second server started with
  ``--max-staleness 1000000000`` (no bound in practice: entries are never
  read again for their age), each as a ratio to that server's own floor,
  against the same reads on the main server (``--max-staleness 1``, the
  default): ``bound_overhead`` = 1 - ratio with the bound / ratio without.
  On a loaded machine that difference drowns in noise, so the in-process
  cost is measured as well (``lookup_cost``): one hot user's counters read
  from an in-process cache with the 1 s bound and without, alternating,
  over a reader below that costs nothing (the bound's SQL cost is one read
  per hot key per bound).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import seed
from google.protobuf import json_format
from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc as pbg

TARGETS = {  # scenario -> minimum ratio to its generator's floor
    "GetRelationship (at_least_as_fresh)": 0.50,
    "GetCounts (at_least_as_fresh)": 0.50,
    "CanInteract (at_least_as_fresh)": 0.50,
}
DEFAULT_READS = ("GetRelationship", "GetCounts (cache hit)", "CanInteract")
UNBOUNDED = "1000000000"  # seconds of --max-staleness: no bound in practice
SERVICE = "/socialgraph.v1.SocialGraphService/"


def recent_token(server: Any) -> str:
    """The token of a write committed now: a scratch user follows and
    unfollows another (the graph stays as seeded)."""
    follower, followee = seed.USER_IDS[seed.FOLLOW[-1]], seed.USER_IDS[seed.FOLLOW[-2]]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pbg.SocialGraphServiceStub(channel)
        stub.Follow(pb.FollowRequest(follower_id=follower, followee_id=followee), timeout=30)
        unfollowed = stub.Unfollow(pb.UnfollowRequest(follower_id=follower, followee_id=followee), timeout=30)
    token: str = unfollowed.consistency_token
    return token


def scenario(name: str, method: str, msg: Any) -> dict[str, Any]:
    """A fixed-body read expected to answer OK (as bench/run.py's)."""
    data = msg.SerializeToString()
    return {"name": name, "paths": [SERVICE + method], "body": b"\x00" + len(data).to_bytes(4, "big") + data,
            "json": [json_format.MessageToDict(msg, preserving_proto_field_name=True)],
            "expect": {SERVICE + method: "OK"}}


def token_reads(data: dict[str, Any], token: str) -> list[dict[str, Any]]:
    fresh = common_pb2.Consistency(at_least_as_fresh=token)
    a, b = data["a"], data["b"]
    return [
        scenario("GetRelationship (at_least_as_fresh)", "GetRelationship",
                 pb.GetRelationshipRequest(user_id=a, other_user_id=b, consistency=fresh)),
        scenario("GetCounts (at_least_as_fresh)", "GetCounts",
                 pb.GetCountsRequest(user_ids=[data["celeb"]], consistency=fresh)),
        scenario("CanInteract (at_least_as_fresh)", "CanInteract",
                 pb.CanInteractRequest(user_id=a, other_user_id=b, consistency=fresh)),
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
        for label, bound in (("bound", 1.0), ("no bound", float(UNBOUNDED))):
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


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set (a server started inside reads its SOCIALGRAPH_* settings)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(args: Any, server: Any, gen: Any, record: Callable[..., dict[str, Any]], floor: float, data: dict[str, Any],
        results: list[dict[str, Any]], hooks: dict[str, Callable[..., Any]]) -> None:
    """``hooks``: bench/run.py's ``read_scenarios``, ``health``, ``Server``
    and ``log``. ``results`` already holds the default reads on ``server``."""
    for index in range(len(TARGETS)):
        sc = token_reads(data, recent_token(server))[index]
        record(sc, gen.run(server, sc, args.duration), floor, TARGETS[sc["name"]])

    health, log = hooks["health"], hooks["log"]
    bounded = {r["name"]: r for r in results if r.get("workers") == server.workers}
    with environment(SOCIALGRAPH_MAX_STALENESS=UNBOUNDED):
        unbounded = hooks["Server"](args, server.workers)
    try:
        free_floor = record({**health(), "name": "floor: Health/Check (no bound)"},
                            gen.run(unbounded, health(), args.duration), None)["rps"]
        reads = {sc["name"]: sc for sc in hooks["read_scenarios"](data)}
        for name in DEFAULT_READS:
            sc = {**reads[name], "name": f"{name} (no bound)"}
            without = record(sc, gen.run(unbounded, sc, args.duration), free_floor)
            with_bound = bounded.get(name)
            if with_bound and with_bound.get("ratio") and without.get("ratio"):
                without["bound_overhead"] = round(1 - with_bound["ratio"] / without["ratio"], 3)
                log(f"  staleness bound overhead, {name}: x{with_bound['ratio']:.2f} with the 1 s bound, "
                    f"x{without['ratio']:.2f} without: {100 * without['bound_overhead']:+.1f}%")
    finally:
        unbounded.stop()
    cost = lookup_cost()
    log(f"  staleness bound, in-process counter lookup of a hot user: {cost['bound_us']:.2f} us with the 1 s bound, "
        f"{cost['no_bound_us']:.2f} us without ({100 * cost['overhead']:+.1f}%); "
        f"{cost['reads_below_per_s']:.1f} reads below per second with it")
    results[-1]["lookup_cost"] = cost
