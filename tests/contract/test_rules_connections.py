"""C1-C8 against ``Graph`` directly: each rule, its domain error, the state
it leaves and the events it appends."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.rules import (
    ConnectionLimitReached,
    ConnectionState,
    Graph,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Policy,
    RateLimited,
    Reason,
)
from storage.types import Cause, EventKind, Role, Storage, User

from ..conftest import CONNECTION_LIMIT
from .domain import events, limiter, refused


def connect(graph: Graph, a: str, b: str) -> int:
    graph.send_connection_request(a, b, "")
    return graph.accept_connection_request(b, a)


def state(graph: Graph, a: str, b: str) -> tuple[bool, bool, bool]:
    """(connected, a's request pending to b, b's pending to a)."""
    r = graph.get_relationship(a, b)
    return (r.connected, r.outgoing_request_pending, r.incoming_request_pending)


# --------------------------------------------------------------------- C1


def test_c1_no_connection_or_request_with_oneself(graph: Graph, user: Callable[[], str]) -> None:
    a = user()
    calls = (
        graph.accept_connection_request, graph.decline_connection_request,
        graph.cancel_connection_request, graph.remove_connection,
    )
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.send_connection_request(a, a, "")
    for call in calls:
        with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
            call(a, a)


@pytest.mark.parametrize("blocker", ["requester", "recipient"])
def test_c1_no_request_while_either_blocks(graph: Graph, user: Callable[[], str], blocker: str) -> None:
    a, b = user(), user()
    graph.block(*((a, b) if blocker == "requester" else (b, a)), "")
    with refused(PermissionDenied, Reason.BLOCKED):
        graph.send_connection_request(a, b, "")
    assert state(graph, a, b) == (False, False, False)
    assert [(c.outgoing_requests, c.following) for c in graph.get_counts([a])] == [(0, 0)]


# --------------------------------------------------------------------- C2


def test_c2_a_request_waits_for_the_recipient(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    sent = graph.send_connection_request(a, b, "hello")
    assert (sent.state, sent.created, sent.connected_us) == (ConnectionState.PENDING, True, None)
    assert sent.request is not None
    assert (sent.request.requester_id, sent.request.recipient_id, sent.request.message) == (a, b, "hello")
    assert state(graph, a, b) == (False, True, False)
    again = graph.send_connection_request(a, b, "other words")
    assert (again.state, again.created, again.request) == (ConnectionState.PENDING, False, sent.request)
    assert [r.request_id for r in graph.list_requests(b, True, 10, "").items] == [sent.request.request_id]
    assert [r.request_id for r in graph.list_requests(a, False, 10, "").items] == [sent.request.request_id]
    assert events(storage, a)[:1] == [(EventKind.CONNECTION_REQUESTED, a, b, Cause.REQUEST)]


def test_c2_only_the_recipient_accepts_or_declines(graph: Graph, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    with refused(NotFound, Reason.REQUEST_NOT_FOUND):
        graph.accept_connection_request(a, b)  # a is not the recipient
    assert not graph.decline_connection_request(a, b)
    assert state(graph, a, b) == (False, True, False)
    connected_us = graph.accept_connection_request(b, a)
    assert state(graph, a, b) == (True, False, False)
    assert graph.accept_connection_request(b, a) == connected_us  # a retry after success


def test_c2_only_the_requester_cancels(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    assert not graph.cancel_connection_request(b, a)
    assert graph.cancel_connection_request(a, b)
    assert not graph.cancel_connection_request(a, b)
    assert state(graph, a, b) == (False, False, False)
    assert events(storage, a)[-1] == (EventKind.CONNECTION_REQUEST_CANCELLED, a, b, Cause.REQUEST)


def test_c2_accept_without_a_request_is_request_not_found(graph: Graph, user: Callable[[], str]) -> None:
    a, b = user(), user()
    with refused(NotFound, Reason.REQUEST_NOT_FOUND):
        graph.accept_connection_request(b, a)
    connect(graph, a, b)
    graph.remove_connection(a, b)
    with refused(NotFound, Reason.REQUEST_NOT_FOUND):
        graph.accept_connection_request(b, a)


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_c2_either_member_removes_the_connection(
    graph: Graph, storage: Storage, user: Callable[[], str], remover: str
) -> None:
    a, b = user(), user()
    connect(graph, a, b)
    x, y = (a, b) if remover == "requester" else (b, a)
    assert graph.remove_connection(x, y)
    assert not graph.remove_connection(y, x)
    assert state(graph, a, b) == (False, False, False)
    assert [c.connections for c in graph.get_counts([a, b])] == [0, 0]
    assert events(storage, a)[-1] == (EventKind.CONNECTION_REMOVED, x, y, Cause.REQUEST)


# --------------------------------------------------------------------- C3


def test_c3_crossing_requests_connect_at_once(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    crossing = graph.send_connection_request(b, a, "")
    assert (crossing.state, crossing.created, crossing.request) == (ConnectionState.CONNECTED, True, None)
    assert state(graph, a, b) == (True, False, False)
    assert [(c.connections, c.incoming_requests, c.outgoing_requests) for c in graph.get_counts([a, b])] == [
        (1, 0, 0), (1, 0, 0)
    ]
    again = graph.send_connection_request(a, b, "")
    assert (again.state, again.created, again.connected_us) == (
        ConnectionState.CONNECTED, False, crossing.connected_us
    )
    assert (EventKind.CONNECTED, b, a, Cause.REQUEST) in events(storage, a)


# --------------------------------------------------------------------- C4


def test_c4_sending_and_accepting_follow(graph: Graph, storage: Storage, user: Callable[[], str]) -> None:
    a, b = user(), user()
    graph.send_connection_request(a, b, "")
    r = graph.get_relationship(a, b)
    assert (r.following, r.followed_by) == (True, False)
    graph.accept_connection_request(b, a)
    r = graph.get_relationship(a, b)
    assert (r.following, r.followed_by) == (True, True)
    auto = [(k, x, y) for k, x, y, cause in events(storage, a) if cause is Cause.AUTO_FOLLOW]
    assert auto == [(EventKind.FOLLOWED, a, b), (EventKind.FOLLOWED, b, a)]


def test_c4_decline_cancel_and_remove_unfollow_nobody(graph: Graph, user: Callable[[], str]) -> None:
    a, b, c, d = user(), user(), user(), user()
    graph.send_connection_request(a, b, "")
    graph.decline_connection_request(b, a)
    graph.send_connection_request(a, c, "")
    graph.cancel_connection_request(a, c)
    connect(graph, a, d)
    graph.remove_connection(d, a)
    assert [graph.get_relationship(a, x).following for x in (b, c, d)] == [True, True, True]
    assert graph.get_relationship(d, a).following


def test_c4_auto_follow_can_be_switched_off(storage: Storage, user: Callable[[], str]) -> None:
    policy = Policy(connection_limit=CONNECTION_LIMIT, auto_follow=False)
    graph = Graph(storage, limiter(), policy)
    a, b = user(), user()
    connect(graph, a, b)
    r = graph.get_relationship(a, b)
    assert (r.connected, r.following, r.followed_by) == (True, False, False)


# --------------------------------------------------------------------- C5


def test_c5_after_a_decline_the_requester_may_ask_again(
    graph: Graph, storage: Storage, user: Callable[[], str]
) -> None:
    a, b = user(), user()
    first = graph.send_connection_request(a, b, "")
    assert graph.decline_connection_request(b, a)
    assert not graph.decline_connection_request(b, a)
    # The requester sees only that the request is gone.
    assert state(graph, a, b) == (False, False, False)
    assert graph.list_requests(a, False, 10, "").items == []
    second = graph.send_connection_request(a, b, "")
    assert second.created and second.request is not None and first.request is not None
    assert second.request.request_id != first.request.request_id
    declined = [e for e in events(storage, a) if e[0] is EventKind.CONNECTION_REQUEST_DECLINED]
    assert declined == [(EventKind.CONNECTION_REQUEST_DECLINED, b, a, Cause.REQUEST)]


# --------------------------------------------------------------------- C6


def fill(graph: Graph, user: Callable[[], str], owner: str, n: int) -> None:
    for _ in range(n):
        connect(graph, user(), owner)


def test_c6_a_user_at_the_limit_cannot_send_or_accept(graph: Graph, user: Callable[[], str]) -> None:
    full, other, asker = user(), user(), user()
    graph.send_connection_request(asker, full, "")  # pending: does not count
    fill(graph, user, full, CONNECTION_LIMIT)
    with refused(ConnectionLimitReached, Reason.CONNECTION_LIMIT_REACHED) as raised:
        graph.send_connection_request(full, other, "")
    assert raised.value.metadata == {"user_id": full, "limit": str(CONNECTION_LIMIT)}
    with refused(ConnectionLimitReached, Reason.CONNECTION_LIMIT_REACHED):
        graph.accept_connection_request(full, asker)
    with refused(ConnectionLimitReached, Reason.CONNECTION_LIMIT_REACHED) as raised:
        graph.send_connection_request(other, full, "")  # refused at once
    assert raised.value.user_id == full
    assert graph.get_counts([full])[0].connections == CONNECTION_LIMIT
    assert state(graph, full, other) == (False, False, False)
    assert state(graph, full, asker) == (False, False, True)


def test_c6_pending_requests_do_not_count(graph: Graph, user: Callable[[], str]) -> None:
    a = user()
    for _ in range(CONNECTION_LIMIT + 2):
        graph.send_connection_request(a, user(), "")
    fill(graph, user, a, CONNECTION_LIMIT)
    assert graph.get_counts([a])[0].connections == CONNECTION_LIMIT


def test_c6_removing_a_connection_makes_room(graph: Graph, user: Callable[[], str]) -> None:
    full, friend, newcomer = user(), user(), user()
    connect(graph, friend, full)
    fill(graph, user, full, CONNECTION_LIMIT - 1)
    graph.remove_connection(full, friend)
    connect(graph, newcomer, full)
    assert graph.get_counts([full])[0].connections == CONNECTION_LIMIT


# --------------------------------------------------------------------- C7


def test_c7_requests_are_rate_limited_and_no_op_requests_give_their_slot_back(
    storage: Storage, user: Callable[[], str]
) -> None:
    graph = Graph(storage, limiter("2/1h"), Policy(connection_limit=CONNECTION_LIMIT))
    a, b, c, foe = user(), user(), user(), user()
    graph.block(foe, a, "")
    graph.send_connection_request(a, b, "")
    graph.send_connection_request(a, b, "")  # a repeat creates nothing
    with refused(PermissionDenied, Reason.BLOCKED):
        graph.send_connection_request(a, foe, "")  # refused by a rule
    graph.send_connection_request(a, c, "")
    with refused(RateLimited, Reason.RATE_LIMITED) as raised:
        graph.send_connection_request(a, user(), "")
    assert (raised.value.user_id, raised.value.window.limit, raised.value.window.seconds) == (a, 2, 3600)
    assert 0 < raised.value.retry_after <= 3600
    assert graph.get_counts([a])[0].outgoing_requests == 2
    other = user()
    assert graph.send_connection_request(other, a, "").created  # per requester


# --------------------------------------------------------------------- C8


def test_c8_mutual_connections_count_and_users(storage: Storage, user: Callable[[], str]) -> None:
    graph = Graph(storage, limiter(), Policy(connection_limit=100))
    a, b = user(), user()
    shared = [user() for _ in range(4)]
    for other in shared:
        connect(graph, a, other)
        connect(graph, b, other)
    connect(graph, a, user())
    graph.follow(b, user())
    graph.upsert_user(User(shared[0], Role.MEMBER, "Sam", "https://s/1", 0))
    count, users = graph.mutual_connections(a, b, 2)
    assert count == 4
    assert [u.user_id for u in users] == [shared[3], shared[2]]
    _, every = graph.mutual_connections(b, a, 10)
    assert (every[-1].user_id, every[-1].display_name, every[-1].avatar_url) == (shared[0], "Sam", "https://s/1")
    assert graph.get_relationship(a, b).mutual_connections_count == 4
    with refused(InvalidArgument, Reason.SELF_RELATIONSHIP):
        graph.mutual_connections(a, a, 10)


@pytest.mark.parametrize("blocker", ["user", "other"])
def test_c8_mutual_connections_refused_while_either_blocks(graph: Graph, user: Callable[[], str], blocker: str) -> None:
    a, b = user(), user()
    graph.block(*((a, b) if blocker == "user" else (b, a)), "")
    with refused(PermissionDenied, Reason.BLOCKED):
        graph.mutual_connections(a, b, 10)
