#!/usr/bin/env python
"""Event benchmark: Watch delivery latency and rate, and what the outbox
costs the writes that append to it.

Not a test: it measures once and prints a table (and JSON). Everything runs
on loopback against PostgreSQL (a fresh schema, dropped at the end).

1. Commit-to-delivery latency with 1 and with 50 watchers: a writer sends
   paced Follows to a ``socialgraph serve`` process; each watcher records
   when each event arrives. Latency is arrival minus the moment the Follow's
   response arrived (the commit happened before it), p50 and p99 over every
   watcher and event; negative values (delivered before the response) are
   kept.
2. Events per second delivered to one watcher while 8 threads write as fast
   as they can.
3. The outbox's cost in process (``Graph`` over PostgreSQL, 8 threads):
   Follow+Unfollow pairs per second with the outbox and with appending
   turned off; Block+Unblock of a user with many followers; DeleteUser of a
   user with many follows (one event per removed edge).

Usage::

    python bench/events.py [--database-url URL] [--writes N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psycopg  # noqa: E402

from ratelimit import InProcessLimiter, parse_windows  # noqa: E402
from server.rules import Graph, Policy  # noqa: E402
from socialgraph.v1 import social_graph_pb2 as pb  # noqa: E402
from socialgraph.v1 import social_graph_pb2_grpc, watch_pb2, watch_pb2_grpc  # noqa: E402
from storage import open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.sql import SqlTx  # noqa: E402
from harness import running_server  # noqa: E402

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def new_user() -> str:
    return str(uuid.uuid4())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@contextlib.contextmanager
def schema(dsn: str):
    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield dsn.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


class Watcher:
    """One stream from now, recording each FOLLOWED event's arrival."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stream = watch_pb2_grpc.WatchServiceStub(self.channel).Watch(
            watch_pb2.WatchRequest(kinds=[watch_pb2.EVENT_KIND_FOLLOWED]), timeout=600
        )
        next(self.stream)  # the first checkpoint: the stream is live
        self.arrived: dict[tuple[str, str], float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.stream:
                if message.HasField("event"):
                    self.arrived[(message.event.actor_id, message.event.subject_id)] = time.perf_counter()
        except grpc.RpcError:
            pass

    def close(self) -> None:
        self.stream.cancel()
        self.channel.close()


def latency(address: str, watchers: int, writes: int) -> dict:
    streams = [Watcher(address) for _ in range(watchers)]
    acked: dict[tuple[str, str], float] = {}
    with grpc.insecure_channel(address) as channel:
        graph = social_graph_pb2_grpc.SocialGraphServiceStub(channel)
        for _ in range(writes):
            pair = (new_user(), new_user())
            graph.Follow(pb.FollowRequest(follower_id=pair[0], followee_id=pair[1]))
            acked[pair] = time.perf_counter()
            time.sleep(0.01)
    deadline = time.monotonic() + 30
    while any(len(s.arrived) < writes for s in streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = [(s.arrived[pair] - at) * 1000 for s in streams for pair, at in acked.items() if pair in s.arrived]
    missing = watchers * writes - len(samples)
    for s in streams:
        s.close()
    return {"watchers": watchers, "events": writes, "p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99), "missing": missing}


def delivery_rate(address: str, writes: int) -> dict:
    watcher = Watcher(address)

    def write(count: int) -> None:
        with grpc.insecure_channel(address) as channel:
            graph = social_graph_pb2_grpc.SocialGraphServiceStub(channel)
            for _ in range(count):
                graph.Follow(pb.FollowRequest(follower_id=new_user(), followee_id=new_user()))

    started = time.perf_counter()
    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(write, [writes // 8] * 8))
    written = time.perf_counter()
    total = writes // 8 * 8
    deadline = time.monotonic() + 60
    while len(watcher.arrived) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    last = max(watcher.arrived.values())
    watcher.close()
    return {
        "events": len(watcher.arrived),
        "writes_per_s": total / (written - started),
        "delivered_per_s": len(watcher.arrived) / (last - started),
        "last_delivery_after_last_write_ms": (last - written) * 1000,
    }


def in_process(url: str, pairs: int) -> dict:
    storage = open_storage(url, pool_size=8)
    upgrade(storage)
    graph = Graph(storage, InProcessLimiter(parse_windows("1000000/1h")), Policy())
    emit = SqlTx.emit

    def follow_rate() -> float:
        work = [(new_user(), new_user()) for _ in range(pairs)]

        def cycle(pair):
            graph.follow(*pair)
            graph.unfollow(*pair)

        started = time.perf_counter()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(cycle, work))
        return pairs / (time.perf_counter() - started)

    def celebrity_block_ms(followers: int = 5000, rounds: int = 50) -> float:
        star = new_user()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda f: graph.follow(f, star), [new_user() for _ in range(followers)]))
        blocked = [new_user() for _ in range(rounds)]
        for user in blocked:
            graph.follow(user, star)
        times = []
        for user in blocked:
            started = time.perf_counter()
            graph.block(star, user, "")
            graph.unblock(star, user)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def delete_user_ms(follows: int = 5000) -> float:
        user = new_user()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda f: graph.follow(f, user), [new_user() for _ in range(follows)]))
        started = time.perf_counter()
        graph.delete_user(user)
        return (time.perf_counter() - started) * 1000

    results = {}
    for label, patched in (("outbox", emit), ("no outbox", lambda self, change: None)):
        SqlTx.emit = patched
        follow_rate()  # warm up
        results[label] = {
            "follow_unfollow_pairs_per_s": statistics.median(follow_rate() for _ in range(3)),
            "block_unblock_ms": celebrity_block_ms(),
            "delete_user_5000_follows_ms": delete_user_ms(),
        }
    SqlTx.emit = emit
    storage.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DSN, help="PostgreSQL server for a fresh schema (psycopg DSN)")
    parser.add_argument("--writes", type=int, default=400, help="paced writes per latency run")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "events.json")
    args = parser.parse_args()
    report: dict = {}
    with schema(args.database_url) as url:
        flags = ("--database-url", url, "--threads", "128", "--watch-streams", "64", "--rate-limits", "1000000/1h")
        with running_server(*flags) as (address, _):
            report["latency"] = [latency(address, watchers, args.writes) for watchers in (1, 50)]
            report["rate"] = delivery_rate(address, 2000)
    with schema(args.database_url) as url:
        report["outbox"] = in_process(url, 2000)
    for row in report["latency"]:
        print(
            f"{row['watchers']:>3} watcher(s): commit-to-delivery p50 {row['p50_ms']:.2f} ms, "
            f"p99 {row['p99_ms']:.2f} ms over {row['events']} events ({row['missing']} missing)"
        )
    rate = report["rate"]
    print(
        f"delivery: {rate['delivered_per_s']:.0f} events/s to one watcher while 8 threads wrote "
        f"{rate['writes_per_s']:.0f} follows/s; last event {rate['last_delivery_after_last_write_ms']:.1f} ms after the last write"
    )
    on, off = report["outbox"]["outbox"], report["outbox"]["no outbox"]
    for key in on:
        print(f"{key}: {on[key]:.1f} with the outbox, {off[key]:.1f} without")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
