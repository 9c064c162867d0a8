"""The shapes tests/test_consistency.py leaves out: three ``socialgraph
serve`` processes on PostgreSQL without Redis, and ``socialgraph recount``
with Redis reaching two running servers (the fix is published through Redis
and also ages out of every cache within the bound)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from .support import (
    POSTGRES_DSN,
    RedisServer,
    counters,
    new_user,
    socialgraph_command,
    temporary_database,
    zero,
)
from .test_consistency import AFTER, BEFORE, processes, snapshot, within_bound

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporary_database("postgres", tmp_path_factory.mktemp("shapes")) as url:
        yield url


def test_a_block_through_one_process_reaches_two_others_without_redis(postgres_url: str) -> None:
    with processes(postgres_url, 3) as (first, second, third):
        a, b = new_user(), new_user()
        first.follow(a, b)
        assert snapshot(first, a, b) == BEFORE  # both readers now hold the pair in memory
        assert snapshot(third, a, b) == BEFORE
        second.block(b, a)
        assert within_bound(lambda: snapshot(first, a, b), AFTER) == AFTER
        assert within_bound(lambda: snapshot(third, a, b), AFTER) == AFTER
        for reader in (first, third):
            with pytest.raises(grpc.RpcError) as refused:
                reader.follow(a, b)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_recount_with_redis_reaches_running_servers(postgres_url: str, tmp_path: Path) -> None:
    with RedisServer(tmp_path) as redis, processes(postgres_url, 2, "--redis-url", redis.url) as servers:
        a, b = new_user(), new_user()
        servers[0].follow(a, b)
        for server in servers:
            assert counters(server.counts(b)[0]) == zero(followers=1)
        schema = postgres_url.rpartition("%3D")[2]
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # a counter drifts
            conn.execute(
                f"UPDATE {schema}.user_counters SET followers = 7, version = version + 1 WHERE user_id = %s", (b,)
            )
        drifted, fixed = zero(followers=7), zero(followers=1)
        for server in servers:
            assert within_bound(lambda s=server: counters(s.counts(b)[0]), drifted) == drifted
        recount = subprocess.run(
            [*socialgraph_command(), "recount", "--database-url", postgres_url, "--redis-url", redis.url],
            capture_output=True, text=True, timeout=60,
        )
        assert f"{b} followers: 7 -> 1" in recount.stdout, (recount.stdout, recount.stderr)
        for server in servers:
            assert within_bound(lambda s=server: counters(s.counts(b)[0]), fixed) == fixed
