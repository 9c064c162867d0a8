"""Edges made straight through ``Tx``, as the rules layer makes them: the
users locked first, then the edge written (which keeps counters in step)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

from storage.types import Block, ConnectionRequest, Counts, Storage, Tx

_clock = itertools.count(1_700_000_000_000_000, 1_000)


def tick() -> int:
    """A strictly increasing time in µs: items made later sort newer."""
    return next(_clock)


def _locked(storage: Storage, users: tuple[str, str], write: Callable[[Tx], None]) -> None:
    def run(tx: Tx) -> None:
        tx.lock_users(users)
        write(tx)

    storage.read_write(run)


def follow(storage: Storage, follower: str, followee: str, at: int | None = None) -> int:
    when = tick() if at is None else at
    _locked(storage, (follower, followee), lambda tx: tx.insert_follow(follower, followee, when))
    return when


def connect(storage: Storage, a: str, b: str, at: int | None = None) -> int:
    when = tick() if at is None else at
    _locked(storage, (a, b), lambda tx: tx.insert_connection(a, b, when))
    return when


def request(storage: Storage, requester: str, recipient: str, message: str = "") -> ConnectionRequest:
    made = ConnectionRequest(str(uuid.uuid4()), requester, recipient, message, tick())
    _locked(storage, (requester, recipient), lambda tx: tx.insert_request(made))
    return made


def block(storage: Storage, blocker: str, blocked: str, reason: str = "") -> Block:
    made = Block(str(uuid.uuid4()), blocker, blocked, reason, tick())
    _locked(storage, (blocker, blocked), lambda tx: tx.insert_block(made))
    return made


def counts(storage: Storage, *users: str) -> list[Counts]:
    """Each user's stored counters; zeros for a user without a row."""
    found = storage.read_only(lambda tx: tx.counts(users))
    return [found[u].counts if u in found else Counts(u) for u in users]


def short(c: Counts) -> tuple[int, int, int, int, int, int]:
    """(followers, following, connections, incoming, outgoing, blocked)."""
    return (c.followers, c.following, c.connections, c.incoming_requests, c.outgoing_requests, c.blocked)
