#!/usr/bin/env python
"""Redis benchmark for SocialGraph: the limiter and the counter cache.

Not a test: it measures once, prints a table of rates and ratios, and writes
the figures as JSON. Everything it talks to is local (127.0.0.1 by default).

1. Limiter checks per second from one process (``RedisLimiter.acquire`` with a
   distinct user id per call, so nothing is refused), single-threaded and with
   4 threads, next to ``redis-benchmark``'s rate for a plain ``EVALSHA`` of
   ``return 1`` and of the real ``sliding_window.lua`` on the same Redis in
   the same run. Two redis-py baselines (EVALSHA ``return 1`` and the bare
   sliding-window Script, without the RedisLimiter wrapper) split the gap.
2. ``Graph.get_counts([id])`` in-process on a cache hit, on a miss and with
   plain ``SqlCounters``; then GetCounts over gRPC against a real
   ``socialgraph serve`` process on a hit and on a miss.

Usage::

    python -m bench.redis_bench [--database-url URL] [--redis-url URL]
                                [--iterations N] [--json PATH] [--profile]

Keys the bench creates itself carry a unique ``bench-<hex>`` prefix and are
deleted at the end. The server process uses the fixed ``sg`` prefix; the bench
deletes exactly the counter keys (``counts_key``) of the ids it sent it. Two tiny scripts
stay in Redis's script cache (``return 1`` and the limiter's own script).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY
from sqlalchemy import event
from sqlalchemy.engine import make_url

from cache import redis_client
from cache.freshness import Freshness
from cache.redis_cache import RedisCounterCache, counts_key
from cache.sql import SqlCounters
from harness import Metrics, delta, health_stub, postgres_schema, start_server
from ratelimit import InProcessLimiter
from ratelimit.redis import SCRIPT as SLIDING_WINDOW_LUA
from ratelimit.redis import RedisLimiter, log_key
from server.rules import Graph
from server.settings import Settings
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc
from storage import open_storage
from storage.migrate import upgrade
from storage.schema import COUNTER_COLUMNS, user_counters, users

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_JSON = ROOT / "bench" / "results" / "redis.json"
SEEDED_USERS = 2000
THREADS = 4
RB_REQUESTS = 50_000  # redis-benchmark -n
RB_TIMEOUT = 90.0
SERVER_START_TIMEOUT = 30.0
CACHE_TTL = 600  # the bench's own cache entries expire even if cleanup fails
# The Redis tier alone: entries stay servable for the whole run (the
# staleness bound's own cost is bench/consistency.py's lookup_cost).
TIER_ONLY = Freshness(max_staleness=CACHE_TTL)

# ------------------------------------------------------------------ helpers


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def timed(fn, count: int) -> float:
    """Runs ``fn(i)`` for i in range(count); returns calls per second."""
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return rate(count, time.perf_counter() - start)


def lookups(result: str) -> float:
    """This process's Redis counter-cache lookups with ``result`` (hit or miss)."""
    labels = {"tier": "redis", "result": result}
    return REGISTRY.get_sample_value("socialgraph_counter_cache_lookups_total", labels) or 0.0


def cache_errors() -> float:
    return REGISTRY.get_sample_value("socialgraph_counter_cache_errors_total") or 0.0


class SqlStatements:
    """Counts SQL statements the engine sends (BEGIN included)."""

    def __init__(self, engine) -> None:
        self.count = 0
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *_args) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._on_execute)


def scan_delete(client: redis_client.Client, pattern: str) -> int:
    """UNLINKs every key matching ``pattern``; returns how many."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def delete_keys(client: redis_client.Client, keys: list[str]) -> int:
    deleted = 0
    for i in range(0, len(keys), 5000):
        deleted += client.unlink(*keys[i : i + 5000])
    return deleted


class RedisProbe:
    """What Redis did between two snapshots (INFO commandstats and stats),
    per call of the code measured: commands (a script's own calls included),
    read events (about one per client round trip) and the time Redis spent
    in EVAL/EVALSHA. Redis-wide, so other
    clients of the same Redis would show up too."""

    def __init__(self, client) -> None:
        self._client = client

    def snapshot(self) -> dict:
        try:
            commands = {
                name.removeprefix("cmdstat_"): (v["calls"], v["usec"])
                for name, v in self._client.info("commandstats").items()
            }
            reads = self._client.info("stats").get("total_reads_processed", 0)
        except redis.RedisError:
            return {}
        return {"commands": commands, "reads": reads}

    def per_call(self, before: dict, calls: int) -> dict:
        after = self.snapshot()
        if not before or not after:
            return {}
        commands, scripts, script_usec = {}, 0, 0
        for name, (count, usec) in after["commands"].items():
            was_count, was_usec = before["commands"].get(name, (0, 0))
            if name == "info" or count == was_count:
                continue
            if (count - was_count) / calls >= 0.01:
                commands[name] = round((count - was_count) / calls, 2)
            if name in ("eval", "evalsha"):
                scripts += count - was_count
                script_usec += usec - was_usec
        # The two INFO calls of this probe are one read each.
        reads = (after["reads"] - before["reads"] - 2) / calls
        return {
            "commands": commands,
            "reads_per_call": round(reads, 2),
            "script_server_us": round(script_usec / scripts, 1) if scripts else None,
        }


# ------------------------------------------------------------ redis-benchmark


class RedisBenchmark:
    """``redis-benchmark`` / ``redis-cli`` against the Redis of ``url``."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.base = ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
        if parsed.password:
            self.base += ["-a", urllib.parse.unquote(parsed.password), "--no-auth-warning"]
        self.db = int((parsed.path or "/0").strip("/") or 0)
        self.available = bool(shutil.which("redis-benchmark") and shutil.which("redis-cli"))

    def script_load(self, script: str) -> str:
        out = subprocess.run(
            ["redis-cli", *self.base, "SCRIPT", "LOAD", script],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        if not re.fullmatch(r"[0-9a-f]{40}", out):
            raise RuntimeError(f"SCRIPT LOAD answered {out!r}")
        return out

    def run(self, clients: int, *command: str, keyspace: int | None = None) -> dict:
        """Runs ``redis-benchmark -n RB_REQUESTS -c clients -q command``;
        returns the parsed requests/second and p50."""
        argv = ["redis-benchmark", *self.base, "-n", str(RB_REQUESTS), "-c", str(clients), "-q"]
        if self.db:
            argv += ["--dbnum", str(self.db)]
        if keyspace:
            argv += ["-r", str(keyspace)]
        argv += list(command)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RB_TIMEOUT)
        output = done.stdout + done.stderr
        found = re.findall(r"([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", output)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"redis-benchmark failed ({done.returncode}): {output[-500:]}")
        rps, p50 = found[-1]
        return {
            "command": " ".join("***" if i and argv[i - 1] == "-a" else a for i, a in enumerate(argv)),
            "requests_per_second": float(rps),
            "p50_ms": float(p50) if p50 else None,
        }


# ------------------------------------------------------------------ limiter


def bench_limiter(client, args, prefix: str, results: dict) -> None:
    windows = Settings().windows  # the production default, 20/1h,100/24h
    n = args.iterations
    limiter = RedisLimiter(client, windows, prefix=f"{prefix}:lim")
    window_args = [v for w in windows for v in (w.limit, w.seconds * 1_000_000)]
    out = results["limiter"] = {"windows": ",".join(map(str, windows)), "iterations": n}

    def fresh(count: int) -> list[str]:
        return [str(uuid.uuid4()) for _ in range(count)]

    # Warm the pool, the script cache and the code paths.
    for user in fresh(300):
        limiter.acquire(user, user)

    # RedisLimiter.acquire, one thread, a distinct user per call.
    ids = fresh(n)
    refused = 0

    def acquire(i: int) -> None:
        nonlocal refused
        if not limiter.acquire(ids[i], ids[i]).allowed:
            refused += 1

    probe = RedisProbe(client)
    before = probe.snapshot()
    out["python_1_thread_per_s"] = timed(acquire, n)
    out["redis_per_check"] = probe.per_call(before, n)
    out["refused_1_thread"] = refused

    # The same with THREADS threads sharing one client (one pool), n calls in all.
    per_thread = n // THREADS
    thread_ids = [fresh(per_thread) for _ in range(THREADS)]
    refusals = [0] * THREADS
    barrier = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        mine = thread_ids[t]
        barrier.wait()
        for user in mine:
            if not limiter.acquire(user, user).allowed:
                refusals[t] += 1

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    out[f"python_{THREADS}_threads_per_s"] = rate(per_thread * THREADS, time.perf_counter() - start)
    out[f"refused_{THREADS}_threads"] = sum(refusals)

    # redis-py baselines, one thread: where between the wire and RedisLimiter
    # does the time go?
    sha_one = client.script_load("return 1")
    half = max(n // 2, 1000)
    out["redispy_evalsha_return1_per_s"] = timed(lambda i: client.evalsha(sha_one, 0), half)
    script = client.register_script(SLIDING_WINDOW_LUA)
    raw_ids = fresh(half)
    raw_prefix = f"{prefix}:raw"
    out["redispy_script_sliding_window_per_s"] = timed(
        lambda i: script(keys=[log_key(raw_prefix, raw_ids[i])], args=[raw_ids[i], *window_args]), half
    )

    if args.profile:
        prof_ids = fresh(min(n, 5000))
        profiler = cProfile.Profile()
        profiler.enable()
        for user in prof_ids:
            limiter.acquire(user, user)
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(18)
        out["profile_top_tottime"] = buf.getvalue()

    # redis-benchmark on the same Redis, same run.
    rb = RedisBenchmark(args.redis_url)
    bench = out["redis_benchmark"] = {}
    if not rb.available:
        bench["skipped"] = "redis-benchmark or redis-cli not on PATH"
        return
    sha_one = rb.script_load("return 1")
    sha_sw = rb.script_load(SLIDING_WINDOW_LUA)
    # A random 12-digit key (and token) per request out of 10^6, like the
    # Python runs' distinct users: 50k requests never fill a 20/1h window.
    rb_key = f"{prefix}:rb:{{__rand_int__}}"
    sliding = [rb_key, "__rand_int__", *map(str, window_args)]
    for clients in (1, THREADS):
        bench[f"evalsha_return1_c{clients}"] = rb.run(clients, "EVALSHA", sha_one, "0")
        bench[f"evalsha_sliding_window_c{clients}"] = rb.run(
            clients, "EVALSHA", sha_sw, "1", *sliding, keyspace=1_000_000
        )
    # The first figure again: how far the machine drifted during this section.
    bench["evalsha_return1_c1_repeat"] = rb.run(1, "EVALSHA", sha_one, "0")


def limiter_ratios(out: dict) -> dict:
    rb = out.get("redis_benchmark", {})

    def rb_rate(name: str) -> float | None:
        return rb.get(name, {}).get("requests_per_second")

    one, many = out["python_1_thread_per_s"], out[f"python_{THREADS}_threads_per_s"]
    return {
        "limiter_1t / rb_evalsha_return1_c1": ratio(one, rb_rate("evalsha_return1_c1")),
        "limiter_1t / rb_evalsha_sliding_c1": ratio(one, rb_rate("evalsha_sliding_window_c1")),
        "rb_evalsha_sliding_c1 / rb_evalsha_return1_c1": ratio(
            rb_rate("evalsha_sliding_window_c1"), rb_rate("evalsha_return1_c1")
        ),
        f"limiter_{THREADS}t / rb_evalsha_return1_c{THREADS}": ratio(many, rb_rate(f"evalsha_return1_c{THREADS}")),
        f"limiter_{THREADS}t / rb_evalsha_sliding_c{THREADS}": ratio(
            many, rb_rate(f"evalsha_sliding_window_c{THREADS}")
        ),
        f"limiter_{THREADS}t / limiter_1t": ratio(many, one),
        "redispy_return1 / rb_evalsha_return1_c1": ratio(
            out["redispy_evalsha_return1_per_s"], rb_rate("evalsha_return1_c1")
        ),
        "redispy_sliding / rb_evalsha_sliding_c1": ratio(
            out["redispy_script_sliding_window_per_s"], rb_rate("evalsha_sliding_window_c1")
        ),
        "limiter_1t / redispy_sliding": ratio(one, out["redispy_script_sliding_window_per_s"]),
    }


# ----------------------------------------------------------------- database


@contextlib.contextmanager
def bench_database(url: str | None, tmpdir: Path) -> Iterator[tuple[str, str]]:
    """A database of its own: a new SQLite file (deleted afterwards), or a
    private schema in the given PostgreSQL database (dropped afterwards).
    Yields (url, dialect)."""
    if not url:
        url = f"sqlite:///{tmpdir}/bench.db"
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or path.exists():
            raise SystemExit(f"--database-url {url}: the SQLite file must not exist yet (it is deleted afterwards)")
        try:
            yield url, "sqlite"
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if backend != "postgresql":
        raise SystemExit(f"--database-url must be sqlite:// or postgresql://, got {url!r}")
    with postgres_schema(url, "bench") as scoped:
        yield scoped, "postgresql"


def seed(storage, count: int) -> dict[str, dict[str, int]]:
    """``count`` users with counter rows (bulk SQL); returns id -> counters."""
    rng = random.Random(7)
    now = time.time_ns() // 1000
    seeded = {
        str(uuid.uuid4()): {name: rng.randrange(0, 5000) for name in COUNTER_COLUMNS} for _ in range(count)
    }
    with storage.engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {"user_id": u, "role": 1, "display_name": "", "avatar_url": "", "created_us": now, "updated_us": now}
                for u in seeded
            ],
        )
        conn.execute(user_counters.insert(), [{"user_id": u, **c, "version": 1} for u, c in seeded.items()])
    return seeded


# ------------------------------------------------------- GetCounts in-process


def bench_counts_in_process(client, storage, seeded, args, prefix: str, results: dict) -> None:
    ids = list(seeded)
    limiter = InProcessLimiter(Settings().windows)
    hits_n = max(args.iterations // 2, 1000)
    miss_n = max(args.iterations // 4, 500)
    sql_n = max(args.iterations // 4, 500)
    out = results["get_counts_in_process"] = {"hit_calls": hits_n, "miss_calls": miss_n, "sql_calls": sql_n}

    # (a) hits: a warm RedisCounterCache; no SQL may run.
    cache = RedisCounterCache(client, SqlCounters(storage), ttl_seconds=CACHE_TTL, prefix=f"{prefix}:hit",
                              freshness=TIER_ONLY)
    graph = Graph(storage, limiter, counters=cache)
    graph.get_counts(ids[:100])  # fills 100 entries in one batch (warms pool and script)
    for u in ids:
        graph.get_counts([u])
    sample = graph.get_counts([ids[0]])[0]
    assert all(getattr(sample, k) == v for k, v in seeded[ids[0]].items()), (sample, seeded[ids[0]])
    statements = SqlStatements(storage.engine)
    hit0, miss0, err0 = lookups("hit"), lookups("miss"), cache_errors()
    probe = RedisProbe(client)
    before = probe.snapshot()
    out["hit_per_s"] = timed(lambda i: graph.get_counts([ids[i % len(ids)]]), hits_n)
    out["hit_redis_per_call"] = probe.per_call(before, hits_n)
    statements.close()
    out["hit_sql_statements"] = statements.count
    out["hit_lookups"] = {
        "hit": lookups("hit") - hit0, "miss": lookups("miss") - miss0, "errors": cache_errors() - err0
    }
    if statements.count or out["hit_lookups"]["miss"] or out["hit_lookups"]["errors"]:
        raise AssertionError(f"the hit phase was not all hits: {out}")

    # (b) misses: one fresh cache prefix per pass over the seeded users, so
    # every call misses once, reads SQL and publishes (the real miss path).
    passes = -(-miss_n // len(ids))
    graphs = [
        Graph(
            storage,
            limiter,
            counters=RedisCounterCache(
                client, SqlCounters(storage), ttl_seconds=CACHE_TTL, prefix=f"{prefix}:miss{p}", freshness=TIER_ONLY
            ),
        )
        for p in range(passes)
    ]
    statements = SqlStatements(storage.engine)
    hit0, miss0, err0 = lookups("hit"), lookups("miss"), cache_errors()
    before = probe.snapshot()
    out["miss_per_s"] = timed(lambda i: graphs[i // len(ids)].get_counts([ids[i % len(ids)]]), miss_n)
    out["miss_redis_per_call"] = probe.per_call(before, miss_n)
    statements.close()
    out["miss_sql_statements_per_call"] = statements.count / miss_n
    out["miss_lookups"] = {
        "hit": lookups("hit") - hit0, "miss": lookups("miss") - miss0, "errors": cache_errors() - err0
    }
    if out["miss_lookups"]["hit"] or out["miss_lookups"]["miss"] != miss_n:
        raise AssertionError(f"the miss phase was not all misses: {out}")

    # (c) plain SqlCounters, no cache.
    sql_graph = Graph(storage, limiter, counters=SqlCounters(storage))
    statements = SqlStatements(storage.engine)
    out["sql_per_s"] = timed(lambda i: sql_graph.get_counts([ids[i % len(ids)]]), sql_n)
    statements.close()
    out["sql_statements_per_call"] = statements.count / sql_n


# ------------------------------------------------------- GetCounts over gRPC


CACHE_LOOKUPS = "socialgraph_counter_cache_lookups_total"


def server_metrics(metrics: Metrics) -> dict[str, float]:
    """The server's counter-cache lookups by tier and result, and its cache errors."""
    return {
        "hit": metrics.value(CACHE_LOOKUPS, result="hit", tier="in-process"),
        "miss": metrics.value(CACHE_LOOKUPS, result="miss", tier="in-process"),
        "redis_hit": metrics.value(CACHE_LOOKUPS, result="hit", tier="redis"),
        "redis_miss": metrics.value(CACHE_LOOKUPS, result="miss", tier="redis"),
        "errors": metrics.value("socialgraph_counter_cache_errors_total"),
    }


def bench_counts_grpc(client, database_url, seeded, args, results: dict, sent: list[str]) -> None:
    """``sent`` collects every id sent to the server (their counter keys
    are deleted afterwards)."""
    ids = list(seeded)
    n = max(args.iterations // 10, 500)
    hot = ids[:200]
    cold = ids[200:]
    seeded_miss_n = min(n, len(cold))
    out = results["get_counts_grpc"] = {"calls": n, "seeded_miss_calls": seeded_miss_n, "hot_ids": len(hot)}
    never_seen = [str(uuid.uuid4()) for _ in range(n)]
    sent.extend(hot + cold[:seeded_miss_n] + never_seen)

    flags = ("--database-url", database_url, "--redis-url", args.redis_url, "--log-level", "WARNING")
    # A session of its own: a Ctrl-C to the bench does not hit the server first.
    with start_server(*flags, metrics=True, cwd=ROOT, new_session=True, timeout=SERVER_START_TIMEOUT) as server:
        assert server.metrics is not None
        metrics = server.metrics
        with grpc.insecure_channel(server.address) as channel:
            health = health_stub(channel)
            stub = social_graph_pb2_grpc.SocialGraphServiceStub(channel)
            check = health_pb2.HealthCheckRequest()

            def get(user: str):
                return stub.GetCounts(pb.GetCountsRequest(user_ids=[user]), timeout=10)

            for _ in range(200):
                health.Check(check, timeout=10)
            # Floor: the cheapest RPC on the same channel (no Redis, no SQL).
            out["health_check_per_s"] = timed(lambda i: health.Check(check, timeout=10), n)

            # Hit: fill the server's cache for the hot ids, then repeat them.
            for user in hot:
                get(user)
            answer = get(hot[0]).counts[0]
            assert all(getattr(answer, k) == v for k, v in seeded[hot[0]].items()), (answer, seeded[hot[0]])
            probe = RedisProbe(client)
            before, redis_before = server_metrics(metrics), probe.snapshot()
            out["hit_per_s"] = timed(lambda i: get(hot[i % len(hot)]), n)
            out["hit_redis_per_call"] = probe.per_call(redis_before, n)
            out["hit_server_lookups"] = delta(before, server_metrics(metrics))

            # Miss: a never-seen user id each call (no counter row in SQL).
            before, redis_before = server_metrics(metrics), probe.snapshot()
            out["miss_never_seen_per_s"] = timed(lambda i: get(never_seen[i]), n)
            out["miss_never_seen_redis_per_call"] = probe.per_call(redis_before, n)
            out["miss_never_seen_server_lookups"] = delta(before, server_metrics(metrics))

            # Miss: seeded users not asked for before (SQL finds their row).
            before, redis_before = server_metrics(metrics), probe.snapshot()
            out["miss_seeded_per_s"] = timed(lambda i: get(cold[i]), seeded_miss_n)
            out["miss_seeded_redis_per_call"] = probe.per_call(redis_before, seeded_miss_n)
            out["miss_seeded_server_lookups"] = delta(before, server_metrics(metrics))

    for phase, expected in (("hit", n), ("miss_never_seen", n), ("miss_seeded", seeded_miss_n)):
        got = out[f"{phase}_server_lookups"]
        wanted = "hit" if phase == "hit" else "miss"
        if got[wanted] != expected or got["errors"]:
            out.setdefault("warnings", []).append(
                f"{phase}: server counted {got} for {expected} calls (Redis errors fall back to SQL)"
            )


# -------------------------------------------------------------------- report


def fmt_rate(value: float | None) -> str:
    if value is None:
        return f"{'n/a':>12} {'':>10}"
    return f"{value:>10,.0f}/s {1e6 / value:>7.0f} us"


def fmt_ratio(value: float | None) -> str:
    return f"{'n/a' if value is None else f'{value:.3f}':>12}"


def fmt_redis(stats: dict) -> str:
    if not stats:
        return "n/a"
    commands = ", ".join(f"{name} {count:g}" for name, count in sorted(stats["commands"].items()))
    text = f"reads {stats['reads_per_call']:g}; {commands or 'no commands'}"
    if stats.get("script_server_us") is not None:
        text += f"; {stats['script_server_us']:g} us per script in Redis"
    return text


def row(label: str, value: float | None) -> None:
    print(f"   {label:<50} {fmt_rate(value)}")


def ratio_rows(ratios: dict) -> None:
    print("   ratios")
    for label, value in ratios.items():
        print(f"   {label:<50} {fmt_ratio(value)}")


def print_report(results: dict) -> None:
    env = results["environment"]
    print(
        f"\nSocialGraph Redis bench  {env['started']}  commit {env['git_commit'][:10]}  python {env['python']}  "
        f"redis-py {env['redis_py']}  redis {env['redis_version']}  cpus {env['cpus']}  db {env.get('database')}"
        f"\nload average (1 min) at start {env['loadavg_1m_start']}, at end {env.get('loadavg_1m_end')}"
    )
    lim = results["limiter"]
    rb = lim.get("redis_benchmark", {})
    print(
        f"\n1. Limiter checks: {lim['iterations']} per Python run, windows {lim['windows']}, refused "
        f"{lim['refused_1_thread']} / {lim[f'refused_{THREADS}_threads']}; redis-benchmark -n {RB_REQUESTS}"
    )
    row("RedisLimiter.acquire, 1 thread", lim["python_1_thread_per_s"])
    row(f"RedisLimiter.acquire, {THREADS} threads (one client)", lim[f"python_{THREADS}_threads_per_s"])
    row("redis-py EVALSHA 'return 1', 1 thread", lim["redispy_evalsha_return1_per_s"])
    row("redis-py Script(sliding_window), 1 thread", lim["redispy_script_sliding_window_per_s"])
    for name, label in (
        ("evalsha_return1_c1", "redis-benchmark EVALSHA 'return 1' -c 1"),
        ("evalsha_sliding_window_c1", "redis-benchmark EVALSHA sliding_window -c 1"),
        (f"evalsha_return1_c{THREADS}", f"redis-benchmark EVALSHA 'return 1' -c {THREADS}"),
        (f"evalsha_sliding_window_c{THREADS}", f"redis-benchmark EVALSHA sliding_window -c {THREADS}"),
    ):
        row(label, rb.get(name, {}).get("requests_per_second"))
    if "evalsha_return1_c1_repeat" in rb:
        first = rb["evalsha_return1_c1"]["requests_per_second"]
        again = rb["evalsha_return1_c1_repeat"]["requests_per_second"]
        print(f"   {'(drift) same EVALSHA return 1 -c 1, run again last':<50} {fmt_rate(again)}  "
              f"{(again - first) / first:+.0%}")
    if "skipped" in rb:
        print(f"   redis-benchmark skipped: {rb['skipped']}")
    print(f"   Redis per check (1 thread): {fmt_redis(lim.get('redis_per_check', {}))}")
    ratio_rows(results["ratios"]["limiter"])
    if "profile_top_tottime" in lim:
        print("\n   cProfile of RedisLimiter.acquire (top by tottime):")
        print("   " + lim["profile_top_tottime"].strip().replace("\n", "\n   "))

    ip = results["get_counts_in_process"]
    print(
        f"\n2a. graph.get_counts([id]) in-process, 1 thread: {ip['hit_calls']} hit / {ip['miss_calls']} miss / "
        f"{ip['sql_calls']} SQL calls over {SEEDED_USERS} seeded users"
    )
    row("RedisCounterCache hit", ip["hit_per_s"])
    row("RedisCounterCache miss (SQL read + publish)", ip["miss_per_s"])
    row("SqlCounters, no cache", ip["sql_per_s"])
    print(
        f"   SQL statements: hit phase {ip['hit_sql_statements']} in all; miss "
        f"{ip['miss_sql_statements_per_call']:g}/call; SqlCounters {ip['sql_statements_per_call']:g}/call"
    )
    print(f"   Redis per hit:  {fmt_redis(ip.get('hit_redis_per_call', {}))}")
    print(f"   Redis per miss: {fmt_redis(ip.get('miss_redis_per_call', {}))}")

    g = results["get_counts_grpc"]
    print(
        f"\n2b. GetCounts over gRPC: one client thread -> socialgraph serve process, "
        f"{g['calls']} calls per phase"
    )
    row("Health.Check (empty-RPC floor)", g["health_check_per_s"])
    row(f"GetCounts hit ({g['hot_ids']} hot ids repeated)", g["hit_per_s"])
    row("GetCounts miss (never-seen id)", g["miss_never_seen_per_s"])
    row(f"GetCounts miss (seeded, uncached; {g['seeded_miss_calls']} calls)", g["miss_seeded_per_s"])
    for phase in ("hit", "miss_never_seen", "miss_seeded"):
        lookups_seen = {k: int(v) for k, v in g[f"{phase}_server_lookups"].items()}
        per_call = fmt_redis(g.get(f"{phase}_redis_per_call", {}))
        print(f"   {phase + ':':<16} server cache {lookups_seen}; Redis/call {per_call}")
    for warning in g.get("warnings", []):
        print(f"   WARNING {warning}")
    ratio_rows(results["ratios"]["get_counts"])
    print(f"\n   cleanup: {results.get('cleanup')}")


# ---------------------------------------------------------------------- main


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="sqlite:///NEW_FILE or postgresql://USER@HOST:PORT/DB (the bench uses a private schema "
        "there and drops it); default: a temporary SQLite file",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"default {DEFAULT_REDIS}")
    parser.add_argument(
        "--iterations", type=int, default=20_000,
        help="limiter checks per Python run (other phases scale from it); 1000..200000, default 20000",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON.relative_to(ROOT)}")
    parser.add_argument("--profile", action="store_true", help="also cProfile RedisLimiter.acquire")
    args = parser.parse_args(argv)
    if not 1000 <= args.iterations <= 200_000:
        parser.error("--iterations must be within 1000..200000")

    # SIGTERM runs the finally blocks (server process, Redis keys, database).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tag = f"bench-{uuid.uuid4().hex[:10]}"
    client = redis_client.connect(args.redis_url, timeout=2.0)
    client.ping()
    results: dict = {
        "environment": {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "redis_py": redis.__version__,
            "redis_version": client.info("server")["redis_version"],
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "redis_url": args.redis_url,
            "key_prefix": tag,
            "iterations": args.iterations,
            "loadavg_1m_start": round(os.getloadavg()[0], 2),
        }
    }
    if results["environment"]["loadavg_1m_start"] > 0.5 * (os.cpu_count() or 1):
        print(
            f"WARNING: load average {results['environment']['loadavg_1m_start']} at start: other work on this "
            "machine (or on this Redis) skews the figures",
            file=sys.stderr,
        )
    started = time.perf_counter()
    sent_to_server: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        tmpdir = Path(tmp)
        try:
            print("limiter ...", file=sys.stderr, flush=True)
            bench_limiter(client, args, tag, results)
            results["cleanup"] = {"limiter_keys_deleted": scan_delete(client, f"{tag}:*")}

            with bench_database(args.database_url, tmpdir) as (database_url, dialect):
                results["environment"]["database"] = dialect
                storage = open_storage(database_url, pool_size=4)
                try:
                    upgrade(storage)
                    print("seeding ...", file=sys.stderr, flush=True)
                    seeded = seed(storage, SEEDED_USERS)
                    print("GetCounts in-process ...", file=sys.stderr, flush=True)
                    bench_counts_in_process(client, storage, seeded, args, tag, results)
                finally:
                    storage.close()
                print("GetCounts over gRPC ...", file=sys.stderr, flush=True)
                bench_counts_grpc(client, database_url, seeded, args, results, sent_to_server)
        finally:
            cleanup = results.setdefault("cleanup", {})
            cleanup["bench_keys_deleted"] = scan_delete(client, f"{tag}:*")
            cleanup["server_keys_deleted"] = delete_keys(client, [counts_key("sg", u) for u in sent_to_server])
            cleanup["bench_keys_left"] = sum(1 for _ in client.scan_iter(match=f"{tag}:*", count=5000))

    lim, ip, g = results["limiter"], results["get_counts_in_process"], results["get_counts_grpc"]
    results["ratios"] = {
        "limiter": limiter_ratios(lim),
        "get_counts": {
            "in-process hit / miss": ratio(ip["hit_per_s"], ip["miss_per_s"]),
            "in-process hit / SqlCounters": ratio(ip["hit_per_s"], ip["sql_per_s"]),
            "in-process miss / SqlCounters": ratio(ip["miss_per_s"], ip["sql_per_s"]),
            "gRPC hit / miss (never-seen)": ratio(g["hit_per_s"], g["miss_never_seen_per_s"]),
            "gRPC hit / miss (seeded)": ratio(g["hit_per_s"], g["miss_seeded_per_s"]),
            "gRPC hit / Health.Check": ratio(g["hit_per_s"], g["health_check_per_s"]),
        },
    }
    results["environment"]["seconds"] = round(time.perf_counter() - started, 1)
    results["environment"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    print_report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {args.json} ({results['environment']['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
