"""F1-F4 against ``Graph`` directly: the rule, its domain error, the state
it leaves and the events it appends."""

from __future__ import annotations

from collections.abc import Callable

from server.rules import Graph, InvalidArgument, PermissionDenied, Reason
from storage.types import Cause, EventKind, Storage

from .domain import events, refused


def test_f1_a_user_cannot_follow_themself(graph: Graph, user: Callable[[], str]) -> None:
    a = user()
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP) as raised:
        graph.follow(a, a)
    assert raised.value.field == "followee_id"
    for remove in (graph.unfollow, graph.remove_follower):
        with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
            remove(a, a)


def test_f2_no_follow_while_either_blocks(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b, c = user(), user(), user()
    graph.block(a, b, "")
    graph.block(c, a, "")
    for follower, followee in ((a, b), (b, a), (a, c), (c, a)):
        with refused(PermissionDenied, Reason.BLOCKED):
            graph.follow(follower, followee)
    assert [c.following for c in graph.get_counts([a, b, c])] == [0, 0, 0]
    assert [k for k, *_ in events(storage, a)] == [EventKind.BLOCKED, EventKind.BLOCKED]


def test_f3_follow_is_instant_and_twice_is_not_an_error(
    graph: Graph, storage: Storage, user: Callable[[], str]
) -> None:
    a, b = user(), user()
    created, since = graph.follow(a, b)
    assert created
    assert graph.follow(a, b) == (False, since)
    relationship = graph.get_relationship(a, b)
    assert (relationship.following, relationship.followed_by) == (True, False)
    assert [(c.following, c.followers) for c in graph.get_counts([a, b])] == [(1, 0), (0, 1)]
    assert events(storage, a) == [(EventKind.FOLLOWED, a, b, Cause.REQUEST)]


def test_unfollow_removes_once(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.follow(a, b)
    assert graph.unfollow(a, b)
    assert not graph.unfollow(a, b)
    assert not graph.get_relationship(a, b).following
    assert [k for k, *_ in events(storage, a)] == [EventKind.FOLLOWED, EventKind.UNFOLLOWED]


def test_f4_a_user_removes_a_follower_without_blocking(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    me, fan = user(), user()
    graph.follow(fan, me)
    graph.follow(me, fan)
    assert graph.remove_follower(me, fan)
    assert not graph.remove_follower(me, fan)
    relationship = graph.get_relationship(me, fan)
    assert (relationship.followed_by, relationship.following, relationship.can_interact) == (False, True, True)
    assert events(storage, me)[-1] == (EventKind.FOLLOWER_REMOVED, me, fan, Cause.REQUEST)
    assert graph.follow(fan, me)[0]  # may follow again
