"""Bulk seeds for the tests and the bench on PostgreSQL: many users following
or blocking one user, counters and all, in a few statements."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import text

from storage import SqlStorage

# ``n`` fresh user ids in order (a random prefix, then a counter), so the
# index inserts of a bulk seed append instead of scattering.
_FRESH_IDS = "SELECT :prefix || lpad(to_hex(g), 12, '0') AS id, g FROM generate_series(1, :n) AS g"


def _prefix() -> str:
    return str(uuid.uuid4())[:24]


def seed_followers(storage: SqlStorage, user_id: str, n: int) -> None:
    """``n`` new users follow ``user_id``, counters and all, in three statements."""
    now, prefix = time.time_ns() // 1000, _prefix()
    _bulk(
        storage,
        (
            "INSERT INTO follows (follower_id, followee_id, created_us)"
            f" SELECT id, :u, :t + g FROM ({_FRESH_IDS}) AS fresh",
            {"u": user_id, "t": now - n, "n": n, "prefix": prefix},
        ),
        (
            f"INSERT INTO user_counters (user_id, following, version) SELECT id, 1, 1 FROM ({_FRESH_IDS}) AS f",
            {"n": n, "prefix": prefix},
        ),
        (
            "INSERT INTO user_counters (user_id, followers, version) VALUES (:u, :n, 1)"
            " ON CONFLICT (user_id) DO UPDATE SET followers = user_counters.followers + :n",
            {"u": user_id, "n": n},
        ),
        analyze=("follows", "user_counters"),
    )


def seed_blockers(storage: SqlStorage, user_id: str, n: int) -> None:
    """``n`` new users block ``user_id``."""
    now, prefix = time.time_ns() // 1000, _prefix()
    _bulk(
        storage,
        (
            "INSERT INTO blocks (blocker_id, blocked_id, block_id, reason, created_us)"
            f" SELECT id, :u, :block_prefix || lpad(to_hex(g), 12, '0'), '', :t + g FROM ({_FRESH_IDS}) AS fresh",
            {"u": user_id, "t": now - n, "n": n, "prefix": prefix, "block_prefix": _prefix()},
        ),
        (
            f"INSERT INTO user_counters (user_id, blocked, version) SELECT id, 1, 1 FROM ({_FRESH_IDS}) AS fresh",
            {"n": n, "prefix": prefix},
        ),
        analyze=("blocks", "user_counters"),
    )


def _bulk(storage: SqlStorage, *statements: tuple[str, dict[str, object]], analyze: tuple[str, ...]) -> None:
    """The statements in one transaction that does not wait for its commit
    to reach the disk, then fresh planner statistics for the tables."""
    with storage.engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        for sql, params in statements:
            conn.execute(text(sql), params)
    with storage.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE " + ", ".join(analyze)))
