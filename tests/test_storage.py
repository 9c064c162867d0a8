"""The schema and counters, on every backend: migrations produce exactly the
declared schema, and ``recount`` agrees with the counters kept in step."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.migrate import head, upgrade
from storage.schema import metadata

from .support import BACKENDS, new_user, temporary_database


@pytest.fixture(params=BACKENDS)
def fresh(request, tmp_path):
    with temporary_database(request.param, tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        yield storage
        storage.close()


def test_migrations_build_the_declared_schema(fresh):
    assert upgrade(fresh) == (None, head())
    with fresh.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent(fresh):
    upgrade(fresh)
    assert upgrade(fresh) == (head(), head())


def test_database_refuses_a_second_pending_request_for_a_pair(fresh):
    upgrade(fresh)
    a, b = sorted((new_user(), new_user()))
    insert = text(
        "INSERT INTO connection_requests (request_id, requester_id, recipient_id, user_low, user_high, created_us)"
        " VALUES (:id, :req, :rec, :low, :high, 1)"
    )
    with fresh.engine.connect() as conn:
        conn.execute(insert, {"id": "r1", "req": a, "rec": b, "low": a, "high": b})
        with pytest.raises(Exception, match="(?i)unique"):
            conn.execute(insert, {"id": "r2", "req": b, "rec": a, "low": a, "high": b})


def test_database_refuses_self_edges(fresh):
    upgrade(fresh)
    a = new_user()
    with fresh.engine.connect() as conn, pytest.raises(Exception, match="(?i)check"):
        conn.execute(
            text("INSERT INTO follows (follower_id, followee_id, created_us) VALUES (:a, :a, 1)"), {"a": a}
        )


def _graph(storage) -> Graph:
    return Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(connection_limit=10))


def test_counters_agree_with_recount_after_every_kind_of_write(fresh):
    upgrade(fresh)
    graph = _graph(fresh)
    a, b, c, d = (new_user() for _ in range(4))
    graph.follow(a, b)
    graph.send_connection_request(a, c, "hi")
    graph.send_connection_request(c, a, "")  # crossing: connects
    graph.send_connection_request(b, d, "")
    graph.send_connection_request(d, c, "")
    graph.block(c, d, "spam")
    graph.remove_follower(b, a)
    graph.delete_user(b)
    assert graph.recount() == []


def test_recount_fixes_drifted_counters(fresh):
    upgrade(fresh)
    graph = _graph(fresh)
    a, b = new_user(), new_user()
    graph.follow(a, b)
    graph.block(a, new_user(), "")
    with fresh.engine.begin() as conn:
        conn.execute(
            text("UPDATE user_counters SET followers = 7, blocked = 0 WHERE user_id IN (:a, :b)"), {"a": a, "b": b}
        )
    fixes = {(f.user_id, f.column): (f.stored, f.actual) for f in graph.recount()}
    assert fixes == {(a, "followers"): (7, 0), (b, "followers"): (7, 1), (a, "blocked"): (0, 1)}
    assert graph.recount() == []
    [ca, cb] = graph.get_counts([a, b])
    assert (ca.followers, ca.blocked, cb.followers) == (0, 1, 1)


def test_sqlite_syncs_every_commit_to_disk(tmp_path):
    """I6 on power loss: in WAL mode, synchronous=NORMAL may lose the last
    acknowledged commits; FULL syncs the log at every commit."""
    storage = open_storage(f"sqlite:///{tmp_path}/durable.db", pool_size=2)
    try:
        with storage.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        storage.close()
