#!/usr/bin/env python
"""Load benchmark for SocialGraph (``make bench``; never part of ``make test``).

Seeds a dedicated PostgreSQL schema with a synthetic graph (bench/seed.py),
starts ``socialgraph serve`` on PostgreSQL + Redis and drives it on loopback:

* fixed-body scenarios with h2load (``nghttp2-client``) sending framed gRPC
  requests, the cheapest generator;
* scenarios that need a different body per request (SendConnectionRequest
  from many distinct requesters, Block of a celebrity by many distinct
  followers) with ghz (``make ghz``), which sends a JSON array of call data
  round-robin, one element per request; its own floor is measured the same
  way, so every ratio compares one generator with itself;
* Follow+Unfollow pairs with one h2load process per pair (-c 1 -m 1), each
  cycling the Follow and Unfollow URIs with the same body (the two request
  messages are wire-identical), so every Follow creates and every Unfollow
  removes.

The floor is grpc.health.v1.Health/Check on the same server, workers and
generator, in the same run. Every scenario is proven by the server's own
counters: the delta of ``socialgraph_rpcs_total`` for the method must be
exactly the requests the generator completed, all with the expected code.
Latency percentiles are the generator's (h2load's --log-file, ghz's
distribution), measured on the client. Each scenario also
records the CPU time per request of the server, PostgreSQL, Redis, the
generator and the kernel's workers (from /proc), which shows where a
scenario's cost goes on the shared machine.

The scenarios are the rows of SCENARIOS below (bench/scenario.py says what
a row holds); a module named in SCENARIO_MODULES adds rows of its own.

    python -m bench.run [--quick] [--database-url URL] [--redis-url URL]
                        [--workers 1,2] [--duration S] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import itertools
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from argparse import Namespace
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import psycopg
import redis
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench import seed
from bench.scenario import FLOOR_OF, HEALTH, SVC, Context, Scenario, SideLoad
from harness import Metrics, ServerProcess, libpq_url, rpcs_by_method, schema_url, start_server
from socialgraph.v1 import social_graph_pb2 as pb
from socialgraph.v1 import social_graph_pb2_grpc as pbg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Row = dict[str, Any]  # a result, a check, the ids of the seeded graph


def log(msg: str) -> None:
    print(msg, flush=True)


def frame(msg: Message) -> bytes:
    data = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(data)) + data


# ------------------------------------------------------------------ the table


def follow_pairs(ctx: Context) -> list[Message]:
    """Follow bodies that Unfollow reads the same (the two messages are wire-identical)."""
    ids = seed.USER_IDS
    return [pb.FollowRequest(follower_id=ids[seed.FOLLOW[i]], followee_id=ids[3 + (i * 7919) % 120_000])
            for i in range(ctx.args.pairs)]


def send_requests(ctx: Context) -> list[Message]:
    """Requests from 10k distinct requesters, none repeated."""
    ids, req = seed.USER_IDS, seed.REQ
    out: list[Message] = []
    for i in range(40_000 if ctx.args.quick else 150_000):
        r, k = i % len(req), i // len(req)
        recipient = 3 + (r * 131 + k * 7) % (seed.N_REGULAR - 3)
        out.append(pb.SendConnectionRequestRequest(requester_id=ids[req[r]], recipient_id=ids[recipient]))
    return out


def unrelated_follow(ctx: Context) -> Message:
    """A follow between two scratch users that no row touches (the last two
    of the Follow+Unfollow range; the seed's reset removes it)."""
    ids = seed.USER_IDS
    return pb.FollowRequest(follower_id=ids[seed.FOLLOW[-1]], followee_id=ids[seed.FOLLOW[-2]])


def blocks_of_celebrity(ctx: Context) -> list[Message]:
    ids = seed.USER_IDS
    return [pb.BlockRequest(blocker_id=ids[s], blocked_id=ids[seed.CELEBS[0]]) for s in seed.BLOCK]


# Run in this order on the first server (a generator's floor just before its
# first row); the first row is also the memory run's and the one compared
# across --workers counts.
SCENARIOS: list[Scenario] = [
    Scenario("GetRelationship", (SVC + "GetRelationship",), lambda c: pb.GetRelationshipRequest(
        user_id=c.data["a"], other_user_id=c.data["b"]), target=0.75, every_server=True),
    Scenario("BatchGetRelationships (50 ids)", (SVC + "BatchGetRelationships",),
             lambda c: pb.BatchGetRelationshipsRequest(user_id=c.data["a"], other_user_ids=c.data["others"]),
             target=0.50),
    Scenario("GetCounts (cache hit)", (SVC + "GetCounts",), lambda c: pb.GetCountsRequest(
        user_ids=[c.data["celeb"]]), target=0.85),
    Scenario("CanInteract", (SVC + "CanInteract",), lambda c: pb.CanInteractRequest(
        user_id=c.data["a"], other_user_id=c.data["b"]), target=0.85),
    Scenario("FilterInteractable (500 ids)", (SVC + "FilterInteractable",), lambda c: pb.FilterInteractableRequest(
        user_id=c.data["blocker"], candidate_ids=c.data["candidates"]), target=0.15),
    Scenario("ListFollowers first page", (SVC + "ListFollowers",), lambda c: pb.ListFollowersRequest(
        user_id=c.data["celeb"]), target=0.35),
    Scenario("ListFollowers 100k deep", (SVC + "ListFollowers",), lambda c: pb.ListFollowersRequest(
        user_id=c.data["celeb"], page_token=c.data["deep_token"])),
    Scenario("Follow+Unfollow", (SVC + "Follow", SVC + "Unfollow"), follow_pairs, "h2load-pairs", target=0.30),
    Scenario("SendConnectionRequest", (SVC + "SendConnectionRequest",), send_requests, "ghz", target=0.25),
    Scenario("Block (celebrity, 118k followers)", (SVC + "Block",), blocks_of_celebrity, "ghz",
             alongside=(
                 SideLoad("GetRelationship", (SVC + "GetRelationship",), lambda c: pb.GetRelationshipRequest(
                     user_id=c.data["a"], other_user_id=c.data["b"]), target=2.0),
                 SideLoad("Follow+Unfollow", (SVC + "Follow", SVC + "Unfollow"), unrelated_follow, target=2.0),
             )),
]

# Modules with a ``scenarios() -> list[Scenario]`` of further rows, run after
# these, and optionally an ``extra(args, log) -> dict`` of figures measured
# without a server (reported under "extras" in the JSON).
SCENARIO_MODULES: tuple[str, ...] = ("bench.consistency",)


def extras(args: Namespace) -> Row:
    out: Row = {}
    for name in SCENARIO_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "extra"):
            out[name] = module.extra(args, log)
    return out


def table() -> list[Scenario]:
    rows = list(SCENARIOS)
    for name in SCENARIO_MODULES:
        rows += importlib.import_module(name).scenarios()
    return rows


def floor(generator: str) -> Scenario:
    """The generator's Health/Check, which its rows are compared with."""
    name = "floor: Health/Check" + ("" if FLOOR_OF[generator] == "h2load" else f" ({FLOOR_OF[generator]})")
    single = FLOOR_OF[generator] == "h2load"
    return Scenario(name, (HEALTH,), lambda c: health_pb2.HealthCheckRequest() if single
                    else [health_pb2.HealthCheckRequest()], FLOOR_OF[generator])


# ------------------------------------------------------------------ the server


@contextlib.contextmanager
def bench_server(args: Namespace, workers: int) -> Iterator[ServerProcess]:
    """The server on PostgreSQL + Redis with metrics, every worker up."""
    server = start_server(
        "--database-url", args.sa_url,
        "--redis-url", args.redis_url,
        "--rate-limits", "1000000000/1h,1000000000/24h",  # consulted on every send, never refuses
        "--log-level", "WARNING",
        "--grace-period", "2",
        "--threads", str(args.threads),
        workers=workers, metrics=True, cwd=ROOT, new_session=True, timeout=90,
    )
    try:
        if workers > 1:
            time.sleep(2)  # the workers' first moments are not measured
        yield server
    finally:
        server.stop()


def metrics(server: ServerProcess) -> Metrics:
    assert server.metrics is not None
    return server.metrics


# ------------------------------------------------------------------ generators


def pct(sorted_us: list[float], p: float) -> float | None:
    if not sorted_us:
        return None
    return sorted_us[min(len(sorted_us) - 1, int(p * len(sorted_us)))]


def ms(sorted_us: list[float], p: float) -> float | None:
    v = pct(sorted_us, p)
    return None if v is None else v / 1000


def latencies(log_file: str) -> list[float]:
    """The request latencies (us) of an h2load --log-file, which is deleted."""
    with open(log_file) as f:
        out = [float(line.split("\t")[2]) for line in f if line.strip()]
    os.unlink(log_file)
    return out


class H2load:
    name = "h2load"

    def __init__(self, args: Namespace, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.n_files = 0

    def _file(self, data: bytes | str, suffix: str) -> str:
        self.n_files += 1
        path = os.path.join(self.tmp, f"f{self.n_files}{suffix}")
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def _cmd(self, port: int, paths: Sequence[str], body_file: str, log_file: str | None, conns: int, streams: int,
             n: int | None = None, duration: float | None = None) -> list[str]:
        cmd = ["h2load", "-c", str(conns), "-m", str(streams), "-t", "1", "-d", body_file,
               "-H", "content-type: application/grpc", "-H", "te: trailers"]
        cmd += ["-n", str(n)] if n is not None else ["-D", f"{int((duration or 0) * 1000)}ms"]
        if log_file:
            cmd += ["--log-file", log_file]
        if len(paths) == 1:
            cmd.append(f"http://127.0.0.1:{port}{paths[0]}")
        else:
            cmd += ["-i", self._file("".join(f"http://127.0.0.1:{port}{p}\n" for p in paths), ".uris")]
        return cmd

    @staticmethod
    def _parse(out: str) -> Row:
        m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
        r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored", out)
        if not m or not r:
            raise RuntimeError("cannot parse h2load output:\n" + out)
        secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        return {"seconds": secs, "rps": float(m.group(3)), "done": int(r.group(3)),
                "succeeded": int(r.group(4)), "failed": int(r.group(5)) + int(r.group(6))}

    def run(self, server: ServerProcess, paths: tuple[str, ...], message: Message, duration: float) -> Row:
        conns, streams = self.args.connections, self.args.streams
        body = self._file(frame(message), ".bin")
        # Probe (also the warm-up): its rate sizes the measured run, which is
        # count-based so every request it starts completes.
        probe = subprocess.run(self._cmd(server.port, paths, body, None, conns, streams,
                                         duration=self.args.probe), capture_output=True, text=True, timeout=120)
        rate = self._parse(probe.stdout)["rps"]
        n = max(conns * streams * 4, int(rate * duration))
        before = metrics(server).quiesce()
        meter = server.cpu_meter()
        lf = os.path.join(self.tmp, "h2load.log")
        out = subprocess.run(self._cmd(server.port, paths, body, lf, conns, streams, n=n),
                             capture_output=True, text=True, timeout=duration * 10 + 120)
        res = self._parse(out.stdout)
        cpu = meter.per_request(res["done"])
        after = metrics(server).quiesce()
        lat = sorted(latencies(lf))
        return {"generator": "h2load", "concurrency": f"{conns} conns x {streams} streams",
                "requests": res["done"], "http_ok": res["succeeded"], "seconds": res["seconds"],
                "rps": res["rps"], "p50_ms": ms(lat, 0.5), "p99_ms": ms(lat, 0.99),
                "cpu_us_per_request": cpu, "server_codes": rpcs_by_method(before, after)}

    def run_pairs(self, server: ServerProcess, paths: tuple[str, ...], messages: list[Message],
                  duration: float) -> Row:
        """One h2load process per message, each -c 1 -m 1 cycling ``paths``."""
        files = [self._file(frame(m), ".bin") for m in messages]
        # probe with the first few pairs
        probe = [subprocess.Popen(self._cmd(server.port, paths, f, None, 1, 1, duration=self.args.probe),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for f in files]
        rate = sum(self._parse(p.communicate(timeout=120)[0])["rps"] for p in probe)
        # At least 4 calls of each method a process: a slow probe must not leave a sample of a few calls.
        per = max(4 * len(paths), int(rate * duration / len(files)) // len(paths) * len(paths))
        before = metrics(server).quiesce()
        meter = server.cpu_meter()
        logs = [os.path.join(self.tmp, f"pair{i}.log") for i in range(len(files))]
        t0 = time.monotonic()
        procs = [subprocess.Popen(self._cmd(server.port, paths, f, lf, 1, 1, n=per),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for f, lf in zip(files, logs, strict=True)]
        results = [self._parse(p.communicate(timeout=duration * 10 + 120)[0]) for p in procs]
        wall = time.monotonic() - t0
        cpu = meter.per_request(sum(r["done"] for r in results))
        after = metrics(server).quiesce()
        lat = []
        for lf in logs:
            lat += latencies(lf)
        lat.sort()
        done = sum(r["done"] for r in results)
        slowest = max(r["seconds"] for r in results)
        return {"generator": "h2load", "concurrency": f"{len(files)} processes x 1 conn x 1 stream",
                "requests": done, "http_ok": sum(r["succeeded"] for r in results),
                "seconds": slowest, "wall_seconds": round(wall, 2), "rps": done / slowest, "cpu_us_per_request": cpu,
                "p50_ms": ms(lat, 0.5), "p99_ms": ms(lat, 0.99),
                "server_codes": rpcs_by_method(before, after)}


def side_calls(ctx: Context, sides: Sequence[SideLoad], during: Any, seconds: float | None = None) -> list[list[float]]:
    """Latencies (us) of each side load's calls, one at a time on a client of
    its own, all side loads at once, while ``during()`` runs (for ``seconds``
    when given, with nothing else)."""
    stop = threading.Event()
    out: list[list[float]] = [[] for _ in sides]
    failed: list[int] = [0 for _ in sides]

    def call(i: int, side: SideLoad, request: Message) -> None:
        with grpc.insecure_channel(ctx.server.address) as channel:
            sends: list[grpc.UnaryUnaryMultiCallable[Message, bytes]] = [channel.unary_unary(
                method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
                for method in side.methods]
            for send in itertools.cycle(sends):
                if stop.is_set():
                    break
                started = time.perf_counter()
                try:
                    send(request, timeout=30)
                except grpc.RpcError:
                    failed[i] += 1  # its time counts like any other call's
                out[i].append((time.perf_counter() - started) * 1e6)
                stop.wait(side.pace)

    workers = [threading.Thread(target=call, args=(i, side, side.request(ctx)), daemon=True)
               for i, side in enumerate(sides)]
    for worker in workers:
        worker.start()
    try:
        if seconds is None:
            during()
        else:
            stop.wait(seconds)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    for side, lost, calls in zip(sides, failed, out, strict=True):
        if lost:
            log(f"  side load {side.name}: {lost} of {len(calls)} calls failed")
    return out


def find_ghz() -> str | None:
    """$GHZ, ghz on PATH, or the one ``make ghz`` installs."""
    local = os.path.join(ROOT, ".tools", "bin", "ghz")
    return os.environ.get("GHZ") or shutil.which("ghz") or (local if os.access(local, os.X_OK) else None)


class Ghz:
    """ghz over reflection. A row's messages are its call data: one
    message, or several sent round-robin (request i gets element i mod n).
    Same protocol as H2load: probe, count-based run, server counters."""

    name = "ghz"

    def __init__(self, args: Namespace, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.binary = find_ghz() or "ghz"

    def _run(self, server: ServerProcess, call: str, data: list[Row], n: int | None = None,
             duration: float | None = None) -> Row:
        path = os.path.join(self.tmp, "ghz-data.json")
        with open(path, "w") as f:
            json.dump(data if len(data) > 1 else data[0], f)
        cmd = [self.binary, "--insecure", "--call", call, "--data-file", path,
               "--connections", str(self.args.connections),
               "--concurrency", str(self.args.connections * self.args.streams),
               "--format", "json", f"127.0.0.1:{server.port}"]
        cmd += ["--total", str(n)] if n is not None else ["--duration", f"{duration}s"]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                        timeout=(duration or 60) * 10 + 120).stdout)
        dist = {int(d["percentage"]): d["latency"] / 1e6 for d in out.get("latencyDistribution") or []}
        return {"requests": int(out["count"]), "seconds": out["total"] / 1e9, "rps": out["rps"],
                "p50_ms": dist.get(50), "p99_ms": dist.get(99), "status": out.get("statusCodeDistribution")}

    def run(self, server: ServerProcess, paths: tuple[str, ...], messages: list[Message], duration: float) -> Row:
        """A probe of ``--probe`` seconds sizes a count-based run of about
        ``duration`` seconds (a run cut by time would cancel the calls in
        flight, which the server may still complete). Call data of several
        messages, each of which creates something, must not repeat: the
        probe sends the second half of it and the run at most the first."""
        call = paths[0].strip("/").replace("/", ".")
        data = [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages]
        half = len(data) // 2
        probe, data = (data, data) if len(data) == 1 else (data[half:], data[:half])
        rate = self._run(server, call, probe, duration=self.args.probe)["rps"]
        n = max(4 * self.args.connections * self.args.streams, int(rate * duration))
        if len(data) > 1:
            n = min(n, len(data))
        before = metrics(server).quiesce()
        meter = server.cpu_meter()
        r = self._run(server, call, data, n=n)
        r["cpu_us_per_request"] = meter.per_request(r["requests"])
        after = metrics(server).quiesce()
        return {"generator": "ghz", "concurrency": f"{self.args.connections} conns x "
                f"{self.args.connections * self.args.streams} concurrent", "http_ok": r["requests"],
                **r, "server_codes": rpcs_by_method(before, after)}


def verify(res: Row, expect: dict[str, str] | None) -> tuple[bool, str]:
    """The server's counters must show exactly res['requests'] calls of the
    scenario's methods, every one with the expected code."""
    codes = res["server_codes"]
    expect = expect or {}
    total_expected = 0
    problems = []
    for method, got in codes.items():
        want = expect.get(method)
        if want is None:
            problems.append(f"unexpected calls to {method}: {got}")
            continue
        for code, n in got.items():
            if code != want:
                problems.append(f"{method} {code}={n}")
            else:
                total_expected += n
    if total_expected != res["requests"]:
        problems.append(f"server counted {total_expected} {'/'.join(sorted(set(expect.values())))} "
                        f"for {res['requests']} requests sent")
    return (not problems, "; ".join(problems) or "ok")



# ------------------------------------------------------------------ scenarios' data


def one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None, "the seeded graph lacks a row the bench needs"
    return tuple(row)


def setup_data(args: Namespace, server: ServerProcess) -> Row:
    """Ids for the scenarios, read from the seeded schema, and a page token 100k deep."""
    ids = seed.USER_IDS
    with psycopg.connect(args.pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{args.schema}"')
        a, b = one(cur.execute("SELECT user_id, other_id FROM connections ORDER BY user_id LIMIT 1"))
        others = [r[0] for r in cur.execute(
            "SELECT followee_id FROM follows WHERE follower_id=%s LIMIT 25", (a,))]
        blocker, blocked = one(cur.execute(
            "SELECT blocker_id, array_agg(blocked_id) FROM blocks GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
        ))
    others = (others + ids[1000:1100])[:50]
    candidates = (list(blocked) + ids[2000:3000])[:500]
    celeb = ids[seed.CELEBS[0]]
    token = ""
    with grpc.insecure_channel(server.address) as ch:
        stub = pbg.SocialGraphServiceStub(ch)
        for _ in range(100):
            token = stub.ListFollowers(pb.ListFollowersRequest(user_id=celeb, page_size=1000, page_token=token),
                                       timeout=30).next_page_token
    return {"a": a, "b": b, "others": others, "blocker": blocker, "candidates": candidates,
            "celeb": celeb, "deep_token": token}




# ------------------------------------------------------------------ running the table


class Runner:
    """Runs rows with their generators and records each result."""

    def __init__(self, args: Namespace, tmp: str) -> None:
        self.args = args
        self.h2load, self.ghz = H2load(args, tmp), Ghz(args, tmp)
        self.results: list[Row] = []

    def measure(self, sc: Scenario, ctx: Context) -> Row:
        if not sc.alongside:
            return self._measure(sc, ctx)
        alone = side_calls(ctx, sc.alongside, lambda: None, self.args.duration)
        res: Row = {}
        during = side_calls(ctx, sc.alongside, lambda: res.update(self._measure(sc, ctx)))
        codes = res["server_codes"]
        res["alongside"] = []
        for side, before, with_row in zip(sc.alongside, alone, during, strict=True):
            p99_alone, p99_during = ms(sorted(before), 0.99), ms(sorted(with_row), 0.99)
            ratio = p99_during / p99_alone if p99_alone and p99_during else None
            res["alongside"].append({
                "name": side.name, "methods": list(side.methods), "calls_alone": len(before),
                "calls_during": len(with_row), "p99_ms_alone": p99_alone, "p99_ms_during": p99_during,
                "ratio": ratio, "target": f"<= {side.target} x alone",
                "pass": ratio is not None and ratio <= side.target})
            for method in side.methods:
                side_codes = codes.pop(method, {})
                if set(side_codes) - {"OK"}:
                    codes[method] = side_codes  # verification names them
            log(f"  {side.name} alongside: p99 {fmt(p99_alone, '.2f')} ms alone, "
                f"{fmt(p99_during, '.2f')} ms during the row (x{fmt(ratio, '.2f')}, target <= {side.target})")
        return res

    def _measure(self, sc: Scenario, ctx: Context) -> Row:
        payload, duration = sc.request(ctx), self.args.duration
        if sc.generator == "h2load":
            assert isinstance(payload, Message), f"{sc.name}: h2load sends one message"
            return self.h2load.run(ctx.server, sc.methods, payload, duration)
        assert not isinstance(payload, Message), f"{sc.name}: {sc.generator} sends a list of messages"
        if sc.generator == "h2load-pairs":
            return self.h2load.run_pairs(ctx.server, sc.methods, list(payload), duration)
        return self.ghz.run(ctx.server, sc.methods, list(payload), duration)

    def record(self, sc: Scenario, res: Row, ctx: Context, floor_rps: float | None) -> Row:
        ok, why = verify(res, {m: sc.expect for m in sc.methods})
        res.update(name=sc.name, workers=ctx.server.workers, verified=ok, verification=why)
        res["ratio"] = res["rps"] / floor_rps if floor_rps else None
        res["floor_rps"] = floor_rps
        if sc.target is not None:
            res["target"] = f">= {sc.target:.2f} x floor"
            res["pass"] = bool(res["ratio"] is not None and res["ratio"] >= sc.target and ok)
        self.results.append(res)
        log(f"  {sc.name:<36} {res['generator']:<10} {res['rps']:>8.0f}/s  p50 {fmt(res['p50_ms'], '.2f')} ms"
            f"  p99 {fmt(res['p99_ms'], '.2f')} ms  x{fmt(res['ratio'], '.2f')}  {why}")
        return res

    def rows(self, rows: list[Scenario], ctx: Context) -> None:
        """Each row, after its generator's floor on this server."""
        floors: dict[str, float] = {}
        for sc in rows:
            family = FLOOR_OF[sc.generator]
            if family not in floors:
                base = floor(sc.generator)
                floors[family] = self.record(base, self.measure(base, ctx), ctx, None)["rps"]
            self.record(sc, self.measure(sc, ctx), ctx, floors[family])


# ------------------------------------------------------------------ main


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def parse_args() -> Namespace:
    p = argparse.ArgumentParser(description="SocialGraph load benchmark (see the module docstring).")
    p.add_argument("--quick", action="store_true", help="short runs (about 3 minutes in all)")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", seed.DEFAULT_PG))
    p.add_argument("--schema", default="bench")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
                   help="Redis the server uses; the bench deletes the server's sg:* keys in it first")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts; all scenarios run on the first")
    p.add_argument("--duration", type=float, default=None, help="seconds per scenario (default 10, --quick 3)")
    p.add_argument("--probe", type=float, default=1.0, help="seconds of warm-up/probe before each scenario")
    p.add_argument("--memory-requests", type=int, default=None,
                   help="GetRelationship requests of the memory run (default 1,000,000; --quick 50,000)")
    # 32 requests in flight. Many connections, so that SO_REUSEPORT, which
    # gives each new connection to one worker by hash, shares them out
    # evenly among --workers processes (4 connections can land 4:0).
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--threads", type=int, default=32, help="server --threads")
    p.add_argument("--pairs", type=int, default=32, help="Follow+Unfollow pairs (one h2load process each)")
    p.add_argument("--reseed", action="store_true")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run this scenario (with its generator's floor); repeat for several; default every one")
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "bench.json"))
    args = p.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.memory_requests = args.memory_requests or (50_000 if args.quick else 1_000_000)
    args.pg_url = libpq_url(args.database_url)
    args.sa_url = schema_url(args.pg_url, args.schema)
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    return args


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    if not shutil.which("h2load"):  # both come from the Makefile: make services, make ghz
        raise SystemExit("h2load is not on PATH: make services (Debian's nghttp2-client)")
    if not find_ghz():
        raise SystemExit("ghz is needed for the varying-body scenarios: make ghz")
    seeding = seed.seed(args.pg_url, args.schema, force=args.reseed, log=log)
    clear_redis(args.redis_url)
    rows = table()
    only = set(args.only)
    if only:
        unknown = only - {sc.name for sc in rows}
        if unknown:
            raise SystemExit(f"--only: no scenario named {', '.join(sorted(unknown))}")
        rows = [sc for sc in rows if sc.name in only]
    memory: Row = {}
    data: Row = {}
    with tempfile.TemporaryDirectory(prefix="sgbench-") as tmp:
        runner = Runner(args, tmp)
        for i, workers in enumerate(args.workers):
            if i:
                settle_database(args)
            log(f"server: --workers {workers}")
            with bench_server(args, workers) as server:
                data = data or setup_data(args, server)
                ctx = Context(args, server, data)
                runner.rows([sc for sc in rows if i == 0 or sc.every_server], ctx)
                if i == len(args.workers) - 1 and not only:
                    memory = memory_run(args, server, rows[0], ctx)
    write_report(args, rows, runner, memory, seeding, started, extras(args))
    return 0 if all(r["verified"] for r in runner.results) else 1


def write_report(args: Namespace, rows: list[Scenario], runner: Runner, memory: Row, seeding: Row,
                 started: float, extra: Row) -> None:
    results = runner.results
    summary = summarize(rows, results, memory, args.workers)
    out: Row = {
        "environment": {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip(),
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "generator": "h2load", "varying_body_generator": "ghz (" + runner.ghz.binary + ")",
            "quick": args.quick, "duration_s": args.duration, "connections": args.connections,
            "streams": args.streams, "server_threads": args.threads, "workers": args.workers,
            "database": args.sa_url, "redis": args.redis_url, "seeding": seeding,
            "seconds": round(time.monotonic() - started, 1),
            "method": __doc__.split("\n\n")[1:4],
        },
        "scenarios": results,
        "memory": memory,
        "extras": extra,
        "checks": summary,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print_table(results, memory, summary)
    log(f"wrote {args.json} ({out['environment']['seconds']}s in all)")


def memory_run(args: Namespace, server: ServerProcess, sc: Scenario, ctx: Context) -> Row:
    """The first row (GetRelationship, h2load) for --memory-requests requests
    in two halves; RSS of every worker after each half."""
    message = sc.request(ctx)
    assert isinstance(message, Message)
    half = args.memory_requests // 2
    log(f"memory: {args.memory_requests} GetRelationship requests on --workers {server.workers}")
    samples = {"start": server.rss_mb()}
    total = 0
    for label in ("middle", "end"):
        bf = os.path.join(tempfile.gettempdir(), f"sgbench-mem-{os.getpid()}.bin")
        with open(bf, "wb") as f:
            f.write(frame(message))
        out = subprocess.run(H2load(args, "")._cmd(server.port, sc.methods, bf, None, args.connections,
                                                   args.streams, n=half), capture_output=True, text=True,
                             timeout=3600)
        os.unlink(bf)
        total += H2load._parse(out.stdout)["succeeded"]
        samples[label] = server.rss_mb()
        log(f"  RSS after {label}: {samples[label]} MB")
    workers_only = {k: v for k, v in samples["end"].items() if int(k) != server.pid or server.workers == 1}
    growth = {pid: (samples["end"][pid] - samples["middle"].get(pid, 0)) / samples["middle"][pid]
              for pid in workers_only if samples["middle"].get(pid)}
    return {"workers": server.workers, "requests": args.memory_requests, "completed": total,
            "rss_mb": samples, "parent_pid": server.pid,
            "max_worker_rss_mb": max(workers_only.values()) if workers_only else None,
            "max_growth_middle_to_end": max(growth.values()) if growth else None}


def summarize(table: list[Scenario], results: list[Row], memory: Row, workers: list[int]) -> list[Row]:
    checks = []
    by = {(r["name"], r["workers"]): r for r in results}
    w0 = workers[0]
    for sc in table:
        r = by.get((sc.name, w0))
        if r and sc.target is not None:
            checks.append({"check": f"{sc.name} >= {sc.target} x floor", "value": round(r["ratio"], 3),
                           "pass": r["pass"]})
        for side in r.get("alongside", ()) if r else ():
            checks.append({"check": f"{sc.name}: p99 of {side['name']} alongside "
                           f"{side['target']}", "value": None if side["ratio"] is None else round(side["ratio"], 3),
                           "pass": side["pass"]})
    first, deep = by.get(("ListFollowers first page", w0)), by.get(("ListFollowers 100k deep", w0))
    if first and deep:
        v = deep["p50_ms"] / first["p50_ms"]
        checks.append({"check": "ListFollowers 100k deep p50 <= 1.5 x first page p50", "value": round(v, 3),
                       "pass": v <= 1.5})
    if 1 in workers and 2 in workers:
        g1, g2 = by.get(("GetRelationship", 1)), by.get(("GetRelationship", 2))
        if g1 and g2:
            v = g2["rps"] / g1["rps"]
            checks.append({"check": "GetRelationship --workers 2 >= 1.4 x --workers 1", "value": round(v, 3),
                           "pass": v >= 1.4})
    if memory:
        checks.append({"check": "RSS per worker <= 250 MB", "value": memory["max_worker_rss_mb"],
                       "pass": memory["max_worker_rss_mb"] is not None and memory["max_worker_rss_mb"] <= 250})
        g = memory["max_growth_middle_to_end"]
        checks.append({"check": f"RSS growth middle->end of {memory['requests']} requests <= 10%",
                       "value": None if g is None else round(g, 4), "pass": g is not None and g <= 0.10})
    checks.append({"check": "every scenario verified by the server's counters",
                   "value": sum(r["verified"] for r in results), "pass": all(r["verified"] for r in results)})
    return checks


def print_table(results: list[Row], memory: Row, checks: list[Row]) -> None:
    log("")
    log(f"{'scenario':<36} {'w':>2} {'generator':<10} {'req':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'ratio':>6} {'target':>7} {'result':>6}  verified")
    for r in results:
        target = r.get("target", "").replace(" x floor", "").replace(">= ", ">=")
        res = "" if "pass" not in r else ("PASS" if r["pass"] else "FAIL")
        log(f"{r['name']:<36} {r['workers']:>2} {r['generator']:<10} {r['requests']:>8} {r['rps']:>8.0f} "
            f"{fmt(r['p50_ms'], '.2f'):>8} {fmt(r['p99_ms'], '.2f'):>8} {fmt(r['ratio'], '.2f'):>6} "
            f"{target:>7} {res:>6}  {r['verification']}")
    log("")
    log(f"CPU per request, us: {'scenario':<36} {'w':>2} {'server':>7} {'of it sys':>9} {'pg':>6} {'redis':>6} "
        f"{'gen':>6} {'kernel':>7} {'other':>6}")
    for r in results:
        c = r.get("cpu_us_per_request") or {}
        log(f"{'':<21}{r['name']:<36} {r['workers']:>2} {c.get('server', 0):>7} {c.get('server_sys', 0):>9} "
            f"{c.get('postgres', 0):>6} {c.get('redis', 0):>6} {c.get('generator', 0):>6} {c.get('kernel', 0):>7} "
            f"{c.get('other', 0):>6}")
    if memory:
        log(f"memory (--workers {memory['workers']}, {memory['completed']} GetRelationship requests): "
            f"RSS MB {memory['rss_mb']}")
    log("")
    for c in checks:
        log(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['value']}")


def settle_database(args: Namespace, limit: float = 180.0) -> None:
    """Lets PostgreSQL finish the autovacuum the write scenarios set off, and
    checkpoints, so that work does not count against the next server."""
    start = time.monotonic()
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        while time.monotonic() - start < limit:
            busy = one(conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ))[0]
            if not busy:
                break
            time.sleep(1)
        conn.execute("CHECKPOINT")
    log(f"database: settled in {time.monotonic() - start:.0f}s (autovacuum done, checkpoint)")


def clear_redis(url: str) -> None:
    """Deletes the server's own keys (fixed sg: prefix) in the bench's Redis
    database, so counters and limiter state start from the seeded graph."""
    r = redis.Redis.from_url(url)
    n = 0
    for key in r.scan_iter(match="sg:*", count=1000):
        r.delete(key)
        n += 1
    r.close()
    if n:
        log(f"redis: deleted {n} sg:* keys left by an earlier run")


if __name__ == "__main__":
    sys.exit(main())
