"""The SQL implementation of ``Tx``, shared by SQLite and PostgreSQL.

The two engines differ only in ``INSERT ... ON CONFLICT`` (each dialect has
its own construct) and row locks (PostgreSQL takes ``FOR UPDATE``; SQLite
already holds the database write lock from ``BEGIN IMMEDIATE``).

One module per concern, each a part of ``SqlTx``:

    run.py          the execution path: statements compiled once per dialect
    base.py         the transaction's state: counter changes and events until flush
    parts.py        query parts (the flags' edges, the block predicate) and row maps
    writes.py       locks, users, edges, reports
    reads.py        a pair's edges, relationships, counters, blocks, positions
    lists.py        keyset pages, totals, the event log
    maintenance.py  event sequencing and retention, recount, limiter logs, service keys

A user deletion's and a promotion's batches (tombstones, jobs, the edges
they remove) are ``storage/deletion.py``'s ``DeletionTx``, mixed in last.
"""

from __future__ import annotations

from ..deletion import DeletionTx
from .lists import Lists
from .maintenance import EVENTS_CHANNEL, Maintenance
from .writes import Writes


class SqlTx(Writes, Lists, Maintenance, DeletionTx):
    """One transaction on one connection (see ``base.TxBase``)."""


__all__ = ["EVENTS_CHANNEL", "SqlTx"]
