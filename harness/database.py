"""Databases for the tests and the bench: a fresh SQLite file or a private
PostgreSQL schema (dropped with everything in it at the end), and the URLs
that reach them.

A schema is selected by the URL itself (libpq ``options=-csearch_path=S``),
so every connection a server process or a pool opens lands in it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

# The PostgreSQL database the tests' and the benches' schemas go into.
POSTGRES_DSN = os.environ.get("SOCIALGRAPH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_SEARCH_PATH = re.compile(r"-csearch_path=(\w+)")


def libpq_url(url: str) -> str:
    """``postgresql[+driver]://...`` -> ``postgresql://...``, what psycopg
    and libpq take (the query stays)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def schema_url(dsn: str, schema: str) -> str:
    """The SQLAlchemy URL (psycopg) of ``dsn``'s database whose connections
    use ``schema``: ``postgresql+psycopg://...?options=-csearch_path%3DS``."""
    url = make_url(dsn).set(drivername="postgresql+psycopg")
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def schema_of(url: str) -> str:
    """The schema a ``schema_url`` selects."""
    options = make_url(url).query.get("options", "")
    match = _SEARCH_PATH.search(options if isinstance(options, str) else " ".join(options))
    if match is None:
        raise ValueError(f"no search_path in {url}")
    return match[1]


@contextlib.contextmanager
def postgres_schema(dsn: str = POSTGRES_DSN, prefix: str = "t") -> Iterator[str]:
    """A new, empty schema ``PREFIX_<random>`` in the PostgreSQL database at
    ``dsn`` (any ``postgresql[+driver]://`` URL), dropped with everything in
    it when the block ends; yields its ``schema_url``."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = libpq_url(dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield schema_url(dsn, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextlib.contextmanager
def temporary_database(
    backend: str, directory: str | Path, dsn: str = POSTGRES_DSN, prefix: str = "t"
) -> Iterator[str]:
    """A fresh, empty database of ``backend`` ("sqlite": a new file in
    ``directory``; "postgres": a ``postgres_schema`` in ``dsn``); yields its
    SQLAlchemy URL."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/graph-{uuid.uuid4().hex[:8]}.db"
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}: sqlite or postgres")
    with postgres_schema(dsn, prefix) as url:
        yield url
