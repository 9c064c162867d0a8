"""Hot statements run on the driver's cursor.

SQLAlchemy Core defines every statement; running one through a SQLAlchemy
``Connection`` costs more Python than the database spends on it (execution
context, result machinery, parameter processing). A ``Direct`` statement is
compiled once per dialect and then executed straight on the DBAPI cursor of
the transaction's connection, with rows returned as named tuples. Driver
errors are wrapped as SQLAlchemy's ``DBAPIError`` (and a dead connection is
invalidated), so the transaction runner classifies them exactly as it does
errors from ``Connection.execute``.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class _Form:
    """One statement compiled for one dialect."""

    __slots__ = ("sql", "defaults", "positiontup", "expanding", "row", "_sized")

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.defaults = dict(compiled.params)
        self.positiontup: list[str] | None = list(compiled.positiontup) if compiled.positional else None
        self.expanding = frozenset(name for name, bind in compiled.binds.items() if bind.expanding)
        if hasattr(stmt, "selected_columns"):
            keys = list(stmt.selected_columns.keys())
        else:
            keys = [column["name"] for column in getattr(stmt, "returning_column_descriptions", ())]
        self.row = namedtuple("Row", keys, rename=True) if keys else None
        self._sized: dict[tuple[int, ...], str] = {}

    def bind(self, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and driver parameters for ``params``; lists for expanding
        parameters become one placeholder per item."""
        values = {**self.defaults, **params}
        if not self.expanding:
            if self.positiontup is None:
                return self.sql, values
            return self.sql, [values[name] for name in self.positiontup]
        sizes = tuple(len(values[name]) for name in sorted(self.expanding))
        sql = self._sized.get(sizes)
        if sql is None:
            sql = self._sized[sizes] = self._expand(dict(zip(sorted(self.expanding), sizes)))
        if self.positiontup is None:
            flat = {name: value for name, value in values.items() if name not in self.expanding}
            for name in self.expanding:
                flat.update((f"{name}_{i}", item) for i, item in enumerate(values[name]))
            return sql, flat
        flat_list: list = []
        for name in self.positiontup:
            if name in self.expanding:
                flat_list.extend(values[name])
            else:
                flat_list.append(values[name])
        return sql, flat_list

    def _expand(self, sizes: dict[str, int]) -> str:
        sql = self.sql
        for name, size in sizes.items():
            if not size:
                raise ValueError(f"expanding parameter {name!r} needs at least one value")
            if self.positiontup is None:
                marks = ", ".join(f"%({name}_{i})s" for i in range(size))
            else:
                marks = ", ".join("?" * size)
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks)
        return sql


class Direct:
    """A Core statement run on the DBAPI cursor, compiled once per dialect."""

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._forms: dict[str, _Form] = {}
        self._lock = threading.Lock()

    def form(self, dialect: Dialect) -> _Form:
        found = self._forms.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._forms.setdefault(dialect.name, _Form(self.stmt, dialect))
        return found


class DirectCursor:
    """Runs ``Direct`` statements inside the transaction of ``conn``."""

    __slots__ = ("_conn", "_dialect", "_cursor", "_errors")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._dialect = conn.dialect
        self._cursor = conn.connection.dbapi_connection.cursor()
        self._errors = self._dialect.loaded_dbapi.Error

    def rows(self, statement: Direct, params: Mapping[str, Any]) -> list:
        """Every row, as named tuples of the statement's columns."""
        form, fetched = self._fetch(statement, params, all_rows=True)
        return [form.row._make(row) for row in fetched] if form.row else fetched

    def first_value(self, statement: Direct, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        _form, row = self._fetch(statement, params, all_rows=False)
        return None if row is None else row[0]

    def run(self, statement: Direct, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
        """Executes (``executemany`` for a list of parameter sets); returns the row count."""
        form = statement.form(self._dialect)
        if isinstance(params, Mapping):
            return self._execute(form, params).rowcount
        sql, first = form.bind(params[0])
        try:
            self._cursor.executemany(sql, [first, *(form.bind(p)[1] for p in params[1:])])
        except self._errors as exc:
            self._raise(exc, sql, params)
        return self._cursor.rowcount

    def _fetch(self, statement: Direct, params: Mapping[str, Any], *, all_rows: bool) -> tuple[_Form, Any]:
        form = statement.form(self._dialect)
        cursor = self._execute(form, params)
        try:
            return form, cursor.fetchall() if all_rows else cursor.fetchone()
        except self._errors as exc:
            self._raise(exc, form.sql, params)

    def _execute(self, form: _Form, params: Mapping[str, Any]):
        sql, bound = form.bind(params)
        try:
            self._cursor.execute(sql, bound)
        except self._errors as exc:
            self._raise(exc, sql, params)
        return self._cursor

    def _raise(self, exc: Exception, sql: str, params) -> None:
        """As SQLAlchemy would: a disconnect invalidates the connection."""
        dbapi_conn = self._conn.connection.dbapi_connection
        disconnect = self._dialect.is_disconnect(exc, dbapi_conn, self._cursor)
        if disconnect:
            self._conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, self._errors, connection_invalidated=disconnect, dialect=self._dialect
        ) from exc
