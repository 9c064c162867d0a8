"""The sequencer's NOTIFY reaches only the listeners of its own schema:
several deployments (or test runs) in schemas of one PostgreSQL database do
not wake each other's event feeds."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage import open_storage
from storage.feed import listen
from storage.migrate import upgrade

from .support import new_user, temporary_database

pytestmark = pytest.mark.postgres


def listener(url: str) -> psycopg.Connection:
    """A connection of ``url``'s schema listening on that schema's channel."""
    parsed = make_url(url).set(drivername="postgresql")
    conn = psycopg.connect(parsed.render_as_string(hide_password=False), autocommit=True)
    listen(conn)
    return conn


def test_notifications_stay_within_their_schema(tmp_path):
    with temporary_database("postgres", tmp_path) as one, temporary_database("postgres", tmp_path) as other:
        storage = open_storage(one, pool_size=2)
        try:
            upgrade(storage)
            upgrade_other = open_storage(other, pool_size=1)
            upgrade(upgrade_other)
            upgrade_other.close()
            ours, theirs = listener(one), listener(other)
            graph = Graph(storage, InProcessLimiter(parse_windows("100/1h")), Policy())
            graph.follow(new_user(), new_user())
            assert storage.read_write(lambda tx: tx.sequence_events(100)) == 1
            heard = [note.payload for note in ours.notifies(timeout=5, stop_after=1)]
            assert heard == ["1"], "the schema's own listener hears its head"
            assert list(theirs.notifies(timeout=0.5, stop_after=1)) == [], "another schema's does not"
            ours.close()
            theirs.close()
        finally:
            storage.close()
