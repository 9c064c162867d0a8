#!/usr/bin/env python
"""In-process cost of the batch reads: ``FilterInteractable`` with 500
candidates and ``BatchGetRelationships`` with 50 ids, through the servicer
(validation, rules, the cache layers, SQL, the response message; no gRPC
transport) on PostgreSQL + Redis with the layers of the bench's deployment
(``cache/build.py``: in-process, fed by Redis pub/sub, over Redis, over SQL).

As in the load bench, the viewer of ``FilterInteractable`` blocks 100 of
its candidates and is blocked by 25 more, and none of the pairs is cached
(a batch of safety checks reads the blocks of its misses, which are not
cached); ``BatchGetRelationships`` asks about 50 users the viewer follows,
every pair cached after the first call (each entry is read again from SQL
once per staleness bound).

Figures are microseconds per call on one thread: wall time, the CPU time
of this process (the Python path; not PostgreSQL's or Redis's), which other
processes on a busy machine disturb far less, and Python function calls
per call (cProfile: exact whatever the load). Each figure is its best
round. ``--base DIR`` runs another checkout's ``server``, ``storage``,
``cache`` and ``ratelimit`` in a child process too, the two trees
alternating (each first in every other round), and prints the ratio of
this tree to the base.

    python -m bench.read_paths [--base DIR] [--rounds 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
import uuid
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POSTGRES_DSN = os.environ.get("SOCIALGRAPH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SOCIALGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/0")
CANDIDATES, BLOCKING, BLOCKED_BY, OTHERS = 500, 100, 25, 50


def measure(calls: int) -> dict[str, float]:
    """One round in this process: the figures of each operation."""
    import psycopg

    from cache import redis_client
    from cache.build import build
    from ratelimit import InProcessLimiter, parse_windows
    from server.rules import Graph, Policy
    from server.servicers.social_graph import SocialGraphServicer
    from socialgraph.v1 import social_graph_pb2 as pb
    from storage import open_storage
    from storage.migrate import upgrade

    schema = f"bench_reads_{uuid.uuid4().hex[:10]}"
    prefix = f"bench-reads-{uuid.uuid4().hex[:10]}"
    client = redis_client.connect(REDIS_URL, 2.0)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    storage = open_storage(f"{base}?options=-csearch_path%3D{schema}", pool_size=2)
    try:
        upgrade(storage)
        readers = build(storage, client, prefix=prefix)
        graph = Graph(
            storage, InProcessLimiter(parse_windows("1000000/1h")), Policy(),
            counters=readers.counters, relationships=readers.relationships,
        )
        viewer = str(uuid.uuid4())
        candidates = [str(uuid.uuid4()) for _ in range(CANDIDATES)]
        for other in candidates[:BLOCKING]:
            graph.block(viewer, other, "")
        for other in candidates[BLOCKING : BLOCKING + BLOCKED_BY]:
            graph.block(other, viewer, "")
        others = [str(uuid.uuid4()) for _ in range(OTHERS)]
        for other in others:
            graph.follow(viewer, other)
        feed = getattr(readers.relationships, "_feed", None)
        if feed is not None:
            feed.wait_live(10)
        servicer = SocialGraphServicer(graph)
        context: Any = None
        filter_request = pb.FilterInteractableRequest(user_id=viewer, candidate_ids=candidates)
        batch_request = pb.BatchGetRelationshipsRequest(user_id=viewer, other_user_ids=others)
        allowed = servicer.FilterInteractable(filter_request, context).allowed_ids
        assert len(allowed) == CANDIDATES - BLOCKING - BLOCKED_BY, len(allowed)

        figures: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], object]) -> None:
            for _ in range(min(20, calls)):
                fn()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                fn()
            figures[f"{name} wall"] = (time.perf_counter() - wall) / calls * 1e6
            figures[f"{name} cpu"] = (time.process_time() - cpu) / calls * 1e6
            profile = cProfile.Profile()
            profile.runcall(lambda: [fn() for _ in range(50)])
            figures[f"{name} calls"] = pstats.Stats(profile).total_calls / 50  # type: ignore[attr-defined]

        timed("FilterInteractable", lambda: servicer.FilterInteractable(filter_request, context))
        timed("BatchGetRelationships", lambda: servicer.BatchGetRelationships(batch_request, context))
        return figures
    finally:
        storage.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="another checkout to compare with (its server/, storage/, cache/, ratelimit/)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.calls)))
        return
    from bench.storage_paths import child  # the parent only: the child runs as a script, without the package

    trees = {"this": ROOT} if not args.base else {"base": os.path.abspath(args.base), "this": ROOT}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(args.rounds):
        # Each tree goes first in every other round.
        for name, tree in list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]:
            runs[name].append(child(__file__, tree, "--calls", str(args.calls)))
    print(f"PostgreSQL + Redis: µs per call, best of {args.rounds} rounds of {args.calls} calls")
    for op in runs["this"][0]:
        best = {name: min(r[op] for r in rounds) for name, rounds in runs.items()}
        line = "  ".join(f"{name} {value:9.1f}" for name, value in best.items())
        ratio = f"  this/base {best['this'] / best['base']:.3f}" if "base" in best else ""
        print(f"  {op:28s} {line}{ratio}", flush=True)


if __name__ == "__main__":
    main()
