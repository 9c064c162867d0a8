"""The process harness the tests and the bench share (not part of the
installed package): processes in harness/process.py, databases in
harness/database.py, bulk seeds in harness/seed.py (imported from there:
it needs the storage package)."""

from .database import POSTGRES_DSN, libpq_url, postgres_schema, schema_of, schema_url, temporary_database
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
    health_stub,
    rpcs_by_method,
    rss_bytes,
    run_socialgraph,
    running_server,
    socialgraph_command,
    start_server,
)

__all__ = [
    "POSTGRES_DSN",
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
    "health_stub",
    "libpq_url",
    "postgres_schema",
    "rpcs_by_method",
    "rss_bytes",
    "run_socialgraph",
    "running_server",
    "schema_of",
    "schema_url",
    "socialgraph_command",
    "start_server",
    "temporary_database",
]
