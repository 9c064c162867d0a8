"""The relational schema.

Every table is keyed first by a user id, so that a distributed SQL engine can
shard all of it by user. Times are integer microseconds since the Unix epoch
(UTC): one representation on every engine, and cheap keyset comparisons.

Connections are stored as two directed rows (one per member) written and
removed together, so each member's list is one index range. Pending requests
carry the unordered pair (``user_low``, ``user_high``) so the database itself
allows at most one pending request per pair.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

UUID_LEN = 36

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _user_id(name: str, **kw: Any) -> Column[str]:
    return Column(name, String(UUID_LEN), nullable=False, **kw)


users = Table(
    "users",
    metadata,
    _user_id("user_id", primary_key=True),
    Column("role", SmallInteger, nullable=False),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("avatar_url", Text, nullable=False, server_default=""),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index(None, "created_us"),
)

follows = Table(
    "follows",
    metadata,
    _user_id("follower_id", primary_key=True),
    _user_id("followee_id", primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    CheckConstraint("follower_id <> followee_id", name="no_self"),
    # Following list: the primary key serves lookups; this serves newest-first pages.
    Index(None, "follower_id", "created_us", "followee_id"),
    # Followers list and "followed by" lookups.
    Index(None, "followee_id", "created_us", "follower_id"),
    Index(None, "created_us"),
)

connections = Table(
    "connections",
    metadata,
    _user_id("user_id", primary_key=True),
    _user_id("other_id", primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    CheckConstraint("user_id <> other_id", name="no_self"),
    Index(None, "user_id", "created_us", "other_id"),
    Index(None, "created_us"),
)

connection_requests = Table(
    "connection_requests",
    metadata,
    Column("request_id", String(UUID_LEN), primary_key=True),
    _user_id("requester_id"),
    _user_id("recipient_id"),
    _user_id("user_low"),
    _user_id("user_high"),
    Column("message", Text, nullable=False, server_default=""),
    Column("created_us", BigInteger, nullable=False),
    CheckConstraint("requester_id <> recipient_id", name="no_self"),
    CheckConstraint("user_low < user_high", name="ordered_pair"),
    UniqueConstraint("user_low", "user_high"),
    Index(None, "recipient_id", "created_us", "request_id"),
    Index(None, "requester_id", "created_us", "request_id"),
    Index(None, "created_us"),
)

blocks = Table(
    "blocks",
    metadata,
    _user_id("blocker_id", primary_key=True),
    _user_id("blocked_id", primary_key=True),
    Column("block_id", String(UUID_LEN), nullable=False, unique=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_us", BigInteger, nullable=False),
    CheckConstraint("blocker_id <> blocked_id", name="no_self"),
    Index(None, "blocker_id", "created_us", "blocked_id"),
    Index(None, "blocked_id", "blocker_id"),
    Index(None, "created_us"),
)

reports = Table(
    "reports",
    metadata,
    Column("report_id", String(UUID_LEN), primary_key=True),
    _user_id("reporter_id"),
    _user_id("reported_id"),
    Column("reason", SmallInteger, nullable=False),
    Column("details", Text, nullable=False, server_default=""),
    Column("status", SmallInteger, nullable=False),
    Column("resolved_by", String(UUID_LEN), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_us", BigInteger, nullable=False),
    Column("resolved_us", BigInteger, nullable=True),
    Index(None, "status", "created_us", "report_id"),
    Index(None, "reported_id"),
    Index(None, "created_us"),
)

# One row per user that ever took part in a write. The row is also the
# user's lock: every write locks the rows of the users it touches, in user id
# order, before it reads anything it decides on.
user_counters = Table(
    "user_counters",
    metadata,
    _user_id("user_id", primary_key=True),
    Column("followers", BigInteger, nullable=False, server_default="0"),
    Column("following", BigInteger, nullable=False, server_default="0"),
    Column("connections", BigInteger, nullable=False, server_default="0"),
    Column("incoming_requests", BigInteger, nullable=False, server_default="0"),
    Column("outgoing_requests", BigInteger, nullable=False, server_default="0"),
    Column("blocked", BigInteger, nullable=False, server_default="0"),
    # Bumped by every change to the row; lets a cache refuse older values.
    Column("version", BigInteger, nullable=False, server_default="0"),
    # The user's deletion is in progress (their tombstone, ``user_jobs``, says
    # the same). Kept here so that the statement taking a writer's lock on the
    # row reads it as the lock holder left it, with no statement of its own.
    Column("deleting", Boolean, nullable=False, server_default=false()),
)

# One row: the database's identity (random, made by the migration, so a
# consistency token from another database or schema is recognised) and, on
# SQLite, the commit counter every write transaction bumps (its consistency
# token; PostgreSQL uses the WAL position instead).
commit_position = Table(
    "commit_position",
    metadata,
    Column("identity", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False, server_default="0"),
)

# The outbox: every committed write's change events. ``id`` is the order of
# insertion; ``seq``, the position readers see, is given in commit order:
# on SQLite by the writing transaction itself (writers are serialised), on
# PostgreSQL by the sequencer (``SqlTx.sequence_events``) after commit, so
# writers never wait on each other for it. The one table not led by a user
# id: it is the log of the whole graph, read by position.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=True),
    Column("event_id", String(UUID_LEN), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    _user_id("actor_id"),
    _user_id("subject_id"),
    Column("occurred_us", BigInteger, nullable=False),
    # The kind's fields as JSON (see storage.types.Change).
    Column("payload", Text, nullable=False, server_default="{}"),
    # The commit position of the writing transaction, for the event's
    # consistency token: SQLite's commit counter as the write bumped it; on
    # PostgreSQL the WAL position the sequencer read after that commit.
    Column("position", BigInteger, nullable=True),
    # Positions are unique; events not yet given one (NULL) are found by it too.
    Index(None, "seq", unique=True),
    # The events the sequencer has yet to number, in insertion order. A
    # numbered event leaves a dead entry behind here until VACUUM, as in
    # the ``seq`` index; but a scan in id order marks dead entries as it
    # passes them and the next scan skips them, where a bitmap scan over
    # ``seq IS NULL`` visits every one on each run (migration 0007).
    Index("ix_events_pending", "id", postgresql_where=text("seq IS NULL"), sqlite_where=text("seq IS NULL")),
)

# One row: the highest ``seq`` retention has removed. A cursor below it has
# lost events.
event_horizon = Table(
    "event_horizon",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("pruned_through", BigInteger, nullable=False),
)

COUNTER_COLUMNS = (
    "followers",
    "following",
    "connections",
    "incoming_requests",
    "outgoing_requests",
    "blocked",
)


# Secrets every server process on this database shares, made by the first
# that needs one (the page token key when none is configured).
service_keys = Table(
    "service_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The limiter's sliding logs when it runs in the database (no Redis, or Redis
# down): one row per admitted attempt, named by its token.
limiter_log = Table(
    "limiter_log",
    metadata,
    Column("limiter_key", String(200), primary_key=True),
    Column("token", String(UUID_LEN), primary_key=True),
    Column("at_us", BigInteger, nullable=False),
    Index(None, "limiter_key", "at_us"),
    Index(None, "at_us"),
)

# Work on a big account that runs off the request path, one row per user and
# kind (``storage/deletion.py``): a deletion (its row is also the user's
# tombstone: from the commit that adds it the user reads as absent) or the
# lifting of the blocks against a promoted user. Any server process may claim
# a row whose lease has run out; each batch renews the lease.
user_jobs = Table(
    "user_jobs",
    metadata,
    _user_id("user_id", primary_key=True),
    Column("kind", SmallInteger, primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=False, server_default=""),
    Column("lease_until_us", BigInteger, nullable=False, server_default="0"),
    Index(None, "lease_until_us"),
)
