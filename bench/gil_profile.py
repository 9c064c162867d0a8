#!/usr/bin/env python
"""Where one bench row's server time goes: runs the row (``--only NAME``,
the floor with ``--only floor``) against a bench server for ``--seconds``
while py-spy samples the thread that holds the GIL, then prints the share
of samples under each function (inclusive) and in it (self), and the
server's CPU per call (all of it, and the part in the kernel).

py-spy is not a dependency of the project: install it anywhere
(``python3 -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy``) and name
it with ``--py-spy`` or put it on PATH. Sampling needs ptrace rights over
the server (root, or ``kernel.yama.ptrace_scope=0``).

    python -m bench.gil_profile --only GetRelationship [--seconds 15] [--top 30] [--py-spy PATH] [--raw FILE]

Only the GIL's holder is sampled (``--gil``): time the server spends
outside Python (grpc's core, system calls, waiting for PostgreSQL) shows
in the CPU figures, not in the profile.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench import run as bench_run
from bench.scenario import Scenario
from harness import CpuMeter


def shares(raw: str, top: int) -> list[str]:
    """py-spy's raw (collapsed) output as inclusive and self shares."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [re.sub(r" \((?:.*/)?([^/]+/[^/]+\.py):\d+\)", r" (\1)", frame) for frame in stack.split(";")]
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    out = [f"{total} samples with the GIL held", "inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    out.append("self:")
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", required=True, help="a bench row's name, or 'floor'")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--py-spy", default=os.environ.get("PY_SPY") or shutil.which("py-spy"))
    p.add_argument("--raw", help="keep py-spy's raw samples in this file")
    mine, rest = p.parse_known_args()
    if not mine.py_spy:
        raise SystemExit("py-spy not found: install it (see --help) and pass --py-spy PATH")
    sys.argv = [sys.argv[0], "--quick", "--workers", "1", *rest]
    args = bench_run.parse_args()
    rows = {sc.name: sc for sc in bench_run.table()}
    if mine.only != "floor" and mine.only not in rows:
        raise SystemExit(f"--only: no row named {mine.only!r}")
    sc: Scenario = bench_run.floor("h2load") if mine.only == "floor" else rows[mine.only]
    bench_run.seed.seed(args.pg_url, args.schema, log=bench_run.log)
    bench_run.clear_redis(args.redis_url)
    raw = mine.raw or os.path.join(tempfile.gettempdir(), f"sgprofile-{os.getpid()}.txt")
    with tempfile.TemporaryDirectory(prefix="sgprofile-") as tmp, bench_run.bench_server(args, 1) as server:
        ctx = bench_run.Context(args, server, bench_run.setup_data(args, server))
        runner = bench_run.Runner(args, tmp)
        args.duration = mine.seconds
        spy = subprocess.Popen(
            [mine.py_spy, "record", "--pid", str(server.pid), "--duration", str(int(mine.seconds) + 1),
             "--rate", "200", "--gil", "--nonblocking", "--format", "raw", "--output", raw],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        meter = CpuMeter([server.pid])
        res = runner.measure(sc, ctx)
        cpu = meter.per_request(res["requests"])
        spy.wait(timeout=mine.seconds + 60)
    print(f"{sc.name}: {res['requests']} calls, {res['rps']:.0f}/s; server CPU per call {cpu['server']} us "
          f"(in the kernel {cpu['server_sys']}), PostgreSQL {cpu['postgres']} us")
    print("\n".join(shares(raw, mine.top)))
    if not mine.raw:
        os.unlink(raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
