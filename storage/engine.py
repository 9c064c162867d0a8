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
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .errors import StorageConflict, StorageUnavailable
from .positions import Positions, decode_token, encode_token
from .sql import SqlTx
from .sql.run import forget_prepared
from .types import CountersListener, VersionedCounts
from .watchdog import Watchdog

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine.interfaces import DBAPIConnection

T = TypeVar("T")

log = logging.getLogger(__name__)

# serialization_failure, deadlock_detected, and invalid_sql_statement_name:
# a statement the COMMIT's message EXECUTEs was deallocated under it
# (``Runner.commit``), which nothing committed and a rerun prepares again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "26000"})
MAX_ATTEMPTS = 8
_WRITE = "socialgraph_write"


class SqlStorage:
    """``Storage`` over a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, deadline: float | None = None) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._listeners: list[CountersListener] = []
        self._event_listeners: list[Callable[[], None]] = []
        self._deadline = deadline
        self._watchdog = Watchdog() if deadline and self._postgres else None
        self.positions = Positions(strict=self._postgres)
        self._identity: str | None = None
        self._last = threading.local()

    # ------------------------------------------------------ commit positions

    @property
    def identity(self) -> str:
        """The database's identity (made by its migration)."""
        if self._identity is None:
            self._identity = self.read_only(lambda tx: tx.identity())
        return self._identity

    def last_token(self) -> str:
        """The consistency token of the calling thread's last committed write;
        empty if its position could not be read."""
        position = getattr(self._last, "position", None)
        return "" if position is None else self.token_at(position)

    def token_at(self, position: int) -> str:
        return encode_token(self.identity, position)

    def token_position(self, token: str) -> int:
        """The position ``token`` names; InvalidToken unless it is this database's."""
        return decode_token(token, self.identity)

    def observe_position(self) -> None:
        """Reads the commit position now and records it in ``positions``."""
        self.positions.saw(self.read_only(lambda tx: tx.position()))

    def on_counters_committed(self, listener: CountersListener) -> None:
        self._listeners.append(listener)

    def on_events_committed(self, listener: Callable[[], None]) -> None:
        self._event_listeners.append(listener)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read_write(self, fn: Callable[[SqlTx], T]) -> T:
        return self._run(fn, write=True)

    def read_only(self, fn: Callable[[SqlTx], T]) -> T:
        return self._run(fn, write=False)

    def ping(self) -> None:
        self._run(lambda tx: tx.ping(), write=False)

    def close(self) -> None:
        self.engine.dispose()

    def _notify(self, touched: dict[str, VersionedCounts]) -> None:
        """The transaction has committed: whatever a listener does, the call succeeds."""
        for listener in self._listeners:
            try:
                listener(touched)
            except Exception:
                log.exception("counters listener failed after commit")

    def _run(self, fn: Callable[[SqlTx], T], *, write: bool) -> T:
        """Runs ``fn`` in one transaction. Reruns it after a transient
        conflict, and once after a pooled connection that died before COMMIT
        was sent (it went stale while idle). Failing to connect, a death
        during COMMIT, or overrunning the deadline is StorageUnavailable."""
        stale_retried = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            connected = committing = overran = False
            try:
                with self.engine.connect() as conn:
                    connected = True
                    ticket = self._arm(conn)
                    autocommit = self._postgres and not write
                    try:
                        conn.execution_options(**{_WRITE: write})
                        tx = SqlTx(conn, postgres=self._postgres)
                        if autocommit:
                            # PostgreSQL reads run in autocommit: no BEGIN/COMMIT
                            # round trips; each statement still sees one snapshot.
                            _dbapi(conn).autocommit = True
                        with conn.begin():
                            result = fn(tx)
                            position = tx.bump_position() if write and not self._postgres else None
                            tx.flush(position)
                            # Only a write's COMMIT sends what was held back for it.
                            assert write or not tx.held_back(), "a read changed counters or emitted events"
                            committing = True
                            committed = tx.commit() if write else None
                            if committed is not None:
                                position = committed
                        tx.committed_at = time.monotonic()
                        if write:
                            position = self._committed_at(conn, tx, position)
                    finally:
                        watchdog = self._watchdog
                        overran = ticket is not None and watchdog is not None and not watchdog.disarm(ticket)
                        if autocommit:
                            _end_autocommit(conn)
            except DBAPIError as exc:
                if _is_transient(exc) and attempt < MAX_ATTEMPTS:
                    log.debug("transient conflict, attempt %d: %s", attempt, exc.orig)
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))
                    continue
                if _is_transient(exc):
                    raise StorageConflict(str(exc.orig).strip()) from exc
                if not _is_unavailable(exc):
                    raise
                if connected and not (committing or overran or stale_retried):
                    stale_retried = True
                    continue
                raise StorageUnavailable(str(exc.orig).strip()) from exc
            if tx.touched:
                self._notify(tx.touched)
            if tx.emitted:
                for wake in self._event_listeners:
                    wake()
            return result
        raise AssertionError("unreachable")

    def _committed_at(self, conn: Connection, tx: SqlTx, position: int | None) -> int | None:
        """Records a committed write's position for ``last_token`` and
        ``positions``: SQLite's counter as bumped, PostgreSQL's WAL position
        as read in the COMMIT's message (``Reads.commit``), or read now when
        that read failed. A failure to read it fails nothing: the write is
        committed."""
        if position is None:
            try:
                _dbapi(conn).autocommit = True
                position = tx.position()
            except Exception as exc:
                log.warning("could not read the commit position after a write: %s", exc)
            finally:
                _end_autocommit(conn)
        self._last.position = position
        if position is not None:
            self.positions.saw(position)
        return position

    def _arm(self, conn: Connection) -> int | None:
        if self._watchdog is None or self._deadline is None:
            return None
        # The watchdog runs on PostgreSQL only, whose driver is psycopg.
        fileno = cast("psycopg.Connection[Any]", conn.connection.driver_connection).pgconn.socket
        return self._watchdog.arm(fileno, self._deadline)


def _dbapi(conn: Connection) -> DBAPIConnection:
    """The driver's connection under ``conn`` (there while ``conn`` is open)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi


def _end_autocommit(conn: Connection) -> None:
    """Puts a reader's connection back in transaction mode; one that cannot
    be (it broke during the read) is discarded instead of pooled."""
    if conn.invalidated:
        return
    try:
        _dbapi(conn).autocommit = False
    except Exception as exc:
        conn.invalidate(exc)


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
    return isinstance(exc, (OperationalError, InterfaceError))


def open_storage(url: str, *, pool_size: int = 16, deadline: float | None = None) -> SqlStorage:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).
    With ``deadline``, a PostgreSQL transaction still waiting on the database
    after that many seconds has its connection closed under it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"timeout": 10},
        )
        _configure_sqlite(engine)
        deadline = None  # a local file: waits are for its lock, bounded by busy_timeout
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            # No pre-ping: a stale connection fails its first statement and
            # the transaction reruns once on a fresh one (see _run).
            pool_timeout=10,
            connect_args={
                "connect_timeout": 5,
                # A database that goes silent (a partition, not a refusal)
                # fails calls within seconds instead of hanging them.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 2,
                "tcp_user_timeout": 10_000,
            },
        )
        _forget_prepared_on_rollback(engine)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:// or postgresql://")
    return SqlStorage(engine, deadline=deadline)


def _forget_prepared_on_rollback(engine: Engine) -> None:
    """psycopg deallocates every prepared statement of a connection it rolls
    back (when it has prepared some of its own), the ones the COMMIT's
    message EXECUTEs too (``Runner.commit``): which of them are there is
    forgotten first, and asked of PostgreSQL when next needed."""

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        if not conn.invalidated:  # an invalidated one is discarded, with its statements
            forget_prepared(conn.connection.dbapi_connection)

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_conn: Any, _record: object, _state: object) -> None:
        forget_prepared(dbapi_conn)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
