"""The process harness the tests and the bench share (not part of the
installed package): see harness/process.py."""

from .process import (
    RPCS,
    CpuMeter,
    Metrics,
    Process,
    ProcessFailed,
    RedisServer,
    ServerProcess,
    clean_env,
    delta,
    free_port,
    health_status,
    rpcs_by_method,
    rss_bytes,
    run_socialgraph,
    running_server,
    socialgraph_command,
    start_server,
)

__all__ = [
    "RPCS",
    "CpuMeter",
    "Metrics",
    "Process",
    "ProcessFailed",
    "RedisServer",
    "ServerProcess",
    "clean_env",
    "delta",
    "free_port",
    "health_status",
    "rpcs_by_method",
    "rss_bytes",
    "run_socialgraph",
    "running_server",
    "socialgraph_command",
    "start_server",
]
