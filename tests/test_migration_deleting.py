"""Migration 0006: a deletion in progress when it runs marks its user's
counter row, so writers that lock the row refuse the user at once."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage import open_storage
from storage.migrate import head, upgrade

from .support import BACKENDS, temporary_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_deletions_in_progress_are_marked_on_their_counter_rows(backend, tmp_path):
    with temporary_database(backend, tmp_path) as url:
        storage = open_storage(url, pool_size=2)
        try:
            upgrade(storage, "0005_deletion")
            with storage.engine.begin() as conn:
                conn.execute(text("INSERT INTO user_counters (user_id) VALUES ('with-row'), ('bystander')"))
                conn.execute(
                    text(
                        "INSERT INTO user_jobs (user_id, kind, created_us) VALUES "
                        "('with-row', 1, 1), ('without-row', 1, 1), ('bystander', 2, 1)"
                    )
                )
            assert upgrade(storage) == ("0005_deletion", head())
            with storage.engine.connect() as conn:
                rows = conn.execute(text("SELECT user_id, deleting FROM user_counters ORDER BY user_id")).all()
            assert [(user_id, bool(deleting)) for user_id, deleting in rows] == [
                ("bystander", False),
                ("with-row", True),
                ("without-row", True),
            ]
            deleting = storage.read_write(lambda tx: (tx.lock_users(["with-row", "without-row", "bystander"]),
                                                      tx.deleting(["with-row", "without-row", "bystander"]))[1])
            assert deleting == {"with-row", "without-row"}
        finally:
            storage.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tombstone_added_by_an_earlier_version_marks_the_counter_row(backend, tmp_path):
    """During a rolling deploy a process of an earlier version may start a
    deletion: it adds the tombstone alone; the row is marked all the same."""
    with temporary_database(backend, tmp_path) as url:
        storage = open_storage(url, pool_size=2)
        try:
            upgrade(storage)
            with storage.engine.begin() as conn:
                conn.execute(text("INSERT INTO user_counters (user_id, followers) VALUES ('with-row', 3)"))
                conn.execute(
                    text("INSERT INTO user_jobs (user_id, kind, created_us) VALUES ('with-row', 1, 1), "
                         "('without-row', 1, 1), ('promoted', 2, 1)")
                )
            deleting = storage.read_write(lambda tx: (tx.lock_users(["with-row", "without-row", "promoted"]),
                                                      tx.deleting(["with-row", "without-row", "promoted"]))[1])
            assert deleting == {"with-row", "without-row"}
            with storage.engine.connect() as conn:
                followers = conn.execute(text("SELECT followers FROM user_counters WHERE user_id = 'with-row'"))
                assert followers.scalar_one() == 3, "the mark changes nothing else"
        finally:
            storage.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrading_0006_removes_the_mark_and_its_trigger(backend, tmp_path):
    from alembic import command

    from storage.migrate import _config

    with temporary_database(backend, tmp_path) as url:
        storage = open_storage(url, pool_size=2)
        try:
            upgrade(storage)
            config = _config()
            with storage.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.downgrade(config, "0005_deletion")
            with storage.engine.begin() as conn:
                conn.execute(text("INSERT INTO user_jobs (user_id, kind, created_us) VALUES ('x', 1, 1)"))
            assert upgrade(storage) == ("0005_deletion", head())
        finally:
            storage.close()
