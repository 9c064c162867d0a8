"""The Prometheus endpoint counts RPCs by method and code, and the limiter
and cache report their decisions."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from harness import Metrics, health_stub

from .support import Client, free_port, new_user, running_server

pytestmark = pytest.mark.e2e


def test_metrics_count_rpcs_by_method_and_code(tmp_path):
    port = free_port()
    args = ("--database-url", f"sqlite:///{tmp_path}/m.db", "--metrics-listen", f"127.0.0.1:{port}")
    with running_server(*args) as (address, _), grpc.insecure_channel(address) as channel:
        client = Client(channel)
        a, b = new_user(), new_user()
        client.follow(a, b)
        client.follow(a, b)
        with pytest.raises(grpc.RpcError):
            client.follow(a, a)
        client.send(a, new_user())
        client.counts(a)
        client.counts(a)
        health_stub(channel).Check(health_pb2.HealthCheckRequest())
        samples = Metrics(port).samples()

    def rpcs(method: str, code: str) -> float:
        return samples.get(f'socialgraph_rpcs_total{{code="{code}",method="{method}"}}', 0)

    follow = "/socialgraph.v1.SocialGraphService/Follow"
    assert rpcs(follow, "OK") == 2
    assert rpcs(follow, "INVALID_ARGUMENT") == 1
    assert rpcs("/grpc.health.v1.Health/Check", "OK") >= 1
    assert samples[f'socialgraph_rpc_duration_seconds_count{{method="{follow}"}}'] == 3
    assert samples['socialgraph_counter_cache_lookups_total{result="hit",tier="in-process"}'] >= 1
    assert samples['socialgraph_limiter_decisions_total{backend="sql",result="allowed"}'] == 1
