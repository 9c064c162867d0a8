"""On PostgreSQL a write sends what no rule waits on before its commit (its
counter changes and its events) in the COMMIT's own message, as EXECUTEs of
statements prepared once per connection: two round trips fewer per write.
psycopg deallocates every prepared statement of a connection it rolls back;
the write path prepares them again instead of failing."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, PermissionDenied, Policy
from storage import SqlStorage, open_storage
from storage.migrate import upgrade

from .support import POSTGRES_DSN, messages_sent, new_user, temporary_database

pytestmark = pytest.mark.postgres


@contextlib.contextmanager
def one_connection(tmp_path: Path) -> Iterator[tuple[SqlStorage, Graph, Any]]:
    """A storage whose pool holds one connection, a graph on it, and that
    connection's driver object (so every call below runs on it)."""
    with temporary_database("postgres", tmp_path) as url:
        storage = open_storage(url, pool_size=1)
        try:
            upgrade(storage)
            graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy())
            raw = storage.engine.raw_connection()
            driver = raw.driver_connection
            raw.close()
            yield storage, graph, driver
        finally:
            storage.close()


def prepared(driver: Any) -> dict[str, str]:
    """The statements prepared on the pool's connection, by name, read
    outside a transaction (a rollback would deallocate them)."""
    driver.autocommit = True
    try:
        rows = driver.execute("SELECT name, statement FROM pg_prepared_statements").fetchall()
    finally:
        driver.autocommit = False
    return {name: statement for name, statement in rows}


def commits(sent: list[str]) -> list[str]:
    return [message for message in sent if "COMMIT" in message]


def test_a_follow_sends_its_counter_changes_and_event_in_the_commits_message(tmp_path: Path) -> None:
    with one_connection(tmp_path) as (storage, graph, driver):
        follower, followee = new_user(), new_user()
        graph.follow(follower, followee)  # prepares them, and makes both users' counter rows
        graph.unfollow(follower, followee)
        with messages_sent(driver.pgconn) as sent:
            graph.follow(follower, followee)
        (commit,) = commits(sent)
        executed = re.findall(r"EXECUTE (\w+)", commit)
        statements = prepared(driver)
        assert len(executed) == 2, commit
        assert "UPDATE user_counters" in statements[executed[0]]
        assert "INSERT INTO events" in statements[executed[1]]
        assert commit.index("EXECUTE") < commit.index("COMMIT")
        # BEGIN, the users' lock, the pair, the follow, the commit's message.
        round_trips = [message for message in sent if re.match(r"F\t\d+\t(Query|Sync)\b", message)]
        assert len(round_trips) == 5, sent
        counts = {c.user_id: c for c in graph.get_counts([follower, followee])}
        assert (counts[follower].following, counts[followee].followers) == (1, 1)


def test_a_write_after_a_rollback_prepares_its_statements_again_before_its_commit(tmp_path: Path) -> None:
    with one_connection(tmp_path) as (storage, graph, driver):
        alice, bob = new_user(), new_user()
        for _ in range(3):  # psycopg prepares a statement of its own on its fifth run
            graph.follow(alice, bob)
            graph.unfollow(alice, bob)
        graph.block(bob, alice, "")
        with pytest.raises(PermissionDenied):
            graph.follow(alice, bob)  # refused: rolled back, and psycopg sends DEALLOCATE ALL
        assert not any(name.startswith("socialgraph_") for name in prepared(driver))
        with messages_sent(driver.pgconn) as sent:
            carol = new_user()
            graph.follow(carol, bob)
        assert len(commits(sent)) == 1, "the commit's message failed and the write ran again"
        assert any("PREPARE socialgraph_" in message for message in sent)
        assert graph.get_relationship(carol, bob).following


def test_a_statement_deallocated_behind_the_storages_back_costs_a_rerun_not_the_write(tmp_path: Path) -> None:
    with one_connection(tmp_path) as (storage, graph, driver):
        graph.follow(new_user(), new_user())
        ours = [name for name in prepared(driver) if name.startswith("socialgraph_")]
        assert ours
        driver.autocommit = True
        for name in ours:
            driver.execute(f"DEALLOCATE {name}")
        driver.autocommit = False
        follower, followee = new_user(), new_user()
        assert graph.follow(follower, followee)[0]
        counts = {c.user_id: c for c in graph.get_counts([follower, followee])}
        assert (counts[follower].following, counts[followee].followers) == (1, 1)


def test_refused_writes_between_writes_never_leave_a_statement_prepared_twice(tmp_path: Path) -> None:
    """A rollback deallocates the statements only when psycopg has prepared
    some of its own; taking them for gone would PREPARE them again over
    themselves."""
    with one_connection(tmp_path) as (_storage, graph, _driver):
        a, b, c, d = (new_user() for _ in range(4))
        graph.follow(c, d)
        graph.block(b, a, "")
        for _ in range(2):
            with pytest.raises(PermissionDenied):
                graph.follow(a, b)
            graph.unfollow(c, d)
            assert graph.follow(c, d)[0]
        assert graph.get_relationship(c, d).following


def test_a_pooled_connection_that_died_is_replaced_and_the_write_runs(tmp_path: Path) -> None:
    with one_connection(tmp_path) as (storage, graph, driver):
        a, b = new_user(), new_user()
        graph.follow(a, b)
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (driver.info.backend_pid,))
        graph.unfollow(a, b)
        assert not graph.get_relationship(a, b).following
