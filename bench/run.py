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

    python bench/run.py [--quick] [--database-url URL] [--redis-url URL]
                        [--workers 1,2] [--duration S] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import seed  # noqa: E402
import big_account  # noqa: E402

from socialgraph.v1 import social_graph_pb2 as pb  # noqa: E402

SVC = "/socialgraph.v1.SocialGraphService/"
HEALTH = "/grpc.health.v1.Health/Check"

TARGETS = {  # scenario -> minimum ratio to its generator's floor
    "GetRelationship": 0.50,
    "GetCounts (cache hit)": 0.65,
    "CanInteract": 0.55,
    "Follow+Unfollow": 0.30,
    "SendConnectionRequest": 0.25,
}


def log(msg: str) -> None:
    print(msg, flush=True)


def frame(msg) -> bytes:
    data = msg.SerializeToString() if msg is not None else b""
    return b"\x00" + struct.pack(">I", len(data)) + data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ metrics

METRIC = re.compile(r'^socialgraph_rpcs_total\{code="([A-Z_]+)",method="([^"]+)"\} ([0-9.e+]+)$')


class Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> dict[tuple[str, str], float]:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = METRIC.match(line)
            if m:
                out[(m.group(2), m.group(1))] = out.get((m.group(2), m.group(1)), 0) + float(m.group(3))
        return out

    def quiesce(self, timeout: float = 10.0) -> dict:
        """Waits until no RPC completes for 0.3 s (a probe's stragglers)."""
        before = self.scrape()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            time.sleep(0.3)
            now = self.scrape()
            if now == before:
                return now
            before = now
        return before


def delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, v in after.items():
        d = int(round(v - before.get(key, 0)))
        if d:
            out.setdefault(key[0], {})[key[1]] = d
    return out


# ------------------------------------------------------------------ CPU


_TICK = os.sysconf("SC_CLK_TCK")
_GROUPS = (("postgres", ("postgres",)), ("redis", ("redis-server",)),
           ("generator", ("h2load", "node", "ghz")), ("kernel", ("kworker", "ksoftirqd")))


class CpuMeter:
    """CPU time spent, from construction to ``per_request``, by the server
    (with its workers), PostgreSQL, Redis, the load generator and the
    kernel's workers: where a scenario's cost goes on a shared machine."""

    def __init__(self, server) -> None:
        self.server_pids = {server.proc.pid, *server.worker_pids()}
        self.start = self._sample()

    @staticmethod
    def _generator() -> float:
        """The load generators are this process's children, reaped when done."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def _sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            group = "server" if int(d) in self.server_pids else next(
                (g for g, prefixes in _GROUPS if name.startswith(prefixes)), "other")
            out[group] = out.get(group, 0.0) + ticks / _TICK
        out["generator"] = out.get("generator", 0.0) + self._generator()
        return out

    def per_request(self, requests: int) -> dict[str, float]:
        """Microseconds of CPU per request, by group."""
        end = self._sample()
        return {g: round((end.get(g, 0.0) - self.start.get(g, 0.0)) / max(requests, 1) * 1e6)
                for g in ("server", "postgres", "redis", "generator", "kernel", "other")}


# ------------------------------------------------------------------ server


class Server:
    def __init__(self, args, workers: int) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.workers = workers
        cmd = [
            os.path.join(os.path.dirname(sys.executable), "socialgraph"), "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--database-url", args.sa_url,
            "--redis-url", args.redis_url,
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--rate-limits", "1000000000/1h,1000000000/24h",  # consulted on every send, never refuses
            "--log-level", "WARNING",
            "--grace-period", "2",
            "--threads", str(args.threads),
        ]
        if workers > 1 or _accepts_workers():
            cmd += ["--workers", str(workers)]
        self.cmd = cmd
        self.logfile = tempfile.NamedTemporaryFile(prefix="sgbench-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.metrics = Metrics(self.metrics_port)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        end = time.monotonic() + 90
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; log: {self.logfile.name}")
            try:
                with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    self.metrics.scrape()
                    if self.workers > 1:  # every worker must be up before measuring
                        end2 = time.monotonic() + 60
                        while len(self.worker_pids()) < self.workers and time.monotonic() < end2:
                            time.sleep(0.2)
                        time.sleep(2)
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise SystemExit(f"server did not become ready; log: {self.logfile.name}")

    def worker_pids(self) -> list[int]:
        """The serving processes: the server itself, or its spawned workers."""
        if self.workers == 1:
            return [self.proc.pid]
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmdline = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b"spawn_main" in cmdline:
                pids.append(int(d))
        return sorted(pids)

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for pid in ([self.proc.pid] if self.workers > 1 else []) + self.worker_pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[str(pid)] = round(int(line.split()[1]) / 1024, 1)
            except OSError:
                pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the session we started (workers, trackers)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


_WORKERS_FLAG: bool | None = None


def _accepts_workers() -> bool:
    global _WORKERS_FLAG
    if _WORKERS_FLAG is None:
        out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "socialgraph"), "serve", "--help"],
                             capture_output=True, text=True, cwd=ROOT).stdout
        _WORKERS_FLAG = "--workers" in out
    return _WORKERS_FLAG


# ------------------------------------------------------------------ generators


def pct(sorted_us: list[float], p: float) -> float | None:
    if not sorted_us:
        return None
    return sorted_us[min(len(sorted_us) - 1, int(p * len(sorted_us)))]


class H2load:
    name = "h2load"

    def __init__(self, args, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.n_files = 0

    def _file(self, data: bytes | str, suffix: str) -> str:
        self.n_files += 1
        path = os.path.join(self.tmp, f"f{self.n_files}{suffix}")
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return path

    def _cmd(self, port, paths, body_file, log_file, conns, streams, n=None, duration=None):
        cmd = ["h2load", "-c", str(conns), "-m", str(streams), "-t", "1", "-d", body_file,
               "-H", "content-type: application/grpc", "-H", "te: trailers"]
        cmd += ["-n", str(n)] if n is not None else ["-D", f"{int(duration * 1000)}ms"]
        if log_file:
            cmd += ["--log-file", log_file]
        if len(paths) == 1:
            cmd.append(f"http://127.0.0.1:{port}{paths[0]}")
        else:
            cmd += ["-i", self._file("".join(f"http://127.0.0.1:{port}{p}\n" for p in paths), ".uris")]
        return cmd

    @staticmethod
    def _parse(out: str) -> dict:
        m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
        r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        if not m or not r:
            raise RuntimeError("cannot parse h2load output:\n" + out)
        secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        return {"seconds": secs, "rps": float(m.group(3)), "done": int(r.group(3)),
                "succeeded": int(r.group(4)), "failed": int(r.group(5)) + int(r.group(6))}

    def run(self, server, sc: dict, duration: float) -> dict:
        conns, streams = self.args.connections, self.args.streams
        body = self._file(sc["body"], ".bin")
        # Probe (also the warm-up): its rate sizes the measured run, which is
        # count-based so every request it starts completes.
        probe = subprocess.run(self._cmd(server.port, sc["paths"], body, None, conns, streams,
                                         duration=self.args.probe), capture_output=True, text=True, timeout=120)
        rate = self._parse(probe.stdout)["rps"]
        n = max(conns * streams * 4, int(rate * duration))
        if sc.get("max_requests"):
            n = min(n, sc["max_requests"])
        before = server.metrics.quiesce()
        meter = CpuMeter(server)
        lf = os.path.join(self.tmp, "h2load.log")
        out = subprocess.run(self._cmd(server.port, sc["paths"], body, lf, conns, streams, n=n),
                             capture_output=True, text=True, timeout=duration * 10 + 120)
        res = self._parse(out.stdout)
        cpu = meter.per_request(res["done"])
        after = server.metrics.quiesce()
        lat = sorted(float(line.split("\t")[2]) for line in open(lf) if line.strip())
        os.unlink(lf)
        return {"generator": "h2load", "concurrency": f"{conns} conns x {streams} streams",
                "requests": res["done"], "http_ok": res["succeeded"], "seconds": res["seconds"],
                "rps": res["rps"], "p50_ms": pct(lat, 0.5) / 1000, "p99_ms": pct(lat, 0.99) / 1000,
                "cpu_us_per_request": cpu, "server_codes": delta(before, after)}

    def run_pairs(self, server, sc: dict, duration: float) -> dict:
        """One h2load process per body, each -c 1 -m 1 cycling sc['paths']."""
        bodies = sc["bodies"]
        files = [self._file(b, ".bin") for b in bodies]
        # probe with the first few pairs
        probe = [subprocess.Popen(self._cmd(server.port, sc["paths"], f, None, 1, 1, duration=self.args.probe),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for f in files]
        rate = sum(self._parse(p.communicate(timeout=120)[0])["rps"] for p in probe)
        per = max(2, int(rate * duration / len(files)) // len(sc["paths"]) * len(sc["paths"]))
        before = server.metrics.quiesce()
        meter = CpuMeter(server)
        logs = [os.path.join(self.tmp, f"pair{i}.log") for i in range(len(files))]
        t0 = time.monotonic()
        procs = [subprocess.Popen(self._cmd(server.port, sc["paths"], f, lf, 1, 1, n=per),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for f, lf in zip(files, logs)]
        results = [self._parse(p.communicate(timeout=duration * 10 + 120)[0]) for p in procs]
        wall = time.monotonic() - t0
        cpu = meter.per_request(sum(r["done"] for r in results))
        after = server.metrics.quiesce()
        lat = []
        for lf in logs:
            lat += [float(line.split("\t")[2]) for line in open(lf) if line.strip()]
            os.unlink(lf)
        lat.sort()
        done = sum(r["done"] for r in results)
        slowest = max(r["seconds"] for r in results)
        return {"generator": "h2load", "concurrency": f"{len(files)} processes x 1 conn x 1 stream",
                "requests": done, "http_ok": sum(r["succeeded"] for r in results),
                "seconds": slowest, "wall_seconds": round(wall, 2), "rps": done / slowest, "cpu_us_per_request": cpu,
                "p50_ms": pct(lat, 0.5) / 1000, "p99_ms": pct(lat, 0.99) / 1000,
                "server_codes": delta(before, after)}


def find_ghz() -> str | None:
    """$GHZ, ghz on PATH, or the one ``make ghz`` installs."""
    local = os.path.join(ROOT, ".tools", "bin", "ghz")
    return os.environ.get("GHZ") or shutil.which("ghz") or (local if os.access(local, os.X_OK) else None)


class Ghz:
    """ghz over reflection. A scenario's ``json`` is its call data: one
    message, or several sent round-robin (request i gets element i mod n).
    Same protocol as H2load: probe, count-based run, server counters."""

    name = "ghz"

    def __init__(self, args, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.binary = find_ghz() or "ghz"

    def _run(self, server, call: str, data: list[dict], n=None, duration=None) -> dict:
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

    def run(self, server, sc: dict, duration: float) -> dict:
        """A probe of ``--probe`` seconds sizes a count-based run of about
        ``duration`` seconds (a run cut by time would cancel the calls in
        flight, which the server may still complete). Call data of several
        messages, each of which creates something, must not repeat: the
        probe sends the second half of it and the run at most the first."""
        call = sc["paths"][0].strip("/").replace("/", ".")
        data = sc["json"]
        half = len(data) // 2
        probe, data = (data, data) if len(data) == 1 else (data[half:], data[:half])
        rate = self._run(server, call, probe, duration=self.args.probe)["rps"]
        n = max(64, int(rate * duration))
        if len(data) > 1:
            n = min(n, len(data))
        before = server.metrics.quiesce()
        meter = CpuMeter(server)
        r = self._run(server, call, data, n=n)
        r["cpu_us_per_request"] = meter.per_request(r["requests"])
        after = server.metrics.quiesce()
        return {"generator": "ghz", "concurrency": f"{self.args.connections} conns x "
                f"{self.args.connections * self.args.streams} concurrent", "http_ok": r["requests"],
                **r, "server_codes": delta(before, after)}


def verify(res: dict, expect: dict[str, str] | None) -> tuple[bool, str]:
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


# ------------------------------------------------------------------ scenarios


def setup_data(args, server) -> dict:
    """Ids for the scenarios, read from the seeded schema, and a page token 100k deep."""
    import grpc
    import psycopg

    from socialgraph.v1 import social_graph_pb2_grpc as pbg

    ids = seed.USER_IDS
    with psycopg.connect(args.pg_url) as conn, conn.cursor() as cur:
        cur.execute(f'SET search_path TO "{args.schema}"')
        a, b = cur.execute("SELECT user_id, other_id FROM connections ORDER BY user_id LIMIT 1").fetchone()
        others = [r[0] for r in cur.execute(
            "SELECT followee_id FROM follows WHERE follower_id=%s LIMIT 25", (a,))]
        blocker, blocked = cur.execute(
            "SELECT blocker_id, array_agg(blocked_id) FROM blocks GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    others = (others + ids[1000:1100])[:50]
    candidates = (list(blocked) + ids[2000:3000])[:500]
    celeb = ids[seed.CELEBS[0]]
    token = ""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        stub = pbg.SocialGraphServiceStub(ch)
        for _ in range(100):
            token = stub.ListFollowers(pb.ListFollowersRequest(user_id=celeb, page_size=1000, page_token=token),
                                       timeout=30).next_page_token
    return {"a": a, "b": b, "others": others, "blocker": blocker, "candidates": candidates,
            "celeb": celeb, "deep_token": token}


def read_scenarios(d: dict) -> list[dict]:
    def one(name, method, msg, **kw):
        from google.protobuf import json_format

        return {"name": name, "paths": [SVC + method], "body": frame(msg),
                "json": [json_format.MessageToDict(msg, preserving_proto_field_name=True)],
                "expect": {SVC + method: "OK"}, **kw}

    return [
        one("GetRelationship", "GetRelationship", pb.GetRelationshipRequest(user_id=d["a"], other_user_id=d["b"])),
        one("BatchGetRelationships (50 ids)", "BatchGetRelationships",
            pb.BatchGetRelationshipsRequest(user_id=d["a"], other_user_ids=d["others"])),
        one("GetCounts (cache hit)", "GetCounts", pb.GetCountsRequest(user_ids=[d["celeb"]])),
        one("CanInteract", "CanInteract", pb.CanInteractRequest(user_id=d["a"], other_user_id=d["b"])),
        one("FilterInteractable (500 ids)", "FilterInteractable",
            pb.FilterInteractableRequest(user_id=d["blocker"], candidate_ids=d["candidates"])),
        one("ListFollowers first page", "ListFollowers", pb.ListFollowersRequest(user_id=d["celeb"])),
        one("ListFollowers 100k deep", "ListFollowers",
            pb.ListFollowersRequest(user_id=d["celeb"], page_token=d["deep_token"])),
    ]


def follow_pairs(n: int) -> dict:
    ids = seed.USER_IDS
    bodies = [frame(pb.FollowRequest(follower_id=ids[seed.FOLLOW[i]], followee_id=ids[3 + (i * 7919) % 120_000]))
              for i in range(n)]
    return {"name": "Follow+Unfollow", "paths": [SVC + "Follow", SVC + "Unfollow"], "bodies": bodies,
            "expect": {SVC + "Follow": "OK", SVC + "Unfollow": "OK"}}


def send_requests(n: int) -> dict:
    ids = seed.USER_IDS
    req = seed.REQ
    bodies = []
    for i in range(n):
        r, k = i % len(req), i // len(req)
        recipient = 3 + (r * 131 + k * 7) % (seed.N_REGULAR - 3)
        bodies.append({"requester_id": ids[req[r]], "recipient_id": ids[recipient]})
    return {"name": "SendConnectionRequest", "paths": [SVC + "SendConnectionRequest"], "json": bodies,
            "expect": {SVC + "SendConnectionRequest": "OK"}}


def blocks_of_celebrity() -> dict:
    ids = seed.USER_IDS
    bodies = [{"blocker_id": ids[s], "blocked_id": ids[seed.CELEBS[0]]} for s in seed.BLOCK]
    return {"name": "Block (celebrity, 118k followers)", "paths": [SVC + "Block"], "json": bodies,
            "expect": {SVC + "Block": "OK"}}


def health() -> dict:
    return {"name": "floor: Health/Check", "paths": [HEALTH], "body": frame(None), "json": [{}],
            "expect": {HEALTH: "OK"}}


# ------------------------------------------------------------------ main


def fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
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
    p.add_argument("--json", default=os.path.join(HERE, "results", "bench.json"))
    args = p.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.memory_requests = args.memory_requests or (50_000 if args.quick else 1_000_000)
    args.pg_url = seed.libpq_url(args.database_url)
    args.sa_url = seed.sqlalchemy_url(args.pg_url, args.schema)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    if any(w > 1 for w in workers) and not _accepts_workers():
        log("note: this socialgraph has no --workers flag yet; running --workers 1 only")
        workers = [1]

    started = time.monotonic()
    gen_name = "h2load"
    if not shutil.which("h2load"):
        log("h2load is not on PATH: apt-get install -y nghttp2-client")
        subprocess.run(["apt-get", "install", "-y", "nghttp2-client"], check=True)
    if not find_ghz():
        raise SystemExit("ghz is needed for the varying-body scenarios: make ghz")

    seeding = seed.seed(args.pg_url, args.schema, force=args.reseed, log=log)
    _clear_redis(args.redis_url)

    tmp = tempfile.mkdtemp(prefix="sgbench-")
    gen = H2load(args, tmp)
    vg = Ghz(args, tmp)
    results: list[dict] = []
    memory: dict = {}
    servers: list[Server] = []

    def record(sc, res, floor, target=None):
        ok, why = verify(res, sc["expect"])
        res.update(name=sc["name"], workers=server.workers, verified=ok, verification=why)
        res["ratio"] = res["rps"] / floor if floor else None
        res["floor_rps"] = floor
        if target is not None:
            res["target"] = f">= {target:.2f} x floor"
            res["pass"] = bool(res["ratio"] is not None and res["ratio"] >= target and ok)
        results.append(res)
        log(f"  {sc['name']:<36} {res['generator']:<10} {res['rps']:>8.0f}/s  p50 {fmt(res['p50_ms'], '.2f')} ms"
            f"  p99 {fmt(res['p99_ms'], '.2f')} ms  x{fmt(res['ratio'], '.2f')}  {why}")
        return res

    try:
        for wi, w in enumerate(workers):
            if wi:
                settle_database(args)
            log(f"server: --workers {w}")
            server = Server(args, w)
            servers.append(server)
            if wi == 0:
                data = setup_data(args, server)
            floor = record(health(), gen.run(server, health(), args.duration), None)["rps"]
            scen = read_scenarios(data)
            for sc in scen if wi == 0 else scen[:1]:
                record(sc, gen.run(server, sc, args.duration), floor, TARGETS.get(sc["name"]))
            if wi == 0:
                fu = follow_pairs(args.pairs)
                record(fu, gen.run_pairs(server, fu, args.duration), floor, TARGETS["Follow+Unfollow"])
                vfloor = record({**health(), "name": "floor: Health/Check (ghz)"},
                                vg.run(server, health(), args.duration), None)["rps"]
                sc = send_requests(40_000 if args.quick else 150_000)
                record(sc, vg.run(server, sc, args.duration), vfloor, TARGETS["SendConnectionRequest"])
                sc = blocks_of_celebrity()
                record(sc, vg.run(server, sc, args.duration), vfloor)
            if wi == len(workers) - 1:
                memory = memory_run(args, server, gen_name, data)
            server.stop()
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    big = big_account.run(args.pg_url, 100_000 if args.quick else 300_000, log=log)
    summary = summarize(results, memory, workers)
    out = {
        "environment": {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                         text=True).stdout.strip(),
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "generator": gen_name, "varying_body_generator": "ghz (" + vg.binary + ")",
            "quick": args.quick, "duration_s": args.duration, "connections": args.connections,
            "streams": args.streams, "server_threads": args.threads, "workers": workers,
            "database": args.sa_url, "redis": args.redis_url, "seeding": seeding,
            "seconds": round(time.monotonic() - started, 1),
            "method": __doc__.split("\n\n")[1:4],
        },
        "scenarios": results,
        "memory": memory,
        "checks": summary,
        "big_account": big,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print_table(results, memory, summary)
    log(f"wrote {args.json} ({out['environment']['seconds']}s in all)")
    return 0 if all(r["verified"] for r in results) else 1


def memory_run(args, server, gen_name, data) -> dict:
    """GetRelationship for --memory-requests requests in two halves; RSS of
    every worker after each half."""
    sc = read_scenarios(data)[0]
    half = args.memory_requests // 2
    log(f"memory: {args.memory_requests} GetRelationship requests on --workers {server.workers}")
    samples = {"start": server.rss_mb()}
    total = 0
    for label in ("middle", "end"):
        if gen_name == "h2load":
            bf = os.path.join(tempfile.gettempdir(), f"sgbench-mem-{os.getpid()}.bin")
            with open(bf, "wb") as f:
                f.write(sc["body"])
            out = subprocess.run(H2load(args, "")._cmd(server.port, sc["paths"], bf, None, args.connections,
                                                       args.streams, n=half), capture_output=True, text=True,
                                 timeout=3600)
            os.unlink(bf)
            total += H2load._parse(out.stdout)["succeeded"]
        else:
            total += Ghz(args, tempfile.gettempdir())._run(server, sc["paths"][0].strip("/").replace("/", "."),
                                                          sc["json"], n=half)["requests"]
        samples[label] = server.rss_mb()
        log(f"  RSS after {label}: {samples[label]} MB")
    workers_only = {k: v for k, v in samples["end"].items() if int(k) != server.proc.pid or server.workers == 1}
    growth = {pid: (samples["end"][pid] - samples["middle"].get(pid, 0)) / samples["middle"][pid]
              for pid in workers_only if samples["middle"].get(pid)}
    return {"workers": server.workers, "requests": args.memory_requests, "completed": total,
            "rss_mb": samples, "parent_pid": server.proc.pid,
            "max_worker_rss_mb": max(workers_only.values()) if workers_only else None,
            "max_growth_middle_to_end": max(growth.values()) if growth else None}


def summarize(results, memory, workers) -> list[dict]:
    checks = []
    by = {(r["name"], r["workers"]): r for r in results}
    w0 = workers[0]
    for name, target in TARGETS.items():
        r = by.get((name, w0))
        if r:
            checks.append({"check": f"{name} >= {target} x floor", "value": round(r["ratio"], 3),
                           "pass": r["pass"]})
    first, deep = by.get(("ListFollowers first page", w0)), by.get(("ListFollowers 100k deep", w0))
    if first and deep:
        v = deep["p50_ms"] / first["p50_ms"]
        checks.append({"check": "ListFollowers 100k deep p50 <= 1.5 x first page p50", "value": round(v, 3),
                       "pass": v <= 1.5})
    if 1 in workers and 2 in workers:
        g1, g2 = by.get(("GetRelationship", 1)), by.get(("GetRelationship", 2))
        if g1 and g2:
            v = g2["rps"] / g1["rps"]
            checks.append({"check": "GetRelationship --workers 2 >= 1.3 x --workers 1", "value": round(v, 3),
                           "pass": v >= 1.3})
    if memory:
        checks.append({"check": "RSS per worker <= 250 MB", "value": memory["max_worker_rss_mb"],
                       "pass": memory["max_worker_rss_mb"] is not None and memory["max_worker_rss_mb"] <= 250})
        g = memory["max_growth_middle_to_end"]
        checks.append({"check": f"RSS growth middle->end of {memory['requests']} requests <= 10%",
                       "value": None if g is None else round(g, 4), "pass": g is not None and g <= 0.10})
    checks.append({"check": "every scenario verified by the server's counters",
                   "value": sum(r["verified"] for r in results), "pass": all(r["verified"] for r in results)})
    return checks


def print_table(results, memory, checks) -> None:
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
    log(f"CPU per request, us: {'scenario':<36} {'w':>2} {'server':>7} {'pg':>6} {'redis':>6} {'gen':>6} "
        f"{'kernel':>7} {'other':>6}")
    for r in results:
        c = r.get("cpu_us_per_request") or {}
        log(f"{'':<21}{r['name']:<36} {r['workers']:>2} {c.get('server', 0):>7} {c.get('postgres', 0):>6} "
            f"{c.get('redis', 0):>6} {c.get('generator', 0):>6} {c.get('kernel', 0):>7} {c.get('other', 0):>6}")
    if memory:
        log(f"memory (--workers {memory['workers']}, {memory['completed']} GetRelationship requests): "
            f"RSS MB {memory['rss_mb']}")
    log("")
    for c in checks:
        log(f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['value']}")


def settle_database(args, limit: float = 180.0) -> None:
    """Lets PostgreSQL finish the autovacuum the write scenarios set off, and
    checkpoints, so that work does not count against the next server."""
    import psycopg

    start = time.monotonic()
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        while time.monotonic() - start < limit:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()[0]
            if not busy:
                break
            time.sleep(1)
        conn.execute("CHECKPOINT")
    log(f"database: settled in {time.monotonic() - start:.0f}s (autovacuum done, checkpoint)")


def _clear_redis(url: str) -> None:
    """Deletes the server's own keys (fixed sg: prefix) in the bench's Redis
    database, so counters and limiter state start from the seeded graph."""
    import redis

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
