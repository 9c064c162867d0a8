"""The storage's execution path (storage/sql/run.py), on every backend: lists
expand to as many values as given, dialect-specific statements take their
dialect's form, and driver errors reach the transaction runner as
SQLAlchemy's exception classes, a dead connection invalidated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import bindparam, exc, select

from storage import SqlStorage, open_storage
from storage.migrate import upgrade
from storage.schema import follows, service_keys, user_counters
from storage.sql.run import Runner, Statement, id_list, matches

from .support import BACKENDS, POSTGRES_DSN, new_user, temporary_database

_COUNTERS_OF = Statement(
    select(user_counters.c.user_id)
    .where(user_counters.c.user_id.in_(bindparam("ids", expanding=True)))
    .order_by(user_counters.c.user_id)
)
# The same list twice in one statement.
_EITHER_SIDE = Statement(
    select(follows.c.follower_id, follows.c.followee_id).where(
        follows.c.follower_id.in_(bindparam("ids", expanding=True)),
        follows.c.followee_id.in_(bindparam("ids", expanding=True)),
    )
)
_ADD_KEY = Statement(
    lambda insert: insert(service_keys)
    .values(name=bindparam("name"), value=bindparam("value"))
    .on_conflict_do_nothing(index_elements=["name"])
)
_INSERT_FOLLOW = Statement(follows.insert())
_COUNTERS_AMONG = Statement(
    select(user_counters.c.user_id)
    .where(matches(user_counters.c.user_id, id_list("ids")))
    .order_by(user_counters.c.user_id)
)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStorage]:
    with temporary_database(request.param, tmp_path) as url:
        storage = open_storage(url, pool_size=2)
        upgrade(storage)
        yield storage
        storage.close()


def test_expanding_lists_take_every_length(storage: SqlStorage) -> None:
    users = sorted(new_user() for _ in range(5))
    storage.read_write(lambda tx: tx.lock_users(users))
    with storage.engine.begin() as conn:
        run = Runner(conn)
        for n in (1, 3, 5, 2):
            assert [row.user_id for row in run.rows(_COUNTERS_OF, {"ids": users[:n]})] == users[:n]
        with pytest.raises(ValueError, match="at least one value"):
            run.rows(_COUNTERS_OF, {"ids": []})


def test_a_list_bound_twice_expands_in_both_places(storage: SqlStorage) -> None:
    a, b, c = (new_user() for _ in range(3))
    with storage.engine.begin() as conn:
        run = Runner(conn)
        assert run.run(_INSERT_FOLLOW, [
            {"follower_id": a, "followee_id": b, "created_us": 1},
            {"follower_id": b, "followee_id": c, "created_us": 2},
            {"follower_id": c, "followee_id": new_user(), "created_us": 3},
        ]) == 3
        rows = run.rows(_EITHER_SIDE, {"ids": [a, b, c]})
    assert sorted((row.follower_id, row.followee_id) for row in rows) == sorted([(a, b), (b, c)])


def test_a_statement_takes_its_dialects_insert(storage: SqlStorage) -> None:
    with storage.engine.begin() as conn:
        run = Runner(conn)
        assert run.run(_ADD_KEY, {"name": "k", "value": "first"}) == 1
        assert run.run(_ADD_KEY, {"name": "k", "value": "second"}) == 0  # ON CONFLICT DO NOTHING
        assert run.value(Statement(select(service_keys.c.value).where(service_keys.c.name == "k"))) == "first"


def test_a_constraint_violation_is_sqlalchemys_integrity_error(storage: SqlStorage) -> None:
    a, b = new_user(), new_user()
    row = {"follower_id": a, "followee_id": b, "created_us": 1}
    with storage.engine.begin() as conn:
        run = Runner(conn)
        run.run(_INSERT_FOLLOW, row)
        with pytest.raises(exc.IntegrityError) as raised:
            run.run(_INSERT_FOLLOW, row)
    assert isinstance(raised.value.orig, conn.dialect.loaded_dbapi.IntegrityError)
    assert not raised.value.connection_invalidated
    assert "INSERT INTO follows" in str(raised.value.statement)


@pytest.mark.postgres
def test_a_dead_connection_is_invalidated_and_marked(tmp_path: Path) -> None:
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=1)
        try:
            upgrade(storage)
            with storage.engine.connect() as conn:
                run = Runner(conn)
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(exc.OperationalError) as raised:
                    run.rows(_COUNTERS_OF, {"ids": [new_user()]})
                assert raised.value.connection_invalidated
                assert conn.invalidated
            # The pool hands out a fresh connection: the storage works on.
            assert storage.read_only(lambda tx: tx.counts([new_user()])) == {}
        finally:
            storage.close()


def test_an_id_list_takes_every_length_and_none(storage: SqlStorage) -> None:
    users = sorted(new_user() for _ in range(5))
    storage.read_write(lambda tx: tx.lock_users(users))
    with storage.engine.begin() as conn:
        run = Runner(conn)
        for n in (1, 3, 5, 2):
            assert [row.user_id for row in run.rows(_COUNTERS_AMONG, {"ids": users[:n]})] == users[:n]
        if storage.engine.dialect.name == "postgresql":
            assert run.rows(_COUNTERS_AMONG, {"ids": []}) == []


@pytest.mark.postgres
def test_an_id_holding_the_separator_is_refused_not_split(tmp_path: Path) -> None:
    """On PostgreSQL an id list travels as one text PostgreSQL splits at
    commas: an id with a comma in it would match other ids."""
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=1)
        try:
            upgrade(storage)
            a, b = new_user(), new_user()
            storage.read_write(lambda tx: tx.lock_users([a, b]))
            with storage.engine.begin() as conn, pytest.raises(ValueError, match="separates"):
                Runner(conn).rows(_COUNTERS_AMONG, {"ids": [f"{a},{b}"]})
        finally:
            storage.close()
