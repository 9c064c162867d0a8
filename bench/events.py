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
   as they can (paced by the writes), and to one watcher that reads the
   same events back from the log (a stream catching up).
3. The outbox's cost in process (``Graph`` over PostgreSQL, 8 threads,
   with the event feed's sequencer running as in a server process):
   Follow+Unfollow pairs per second with the outbox and with appending
   turned off, alternating round by round (target: at most 10 % fewer with
   the outbox); Block+Unblock by a user with many followers; DeleteUser of a
   user with many followers (one event per removed edge).

``make bench`` runs it after bench/run.py (``make bench ARGS=--quick`` runs
both smaller); ``make bench-events`` runs it alone. It prints PASS or FAIL
for the target and exits non-zero only when an event was not delivered.

Usage::

    python bench/events.py [--quick] [--database-url URL] [--writes N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from harness import postgres_schema, running_server  # noqa: E402
from ratelimit import InProcessLimiter, parse_windows  # noqa: E402
from server.rules import EventLog, Graph, Policy  # noqa: E402
from server.rules.graph import now_us  # noqa: E402
from socialgraph.v1 import social_graph_pb2 as pb  # noqa: E402
from socialgraph.v1 import social_graph_pb2_grpc, watch_pb2, watch_pb2_grpc  # noqa: E402
from storage import open_storage  # noqa: E402
from storage.feed import EventFeed  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.sql import SqlTx  # noqa: E402
from storage.types import Change, Event  # noqa: E402

DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def new_user() -> str:
    return str(uuid.uuid4())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Watcher:
    """One stream (from now, or after ``cursor``), recording each FOLLOWED
    event's arrival."""

    def __init__(self, address: str, cursor: str = "") -> None:
        self.channel = grpc.insecure_channel(address)
        self.stream = watch_pb2_grpc.WatchServiceStub(self.channel).Watch(
            watch_pb2.WatchRequest(after_cursor=cursor, kinds=[watch_pb2.EVENT_KIND_FOLLOWED]), timeout=600
        )
        self.opened = time.perf_counter()
        self.cursor = next(self.stream).checkpoint.cursor  # the first checkpoint: the stream is live
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


def latency(address: str, watchers: int, writes: int) -> dict[str, Any]:
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
    return {
        "watchers": watchers,
        "events": writes,
        "p50_ms": pct(samples, 50),
        "p99_ms": pct(samples, 99),
        "missing": missing,
    }


def delivery_rate(address: str, writes: int) -> dict[str, Any]:
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
    # The same events again, read back from the log by a stream that starts
    # behind them: how fast one stream is served when writes do not pace it.
    behind = Watcher(address, watcher.cursor)
    while len(behind.arrived) < total and time.monotonic() < deadline + 60:
        time.sleep(0.01)
    caught_up = max(behind.arrived.values(), default=behind.opened)
    behind.close()
    return {
        "catch_up_events": len(behind.arrived),
        "catch_up_per_s": len(behind.arrived) / (caught_up - behind.opened),
        "events": len(watcher.arrived),
        "missing": total - len(watcher.arrived),
        "writes_per_s": total / (written - started),
        "delivered_per_s": len(watcher.arrived) / (last - started),
        "last_delivery_after_last_write_ms": (last - written) * 1000,
    }


def _no_emit(self: SqlTx, change: Change) -> None:
    """``SqlTx.emit`` with appending turned off: the write without its outbox rows."""


def in_process(url: str, size: Size) -> dict[str, Any]:
    """Follow+Unfollow throughput, Block+Unblock of a followed user, and
    DeleteUser of a user with many follows, each with the outbox and with
    appending turned off (``SqlTx.emit`` a no-op). The two Follow
    measurements alternate, round after round, so drift of the shared
    machine falls on both alike; each figure is the median of its rounds.
    A third Follow measurement ("rows only") appends the events through a
    storage with no feed of its own, so no sequencer runs after each of its
    commits (the other storage's feed sequences them once a second): it
    splits the outbox's cost between the rows and the sequencer."""
    storage = open_storage(url, pool_size=12)  # 8 writers, the sequencer and the feed
    upgrade(storage)
    graph = Graph(storage, InProcessLimiter(parse_windows("1000000/1h")), Policy())
    # The feed as a server process runs it: its sequencer gives the events
    # their positions after each commit, part of what the outbox costs.
    log = EventLog(storage, now_us)
    runs = {"runs": 0, "events": 0}

    def sequence() -> list[Event]:
        numbered = log.sequence()
        runs["runs"] += 1
        runs["events"] += len(numbered)
        return numbered

    feed = EventFeed(storage, sequence).start()
    bare = open_storage(url, pool_size=8)
    bare_graph = Graph(bare, InProcessLimiter(parse_windows("1000000/1h")), Policy())

    def follow_rate(graph: Graph = graph) -> float:
        work = [(new_user(), new_user()) for _ in range(size.pairs)]

        def cycle(pair: tuple[str, str]) -> None:
            graph.follow(*pair)
            graph.unfollow(*pair)

        started = time.perf_counter()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(cycle, work))
        return size.pairs / (time.perf_counter() - started)

    def celebrity_block_ms() -> float:
        star = new_user()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda f: graph.follow(f, star), [new_user() for _ in range(size.followers)]))
        blocked = [new_user() for _ in range(size.block_rounds)]
        for user in blocked:
            graph.follow(user, star)
            graph.follow(star, user)
        times = []
        for user in blocked:
            started = time.perf_counter()
            graph.block(star, user, "")
            graph.unblock(star, user)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def delete_user_ms() -> float:
        user = new_user()
        with futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda f: graph.follow(f, user), [new_user() for _ in range(size.followers)]))
        started = time.perf_counter()
        graph.delete_user(user)
        return (time.perf_counter() - started) * 1000

    follow_rate()  # warm up: pool, caches, the first pages of the tables
    rates: dict[str, list[float]] = {"outbox": [], "no outbox": [], "rows only": []}
    sequencer = {"runs": 0, "events": 0}
    for _ in range(size.follow_rounds):
        before = dict(runs)
        rates["outbox"].append(follow_rate())
        for key in sequencer:
            sequencer[key] += runs[key] - before[key]
        rates["rows only"].append(follow_rate(bare_graph))
        with mock.patch.object(SqlTx, "emit", _no_emit):
            rates["no outbox"].append(follow_rate())
    results: dict[str, Any] = {}
    for label, emitting in (("outbox", True), ("no outbox", False)):
        with contextlib.ExitStack() as stack:
            if not emitting:
                stack.enter_context(mock.patch.object(SqlTx, "emit", _no_emit))
            results[label] = {
                "follow_unfollow_pairs_per_s": statistics.median(rates[label]),
                "follow_unfollow_rounds": rates[label],
                "block_unblock_ms": celebrity_block_ms(),
                "delete_user_ms": delete_user_ms(),
            }
    results["rows only"] = {
        "follow_unfollow_pairs_per_s": statistics.median(rates["rows only"]),
        "follow_unfollow_rounds": rates["rows only"],
    }
    # Each round's two arms ran back to back: their ratio is less exposed to
    # the machine's drift than the ratio of the medians.
    results["paired_follow_ratio"] = statistics.median(
        on / off for on, off in zip(rates["outbox"], rates["no outbox"], strict=True)
    )
    results["sequencer"] = {**sequencer, "commits": 2 * size.pairs * size.follow_rounds}
    feed.close()
    bare.close()
    storage.close()
    return results


@dataclasses.dataclass(frozen=True)
class Size:
    writes: int = 400  # paced Follows per latency run
    rate_writes: int = 2000  # Follows for the delivery rate
    pairs: int = 2000  # Follow+Unfollow pairs per throughput round
    follow_rounds: int = 5  # alternating rounds with and without the outbox
    followers: int = 5000  # edges of the blocking / deleted user
    block_rounds: int = 50


QUICK = Size(writes=150, rate_writes=800, pairs=600, follow_rounds=5, followers=2000, block_rounds=20)
FOLLOW_DROP_TARGET = 0.10  # the target: the outbox costs Follow at most 10 %


def measure(database_url: str, size: Size) -> dict[str, Any]:
    """Every figure of the event bench, as a dict (also written as JSON)."""
    report: dict[str, Any] = {"size": dataclasses.asdict(size)}
    with postgres_schema(database_url, "bench_events") as url:
        flags = ("--database-url", url, "--threads", "128", "--watch-streams", "64", "--rate-limits", "1000000/1h")
        with running_server(*flags) as (address, _):
            report["latency"] = [latency(address, watchers, size.writes) for watchers in (1, 50)]
            report["rate"] = delivery_rate(address, size.rate_writes)
    with postgres_schema(database_url, "bench_events") as url:
        report["outbox"] = in_process(url, size)
    on, off = report["outbox"]["outbox"], report["outbox"]["no outbox"]
    drop = 1 - on["follow_unfollow_pairs_per_s"] / off["follow_unfollow_pairs_per_s"]
    report["checks"] = [
        {
            "check": f"outbox costs Follow+Unfollow throughput <= {FOLLOW_DROP_TARGET:.0%}",
            "value": round(drop, 3),
            "pass": drop <= FOLLOW_DROP_TARGET,
        },
        {
            "check": "every event delivered to every watcher",
            "value": sum(row["missing"] for row in report["latency"]) + report["rate"]["missing"],
            "pass": not any(row["missing"] for row in report["latency"]) and not report["rate"]["missing"],
        },
    ]
    return report


def print_report(report: dict[str, Any]) -> None:
    print("events (PostgreSQL, one socialgraph serve process, loopback):")
    for row in report["latency"]:
        print(
            f"  {row['watchers']:>3} watcher(s): commit-to-delivery p50 {row['p50_ms']:.2f} ms, "
            f"p99 {row['p99_ms']:.2f} ms over {row['events']} events ({row['missing']} missing)"
        )
    rate = report["rate"]
    print(
        f"  delivered: {rate['delivered_per_s']:.0f} events/s to one watcher while 8 threads wrote "
        f"{rate['writes_per_s']:.0f} follows/s; last event {rate['last_delivery_after_last_write_ms']:.1f} ms "
        "after the last write"
    )
    print(
        f"  delivered: {rate['catch_up_per_s']:.0f} events/s to one watcher reading the same "
        f"{rate['catch_up_events']} events back from the log"
    )
    on, off = report["outbox"]["outbox"], report["outbox"]["no outbox"]
    followers = report["size"]["followers"]
    labels = {
        "follow_unfollow_pairs_per_s": "Follow+Unfollow pairs/s (8 threads)",
        "block_unblock_ms": f"Block+Unblock of a user with {followers} followers, ms",
        "delete_user_ms": f"DeleteUser of a user with {followers} followers, ms",
    }
    for key, label in labels.items():
        print(f"  {label}: {on[key]:.1f} with the outbox, {off[key]:.1f} without ({on[key] / off[key] - 1:+.0%})")
    rows = report["outbox"]["rows only"]["follow_unfollow_pairs_per_s"]
    print(
        f"  Follow+Unfollow pairs/s with the outbox's rows but no sequencer run after each commit: {rows:.1f} "
        f"({rows / off['follow_unfollow_pairs_per_s'] - 1:+.0%})"
    )
    paired = report["outbox"]["paired_follow_ratio"]
    print(f"  Follow+Unfollow, median of each round's with/without ratio: {paired - 1:+.0%}")
    sequencer = report["outbox"]["sequencer"]
    print(
        f"  sequencer in the outbox rounds: {sequencer['runs']} runs numbered {sequencer['events']} events "
        f"of {sequencer['commits']} commits ({sequencer['commits'] / max(sequencer['runs'], 1):.1f} commits a run)"
    )
    for check in report["checks"]:
        print(f"{'PASS' if check['pass'] else 'FAIL'}  {check['check']}: {check['value']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", default=DSN, help="PostgreSQL server for a fresh schema (psycopg DSN)")
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--writes", type=int, default=None, help="paced writes per latency run")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "events.json")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else Size()
    if args.writes:
        size = dataclasses.replace(size, writes=args.writes)
    report = measure(args.database_url, size)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    # Like bench/run.py: a missed target is reported, a lost event fails the run.
    return 0 if report["checks"][1]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
