"""Fixtures of the contract suite. ``storage`` (tests/conftest.py) is one
migrated database per module and backend, shared by the module's tests,
which keep apart by using fresh user ids; ``empty_storage`` is a database of
the same backend of the test's own, for what reads or changes the whole
database (totals, report lists, pruning, listeners)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from storage import SqlStorage, open_storage
from storage.migrate import upgrade

from ..support import temporary_database


@pytest.fixture
def empty_storage(backend: str, tmp_path: Path) -> Iterator[SqlStorage]:
    with temporary_database(backend, tmp_path) as url:
        storage = open_storage(url, pool_size=4)
        upgrade(storage)
        yield storage
        storage.close()


@pytest.fixture
def retryable_error(backend: str) -> DBAPIError:
    """What the backend's driver raises on a transient conflict (a
    serialization failure; a busy SQLite file), as SQLAlchemy wraps it."""
    if backend == "sqlite":
        return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    return OperationalError("UPDATE", {}, psycopg.errors.SerializationFailure("could not serialize access"))


@pytest.fixture
def lost_connection_error(backend: str) -> DBAPIError:
    """What the backend's driver raises when the database went away."""
    if backend == "sqlite":
        return OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))
    return OperationalError("SELECT", {}, psycopg.errors.AdminShutdown("terminating connection"))
