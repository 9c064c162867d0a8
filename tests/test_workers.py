"""``serve --workers N``: several processes on one port, one metrics view,
the port still exclusive to this server, and a clean SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from .support import Client, free_port, new_user, running_server
from .test_metrics import scrape

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_workers_share_the_port_and_the_metrics(tmp_path):
    metrics = free_port()
    args = ("--workers", "2", "--database-url", f"sqlite:///{tmp_path}/w.db")
    args += ("--metrics-listen", f"127.0.0.1:{metrics}")
    with running_server(*args) as (address, process):
        workers = [pid for pid in children(process.pid) if "spawn" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(workers) == 2
        star = new_user()
        fans = [new_user() for _ in range(40)]
        # New channels spread over the workers (the kernel picks per connection).
        for fan in fans:
            with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                assert Client(channel).follow(fan, star).created
        with grpc.insecure_channel(address) as channel:
            assert Client(channel).counts(star)[0].followers == 40
        samples = scrape(metrics)
        assert samples['socialgraph_rpcs_total{code="OK",method="/socialgraph.v1.SocialGraphService/Follow"}'] == 40

        second = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--listen", address, "--database-url", f"sqlite:///{tmp_path}/x.db"],
            capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1 and address in second.stderr
        again = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--listen", address,
             "--database-url", f"sqlite:///{tmp_path}/x.db"],
            capture_output=True, text=True, timeout=30,
        )
        assert again.returncode == 1 and address in again.stderr

        process.terminate()
        assert process.wait(timeout=30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
