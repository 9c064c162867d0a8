"""B1-B6 against ``Graph`` directly: each rule, its domain error, the state
it leaves and the events it appends."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import pytest

from server.rules import Graph, InvalidArgument, PermissionDenied, Policy, Reason
from storage.deletion import JobKind
from storage.types import Cause, EventKind, Removed, Role, Storage, Tx, User

from .domain import events, every, limiter, refused

T = TypeVar("T")


def promote(graph: Graph, user_id: str, role: Role = Role.MODERATOR) -> User:
    return graph.upsert_user(User(user_id, role, "", "", 0))


# --------------------------------------------------------------------- B1


def test_b1_a_user_cannot_block_themself(graph: Graph, user: Callable[[], str]) -> None:
    a = user()
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.block(a, a, "")
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.unblock(a, a)


def test_b1_blocking_twice_returns_the_first_block(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    first = graph.block(a, b, "spam")
    again = graph.block(a, b, "other reason")
    assert (first.created, again.created, again.block, again.removed) == (True, False, first.block, Removed())
    assert graph.get_counts([a])[0].blocked == 1
    assert events(storage, a) == [(EventKind.BLOCKED, a, b, Cause.REQUEST)]


# --------------------------------------------------------------------- B2


def test_b2_blocking_removes_every_edge_both_ways(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    graph.accept_connection_request(b, a)  # a connection and follows both ways
    result = graph.block(b, a, "")
    assert result.removed == Removed(follows=2, connections=1, requests=0)
    r = graph.get_relationship(a, b)
    assert (r.following, r.followed_by, r.connected, r.blocked_by) == (False, False, False, True)
    assert [(c.followers, c.following, c.connections) for c in graph.get_counts([a, b])] == [(0, 0, 0), (0, 0, 0)]
    cascade = [(k, x, y) for k, x, y, cause in events(storage, a) if cause is Cause.BLOCK]
    assert sorted(cascade) == sorted(
        [(EventKind.UNFOLLOWED, b, a), (EventKind.UNFOLLOWED, a, b), (EventKind.CONNECTION_REMOVED, b, a)]
    )


@pytest.mark.parametrize("direction", ["outgoing", "incoming"])
def test_b2_blocking_removes_pending_requests(
    graph: Graph, storage: Storage, user: Callable[[], str], direction: str
) -> None:
    a, b = user(), user()
    graph.send_connection_request(*((a, b) if direction == "outgoing" else (b, a)), "")
    result = graph.block(a, b, "")
    assert result.removed == Removed(follows=1, connections=0, requests=1)
    assert graph.list_requests(a, direction == "incoming", 10, "").items == []
    assert [(c.incoming_requests, c.outgoing_requests) for c in graph.get_counts([a, b])] == [(0, 0), (0, 0)]
    cancelled = [e for e in events(storage, a) if e[0] is EventKind.CONNECTION_REQUEST_CANCELLED]
    assert [cause for *_, cause in cancelled] == [Cause.BLOCK]


def test_b2_the_cascade_leaves_other_users_alone(graph: Graph, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    graph.follow(a, c)
    graph.follow(c, b)
    graph.block(a, b, "")
    assert graph.get_relationship(a, c).following and graph.get_relationship(c, b).following


# --------------------------------------------------------------------- B3


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ADMIN])
def test_b3_staff_cannot_be_blocked(graph: Graph, user: Callable[[], str], role: Role) -> None:
    a, staff = user(), user()
    promote(graph, staff, role)
    graph.follow(a, staff)
    with refused(PermissionDenied, Reason.CANNOT_BLOCK_STAFF):
        graph.block(a, staff, "")
    r = graph.get_relationship(a, staff)
    assert (r.following, r.blocking) == (True, False)
    assert graph.block(staff, a, "").created  # staff may block members


def test_b3_promotion_lifts_the_blocks_against_them(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b, target = user(), user(), user()
    graph.block(a, target, "")
    graph.block(b, target, "")
    graph.block(target, a, "")
    promote(graph, target)
    assert [graph.get_relationship(x, target).blocking for x in (a, b)] == [False, False]
    assert graph.get_relationship(target, a).blocking  # their own blocks stay
    assert [c.blocked for c in graph.get_counts([a, b, target])] == [0, 0, 1]
    lifted = [(x, y) for k, x, y, cause in events(storage, target) if cause is Cause.PROMOTION]
    assert sorted(lifted) == sorted([(a, target), (b, target)])
    promote(graph, target, Role.MEMBER)
    assert not graph.get_relationship(a, target).blocking  # demotion restores nothing


def test_b3_promotion_lifts_many_blocks_in_batches(storage: Storage, user: Callable[[], str]) -> None:
    lifted: list[int] = []  # blocks lifted by each committed write transaction

    class CountingTx:
        """A ``Tx`` counting the blocks it lifted."""

        def __init__(self, tx: Tx) -> None:
            self.tx, self.lifted = tx, 0

        def __getattr__(self, name: str) -> object:
            return getattr(self.tx, name)

        def lift_blocks(self, blocked_id: str, limit: int) -> tuple[list[str], bool]:
            blockers, more = self.tx.lift_blocks(blocked_id, limit)
            self.lifted += len(blockers)
            return blockers, more

    class Counting:
        """``storage`` recording what each of its write transactions lifted."""

        def __getattr__(self, name: str) -> object:
            return getattr(storage, name)

        def read_write(self, fn: Callable[[Tx], T]) -> T:
            def run(tx: Tx) -> tuple[T, int]:
                counting = CountingTx(tx)
                return fn(cast(Tx, counting)), counting.lifted

            result, n = storage.read_write(run)
            lifted.append(n)
            return result

    graph = Graph(Counting(), limiter(), Policy(edge_batch=3))  # type: ignore[arg-type]
    target = user()
    blockers = [user() for _ in range(7)]
    for blocker in blockers:
        graph.block(blocker, target, "")
    lifted.clear()
    promote(graph, target)
    # The promotion lifts the first batch with the role; its job lifts the
    # rest in transactions of at most ``edge_batch`` blocks.
    assert lifted[0] == 3
    assert sum(lifted) == 7 and max(lifted) == 3
    assert len([n for n in lifted if n]) >= 3
    assert [c.blocked for c in graph.get_counts(blockers)] == [0] * 7
    assert (target, JobKind.LIFT_BLOCKS) not in storage.read_only(lambda tx: tx.pending_jobs())


# --------------------------------------------------------------------- B4


@pytest.mark.parametrize("blocker", ["viewer", "owner"])
def test_b4_a_blocked_viewer_sees_no_list_of_the_other(graph: Graph, user: Callable[[], str], blocker: str) -> None:
    viewer, owner = user(), user()
    graph.follow(user(), owner)
    graph.block(*((viewer, owner) if blocker == "viewer" else (owner, viewer)), "")
    for read in (graph.list_followers, graph.list_following, graph.list_connections):
        with refused(PermissionDenied, Reason.BLOCKED):
            read(owner, 10, "", viewer)
    assert len(graph.list_followers(owner, 10, "", None).items) == 1
    assert len(graph.list_followers(owner, 10, "", owner).items) == 1  # the owner is no stranger


def test_b4_lists_leave_out_users_blocked_either_way_with_the_viewer(graph: Graph, user: Callable[[], str]) -> None:
    owner, viewer, foe, hater, friend = (user() for _ in range(5))
    for fan in (foe, hater, friend):
        graph.follow(fan, owner)
    graph.block(viewer, foe, "")
    graph.block(hater, viewer, "")
    seen = every(lambda token: graph.list_followers(owner, 1, token, viewer))
    assert [u.user_id for u in seen] == [friend]


def test_b4_interaction_checks_agree(graph: Graph, user: Callable[[], str]) -> None:
    me, foe, hater, friend = user(), user(), user(), user()
    graph.block(me, foe, "")
    graph.block(hater, me, "")
    assert [graph.can_interact(me, x) for x in (foe, hater, friend)] == [False, False, True]
    assert [graph.can_interact(x, me) for x in (foe, hater, friend)] == [False, False, True]
    assert graph.filter_interactable(me, [foe, friend, me, hater, friend]) == [friend, me, friend]
    assert [r.can_interact for r in graph.batch_get_relationships(me, [foe, hater, friend])] == [False, False, True]
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.can_interact(me, me)


# --------------------------------------------------------------------- B5


def test_b5_unblocking_restores_nothing(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    graph.accept_connection_request(b, a)
    graph.block(a, b, "")
    assert graph.unblock(a, b)
    assert not graph.unblock(a, b)
    assert not graph.unblock(b, a)  # the blocked user cannot lift it either way
    r = graph.get_relationship(a, b)
    assert (r.following, r.followed_by, r.connected, r.blocking, r.can_interact) == (False, False, False, False, True)
    assert events(storage, a)[-1] == (EventKind.UNBLOCKED, a, b, Cause.REQUEST)
    assert graph.follow(b, a)[0]


# --------------------------------------------------------------------- B6


def test_b6_a_block_stores_its_reason(graph: Graph, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    with_reason = graph.block(a, b, "x" * 500).block
    without = graph.block(a, c, "").block
    listed = every(lambda token: graph.list_blocked(a, 1, token))
    assert listed == [without, with_reason]
    assert (with_reason.reason, without.reason) == ("x" * 500, "")
