"""``serve --workers N``: several processes on one port, one metrics view,
the port still exclusive to this server, and a clean SIGTERM."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from harness import run_socialgraph

from .support import Client, new_user, running_server

pytestmark = pytest.mark.e2e


def test_workers_share_the_port_and_the_metrics(tmp_path):
    with running_server("--database-url", f"sqlite:///{tmp_path}/w.db", workers=2, metrics=True) as (address, process):
        workers = process.worker_pids()
        assert len(workers) == 2
        star = new_user()
        fans = [new_user() for _ in range(40)]
        # New channels spread over the workers (the kernel picks per connection).
        for fan in fans:
            with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                assert Client(channel).follow(fan, star).created
        with grpc.insecure_channel(address) as channel:
            assert Client(channel).counts(star)[0].followers == 40
        samples = process.metrics.samples()
        assert samples['socialgraph_rpcs_total{code="OK",method="/socialgraph.v1.SocialGraphService/Follow"}'] == 40

        second = run_socialgraph(
            "serve", "--listen", address, "--database-url", f"sqlite:///{tmp_path}/x.db", timeout=30
        )
        assert second.returncode == 1 and address in second.stderr
        again = run_socialgraph(
            "serve", "--workers", "2", "--listen", address, "--database-url", f"sqlite:///{tmp_path}/x.db", timeout=30
        )
        assert again.returncode == 1 and address in again.stderr

        process.terminate()
        assert process.wait(timeout=30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
