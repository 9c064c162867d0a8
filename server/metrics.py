"""Prometheus metrics for every RPC, health and reflection included: count by
method and status code, and latency by method. Limiter and cache metrics are
defined beside the code they count (ratelimit/failover.py, cache/readers.py,
cache/redis_cache.py) in the same registry."""

from __future__ import annotations

import time
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from .interceptors import Behavior, UnaryWrapper

RPCS = Counter("socialgraph_rpcs_total", "RPCs handled, by method and status code.", ["method", "code"])
LATENCY = Histogram(
    "socialgraph_rpc_duration_seconds",
    "RPC handling time in the server, by method.",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class MetricsInterceptor(UnaryWrapper):
    """Records every unary call's code and duration."""

    def wrap_unary(self, method: str, behavior: Behavior) -> Behavior:
        return _measured(method, behavior)


def _measured(method: str, behavior: Behavior) -> Behavior:
    calls = {code: RPCS.labels(method, code.name) for code in grpc.StatusCode}
    latency = LATENCY.labels(method)

    def measured(request: Any, context: grpc.ServicerContext) -> Any:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return behavior(request, context)
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]  # grpcio has it; its stubs lack it
            raise
        finally:
            latency.observe(time.perf_counter() - start)
            calls[code].inc()

    return measured


def serve_metrics(address: str) -> int:
    """Starts the /metrics endpoint; returns its port."""
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    return server.server_port
