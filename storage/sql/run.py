"""How ``SqlTx`` runs a statement: the one execution path.

Every statement is a SQLAlchemy Core construct built once at import, compiled
once per dialect (``ClauseElement.compile``) and run on the DBAPI cursor of the
transaction's connection, with rows returned as named tuples. A SQLAlchemy
``Connection.execute`` costs more Python than the database spends on these
statements (cache key, execution context, result machinery), so the path
skips it, using only SQLAlchemy's public API:

* parameters lists for expanding parameters (``bindparam(..., expanding=True)``)
  are expanded by the compiler (``SQLCompiler.construct_expanded_state``), once
  per combination of list lengths;
* a driver error becomes the ``sqlalchemy.exc`` class of its PEP 249 class,
  and a disconnect (``Dialect.is_disconnect``) invalidates the connection
  (``Connection.invalidate``), as ``Connection.execute`` does, so the
  transaction runner classifies errors from both alike.

A statement whose form depends on the dialect (``INSERT ... ON CONFLICT``)
is given as a function of the dialect's ``insert``. A list of ids
(``id_list``, ``matches``) is one array parameter on PostgreSQL, so such a
statement's text, and the driver's prepared statement, is the same for every
length, and expanded elsewhere: one statement serves both.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Boolean, ColumnElement, Connection, String, any_, bindparam, cast, exc, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.compiler import SQLCompiler

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Build = Callable[[Callable[..., Any]], ClauseElement]

_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# PEP 249's exception classes, most specific first, and SQLAlchemy's wrapper of each.
_WRAPPERS: tuple[tuple[str, type[exc.DBAPIError]], ...] = (
    ("IntegrityError", exc.IntegrityError),
    ("DataError", exc.DataError),
    ("ProgrammingError", exc.ProgrammingError),
    ("NotSupportedError", exc.NotSupportedError),
    ("InternalError", exc.InternalError),
    ("OperationalError", exc.OperationalError),
    ("DatabaseError", exc.DatabaseError),
    ("InterfaceError", exc.InterfaceError),
)


class Committed(NamedTuple):
    """What ``Runner.commit`` read: the rows of each statement sent ahead of
    the COMMIT, those of the one sent last before it (``held``), how long
    PostgreSQL took from just before that one to just after the COMMIT
    (None without one), and the value read after."""

    ahead: list[list[Any]]
    rows: list[Any]
    held: float | None
    value: Any  # None when the read after the COMMIT failed


def _only(row: Any) -> Any:
    """The one value of a one-column row that must be there."""
    assert row is not None
    return row[0]


class _Shape:
    """The SQL for one combination of expanded list lengths, with the names
    its parameters go by."""

    __slots__ = ("sql", "positiontup", "expansion")

    def __init__(self, sql: str, positiontup: Sequence[str] | None, expansion: Mapping[str, list[str]]) -> None:
        self.sql = sql
        self.positiontup = list(positiontup) if positiontup is not None else None
        self.expansion = expansion


class IdList:
    """A parameter that takes a list of ids (``id_list``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def id_list(name: str) -> IdList:
    """A parameter that takes a list of ids, matched with ``matches``: on
    PostgreSQL one array parameter (``= ANY(...)``), so the statement's text
    is the same for every length and the driver parses and prepares it once;
    elsewhere expanded into ``IN (...)``, one parameter per id."""
    return IdList(name)


def matches(column: ColumnElement[Any], value: ColumnElement[Any] | IdList) -> ColumnElement[bool]:
    """``column`` equals ``value``, or is one of its ids when ``value`` is an ``id_list``."""
    if isinstance(value, IdList):
        return _InIds(column, value.name)
    return column == value


class _InIds(ColumnElement[bool]):
    """``column`` is one of the ids of the list parameter ``name``, in the
    form of the dialect it is compiled for."""

    inherit_cache = False
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" on SQLite

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


@compiles(_InIds)
def _in_ids(element: _InIds, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw))


@compiles(_InIds, "postgresql")
def _any_id(element: _InIds, compiler: Any, **kw: Any) -> str:
    # The ids travel as one text, split by PostgreSQL: psycopg dumps a
    # list into an array parameter in Python, item by item (a quarter of a
    # 500-id FilterInteractable's time), a text in C (``_Form.bind`` joins).
    array = cast(func.string_to_array(bindparam(element.name, type_=String), _ID_SEPARATOR), ARRAY(String))
    return str(compiler.process(element.column == any_(array), **kw))


_ID_SEPARATOR = ","


def _joined(name: str, ids: Sequence[str]) -> str:
    """The ids of the list parameter ``name`` as the text PostgreSQL splits."""
    text = _ID_SEPARATOR.join(ids)
    if ids and text.count(_ID_SEPARATOR) != len(ids) - 1:
        raise ValueError(f"an id of {name!r} holds {_ID_SEPARATOR!r}, which separates them")
    return text


class _Form:
    """One statement compiled for one dialect."""

    __slots__ = ("_compiled", "defaults", "expanding", "_shapes", "row", "name", "_numbered", "_joined")

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        # The name of its server-side prepared statement (``Runner.commit``).
        self.name = f"{_PREFIX}{next(_FORM_NUMBERS)}"
        self._numbered: tuple[str, list[str]] | None = None
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        # Values of literals and of bindparams given one; None for the rest.
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.expanding = tuple(sorted(name for name, bind in compiled.binds.items() if bind.expanding))
        # The id lists sent as one text (PostgreSQL's form of ``matches``).
        self._joined = (
            tuple(sorted({node.name for node in visitors.iterate(stmt) if isinstance(node, _InIds)}))
            if dialect.name == "postgresql"
            else ()
        )
        self._shapes: dict[tuple[int, ...], _Shape] = {}
        self.row: Callable[..., Any] | None = None  # set from the first result's description
        if not self.expanding:
            self._shapes[()] = self._shape(())

    def _shape(self, sizes: tuple[int, ...]) -> _Shape:
        sample = dict(self.defaults)
        for name, size in zip(self.expanding, sizes, strict=True):
            if not size:
                raise ValueError(f"expanding parameter {name!r} needs at least one value")
            sample[name] = [None] * size
        state = self._compiled.construct_expanded_state(sample)
        return _Shape(state.statement, state.positiontup, state.parameter_expansion)

    def numbered(self) -> tuple[str, list[str]]:
        """PostgreSQL: the statement with numbered parameters ($1, $2...),
        as PREPARE takes it, and the name of each number's parameter."""
        if self._numbered is None:
            sql = self._shapes[()].sql
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match[1] is None:
                    return "%"  # an escaped percent sign
                if match[1] not in names:
                    names.append(match[1])
                return f"${names.index(match[1]) + 1}"

            self._numbered = (_PYFORMAT.sub(number, sql), names)
        return self._numbered

    def values(self, params: Params) -> dict[str, Any]:
        """Every parameter's value: ``params`` over the defaults, id lists joined."""
        values = {**self.defaults, **params}
        for name in self._joined:
            values[name] = _joined(name, values[name])
        return values

    def bind(self, params: Params) -> tuple[str, Any]:
        """The SQL and the driver's parameters for ``params``."""
        values = self.values(params)
        if self.expanding:
            sizes = tuple(len(values[name]) for name in self.expanding)
            shape = self._shapes.get(sizes)
            if shape is None:
                shape = self._shapes[sizes] = self._shape(sizes)
            for name in self.expanding:
                values.update(zip(shape.expansion[name], values.pop(name), strict=True))
        else:
            shape = self._shapes[()]
        if shape.positiontup is None:
            return shape.sql, values
        return shape.sql, [values[name] for name in shape.positiontup]


class Statement:
    """A Core statement, compiled once per dialect on first use."""

    __slots__ = ("_build", "_forms", "_lock")

    def __init__(self, stmt: ClauseElement | Build) -> None:
        self._build = stmt
        self._forms: dict[str, _Form] = {}
        self._lock = threading.Lock()

    def form(self, dialect: Dialect) -> _Form:
        found = self._forms.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._forms.get(dialect.name)
                if found is None:
                    found = self._forms[dialect.name] = _Form(self.construct(dialect.name), dialect)
        return found

    def construct(self, dialect_name: str) -> ClauseElement:
        """The Core statement for a dialect."""
        if isinstance(self._build, ClauseElement):
            return self._build
        return self._build(_INSERTS[dialect_name])


_CLOCK = "SELECT clock_timestamp()"
_FORM_NUMBERS = itertools.count()
# A named parameter of psycopg's paramstyle, or an escaped percent sign.
_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")
_PREFIX = "socialgraph_"
# The statements of this process PREPAREd on each driver connection, by
# name. A connection missing here is asked (``Runner._prepared``).
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_OURS = f"SELECT name FROM pg_prepared_statements WHERE starts_with(name, '{_PREFIX}')"


def forget_prepared(connection: Any) -> None:
    """Forgets which statements are PREPAREd on a driver connection that is
    about to roll back: psycopg then deallocates every prepared statement
    (DEALLOCATE ALL) when it has prepared some of its own, and the next
    commit asks the connection again. A connection with no transaction
    open rolls nothing back and keeps them."""
    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        _PREPARED.pop(connection, None)


def _literals(connection: Any) -> Callable[[Any], str | None]:
    """SQL literals of the common parameter values on ``connection``: text
    quoted by libpq (``PQescapeLiteral``, which knows the connection's
    encoding and quoting rules), numbers and booleans as they print; None
    for any other value (psycopg renders those). psycopg's own rendering of
    each value costs several times as much Python."""
    escape = psycopg.pq.Escaping(connection.pgconn).escape_literal
    encoding = connection.info.encoding

    def literal(value: Any) -> str | None:
        kind = type(value)
        if kind is int:
            return str(value)
        if kind is str and "\x00" not in value:  # libpq would cut it there; psycopg refuses it
            return bytes(escape(value.encode(encoding))).decode(encoding)
        if value is None:
            return "NULL"
        if kind is bool:
            return "true" if value else "false"
        return None

    return literal


def _parameter_type(value: Any) -> str:
    """The type PREPARE declares for a parameter, from a value it takes
    (unknown: PostgreSQL infers it from where the parameter stands)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, list | tuple) and value and all(isinstance(item, str) for item in value):
        return "text[]"
    return "unknown"


class Runner:
    """Runs ``Statement``s inside the transaction of ``conn``."""

    __slots__ = ("_conn", "_dialect", "_cursor", "_dbapi")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._dialect = conn.dialect
        self._cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self._dbapi: Any = self._dialect.loaded_dbapi

    def rows(self, statement: Statement, params: Params | None = None) -> list[Any]:
        """Every row, as named tuples of the statement's columns."""
        form = statement.form(self._dialect)
        fetched = self._fetch(form, params, all_rows=True)
        if not fetched:
            return []
        make = self._row(form)._make
        return [make(row) for row in fetched]

    def first(self, statement: Statement, params: Params | None = None) -> Any:
        """The first row, or None."""
        found = self.rows(statement, params)
        return found[0] if found else None

    def value(self, statement: Statement, params: Params | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self._fetch(statement.form(self._dialect), params, all_rows=False)
        return None if row is None else row[0]

    def run(self, statement: Statement, params: Params | Sequence[Params] | None = None) -> int:
        """Executes (``executemany`` for a list of parameter sets); returns the row count."""
        form = statement.form(self._dialect)
        if params is None or isinstance(params, Mapping):
            self._execute(form, params or {})
            return int(self._cursor.rowcount)
        sql, first = form.bind(params[0])
        bound = [first, *(form.bind(p)[1] for p in params[1:])]
        try:
            self._cursor.executemany(sql, bound)
        except self._dbapi.Error as error:
            raise self._wrapped(error, sql, bound) from error
        return int(self._cursor.rowcount)

    def commit(
        self,
        read: Statement,
        ahead: Sequence[tuple[Statement, Params]] = (),
        held: tuple[Statement, Params] | None = None,
    ) -> Committed:
        """PostgreSQL: COMMITs in one message with what goes with it (a
        simple query of several statements, parameters bound by psycopg on
        the client): ``ahead``, statements whose outcome nothing decides on
        before the commit, in order; ``held``, run last before the COMMIT
        between two reads of PostgreSQL's clock; and ``read``, a value read
        just after it. No step of this process, which may wait for the GIL,
        comes between them, so what ``held`` locks is held for its execution
        and the commit only, and none of them costs a round trip of its own.
        A failing statement fails the rest of the message, the COMMIT with
        it. The statements ahead run as server-side prepared statements
        (``EXECUTE`` with their parameters as literals), so PostgreSQL plans
        none of them again; ``held`` and ``read`` are sent as text."""
        connection: Any = self._conn.connection.dbapi_connection
        cursor = psycopg.ClientCursor(connection)
        forms = [statement.form(self._dialect) for statement, _params in ahead]
        literal = _literals(connection)
        prepared = self._prepared(cursor) if forms else set()
        parts = [
            self._executed(form, params, cursor, literal, prepared)
            for form, (_, params) in zip(forms, ahead, strict=True)
        ]
        held_form = None if held is None else held[0].form(self._dialect)
        if held is not None:
            assert held_form is not None
            parts += [_CLOCK, cursor.mogrify(*held_form.bind(held[1])), "COMMIT", _CLOCK]
        else:
            parts.append("COMMIT")
        parts.append(read.form(self._dialect).bind({})[0])
        sql = "; ".join(parts)
        try:
            cursor.execute(sql)
            rows = [self._result(form, cursor) for form in forms]
            held_rows: list[Any] = []
            before = after = None
            if held_form is not None:
                before = _only(cursor.fetchone())
                cursor.nextset()
                held_rows = self._result(held_form, cursor)
                cursor.nextset()  # the COMMIT
                after = _only(cursor.fetchone())
            cursor.nextset()
            value = _only(cursor.fetchone())
        except self._dbapi.Error as error:
            if not connection.broken and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                # The COMMIT went through (a failed statement before it would
                # have left the transaction failed, and with no deferred
                # constraint only a lost connection fails a COMMIT): what
                # followed it failed. The write stands, without what was read.
                log.warning("a read after COMMIT failed; the write is committed: %s", error)
                return Committed([[] for _ in forms], [], None, None)
            if isinstance(error, psycopg.errors.InvalidSqlStatementName):
                # Deallocated under us (psycopg does on a DROP or ALTER too):
                # the storage reruns the transaction, which prepares them again.
                _PREPARED.pop(connection, None)
            raise self._wrapped(error, sql, None) from error
        held_for = None if before is None or after is None else max(0.0, (after - before).total_seconds())
        return Committed(rows, held_rows, held_for, value)

    def _prepared(self, cursor: Any) -> set[str]:
        """The names of this process's statements PREPAREd on the cursor's
        connection: asked of PostgreSQL on its first commit and after
        anything may have deallocated them (a round trip each time)."""
        known = _PREPARED.get(cursor.connection)
        if known is None:
            try:
                cursor.execute(_OURS)
                names = {row[0] for row in cursor.fetchall()}
            except self._dbapi.Error as error:
                raise self._wrapped(error, _OURS, None) from error
            known = _PREPARED[cursor.connection] = names
        return known

    def _executed(
        self, form: _Form, params: Params, cursor: Any, literal: Callable[[Any], str | None], prepared: set[str]
    ) -> str:
        """The text that runs ``form`` with ``params`` in a simple query: an
        EXECUTE of its prepared statement, PREPAREd on this connection
        first if need be (a round trip once in the connection's life; a
        prepared statement outlives a rolled-back transaction). A statement
        with a list expanded into its text is sent as text."""
        if form.expanding:
            return str(cursor.mogrify(*form.bind(params)))
        values = form.values(params)
        sql, names = form.numbered()
        if form.name not in prepared:
            types = ", ".join(_parameter_type(values[name]) for name in names)
            declared = f"({types}) " if names else ""
            try:
                cursor.execute(f"PREPARE {form.name} {declared}AS {sql}")
            except self._dbapi.Error as error:
                raise self._wrapped(error, sql, None) from error
            prepared.add(form.name)
        if not names:
            return f"EXECUTE {form.name}"
        arguments = [literal(values[name]) for name in names]
        if None in arguments:
            arguments = [
                text if text is not None else str(cursor.mogrify("%s", [values[name]]))
                for name, text in zip(names, arguments, strict=True)
            ]
        return f"EXECUTE {form.name}({', '.join(arguments)})"  # type: ignore[arg-type]

    def _result(self, form: _Form, cursor: Any) -> list[Any]:
        """The rows of the result ``cursor`` is on, as named tuples (none for
        a statement that returns none); then moves it to the next result."""
        result = cursor.pgresult  # not ``description``, which builds every column's
        fetched = cursor.fetchall() if result is not None and result.nfields else []
        make = self._row(form, cursor)._make if fetched else None
        cursor.nextset()
        return [make(row) for row in fetched] if make is not None else []

    def _fetch(self, form: _Form, params: Params | None, *, all_rows: bool) -> Any:
        sql, bound = self._execute(form, params or {})
        try:
            return self._cursor.fetchall() if all_rows else self._cursor.fetchone()
        except self._dbapi.Error as error:
            raise self._wrapped(error, sql, bound) from error

    def _execute(self, form: _Form, params: Params) -> tuple[str, Any]:
        sql, bound = form.bind(params)
        try:
            self._cursor.execute(sql, bound)
        except self._dbapi.Error as error:
            raise self._wrapped(error, sql, bound) from error
        return sql, bound

    def _row(self, form: _Form, cursor: Any = None) -> Any:
        if form.row is None:
            names = [column[0] for column in (cursor or self._cursor).description]
            form.row = namedtuple("Row", names, rename=True)  # type: ignore[misc]
        return form.row

    def _wrapped(self, error: Exception, sql: str, params: Any) -> exc.DBAPIError:
        """As ``Connection.execute`` would raise it: a disconnect invalidates the connection."""
        dbapi_conn = self._conn.connection.dbapi_connection
        disconnect = self._dialect.is_disconnect(error, dbapi_conn, self._cursor)  # type: ignore[arg-type]
        if disconnect:
            self._conn.invalidate(error)
        dbapi = self._dbapi
        wrapper = next((cls for name, cls in _WRAPPERS if isinstance(error, getattr(dbapi, name))), exc.DBAPIError)
        return wrapper(sql, params, error, connection_invalidated=disconnect)
