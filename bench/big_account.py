#!/usr/bin/env python
"""Big-account benchmark: DeleteUser of a user with 300k followers.

Not a test: it measures once and prints (and returns) the figures. A
``socialgraph serve`` process runs on loopback over a fresh PostgreSQL
schema (dropped at the end), the followers seeded with bulk SQL.

- Unrelated writes: 8 threads send Follow+Unfollow pairs between fresh
  users, and 2 threads the same from the big account's followers (whose
  counter rows the deletion's batches lock); 2 threads read (GetCounts of
  10 followers, ListFollowing of a follower); for ``--baseline`` seconds
  without a deletion, then while the deletion runs; p50/p99 of each call.
- The deletion: how long DeleteUser's response took, and how long until its
  job was done (the tombstone's row gone), as edges a second; the longest
  batch the server ran (``socialgraph_big_account_longest_batch_seconds``);
  how long each batch held other users' counter rows locked, from its
  first lock to its commit: p50 and p99 interpolated within the buckets of
  ``socialgraph_big_account_lock_hold_seconds`` (as PromQL's
  ``histogram_quantile``), the exact maximum from
  ``socialgraph_big_account_longest_lock_hold_seconds``.

Usage::

    python -m bench.big_account [--quick] [--database-url DSN] [--followers N] [--json PATH]

``make bench`` runs it after bench/run.py (with ``--quick``: 100k followers).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg

from bench.events import pct
from harness import Metrics, free_port, libpq_url, postgres_schema, running_server
from harness.process import parse_sample
from harness.seed import seed_followers
from socialgraph.v1 import admin_pb2 as apb
from socialgraph.v1 import admin_pb2_grpc, social_graph_pb2_grpc
from socialgraph.v1 import social_graph_pb2 as pb
from storage import open_storage
from storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
DSN = "postgresql://postgres@127.0.0.1:5432/test"


def histogram_quantile(samples: dict[str, float], name: str, q: float) -> float | None:
    """The ``q`` quantile of the Prometheus histogram ``name`` (every label
    summed), interpolated linearly within its bucket as PromQL's
    ``histogram_quantile`` does; None when it has no observation."""
    buckets: dict[float, float] = {}
    for key, value in samples.items():
        sample, labels = parse_sample(key)
        if sample == f"{name}_bucket":
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    bounds = sorted(buckets)
    if not bounds or not buckets[bounds[-1]]:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


class Writers:
    """Threads sending Follow+Unfollow pairs; latencies per phase, in ms."""

    def __init__(self, address: str, followers: list[str]) -> None:
        self._channel = grpc.insecure_channel(address)
        self._graph = social_graph_pb2_grpc.SocialGraphServiceStub(self._channel)
        self._followers = followers
        self.phase = "baseline"
        self.latencies: dict[tuple[str, str], list[float]] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(group,), daemon=True)
            for group in ["unrelated"] * 8 + ["followers"] * 2 + ["reads"] * 2
        ]

    def start(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._channel.close()

    def _calls(self, group: str) -> list[tuple[Callable[..., Any], Any]]:
        if group == "reads":
            some = random.sample(self._followers, 10)
            return [
                (self._graph.GetCounts, pb.GetCountsRequest(user_ids=some)),
                (self._graph.ListFollowing, pb.ListFollowingRequest(user_id=some[0], page_size=10)),
            ]
        a = random.choice(self._followers) if group == "followers" else str(uuid.uuid4())
        b = str(uuid.uuid4())
        return [
            (self._graph.Follow, pb.FollowRequest(follower_id=a, followee_id=b)),
            (self._graph.Unfollow, pb.UnfollowRequest(follower_id=a, followee_id=b)),
        ]

    def _loop(self, group: str) -> None:
        while not self._stop.is_set():
            for call, request in self._calls(group):
                started = time.perf_counter()
                try:
                    call(request, timeout=30)
                except grpc.RpcError:
                    self.errors += 1
                    continue
                self.latencies.setdefault((self.phase, group), []).append((time.perf_counter() - started) * 1000)


def run(
    dsn: str = DSN, followers: int = 300_000, baseline: float = 5.0, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Seeds, measures, returns the figures (see the module docstring)."""
    with postgres_schema(dsn, "bench_big_account") as url:
        storage = open_storage(url, pool_size=2)
        upgrade(storage)
        big = str(uuid.uuid4())
        started = time.monotonic()
        seed_followers(storage, big, followers)
        log(f"big account: seeded {followers} followers in {time.monotonic() - started:.1f} s")
        storage.close()
        with psycopg.connect(libpq_url(url)) as conn:
            sample = [row[0] for row in conn.execute(
                "SELECT follower_id FROM follows WHERE followee_id = %s ORDER BY random() LIMIT 2000", (big,)
            )]
        metrics = free_port()
        flags = ("--database-url", url, "--metrics-listen", f"127.0.0.1:{metrics}", "--rate-limits", "1000000/1h")
        with running_server(*flags) as (address, _process):
            writers = Writers(address, sample).start()
            time.sleep(baseline)
            writers.phase = "deleting"
            with grpc.insecure_channel(address) as channel:
                started = time.monotonic()
                admin_pb2_grpc.AdminServiceStub(channel).DeleteUser(apb.DeleteUserRequest(user_id=big), timeout=60)
                response_s = time.monotonic() - started
            with psycopg.connect(libpq_url(url)) as conn:
                while (conn.execute("SELECT count(*) FROM user_jobs WHERE user_id = %s", (big,)).fetchone() or (0,))[0]:
                    time.sleep(0.1)
            finish_s = time.monotonic() - started
            writers.stop()
            samples = Metrics(metrics).samples()
    longest = samples.get("socialgraph_big_account_longest_batch_seconds")
    hold = "socialgraph_big_account_lock_hold_seconds"
    hold_p50, hold_p99 = histogram_quantile(samples, hold, 0.5), histogram_quantile(samples, hold, 0.99)
    hold_max = samples.get("socialgraph_big_account_longest_lock_hold_seconds")
    if hold_max is not None:  # interpolating within a bucket can pass the largest value seen
        hold_p50, hold_p99 = (None if q is None else min(q, hold_max) for q in (hold_p50, hold_p99))
    batches = sum(value for key, value in samples.items() if parse_sample(key)[0] == f"{hold}_count")

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 1)

    figures: dict[str, Any] = {
        "followers": followers,
        "delete_user_response_ms": round(response_s * 1000, 1),
        "deletion_finished_s": round(finish_s, 1),
        "edges_per_s": round(followers / finish_s),
        "longest_batch_ms": ms(longest),
        "batches": int(batches),
        "lock_hold_ms": {"p50": ms(hold_p50), "p99": ms(hold_p99), "max": ms(hold_max)},
        "write_errors": writers.errors,
    }
    for (phase, group), values in sorted(writers.latencies.items()):
        figures[_key(group, phase)] = {
            "calls": len(values),
            "p50_ms": round(pct(values, 50), 2),
            "p99_ms": round(pct(values, 99), 2),
        }
    for line in report_lines(figures):
        log(line)
    return figures


def _key(group: str, phase: str) -> str:
    return f"reads_{phase}" if group == "reads" else f"{group}_writes_{phase}"


_CALLS = {"unrelated": "Follow/Unfollow", "followers": "Follow/Unfollow", "reads": "GetCounts/ListFollowing"}


def report_lines(figures: dict[str, Any]) -> list[str]:
    hold = figures["lock_hold_ms"]
    lines = [
        f"DeleteUser of {figures['followers']} followers: response {figures['delete_user_response_ms']} ms, "
        f"every edge gone after {figures['deletion_finished_s']} s ({figures['edges_per_s']} edges/s), "
        f"longest batch {figures['longest_batch_ms']} ms",
        f"other users' counter rows locked per batch ({figures['batches']} batches): "
        f"p50 {hold['p50']} ms, p99 {hold['p99']} ms, max {hold['max']} ms",
    ]
    for group in ("unrelated", "followers", "reads"):
        before, during = figures.get(_key(group, "baseline")), figures.get(_key(group, "deleting"))
        if before and during:
            lines.append(
                f"{group} {_CALLS[group]} p99: {before['p99_ms']} ms without, {during['p99_ms']} ms during "
                f"(x{during['p99_ms'] / before['p99_ms']:.2f}; p50 {before['p50_ms']} -> {during['p50_ms']} ms)"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DSN, help="PostgreSQL server for a fresh schema (psycopg DSN)")
    parser.add_argument("--followers", type=int, default=None, help="default 300k, 100k with --quick")
    parser.add_argument("--quick", action="store_true", help="100k followers unless --followers")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of writes before the deletion")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "big_account.json")
    args = parser.parse_args()
    followers = args.followers or (100_000 if args.quick else 300_000)
    figures = run(args.database_url, followers, args.baseline)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
