#!/usr/bin/env python
"""Staleness across processes (``python -m bench.staleness``; never part of
``make test``).

Starts two ``socialgraph serve`` processes on one PostgreSQL schema, without
Redis and with a private Redis, and measures how long after a write is
acknowledged by the second process a default read (``minimize_latency``) on
the first reflects it. Before each write the first process reads the pair,
so its cache holds the state from just before the write: the worst case.
The first process is polled every millisecond. Prints p50, p99 and max per
shape, in milliseconds.

    python -m bench.staleness [--samples N] [--max-staleness S]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid

import grpc

from harness import RedisServer, running_server, temporary_database
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1.social_graph_pb2_grpc import SocialGraphServiceStub


def measure(first: SocialGraphServiceStub, second: SocialGraphServiceStub, samples: int) -> list[float]:
    delays = []
    for _ in range(samples):
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        request = pb.GetRelationshipRequest(user_id=a, other_user_id=b)
        assert not first.GetRelationship(request).relationship.following
        second.Follow(pb.FollowRequest(follower_id=a, followee_id=b))
        acknowledged = time.monotonic()
        while not first.GetRelationship(request).relationship.following:
            time.sleep(0.001)
        delays.append((time.monotonic() - acknowledged) * 1000)
    return delays


def report(shape: str, delays: list[float]) -> None:
    delays.sort()
    p99 = delays[min(len(delays) - 1, round(0.99 * (len(delays) - 1)))]
    p50 = statistics.median(delays)
    print(f"{shape:<28} n={len(delays):<4} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   max {delays[-1]:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--max-staleness", default="1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, temporary_database("postgres", directory) as url:
        for shape in ("PostgreSQL, no Redis", "PostgreSQL + Redis"):
            with contextlib.ExitStack() as stack:
                extra = ["--max-staleness", args.max_staleness]
                if "Redis" in shape and "no Redis" not in shape:
                    extra += ["--redis-url", stack.enter_context(RedisServer(directory)).url]
                addresses = [
                    stack.enter_context(running_server("--database-url", url, *extra))[0] for _ in range(2)
                ]
                first, second = (
                    SocialGraphServiceStub(stack.enter_context(grpc.insecure_channel(a))) for a in addresses
                )
                report(shape, measure(first, second, args.samples))


if __name__ == "__main__":
    main()
