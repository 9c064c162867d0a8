"""R4 and B3 on accounts with many edges: bounded transactions."""

from __future__ import annotations

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from storage.types import Role, User

from ..support import new_user


class CountingStorage:
    """``storage`` that counts write transactions."""

    def __init__(self, storage) -> None:
        self._storage = storage
        self.writes = 0

    def read_write(self, fn):
        self.writes += 1
        return self._storage.read_write(fn)

    def __getattr__(self, name):
        return getattr(self._storage, name)


BIG = 600
BATCH = 50


def test_deleting_a_big_account_runs_in_bounded_transactions_and_keeps_counters_exact(storage):
    """A user with 600 followers, 600 followees, connections, requests and
    blocks both ways, deleted 50 edges of a kind per transaction: every
    edge goes, every other user's counters are right, recount finds nothing."""
    counting = CountingStorage(storage)
    graph = Graph(
        counting, InProcessLimiter(parse_windows("100000/1h")), Policy(connection_limit=1000, edge_batch=BATCH)
    )
    big = new_user()
    fans, idols = [new_user() for _ in range(BIG)], [new_user() for _ in range(BIG)]
    friends = [new_user() for _ in range(60)]
    for fan in fans:
        graph.follow(fan, big)
    for idol in idols:
        graph.follow(big, idol)
    for friend in friends[:30]:
        graph.send_connection_request(big, friend, "")
        graph.accept_connection_request(friend, big)
    for friend in friends[30:45]:
        graph.send_connection_request(friend, big, "")
    for friend in friends[45:]:
        graph.block(friend, big, "")
    for _fan in fans[:70]:
        graph.block(big, new_user(), "")
    before = counting.writes
    removed = graph.delete_user(big)
    assert removed.follows == 2 * BIG + 2 * 30 + 15  # with the auto-follows of connections and requests
    assert (removed.connections, removed.requests, removed.blocks) == (30, 15, 85)
    assert counting.writes - before >= BIG // BATCH
    assert {c.following for c in graph.get_counts(fans)} == {0}
    assert {c.followers for c in graph.get_counts(idols)} == {0}
    assert {(c.connections, c.followers, c.following) for c in graph.get_counts(friends[:30])} == {(0, 0, 0)}
    assert {(c.outgoing_requests, c.following) for c in graph.get_counts(friends[30:45])} == {(0, 0)}
    assert {c.blocked for c in graph.get_counts(friends[45:])} == {0}
    assert graph.recount() == []
    assert graph.get_counts([big])[0].followers == 0


def test_promoting_a_user_many_block_removes_every_block_in_batches(storage):
    counting = CountingStorage(storage)
    graph = Graph(counting, InProcessLimiter(parse_windows("1000/1h")), Policy(edge_batch=BATCH))
    target, blockers = new_user(), [new_user() for _ in range(BIG)]
    graph.upsert_user(User(target, Role.MEMBER, "", "", 0))
    for blocker in blockers:
        graph.block(blocker, target, "")
    before = counting.writes
    graph.upsert_user(User(target, Role.MODERATOR, "", "", 0))
    assert counting.writes - before >= BIG // BATCH
    assert all(graph.get_counts([b])[0].blocked == 0 for b in blockers[:20])
    assert not any(graph.get_relationship(b, target).blocking for b in blockers[:20])
    assert graph.recount() == []
