#!/usr/bin/env python
"""In-process cost of the storage path (no gRPC, no caches): Follow+Unfollow,
GetRelationship, ListFollowers (a page of 20 with a viewer, and the first
page of 50 without one) and SendConnectionRequest (a requester that has
not sent before each call, limited as the server limits it: by Redis, recorded in the database,
or by the database alone without Redis) through ``Graph`` on SQLite and
PostgreSQL, as microseconds per call on one thread: wall time, and the CPU
time of this process (the Python path and SQLite; not PostgreSQL's server),
which other processes on a busy machine disturb far less, Python function
calls per call (cProfile: exact whatever the load) and, on PostgreSQL, round
trips to the database per call (the driver's waits for an answer) and the
CPU time of every PostgreSQL process per call (its backends, WAL writer and
the rest: the whole machine's PostgreSQL, so other users of it count too). Each
figure is its best round: other processes only ever make a round slower.

The figures compare two versions of the code on the same machine in the same
run (``--base DIR`` puts another checkout's ``server``/``storage``/``ratelimit``
first on the path in a child process; runs alternate between the two, each
going first in every other round), so load from other processes affects
both alike. Prints each operation's best
round of ``--rounds`` rounds and the ratio of this tree to the base.

    python bench/storage_paths.py [--base DIR] [--rounds 5] [--calls 300] [--backends sqlite,postgres]
                                  [--only NAME,...]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POSTGRES_DSN = os.environ.get("SOCIALGRAPH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SOCIALGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/15")
FOLLOWERS = 60  # of the listed user: more than a page of 50
NEVER_REFUSES = "1000000000/1h,1000000000/24h"  # as bench/run.py starts the server


def count_round_trips() -> list[int]:
    """Counts the PostgreSQL driver's round trips: its waits for nothing but
    an answer from the server (a pipeline of statements, whose sends also
    take what answers are there, is one; a commit or mode change with
    nothing to send is none). The count is the list's item."""
    import psycopg
    from psycopg.waiting import Wait

    counter = [0]
    wait = psycopg.Connection.wait

    def reads(gen: Any) -> Any:
        read = False
        try:
            what = next(gen)
            while True:
                if not read and what == Wait.R:
                    read = True
                    counter[0] += 1
                what = gen.send((yield what))
        except StopIteration as stop:
            return stop.value

    def counted(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        return wait(self, reads(gen), *args, **kwargs)

    psycopg.Connection.wait = counted  # type: ignore[method-assign]
    return counter


def measure(backend: str, calls: int, only: set[str]) -> dict[str, float]:
    """One round in this process: microseconds per call of each operation."""
    import psycopg
    import redis

    from harness import CpuMeter
    from ratelimit import InProcessLimiter, parse_windows
    from ratelimit.failover import FailoverLimiter
    from ratelimit.redis import RedisLimiter
    from server.rules import Graph, Policy
    from server.rules.graph import Consistency
    from storage import open_storage
    from storage.limiter import SqlLimiter
    from storage.migrate import upgrade

    trips = count_round_trips()
    strict = Consistency(fully_consistent=True)
    schema = f"bench_paths_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as directory:
        if backend == "sqlite":
            url = f"sqlite:///{directory}/paths.db"
        else:
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
            url = f"{base}?options=-csearch_path%3D{schema}"
        storage = open_storage(url, pool_size=2)
        try:
            upgrade(storage)
            limiter: Any = InProcessLimiter(parse_windows("1000000/1h"))
            graph = Graph(storage, limiter, Policy())
            star, viewer, other = (str(uuid.uuid4()) for _ in range(3))
            for _ in range(FOLLOWERS):
                graph.follow(str(uuid.uuid4()), star)
            graph.follow(viewer, star)

            figures: dict[str, float] = {}

            def timed(name: str, fn: Callable[[], object]) -> None:
                if only and name not in only:
                    return
                for _ in range(min(20, calls)):
                    fn()
                meter = CpuMeter(())
                wall, cpu, before = time.perf_counter(), time.process_time(), trips[0]
                for _ in range(calls):
                    fn()
                figures[f"{name} wall"] = (time.perf_counter() - wall) / calls * 1e6
                figures[f"{name} cpu"] = (time.process_time() - cpu) / calls * 1e6
                if backend != "sqlite":
                    figures[f"{name} trips"] = (trips[0] - before) / calls
                    figures[f"{name} pg cpu"] = meter.per_request(calls)["postgres"]
                profile = cProfile.Profile()
                profile.runcall(lambda: [fn() for _ in range(100)])
                # typeshed's Stats leaves out total_calls (set by Stats.init)
                figures[f"{name} calls"] = pstats.Stats(profile).total_calls / 100  # type: ignore[attr-defined]

            def follow_unfollow() -> None:
                graph.follow(other, star)
                graph.unfollow(other, star)

            timed("Follow+Unfollow", follow_unfollow)
            timed("GetRelationship", lambda: graph.get_relationship(viewer, star, strict))
            timed("ListFollowers", lambda: graph.list_followers(star, 20, "", viewer, strict))
            timed("ListFollowers 50", lambda: graph.list_followers(star, 50, "", None))

            windows = parse_windows(NEVER_REFUSES)
            client = redis.Redis.from_url(REDIS_URL)
            prefix = f"bench-paths-{uuid.uuid4().hex[:10]}"
            limiters: dict[str, Any] = {
                "SendConnectionRequest": FailoverLimiter(
                    RedisLimiter(client, windows, prefix=prefix), SqlLimiter(storage, windows)
                ),
                "SendConnectionRequest sql": SqlLimiter(storage, windows),
            }
            try:
                for name, send_limiter in limiters.items():
                    sender = Graph(storage, send_limiter, Policy())
                    # Requesters that have written before (their counter rows exist), as in bench/run.py.
                    requesters = [str(uuid.uuid4()) for _ in range(min(20, calls) + calls + 100)]
                    for i in range(0, len(requesters), 500):
                        batch = requesters[i : i + 500]

                        def make_counters(tx: Any, batch: list[str] = batch) -> object:
                            return tx.lock_users(batch)

                        storage.read_write(make_counters)
                    fresh = iter(requesters)

                    def send(graph: Graph = sender, ids: Iterator[str] = fresh) -> object:
                        return graph.send_connection_request(next(ids), star, "")

                    timed(name, send)
            finally:
                for key in client.scan_iter(f"{prefix}:*"):
                    client.delete(key)
            return figures
        finally:
            storage.close()
            if backend != "sqlite":
                with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


def child(script: str, tree: str | None, *args: str) -> dict[str, float]:
    """Runs ``script --child ARGS`` with ``tree`` (another checkout) first on
    the path; returns the figures it prints as JSON on its last line."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, script, "--child", *args],
        env=env, check=True, capture_output=True, text=True, cwd=tempfile.gettempdir(),
    ).stdout
    return cast(dict[str, float], json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="another checkout to compare with (its server/, storage/, ratelimit/)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--only", default="", help="comma-separated operations to measure (default every one)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.calls, {n.strip() for n in args.only.split(",") if n.strip()})))
        return
    trees = {"this": ROOT} if not args.base else {"base": os.path.abspath(args.base), "this": ROOT}
    for backend in args.backends.split(","):
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for i in range(args.rounds):
            # Each tree goes first in every other round.
            for name, tree in (list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]):
                runs[name].append(child(__file__, tree, backend, "--calls", str(args.calls), "--only", args.only))
        print(f"{backend}: µs per call, best of {args.rounds} rounds of {args.calls} calls")
        for op in runs["this"][0]:
            medians = {name: min(r[op] for r in rounds) for name, rounds in runs.items()}
            line = "  ".join(f"{name} {value:8.1f}" for name, value in medians.items())
            ratio = f"  this/base {medians['this'] / medians['base']:.3f}" if "base" in medians else ""
            print(f"  {op:34s} {line}{ratio}", flush=True)


if __name__ == "__main__":
    main()
