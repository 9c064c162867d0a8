"""Stress: two real ``socialgraph serve`` processes on one PostgreSQL schema
and one Redis, many threads firing writes at a few users, and the named races
(crossing requests, acceptances racing to the connection limit, blocks racing
follows, requests and acceptances), each started together with a barrier.

Every call must end OK or with one of the refusals the SPEC gives for it;
anything else (UNAVAILABLE, INTERNAL, ABORTED, DEADLINE_EXCEEDED...) fails.
Afterwards the consistency invariants I1-I4 are checked directly against the
tables with SQL, then through the API of both processes (GetRelationship for
every pair, GetCounts served from the Redis cache), and finally, with the
servers stopped, ``socialgraph recount`` must find nothing to fix.

Budgets: a short one by default, a long one under ``pytest --long``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from harness import ServerProcess, run_socialgraph, running_server
from socialgraph.v1 import social_graph_pb2 as pb

from .support import (
    REDIS_URL,
    Client,
    error_info,
    new_user,
    redis_reachable,
    require,
    temporary_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
LIMIT = 3
PROCESSES = 2
RPC_TIMEOUT = 15.0  # seconds; a call that takes longer counts as a hang
BARRIER_TIMEOUT = 30.0

OK = ("OK", "")
BLOCKED = ("PERMISSION_DENIED", "BLOCKED")
LIMIT_REACHED = ("RESOURCE_EXHAUSTED", "CONNECTION_LIMIT_REACHED")
NO_REQUEST = ("NOT_FOUND", "REQUEST_NOT_FOUND")

PENDING = pb.CONNECTION_STATE_PENDING
CONNECTED = pb.CONNECTION_STATE_CONNECTED


def budget(long_run: bool) -> tuple[int, float]:
    """(operations, seconds) for the random load, whichever ends first."""
    return (20_000, 180.0) if long_run else (1_500, 20.0)


def rounds(long_run: bool, short: int, long: int) -> int:
    return long if long_run else short


# ------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    url: str
    servers: list[ServerProcess]
    clients: list[Client]
    engine: Engine
    groups: list[list[str]] = field(default_factory=list)

    def client(self, i: int) -> Client:
        return self.clients[i % len(self.clients)]

    def server_errors(self) -> list[str]:
        """The servers' ERROR lines and the exception ending each traceback."""
        found = []
        for server, process in enumerate(self.servers):
            in_traceback = False
            for line in list(process.lines):
                if " ERROR " in line:
                    found.append(f"server {server}: {line}")
                elif line.startswith("Traceback"):
                    in_traceback = True
                elif in_traceback and line and not line[0].isspace():
                    found.append(f"server {server}:   {line[:400]}")
                    in_traceback = False
        return found

    def server_warnings(self) -> collections.Counter:
        """WARNING lines by message (timestamps cut), e.g. Redis fallbacks."""
        return collections.Counter(
            line.split(" WARNING ", 1)[1][:120]
            for process in self.servers
            for line in list(process.lines)
            if " WARNING " in line
        )

    def stop_servers(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                process.terminate()
        for process in self.servers:
            if process.wait_for_exit(20) is None:
                process.kill()
                process.wait()
                raise AssertionError(f"server {process.pid} did not stop within 20 s of SIGTERM")


class _Details(
    collections.namedtuple("_Details", "method timeout metadata credentials wait_for_ready compression"),
    grpc.ClientCallDetails,
):
    pass


class _Deadline(grpc.UnaryUnaryClientInterceptor):
    """Gives every call without a deadline RPC_TIMEOUT, so a hang fails as
    DEADLINE_EXCEEDED instead of stalling the test."""

    def intercept_unary_unary(self, continuation, details, request):
        if details.timeout is None:
            details = _Details(details.method, RPC_TIMEOUT, details.metadata, details.credentials,
                               details.wait_for_ready, details.compression)
        return continuation(details, request)


@pytest.fixture
def cluster(tmp_path):
    require("Redis", redis_reachable())
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(temporary_database("postgres", tmp_path))
        args = (
            "--database-url", url,
            "--connection-limit", str(LIMIT),
            "--rate-limits", "100000/1h",
            "--redis-url", REDIS_URL,
        )
        servers, clients = [], []
        # One after the other: each applies the migrations before SERVING.
        for _ in range(PROCESSES):
            address, process = stack.enter_context(running_server(*args))
            channel = stack.enter_context(grpc.insecure_channel(address))
            servers.append(process)
            clients.append(Client(grpc.intercept_channel(channel, _Deadline())))
        engine = create_engine(url, poolclass=NullPool)
        stack.callback(engine.dispose)
        yield Cluster(url, servers, clients, engine)


# ------------------------------------------------------------------ outcomes


def outcome(error: grpc.RpcError) -> tuple[str, str]:
    code = error.code().name if error.code() is not None else "NONE"
    try:
        info = error_info(error)
        reason = info.reason if info.domain == "socialgraph.v1" else f"{info.domain}/{info.reason}"
    except (AssertionError, ValueError):  # no usable google.rpc.Status: the code alone tells
        reason = "?"
    return code, reason


def call(fn):
    """Runs one RPC; returns (outcome, response or error)."""
    try:
        return OK, fn()
    except grpc.RpcError as error:
        return outcome(error), error


# Each operation: (weight, how to call it on (client, a, b), refusals the SPEC allows).
OPERATIONS = {
    "follow": (4, lambda c, a, b: c.follow(a, b), {BLOCKED}),
    "unfollow": (2, lambda c, a, b: c.unfollow(a, b), set()),
    "remove_follower": (
        1,
        lambda c, a, b: c.graph.RemoveFollower(
            pb.RemoveFollowerRequest(user_id=a, follower_id=b), timeout=RPC_TIMEOUT
        ),
        set(),
    ),
    "send": (6, lambda c, a, b: c.send(a, b), {BLOCKED, LIMIT_REACHED}),
    "accept": (6, lambda c, a, b: c.accept(a, b), {NO_REQUEST, LIMIT_REACHED}),
    "decline": (
        1,
        lambda c, a, b: c.graph.DeclineConnectionRequest(
            pb.DeclineConnectionRequestRequest(recipient_id=a, requester_id=b), timeout=RPC_TIMEOUT
        ),
        set(),
    ),
    "cancel": (
        1,
        lambda c, a, b: c.graph.CancelConnectionRequest(
            pb.CancelConnectionRequestRequest(requester_id=a, recipient_id=b), timeout=RPC_TIMEOUT
        ),
        set(),
    ),
    "remove_connection": (
        2,
        lambda c, a, b: c.graph.RemoveConnection(
            pb.RemoveConnectionRequest(user_id=a, other_user_id=b), timeout=RPC_TIMEOUT
        ),
        set(),
    ),
    "block": (1, lambda c, a, b: c.block(a, b), set()),
    "unblock": (2, lambda c, a, b: c.unblock(a, b), set()),
    "relationship": (1, lambda c, a, b: c.relationship(a, b), set()),
    "counts": (1, lambda c, a, b: c.counts(a, b), set()),
}


class Tally:
    """Outcomes by (operation, code, reason), and the unexpected ones in full."""

    def __init__(self) -> None:
        self.counts: collections.Counter = collections.Counter()
        self.unexpected: list[str] = []
        self._lock = threading.Lock()

    def record(self, op: str, result: tuple[str, str], allowed: set, detail: str) -> None:
        with self._lock:
            self.counts[(op, *result)] += 1
            if result != OK and result not in allowed:
                self.unexpected.append(f"{op} {detail}: {result[0]} {result[1]}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_code(self) -> dict[str, int]:
        codes: collections.Counter = collections.Counter()
        for (_, code, reason), n in self.counts.items():
            codes[f"{code} {reason}".strip()] += n
        return dict(codes.most_common())

    def assert_clean(self, cluster: Cluster) -> None:
        assert not self.unexpected, (
            f"{len(self.unexpected)} call(s) ended outside the SPEC's outcomes:\n"
            + "\n".join(self.unexpected[:40])
            + "\n\nall outcomes:\n" + self.report()
            + "\n\nserver errors:\n" + "\n".join(cluster.server_errors()[:60])
        )

    def report(self) -> str:
        return "\n".join(
            f"{op:18} {code} {reason}".rstrip() + f": {n}" for (op, code, reason), n in sorted(self.counts.items())
        )


def race(cluster: Cluster, calls, tally: Tally, label: str):
    """Runs ``calls`` (each (op, client index, fn, allowed)) at the same
    instant, one thread each; returns [(outcome, response or error)]."""
    barrier = threading.Barrier(len(calls), timeout=BARRIER_TIMEOUT)

    def run(entry):
        op, server, fn, allowed = entry
        barrier.wait()
        result, value = call(lambda: fn(cluster.client(server)))
        tally.record(op, result, allowed, f"[{label}] on server {server % PROCESSES}")
        return result, value

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, entry) for entry in calls]
        return [f.result(timeout=RPC_TIMEOUT + BARRIER_TIMEOUT + 10) for f in futures]


# --------------------------------------------------------------- SQL checks


@dataclass
class Snapshot:
    follows: set
    connections: dict  # (user, other) -> created_us
    requests: Sequence[Any]  # rows
    blocks: set
    counters: dict  # user -> dict of the six columns

    def blocked_either_way(self, a: str, b: str) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def pending(self, requester: str, recipient: str) -> bool:
        return any(r.requester_id == requester and r.recipient_id == recipient for r in self.requests)

    def connected_to(self, user: str) -> set:
        return {o for (u, o) in self.connections if u == user}


COUNTED = {
    "followers": "SELECT followee_id, count(*) FROM follows GROUP BY followee_id",
    "following": "SELECT follower_id, count(*) FROM follows GROUP BY follower_id",
    "connections": "SELECT user_id, count(*) FROM connections GROUP BY user_id",
    "incoming_requests": "SELECT recipient_id, count(*) FROM connection_requests GROUP BY recipient_id",
    "outgoing_requests": "SELECT requester_id, count(*) FROM connection_requests GROUP BY requester_id",
    "blocked": "SELECT blocker_id, count(*) FROM blocks GROUP BY blocker_id",
}

# Each query returns the rows that break the invariant it is named after.
VIOLATIONS = {
    "I1 follow across a block": """
        SELECT f.follower_id, f.followee_id, b.blocker_id, b.blocked_id FROM follows f JOIN blocks b
          ON (b.blocker_id = f.follower_id AND b.blocked_id = f.followee_id)
          OR (b.blocker_id = f.followee_id AND b.blocked_id = f.follower_id)""",
    "I1 connection across a block": """
        SELECT c.user_id, c.other_id, b.blocker_id, b.blocked_id FROM connections c JOIN blocks b
          ON (b.blocker_id = c.user_id AND b.blocked_id = c.other_id)
          OR (b.blocker_id = c.other_id AND b.blocked_id = c.user_id)""",
    "I1 pending request across a block": """
        SELECT r.requester_id, r.recipient_id, b.blocker_id, b.blocked_id FROM connection_requests r JOIN blocks b
          ON (b.blocker_id = r.requester_id AND b.blocked_id = r.recipient_id)
          OR (b.blocker_id = r.recipient_id AND b.blocked_id = r.requester_id)""",
    "I2 more than one pending request per unordered pair": """
        SELECT least(requester_id, recipient_id), greatest(requester_id, recipient_id), count(*)
          FROM connection_requests
         GROUP BY least(requester_id, recipient_id), greatest(requester_id, recipient_id)
        HAVING count(*) > 1""",
    "I2 request whose (user_low, user_high) is not its pair": """
        SELECT request_id, requester_id, recipient_id, user_low, user_high FROM connection_requests
         WHERE user_low <> least(requester_id, recipient_id) OR user_high <> greatest(requester_id, recipient_id)""",
    "I2 pending request beside a connection": """
        SELECT r.requester_id, r.recipient_id, c.created_us FROM connection_requests r JOIN connections c
          ON c.user_id = r.requester_id AND c.other_id = r.recipient_id""",
    "I2 self edge": """
        SELECT 'follow', follower_id FROM follows WHERE follower_id = followee_id
        UNION ALL SELECT 'connection', user_id FROM connections WHERE user_id = other_id
        UNION ALL SELECT 'request', requester_id FROM connection_requests WHERE requester_id = recipient_id
        UNION ALL SELECT 'block', blocker_id FROM blocks WHERE blocker_id = blocked_id""",
    "I2 connection row without its mirror (same created_us)": """
        SELECT c.user_id, c.other_id, c.created_us, m.created_us FROM connections c
          LEFT JOIN connections m ON m.user_id = c.other_id AND m.other_id = c.user_id
         WHERE m.user_id IS NULL OR m.created_us <> c.created_us""",
    f"I3 more than {LIMIT} connections": f"""
        SELECT user_id, count(*) FROM connections GROUP BY user_id HAVING count(*) > {LIMIT}""",
}


def snapshot_and_check_tables(cluster: Cluster) -> Snapshot:
    """I1-I4 straight from the tables; returns what it read."""
    problems: list[str] = []
    with cluster.engine.connect() as conn, conn.begin():
        # One consistent view of every table.
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        for name, query in VIOLATIONS.items():
            rows = conn.execute(text(query)).all()
            if rows:
                problems.append(f"{name}: {len(rows)} row(s), e.g. {[tuple(r) for r in rows[:5]]}")
        actual: dict = collections.defaultdict(lambda: dict.fromkeys(COUNTED, 0))
        for column, query in COUNTED.items():
            for user_id, n in conn.execute(text(query)):
                actual[user_id][column] = n
        stored = {
            row.user_id: {c: row._mapping[c] for c in COUNTED}
            for row in conn.execute(text("SELECT * FROM user_counters"))
        }
        follows = {tuple(r) for r in conn.execute(text("SELECT follower_id, followee_id FROM follows"))}
        connections = {
            (r.user_id, r.other_id): r.created_us
            for r in conn.execute(text("SELECT user_id, other_id, created_us FROM connections"))
        }
        requests = conn.execute(text("SELECT * FROM connection_requests")).all()
        blocks = {tuple(r) for r in conn.execute(text("SELECT blocker_id, blocked_id FROM blocks"))}
    for user_id in sorted(set(actual) | set(stored)):
        truth = actual.get(user_id, dict.fromkeys(COUNTED, 0))
        row = stored.get(user_id)
        if row is None:
            if any(truth.values()):
                problems.append(f"I4 user {user_id} has edges {truth} but no user_counters row")
            continue
        wrong = {c: (row[c], truth[c]) for c in COUNTED if row[c] != truth[c]}
        if wrong:
            problems.append(f"I4 user_counters of {user_id} (stored, counted): {wrong}")
    assert not problems, "invariants broken in the tables:\n" + "\n".join(problems)
    return Snapshot(follows, connections, requests, blocks, {u: actual[u] for u in actual})


def expected_counts(snap: Snapshot, user: str) -> dict:
    return {
        "followers": sum(1 for (_, e) in snap.follows if e == user),
        "following": sum(1 for (f, _) in snap.follows if f == user),
        "connections": len(snap.connected_to(user)),
        "incoming_requests": sum(1 for r in snap.requests if r.recipient_id == user),
        "outgoing_requests": sum(1 for r in snap.requests if r.requester_id == user),
        "blocked": sum(1 for (b, _) in snap.blocks if b == user),
    }


def check_api(cluster: Cluster, snap: Snapshot) -> int:
    """GetRelationship for every ordered pair in each group, and GetCounts for
    every user, on every process, agree with the tables. Returns calls made."""
    problems: list[str] = []
    calls = 0
    users = list(dict.fromkeys(u for group in cluster.groups for u in group))
    for server, client in enumerate(cluster.clients):
        for group in cluster.groups:
            for a, b in itertools.permutations(group, 2):
                calls += 1
                result, rel = call(lambda client=client, a=a, b=b: client.graph.GetRelationship(
                    pb.GetRelationshipRequest(user_id=a, other_user_id=b), timeout=RPC_TIMEOUT
                ).relationship)
                if result != OK:
                    problems.append(f"server {server} GetRelationship({a}, {b}): {result}")
                    continue
                want = {
                    "following": (a, b) in snap.follows,
                    "followed_by": (b, a) in snap.follows,
                    "connected": (a, b) in snap.connections,
                    "outgoing_request_pending": snap.pending(a, b),
                    "incoming_request_pending": snap.pending(b, a),
                    "blocking": (a, b) in snap.blocks,
                    "blocked_by": (b, a) in snap.blocks,
                    "can_interact": not snap.blocked_either_way(a, b),
                    "mutual_connections_count": len(snap.connected_to(a) & snap.connected_to(b)),
                }
                got = {name: getattr(rel, name) for name in want}
                if got != want:
                    diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
                    problems.append(f"server {server} GetRelationship({a}, {b}) (api, sql): {diff}")
        for chunk in range(0, len(users), 100):
            ids = users[chunk:chunk + 100]
            calls += 1
            result, response = call(lambda client=client, ids=ids: client.graph.GetCounts(
                pb.GetCountsRequest(user_ids=ids), timeout=RPC_TIMEOUT
            ))
            if result != OK:
                problems.append(f"server {server} GetCounts: {result}")
                continue
            for user, counts in zip(ids, response.counts, strict=False):
                want = expected_counts(snap, user)
                got = {name: getattr(counts, name) for name in want}
                if counts.user_id != user or got != want:
                    diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
                    problems.append(f"server {server} GetCounts({user}) (cached, sql): {diff}")
    assert not problems, f"API disagrees with the tables ({len(problems)}):\n" + "\n".join(problems[:40])
    return calls


def stop_and_recount(cluster: Cluster) -> None:
    cluster.stop_servers()
    result = run_socialgraph("recount", "--database-url", cluster.url, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recount: 0 counter(s) fixed" in result.stdout, result.stdout + result.stderr


def verify(cluster: Cluster, tally: Tally) -> None:
    tally.assert_clean(cluster)
    snap = snapshot_and_check_tables(cluster)
    check_api(cluster, snap)
    stop_and_recount(cluster)


def summary(name: str, cluster: Cluster, tally: Tally, seconds: float) -> None:
    print(f"\n[{name}] {tally.total} calls in {seconds:.1f} s; by outcome: {tally.by_code()}")
    warnings = cluster.server_warnings()
    if warnings:
        print(f"server warnings: {dict(warnings)}")


# -------------------------------------------------------------- random load


def test_random_operations_across_two_processes_keep_every_invariant(cluster, long_run):
    max_ops, max_seconds = budget(long_run)
    threads = 16
    users = [new_user() for _ in range(8)]
    cluster.groups.append(users)
    seed = int(os.environ.get("SOCIALGRAPH_STRESS_SEED", time.time_ns() % 1_000_000))
    names = list(OPERATIONS)
    weights = [OPERATIONS[n][0] for n in names]
    tally = Tally()
    tickets = itertools.count()
    started = time.monotonic()
    deadline = started + max_seconds

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.monotonic() < deadline and next(tickets) < max_ops:
            name = rng.choices(names, weights)[0]
            a, b = rng.sample(users, 2)
            server = rng.randrange(PROCESSES)
            _, fn, allowed = OPERATIONS[name]
            result, _ = call(lambda fn=fn, server=server, a=a, b=b: fn(cluster.client(server), a, b))
            tally.record(name, result, allowed, f"({users.index(a)}, {users.index(b)}) on server {server}")

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, i) for i in range(threads)]
        for f in futures:
            f.result(timeout=max_seconds + RPC_TIMEOUT + 30)
    elapsed = time.monotonic() - started
    summary(f"random load, seed {seed}", cluster, tally, elapsed)
    print(tally.report())
    verify(cluster, tally)
    # The load did reach the interesting states.
    done = {op for (op, code, _) in tally.counts if code == "OK"}
    assert {"follow", "send", "accept", "block", "unblock", "remove_connection"} <= done, tally.report()


# ------------------------------------------------------------- named races


def test_crossing_requests_across_processes_connect_exactly_once(cluster, long_run):
    tally = Tally()
    started = time.monotonic()
    for round_ in range(rounds(long_run, 10, 50)):
        a, b = new_user(), new_user()
        cluster.groups.append([a, b])
        results = race(cluster, [
            ("send", round_, lambda c, a=a, b=b: c.send(a, b), set()),
            ("send", round_ + 1, lambda c, a=a, b=b: c.send(b, a), set()),
        ], tally, f"crossing round {round_}")
        tally.assert_clean(cluster)
        states = sorted(resp.state for _, resp in results)
        assert states == [PENDING, CONNECTED], f"round {round_}: {[str(resp) for _, resp in results]}"
        assert all(resp.created for _, resp in results), f"round {round_}: {results}"
        with cluster.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT (SELECT count(*) FROM connections WHERE user_id IN (:a, :b) AND other_id IN (:a, :b)),"
                " (SELECT count(*) FROM connection_requests WHERE requester_id IN (:a, :b)),"
                " (SELECT count(*) FROM follows WHERE follower_id IN (:a, :b) AND followee_id IN (:a, :b))"
            ), {"a": a, "b": b}).one()
        assert tuple(rows) == (2, 0, 2), f"round {round_}: (connection rows, requests, follows) = {tuple(rows)}"
    summary("crossing requests", cluster, tally, time.monotonic() - started)
    verify(cluster, tally)


def test_acceptances_racing_to_the_connection_limit_stop_at_it(cluster, long_run):
    tally = Tally()
    started = time.monotonic()
    racers = 8
    for round_ in range(rounds(long_run, 6, 30)):
        hub = new_user()
        already = round_ % LIMIT  # connections the hub has before the race
        extras = [new_user() for _ in range(already)]
        others = [new_user() for _ in range(racers)]
        cluster.groups.append([hub, *extras, *others])
        for extra in extras:
            cluster.client(0).connect(hub, extra)
        incoming = round_ % 2 == 0
        for i, other in enumerate(others):
            if incoming:  # the others asked the hub; the hub accepts them all at once
                cluster.client(i).send(other, hub)
            else:  # the hub asked the others; they all accept at once
                cluster.client(i).send(hub, other)
        allowed = {LIMIT_REACHED}
        if incoming:
            calls = [("accept", i, lambda c, o=o, hub=hub: c.accept(hub, o), allowed) for i, o in enumerate(others)]
        else:
            calls = [("accept", i, lambda c, o=o, hub=hub: c.accept(o, hub), allowed) for i, o in enumerate(others)]
        results = race(cluster, calls, tally, f"limit round {round_} ({'incoming' if incoming else 'outgoing'})")
        tally.assert_clean(cluster)
        outcomes = collections.Counter(r for r, _ in results)
        free = LIMIT - already
        assert outcomes == {OK: free, LIMIT_REACHED: racers - free}, f"round {round_}: {outcomes}"
        with cluster.engine.connect() as conn:
            connections, requests = conn.execute(text(
                "SELECT (SELECT count(*) FROM connections WHERE user_id = :h),"
                " (SELECT count(*) FROM connection_requests WHERE requester_id = :h OR recipient_id = :h)"
            ), {"h": hub}).one()
        assert (connections, requests) == (LIMIT, racers - free), f"round {round_}"
    summary("acceptances racing to the limit", cluster, tally, time.monotonic() - started)
    verify(cluster, tally)


def test_blocks_racing_follows_requests_and_acceptances_leave_nothing_between(cluster, long_run):
    tally = Tally()
    started = time.monotonic()
    for round_ in range(rounds(long_run, 16, 80)):
        a, b = new_user(), new_user()
        cluster.groups.append([a, b])
        before = round_ % 4
        if before == 1:  # a request waits
            cluster.client(round_).send(a, b)
        elif before == 2:  # already connected
            cluster.client(round_).connect(a, b)
        elif before == 3:  # requests waiting the other way, plus follows
            cluster.client(round_).send(b, a)
            cluster.client(round_).follow(a, b)
        blocker, blocked = (a, b) if round_ % 2 == 0 else (b, a)
        s = round_
        calls = [
            ("block", s, lambda c, x=blocker, y=blocked: c.block(x, y), set()),
            ("follow", s + 1, lambda c, a=a, b=b: c.follow(a, b), {BLOCKED}),
            ("follow", s + 2, lambda c, a=a, b=b: c.follow(b, a), {BLOCKED}),
            ("send", s + 3, lambda c, a=a, b=b: c.send(a, b), {BLOCKED, LIMIT_REACHED}),
            ("send", s + 4, lambda c, a=a, b=b: c.send(b, a), {BLOCKED, LIMIT_REACHED}),
            ("accept", s + 5, lambda c, a=a, b=b: c.accept(b, a), {NO_REQUEST, LIMIT_REACHED}),
            ("accept", s + 6, lambda c, a=a, b=b: c.accept(a, b), {NO_REQUEST, LIMIT_REACHED}),
        ]
        results = race(cluster, calls, tally, f"block round {round_} (before={before})")
        tally.assert_clean(cluster)
        _, block_response = results[0]
        assert block_response.created, f"round {round_}: the block existed before"
        for client in cluster.clients:
            rel = client.relationship(a, b)
            assert rel.blocking == (blocker == a) and rel.blocked_by == (blocker == b), f"round {round_}: {rel}"
            left = [name for name in ("following", "followed_by", "connected",
                                      "outgoing_request_pending", "incoming_request_pending")
                    if getattr(rel, name)]
            assert not left, f"round {round_} (before={before}): still {left} across the block"
    summary("blocks racing writes", cluster, tally, time.monotonic() - started)
    verify(cluster, tally)
