"""``Tx`` writes: users, follows, connections, requests and blocks, each
keeping the counters of the users it involves in step."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from storage.types import Block, ConnectionRequest, Counts, Role, Storage, Tx, User

from .edges import block, connect, counts, follow, request, short, tick

# ------------------------------------------------------------------ users


def test_lock_users_makes_zero_counters_for_new_users(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    locked = storage.read_write(lambda tx: tx.lock_users([b, a, a]))
    assert locked == {a: Counts(a), b: Counts(b)}


def test_lock_users_returns_the_current_counters(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, a, b)
    locked = storage.read_write(lambda tx: tx.lock_users([a, b]))
    assert (short(locked[a]), short(locked[b])) == ((0, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0))


def test_unknown_user_is_none_and_a_member(storage: Storage, user: Callable[[], str]) -> None:
    a = user()
    assert storage.read_only(lambda tx: (tx.get_user(a), tx.role_of(a))) == (None, Role.MEMBER)


def test_upsert_user_inserts_then_replaces_keeping_created(storage: Storage, user: Callable[[], str]) -> None:
    a = user()
    first = storage.read_write(lambda tx: tx.upsert_user(User(a, Role.MEMBER, "Ann", "https://a/1", 0), 100))
    assert first == User(a, Role.MEMBER, "Ann", "https://a/1", 100)
    second = storage.read_write(lambda tx: tx.upsert_user(User(a, Role.ADMIN, "Anna", "", 0), 200))
    assert second == User(a, Role.ADMIN, "Anna", "", 100)
    assert storage.read_only(lambda tx: (tx.get_user(a), tx.role_of(a))) == (second, Role.ADMIN)


# ---------------------------------------------------------------- follows


def test_follow_is_one_way_with_its_time(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    at = follow(storage, a, b)
    ab, ba = storage.read_only(lambda tx: (tx.pair(a, b), tx.pair(b, a)))
    assert (ab.following_since, ab.followed_since) == (at, None)
    assert (ba.following_since, ba.followed_since) == (None, at)
    assert [short(c) for c in counts(storage, a, b)] == [(0, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0)]


def test_delete_follow_removes_once(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, a, b)
    follow(storage, b, a)

    def unfollow(tx: Tx) -> list[bool]:
        tx.lock_users((a, b))
        return [tx.delete_follow(a, b), tx.delete_follow(a, b)]

    assert storage.read_write(unfollow) == [True, False]
    assert storage.read_only(lambda tx: tx.pair(a, b)).following_since is None
    assert [short(c) for c in counts(storage, a, b)] == [(1, 0, 0, 0, 0, 0), (0, 1, 0, 0, 0, 0)]


def test_second_follow_of_the_same_pair_is_refused(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, a, b)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        follow(storage, a, b)
    assert [short(c) for c in counts(storage, a, b)] == [(0, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0)]


# ------------------------------------------------------------ connections


def test_connection_is_symmetric(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    at = connect(storage, a, b)
    ab, ba = storage.read_only(lambda tx: (tx.pair(a, b), tx.pair(b, a)))
    assert (ab.connected_since, ba.connected_since) == (at, at)
    assert [c.connections for c in counts(storage, a, b)] == [1, 1]


@pytest.mark.parametrize("remover", ["first", "second"])
def test_delete_connection_from_either_side(storage: Storage, user: Callable[[], str], remover: str) -> None:
    a, b = user(), user()
    connect(storage, a, b)
    x, y = (a, b) if remover == "first" else (b, a)

    def remove(tx: Tx) -> list[bool]:
        tx.lock_users((a, b))
        return [tx.delete_connection(x, y), tx.delete_connection(y, x)]

    assert storage.read_write(remove) == [True, False]
    assert storage.read_only(lambda tx: tx.pair(a, b)).connected_since is None
    assert [c.connections for c in counts(storage, a, b)] == [0, 0]


# --------------------------------------------------------------- requests


def test_request_is_outgoing_for_one_and_incoming_for_the_other(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    made = request(storage, a, b, "hello")
    ab, ba = storage.read_only(lambda tx: (tx.pair(a, b), tx.pair(b, a)))
    assert (ab.outgoing, ab.incoming) == (made, None)
    assert (ba.outgoing, ba.incoming) == (None, made)
    assert [short(c) for c in counts(storage, a, b)] == [(0, 0, 0, 0, 1, 0), (0, 0, 0, 1, 0, 0)]


def test_delete_request_returns_its_id_once_and_only_in_its_direction(
    storage: Storage, user: Callable[[], str]
) -> None:
    a, b = user(), user()
    made = request(storage, a, b)

    def remove(tx: Tx) -> list[str | None]:
        tx.lock_users((a, b))
        return [tx.delete_request(b, a), tx.delete_request(a, b), tx.delete_request(a, b)]

    assert storage.read_write(remove) == [None, made.request_id, None]
    assert [short(c) for c in counts(storage, a, b)] == [(0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0)]


def test_a_second_pending_request_for_a_pair_is_refused_either_way(storage: Storage, user: Callable[[], str]) -> None:
    """I2: at most one pending request per unordered pair."""
    a, b = user(), user()
    made = request(storage, a, b)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        request(storage, b, a)
    assert storage.read_only(lambda tx: tx.pair(a, b)).outgoing == made
    assert [short(c) for c in counts(storage, a, b)] == [(0, 0, 0, 0, 1, 0), (0, 0, 0, 1, 0, 0)]


# ----------------------------------------------------------------- blocks


def test_block_is_seen_from_both_sides(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    made = block(storage, a, b, "spam")
    ab, ba = storage.read_only(lambda tx: (tx.pair(a, b), tx.pair(b, a)))
    assert (ab.blocking, ab.blocked_by, ab.blocked_either_way) == (made, False, True)
    assert (ba.blocking, ba.blocked_by, ba.blocked_either_way) == (None, True, True)
    assert [c.blocked for c in counts(storage, a, b)] == [1, 0]


def test_nothing_between_strangers(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    pair = storage.read_only(lambda tx: tx.pair(a, b))
    assert pair == type(pair)(None, None, None, None, None, None, False)
    assert not pair.blocked_either_way


def test_delete_block_removes_only_that_direction(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    block(storage, a, b)
    block(storage, b, a)

    def remove(tx: Tx) -> list[bool]:
        tx.lock_users((a, b))
        return [tx.delete_block(a, b), tx.delete_block(a, b)]

    assert storage.read_write(remove) == [True, False]
    ab = storage.read_only(lambda tx: tx.pair(a, b))
    assert (ab.blocking, ab.blocked_by) == (None, True)
    assert [c.blocked for c in counts(storage, a, b)] == [0, 1]


@pytest.mark.parametrize("limit", [10, 2])
def test_lift_blocks_lifts_them_in_batches(storage: Storage, user: Callable[[], str], limit: int) -> None:
    target = user()
    blockers = sorted(user() for _ in range(3))
    for blocker in blockers:
        block(storage, blocker, target)
    kept = user()
    block(storage, target, kept)

    def lift(tx: Tx) -> list[str]:
        lifted, _more = tx.lift_blocks(target, limit)
        return lifted

    if limit > len(blockers):
        assert storage.read_write(lift) == blockers
    else:
        first = storage.read_write(lift)
        assert first == blockers[:2]
        assert [c.blocked for c in counts(storage, *blockers)] == [0, 0, 1], "exact between batches"
        assert storage.read_write(lift) == blockers[2:]
    assert storage.read_write(lift) == []
    assert [c.blocked for c in counts(storage, *blockers, target)] == [0, 0, 0, 1]
    assert storage.read_only(lambda tx: tx.pair(target, kept)).blocking is not None
    assert storage.read_only(lambda tx: tx.pair(target, blockers[0])).blocked_by is False


# --------------------------------------------------------------- counters


def test_counter_versions_grow_with_every_change(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    follow(storage, a, b)
    before = storage.read_only(lambda tx: tx.counts([a, b]))
    block(storage, a, user())
    after = storage.read_only(lambda tx: tx.counts([a, b]))
    assert after[a].version > before[a].version
    assert after[b].version == before[b].version


def test_several_edges_of_one_pair_in_one_transaction_add_up(storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()

    def many(tx: Tx) -> None:
        tx.lock_users((a, b))
        now = tick()
        tx.insert_follow(a, b, now)
        tx.insert_follow(b, a, now)
        tx.insert_connection(a, b, now)
        tx.insert_request(ConnectionRequest(str(uuid.uuid4()), a, b, "", now))
        tx.insert_block(Block(str(uuid.uuid4()), a, b, "", now))

    storage.read_write(many)
    assert [short(c) for c in counts(storage, a, b)] == [(1, 1, 1, 0, 1, 1), (1, 1, 1, 1, 0, 0)]


def test_counts_leave_out_users_without_counters(storage: Storage, user: Callable[[], str]) -> None:
    a, b, nobody = user(), user(), user()
    follow(storage, a, b)
    assert set(storage.read_only(lambda tx: tx.counts([a, b, nobody, a]))) == {a, b}
