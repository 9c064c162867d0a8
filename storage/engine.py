"""Engines and the transaction runner.

SQLite runs in WAL mode; a write transaction starts with ``BEGIN IMMEDIATE``
so writers queue on the database lock instead of failing when they upgrade.
PostgreSQL runs at READ COMMITTED; writes serialise per user through row
locks on ``user_counters`` (see ``SqlTx.lock_users``). Serialization failures,
deadlocks and a busy SQLite file rerun the whole unit of work.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import Callable, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .errors import StorageConflict, StorageUnavailable
from .sql import SqlTx
from .types import CountersListener

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
MAX_ATTEMPTS = 8
_WRITE = "socialgraph_write"


class SqlStorage:
    """``Storage`` over a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._listeners: list[CountersListener] = []

    def on_counters_committed(self, listener: CountersListener) -> None:
        self._listeners.append(listener)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read_write(self, fn: Callable[[SqlTx], T]) -> T:
        return self._run(fn, write=True)

    def read_only(self, fn: Callable[[SqlTx], T]) -> T:
        return self._run(fn, write=False)

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise StorageUnavailable(str(exc.orig)) from exc

    def close(self) -> None:
        self.engine.dispose()

    def _notify(self, touched) -> None:
        """The transaction has committed: whatever a listener does, the call succeeds."""
        for listener in self._listeners:
            try:
                listener(touched)
            except Exception:
                log.exception("counters listener failed after commit")

    def _run(self, fn: Callable[[SqlTx], T], *, write: bool) -> T:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(**{_WRITE: write})
                    tx = SqlTx(conn, postgres=self._postgres)
                    with conn.begin():
                        result = fn(tx)
                if tx.touched:
                    self._notify(tx.touched)
                return result
            except DBAPIError as exc:
                if not _is_transient(exc):
                    if _is_unavailable(exc):
                        raise StorageUnavailable(str(exc.orig).strip()) from exc
                    raise
                if attempt == MAX_ATTEMPTS:
                    raise StorageConflict(str(exc.orig).strip()) from exc
                log.debug("transient conflict, attempt %d: %s", attempt, exc.orig)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")


def _is_transient(exc: DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and (
        "locked" in str(orig) or "busy" in str(orig)
    )


def _is_unavailable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    # 08: connection exception; 57P: operator intervention (shutdown, terminate).
    if sqlstate.startswith(("08", "57P")):
        return True
    return type(exc.orig).__name__ == "OperationalError"


def open_storage(url: str, *, pool_size: int = 16) -> SqlStorage:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"timeout": 10},
        )
        _configure_sqlite(engine)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            pool_pre_ping=True,
            pool_timeout=10,
            connect_args={"connect_timeout": 5},
        )
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:// or postgresql://")
    return SqlStorage(engine)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(_WRITE, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
