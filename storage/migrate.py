"""Applies the Alembic migrations in ``storage/migrations``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .engine import SqlStorage

_SCRIPTS = Path(__file__).with_name("migrations")
# Any fixed number: serialises concurrent migrators on one PostgreSQL database.
_PG_LOCK_KEY = 0x50C1A1


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(storage: SqlStorage, revision: str = "head") -> tuple[str | None, str]:
    """Brings the schema to ``revision`` (the newest by default); returns (before, after)."""
    config = _config()
    with storage.engine.connect() as conn, conn.begin():
        if storage.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after or ""


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or ""
