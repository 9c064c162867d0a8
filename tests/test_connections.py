"""C1-C6, C8, ListConnections and N1 (ListFeedSources) through the API, on
every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from grpc import StatusCode

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from socialgraph.v1 import social_graph_pb2 as pb

from .conftest import CONNECTION_LIMIT, RATE_LIMITS
from .support import Client, raises, serving

PENDING = pb.CONNECTION_STATE_PENDING
CONNECTED = pb.CONNECTION_STATE_CONNECTED


# -------------------------------------------------------------------- helpers


def decline(client: Client, recipient: str, requester: str) -> bool:
    return client.graph.DeclineConnectionRequest(
        pb.DeclineConnectionRequestRequest(recipient_id=recipient, requester_id=requester)
    ).removed


def cancel(client: Client, requester: str, recipient: str) -> bool:
    return client.graph.CancelConnectionRequest(
        pb.CancelConnectionRequestRequest(requester_id=requester, recipient_id=recipient)
    ).removed


def remove(client: Client, user_id: str, other: str) -> bool:
    return client.graph.RemoveConnection(
        pb.RemoveConnectionRequest(user_id=user_id, other_user_id=other)
    ).removed


def incoming(client: Client, user_id: str) -> list:
    return list(
        client.graph.ListIncomingConnectionRequests(
            pb.ListIncomingConnectionRequestsRequest(user_id=user_id)
        ).requests
    )


def outgoing(client: Client, user_id: str) -> list:
    return list(
        client.graph.ListOutgoingConnectionRequests(
            pb.ListOutgoingConnectionRequestsRequest(user_id=user_id)
        ).requests
    )


def connections_page(client: Client, user_id: str, viewer: str = "", page_size: int = 0, token: str = ""):
    return client.graph.ListConnections(
        pb.ListConnectionsRequest(user_id=user_id, viewer_id=viewer, page_size=page_size, page_token=token)
    )


def connection_ids(client: Client, user_id: str, viewer: str = "") -> list[str]:
    return [u.user_id for u in connections_page(client, user_id, viewer).users]


def mutual(client: Client, a: str, b: str, limit: int = 0) -> pb.GetMutualConnectionsResponse:
    return client.graph.GetMutualConnections(
        pb.GetMutualConnectionsRequest(user_id=a, other_user_id=b, limit=limit)
    )


def feed(client: Client, user_id: str, page_size: int = 0, token: str = "") -> pb.ListFeedSourcesResponse:
    return client.graph.ListFeedSources(
        pb.ListFeedSourcesRequest(user_id=user_id, page_size=page_size, page_token=token)
    )


def feed_map(client: Client, user_id: str) -> dict[str, bool]:
    return {s.author_id: s.include_private for s in feed(client, user_id).sources}


def tally(client: Client, *users: str) -> list[tuple[int, int, int]]:
    """(incoming_requests, outgoing_requests, connections) per user."""
    return [(c.incoming_requests, c.outgoing_requests, c.connections) for c in client.counts(*users)]


def follows(client: Client, a: str, b: str) -> bool:
    return client.relationship(a, b).following


def fill(client: Client, user_id: str, n: int, make_user) -> list[str]:
    """Connects ``user_id`` with ``n`` fresh users; returns them oldest first."""
    others = [make_user() for _ in range(n)]
    for other in others:
        client.connect(other, user_id)
    return others


def without_other_id(relationship) -> dict:
    return {f.name: v for f, v in relationship.ListFields() if f.name != "other_user_id"}


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return str(parsed) == value and parsed.version == 7 and value[14] == "7"


@pytest.fixture(scope="module")
def roomy_client(storage) -> Iterator[Client]:
    """Same database, a connection limit high enough for 11+ mutual connections."""
    graph = Graph(storage, InProcessLimiter(parse_windows(RATE_LIMITS)), Policy(connection_limit=100))
    with serving(graph) as client:
        yield client


@pytest.fixture(scope="module")
def no_follow_client(storage) -> Iterator[Client]:
    """Same database, auto-follow switched off."""
    policy = Policy(connection_limit=CONNECTION_LIMIT, auto_follow=False)
    graph = Graph(storage, InProcessLimiter(parse_windows(RATE_LIMITS)), policy)
    with serving(graph) as client:
        yield client


# ------------------------------------------------------------------------- C1


def test_cannot_request_oneself(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.send(a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.send(a, a.upper())
    assert tally(client, a) == [(0, 0, 0)]


def test_cannot_accept_decline_cancel_or_remove_oneself(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.accept(a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        decline(client, a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        cancel(client, a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        remove(client, a, a)


def test_no_request_to_a_user_who_blocks_the_requester(client, user):
    a, b = user(), user()
    client.block(b, a)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.send(a, b)


def test_no_request_to_a_user_the_requester_blocks(client, user):
    a, b = user(), user()
    client.block(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.send(a, b)


def test_refused_blocked_request_leaves_nothing_behind(client, user):
    a, b = user(), user()
    client.block(b, a)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.send(a, b)
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]
    assert outgoing(client, a) == [] and incoming(client, b) == []
    rel = client.relationship(a, b)
    assert not rel.following and not rel.outgoing_request_pending


def test_request_allowed_again_after_unblock(client, user):
    a, b = user(), user()
    client.block(b, a)
    client.unblock(b, a)
    response = client.send(a, b)
    assert (response.state, response.created) == (PENDING, True)


def test_block_removes_pending_request_so_it_cannot_be_accepted(client, user):
    a, b = user(), user()
    client.send(a, b)
    client.block(b, a)
    with raises(StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"):
        client.accept(b, a)
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]


def test_request_message_up_to_500_code_points_is_kept(client, user):
    a, b = user(), user()
    message = "é" * 499 + "😀"  # 500 code points, more bytes
    assert client.send(a, b, message).request.message == message
    assert incoming(client, b)[0].message == message


def test_request_message_over_500_code_points_is_refused(client, user):
    a, b = user(), user()
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG") as raised:
        client.send(a, b, "x" * 501)
    assert raised.info.metadata["field"] == "message"
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]
    assert not follows(client, a, b)


@pytest.mark.parametrize("field", ["requester_id", "recipient_id"])
def test_request_with_malformed_user_id_is_refused(client, user, field):
    ids = {"requester_id": user(), "recipient_id": user()}
    ids[field] = "not-a-uuid"
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID") as raised:
        client.send(ids["requester_id"], ids["recipient_id"])
    assert raised.info.metadata["field"] == field


# ------------------------------------------------------------------------- C2


def test_request_is_pending_with_uuid7_id_and_all_fields(client, user):
    a, b = user(), user()
    response = client.send(a, b, "hello there")
    assert response.state == PENDING
    assert response.created
    request = response.request
    assert is_uuid7(request.request_id), request.request_id
    assert (request.requester_id, request.recipient_id, request.message) == (a, b, "hello there")
    assert request.created_at.ToMicroseconds() > 0
    assert not response.HasField("connected_at")


def test_request_ids_are_returned_lowercase(client, user):
    a, b = user(), user()
    request = client.send(a.upper(), b.upper()).request
    assert (request.requester_id, request.recipient_id) == (a, b)


def test_request_appears_in_recipients_incoming_list(client, user):
    a, b = user(), user()
    sent = client.send(a, b, "hi").request
    assert incoming(client, b) == [sent]
    assert incoming(client, a) == []


def test_request_appears_in_requesters_outgoing_list(client, user):
    a, b = user(), user()
    sent = client.send(a, b, "hi").request
    assert outgoing(client, a) == [sent]
    assert outgoing(client, b) == []


def test_request_lists_are_newest_first(client, user):
    hub, others = user(), [user() for _ in range(3)]
    for other in others:
        client.send(other, hub)
    for _other in others:
        client.send(hub, user())  # outgoing noise does not show in incoming
    assert [r.requester_id for r in incoming(client, hub)] == others[::-1]
    assert len(outgoing(client, hub)) == 3


def test_pending_request_shows_in_relationship_from_both_sides(client, user):
    a, b = user(), user()
    client.send(a, b)
    ab, ba = client.relationship(a, b), client.relationship(b, a)
    assert (ab.outgoing_request_pending, ab.incoming_request_pending, ab.connected) == (True, False, False)
    assert (ba.outgoing_request_pending, ba.incoming_request_pending, ba.connected) == (False, True, False)


def test_sending_counts_outgoing_and_incoming_requests(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]


def test_recipient_accepts_and_users_are_connected(client, user):
    a, b = user(), user()
    client.send(a, b)
    accepted = client.accept(b, a)
    assert accepted.connected_at.ToMicroseconds() > 0
    assert client.relationship(a, b).connected and client.relationship(b, a).connected
    assert incoming(client, b) == [] and outgoing(client, a) == []
    assert tally(client, a, b) == [(0, 0, 1), (0, 0, 1)]


def test_connection_appears_in_both_members_lists(client, user):
    a, b = user(), user()
    client.send(a, b)
    connected_at = client.accept(b, a).connected_at
    [ua] = connections_page(client, a).users
    [ub] = connections_page(client, b).users
    assert (ua.user_id, ub.user_id) == (b, a)
    assert ua.since == connected_at and ub.since == connected_at


def test_requester_cannot_accept_their_own_request(client, user):
    a, b = user(), user()
    client.send(a, b)
    with raises(StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"):
        client.accept(a, b)
    assert not client.relationship(a, b).connected
    assert client.relationship(a, b).outgoing_request_pending
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]


def test_requester_cannot_decline_their_own_request(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert decline(client, a, b) is False
    assert client.relationship(a, b).outgoing_request_pending
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]


def test_recipient_cannot_cancel_the_request(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert cancel(client, b, a) is False
    assert client.relationship(b, a).incoming_request_pending
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]


def test_recipient_declines(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert decline(client, b, a) is True
    assert incoming(client, b) == [] and outgoing(client, a) == []
    assert not client.relationship(a, b).connected
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]


def test_requester_cancels(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert cancel(client, a, b) is True
    assert incoming(client, b) == [] and outgoing(client, a) == []
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]
    with raises(StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"):
        client.accept(b, a)


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_either_member_can_remove_the_connection(client, user, remover):
    a, b = user(), user()
    client.connect(a, b)
    me, other = (a, b) if remover == "requester" else (b, a)
    assert remove(client, me, other) is True
    assert not client.relationship(a, b).connected
    assert connection_ids(client, a) == [] and connection_ids(client, b) == []
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]


def test_counters_follow_every_step(client, user):
    a, b, c = user(), user(), user()
    client.send(a, b)
    client.send(a, c)
    client.send(c, b)
    assert tally(client, a, b, c) == [(0, 2, 0), (2, 0, 0), (1, 1, 0)]
    client.accept(b, a)
    assert tally(client, a, b, c) == [(0, 1, 1), (1, 0, 1), (1, 1, 0)]
    decline(client, b, c)
    assert tally(client, a, b, c) == [(0, 1, 1), (0, 0, 1), (1, 0, 0)]
    cancel(client, a, c)
    assert tally(client, a, b, c) == [(0, 0, 1), (0, 0, 1), (0, 0, 0)]
    client.send(c, a)
    client.accept(a, c)
    assert tally(client, a, b, c) == [(0, 0, 2), (0, 0, 1), (0, 0, 1)]
    remove(client, b, a)
    assert tally(client, a, b, c) == [(0, 0, 1), (0, 0, 0), (0, 0, 1)]
    remove(client, a, c)
    assert tally(client, a, b, c) == [(0, 0, 0), (0, 0, 0), (0, 0, 0)]


# ---------------------------------------------------------------- idempotency


def test_repeated_send_while_pending_returns_the_same_request(client, user):
    a, b = user(), user()
    first = client.send(a, b, "first")
    again = client.send(a, b, "second")
    assert (again.state, again.created) == (PENDING, False)
    assert again.request.request_id == first.request.request_id
    assert again.request == first.request
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]
    assert len(incoming(client, b)) == 1


def test_send_when_connected_returns_connected_with_connected_at(client, user):
    a, b = user(), user()
    client.send(a, b)
    connected_at = client.accept(b, a).connected_at
    for requester, recipient in ((a, b), (b, a)):
        again = client.send(requester, recipient)
        assert (again.state, again.created) == (CONNECTED, False)
        assert again.connected_at == connected_at
        assert not again.HasField("request")
    assert tally(client, a, b) == [(0, 0, 1), (0, 0, 1)]
    assert outgoing(client, a) == [] and outgoing(client, b) == []


def test_retried_accept_returns_the_same_connected_at(client, user):
    a, b = user(), user()
    client.send(a, b)
    first = client.accept(b, a)
    again = client.accept(b, a)
    assert again.connected_at == first.connected_at
    assert tally(client, a, b) == [(0, 0, 1), (0, 0, 1)]


def test_accept_without_request_is_request_not_found(client, user):
    a, b = user(), user()
    with raises(StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"):
        client.accept(b, a)
    assert tally(client, a, b) == [(0, 0, 0), (0, 0, 0)]


def test_accept_after_connection_removed_is_request_not_found(client, user):
    a, b = user(), user()
    client.connect(a, b)
    remove(client, a, b)
    with raises(StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND"):
        client.accept(b, a)


def test_decline_of_nothing_removes_nothing(client, user):
    a, b = user(), user()
    assert decline(client, b, a) is False


def test_cancel_of_nothing_removes_nothing(client, user):
    a, b = user(), user()
    assert cancel(client, a, b) is False


def test_remove_of_no_connection_removes_nothing(client, user):
    a, b = user(), user()
    assert remove(client, a, b) is False
    client.send(a, b)
    assert remove(client, a, b) is False  # a pending request is not a connection
    assert client.relationship(a, b).outgoing_request_pending


def test_second_decline_cancel_and_remove_report_nothing_removed(client, user):
    a, b, c, d = user(), user(), user(), user()
    client.send(a, b)
    assert decline(client, b, a) is True
    assert decline(client, b, a) is False
    client.send(a, c)
    assert cancel(client, a, c) is True
    assert cancel(client, a, c) is False
    client.connect(a, d)
    assert remove(client, d, a) is True
    assert remove(client, a, d) is False
    assert tally(client, a) == [(0, 0, 0)]


def test_decline_does_not_remove_a_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)
    assert decline(client, b, a) is False
    assert cancel(client, a, b) is False
    assert client.relationship(a, b).connected


# ------------------------------------------------------------------------- C3


def test_crossing_request_connects_both_at_once(client, user):
    a, b = user(), user()
    first = client.send(b, a)
    crossing = client.send(a, b)
    assert (crossing.state, crossing.created) == (CONNECTED, True)
    assert crossing.connected_at.ToMicroseconds() >= first.request.created_at.ToMicroseconds()
    assert not crossing.HasField("request")
    assert client.relationship(a, b).connected and client.relationship(b, a).connected


def test_crossing_request_leaves_no_pending_requests(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.send(a, b)
    assert incoming(client, a) == [] and incoming(client, b) == []
    assert outgoing(client, a) == [] and outgoing(client, b) == []
    rel = client.relationship(a, b)
    assert not rel.outgoing_request_pending and not rel.incoming_request_pending


def test_crossing_request_makes_both_follow_each_other(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.send(a, b)
    rel = client.relationship(a, b)
    assert rel.following and rel.followed_by
    [ca, cb] = client.counts(a, b)
    assert (ca.followers, ca.following, cb.followers, cb.following) == (1, 1, 1, 1)


def test_crossing_request_counters(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.send(a, b)
    assert tally(client, a, b) == [(0, 0, 1), (0, 0, 1)]


def test_crossing_connection_is_listed_with_its_time(client, user):
    a, b = user(), user()
    client.send(b, a)
    connected_at = client.send(a, b).connected_at
    assert [u.since for u in connections_page(client, a).users] == [connected_at]
    assert client.accept(a, b).connected_at == connected_at  # late accept: already connected


# ------------------------------------------------------------------------- C4


def test_sending_makes_requester_follow_recipient(client, user):
    a, b = user(), user()
    client.send(a, b)
    assert follows(client, a, b)
    assert not follows(client, b, a)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, cb.followers, ca.followers, cb.following) == (1, 1, 0, 0)


def test_accepting_makes_recipient_follow_requester(client, user):
    a, b = user(), user()
    client.send(a, b)
    client.accept(b, a)
    assert follows(client, b, a) and follows(client, a, b)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, ca.followers, cb.following, cb.followers) == (1, 1, 1, 1)


def test_sending_when_already_following_keeps_one_follow(client, user):
    a, b = user(), user()
    since = client.follow(a, b).since
    client.send(a, b)
    assert client.counts(b)[0].followers == 1
    assert not client.follow(a, b).created
    assert client.follow(a, b).since == since


def test_decline_does_not_unfollow(client, user):
    a, b = user(), user()
    client.send(a, b)
    decline(client, b, a)
    assert follows(client, a, b)
    assert not follows(client, b, a)


def test_cancel_does_not_unfollow(client, user):
    a, b = user(), user()
    client.send(a, b)
    cancel(client, a, b)
    assert follows(client, a, b)


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_remove_connection_does_not_unfollow(client, user, remover):
    a, b = user(), user()
    client.connect(a, b)
    me, other = (a, b) if remover == "requester" else (b, a)
    remove(client, me, other)
    assert follows(client, a, b) and follows(client, b, a)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, ca.followers, cb.following, cb.followers) == (1, 1, 1, 1)


def test_unfollowing_a_connection_keeps_the_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.unfollow(a, b)
    assert client.relationship(a, b).connected


def test_auto_follow_can_be_switched_off(no_follow_client, user):
    a, b, c, d = user(), user(), user(), user()
    assert no_follow_client.send(a, b).state == PENDING
    assert not follows(no_follow_client, a, b)
    no_follow_client.accept(b, a)
    rel = no_follow_client.relationship(a, b)
    assert rel.connected and not rel.following and not rel.followed_by
    # crossing requests connect without follows too
    no_follow_client.send(c, d)
    assert no_follow_client.send(d, c).state == CONNECTED
    rel = no_follow_client.relationship(c, d)
    assert rel.connected and not rel.following and not rel.followed_by
    assert [(x.following, x.followers) for x in no_follow_client.counts(a, b, c, d)] == [(0, 0)] * 4


# ------------------------------------------------------------------------- C5


def test_after_decline_requester_can_send_a_new_request(client, user):
    a, b = user(), user()
    first = client.send(a, b).request
    decline(client, b, a)
    again = client.send(a, b, "second try")
    assert (again.state, again.created) == (PENDING, True)
    assert again.request.request_id != first.request_id
    assert is_uuid7(again.request.request_id)
    assert again.request.message == "second try"
    assert incoming(client, b) == [again.request]
    assert tally(client, a, b) == [(0, 1, 0), (1, 0, 0)]


def test_after_decline_recipient_can_still_accept_the_new_request(client, user):
    a, b = user(), user()
    client.send(a, b)
    decline(client, b, a)
    client.send(a, b)
    client.accept(b, a)
    assert client.relationship(a, b).connected


def test_decline_is_invisible_to_requester_except_the_request_is_gone(client, user):
    a, b, c, d = user(), user(), user(), user()
    # a's request to b is declined; c's request to d is cancelled: a's view
    # of b must be indistinguishable from c's view of d.
    client.send(a, b)
    client.send(c, d)
    decline(client, b, a)
    cancel(client, c, d)
    declined, cancelled = client.relationship(a, b), client.relationship(c, d)
    assert not declined.outgoing_request_pending
    assert declined.can_interact and not declined.blocked_by and not declined.blocking
    assert declined.following and not declined.connected
    assert without_other_id(declined) == without_other_id(cancelled)
    assert outgoing(client, a) == []
    assert tally(client, a) == tally(client, c)
    assert client.graph.CanInteract(pb.CanInteractRequest(user_id=a, other_user_id=b)).can_interact


# ------------------------------------------------------------------------- C6


def test_user_at_limit_cannot_send(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(full, other)
    assert raised.info.metadata["user_id"] == full


def test_refused_send_at_limit_creates_nothing(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    before = client.counts(full, other)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(full, other)
    assert client.counts(full, other) == before
    assert not follows(client, full, other)
    assert incoming(client, other) == []


def test_user_at_limit_cannot_accept(client, user):
    full, other = user(), user()
    client.send(other, full)  # while full still has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.accept(full, other)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(full, other).connected
    assert client.relationship(full, other).incoming_request_pending
    assert tally(client, full, other) == [(1, 0, CONNECTION_LIMIT), (0, 1, 0)]


def test_others_cannot_send_to_a_user_at_limit(client, user):
    full, other = user(), user()
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(other, full)
    assert raised.info.metadata["user_id"] == full
    assert tally(client, other) == [(0, 0, 0)]


def test_others_cannot_accept_a_request_from_a_user_at_limit(client, user):
    full, other = user(), user()
    client.send(full, other)  # while full still has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.accept(other, full)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(other, full).connected
    assert tally(client, other)[0][2] == 0


def test_limit_is_reached_exactly_at_the_configured_number(client, user):
    hub = user()
    fill(client, hub, CONNECTION_LIMIT - 1, user)
    last = user()
    client.send(last, hub)
    client.accept(hub, last)  # the LIMIT-th connection is allowed
    assert tally(client, hub)[0][2] == CONNECTION_LIMIT
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(user(), hub)


def test_pending_requests_do_not_count_toward_the_limit(client, user):
    hub = user()
    targets = [user() for _ in range(CONNECTION_LIMIT)]
    askers = [user() for _ in range(CONNECTION_LIMIT)]
    for target in targets:
        client.send(hub, target)
    for asker in askers:
        client.send(asker, hub)
    assert tally(client, hub) == [(CONNECTION_LIMIT, CONNECTION_LIMIT, 0)]
    # with LIMIT pending each way and no connections, hub still sends and accepts
    assert client.send(hub, user()).created
    for asker in askers:
        client.accept(hub, asker)
    assert tally(client, hub)[0][2] == CONNECTION_LIMIT


def test_connected_users_at_limit_still_get_idempotent_answers(client, user):
    full = user()
    [buddy, *_] = fill(client, full, CONNECTION_LIMIT, user)
    again = client.send(full, buddy)
    assert (again.state, again.created) == (CONNECTED, False)
    assert client.accept(full, buddy).connected_at == again.connected_at


def test_after_remove_connection_user_at_limit_can_connect_again(client, user):
    full, newcomer = user(), user()
    [first, *_] = fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED"):
        client.send(newcomer, full)
    assert remove(client, full, first) is True
    assert client.send(newcomer, full).created
    client.accept(full, newcomer)
    assert tally(client, full)[0][2] == CONNECTION_LIMIT
    assert newcomer in connection_ids(client, full)


def test_crossing_request_checks_the_senders_limit(client, user):
    full, other = user(), user()
    client.send(other, full)  # pending while full has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(full, other)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(full, other).connected
    assert client.relationship(full, other).incoming_request_pending  # nothing changed


def test_crossing_request_checks_the_other_users_limit(client, user):
    full, other = user(), user()
    client.send(full, other)  # pending while full has room
    fill(client, full, CONNECTION_LIMIT, user)
    with raises(StatusCode.RESOURCE_EXHAUSTED, "CONNECTION_LIMIT_REACHED") as raised:
        client.send(other, full)
    assert raised.info.metadata["user_id"] == full
    assert not client.relationship(other, full).connected
    assert tally(client, other) == [(1, 0, 0)]


# ------------------------------------------------------------------------- C8


def test_mutual_connections_count_and_users(client, user):
    a, b = user(), user()
    shared = [user(), user()]
    for s in shared:
        client.connect(s, a)
        client.connect(s, b)
    client.connect(user(), a)  # a's only
    client.connect(user(), b)  # b's only
    response = mutual(client, a, b)
    assert response.count == 2
    assert sorted(u.user_id for u in response.users) == sorted(shared)
    assert all(u.since.ToMicroseconds() > 0 for u in response.users)


def test_mutual_connections_are_symmetric_in_count(client, user):
    a, b, s = user(), user(), user()
    client.connect(s, a)
    client.connect(s, b)
    assert mutual(client, a, b).count == mutual(client, b, a).count == 1


def test_mutual_connections_ignore_follows_and_pending_requests(client, user):
    a, b, f, p = user(), user(), user(), user()
    client.follow(f, a)
    client.follow(f, b)
    client.connect(f, a)  # connected to a only; follows b
    client.send(p, a)
    client.send(p, b)  # pending with both
    response = mutual(client, a, b)
    assert (response.count, list(response.users)) == (0, [])


def test_mutual_connections_users_newest_connection_with_user_first(client, user):
    a, b = user(), user()
    shared = [user() for _ in range(3)]
    for s in shared:
        client.connect(s, b)
    for s in shared:
        client.connect(s, a)
    assert [u.user_id for u in mutual(client, a, b).users] == shared[::-1]


def test_mutual_connections_carry_display_name_and_avatar(client, user):
    a, b, named, anonymous = user(), user(), user(), user()
    client.upsert(named, display_name="Named", avatar_url="https://example.test/n.png")
    for s in (named, anonymous):
        client.connect(s, a)
        client.connect(s, b)
    users = {u.user_id: u for u in mutual(client, a, b).users}
    assert (users[named].display_name, users[named].avatar_url) == ("Named", "https://example.test/n.png")
    assert (users[anonymous].display_name, users[anonymous].avatar_url) == ("", "")


def test_mutual_connections_default_limit_is_ten(roomy_client, user):
    a, b = user(), user()
    shared = [user() for _ in range(12)]
    for s in shared:
        roomy_client.connect(s, a)
        roomy_client.connect(s, b)
    response = mutual(roomy_client, a, b)
    assert response.count == 12
    assert len(response.users) == 10
    assert [u.user_id for u in response.users] == shared[::-1][:10]
    assert roomy_client.relationship(a, b).mutual_connections_count == 12


def test_mutual_connections_explicit_limit_keeps_full_count(client, user):
    a, b = user(), user()
    shared = [user() for _ in range(4)]
    for s in shared:
        client.connect(s, a)
        client.connect(s, b)
    response = mutual(client, a, b, limit=2)
    assert response.count == 4
    assert [u.user_id for u in response.users] == shared[::-1][:2]
    assert len(mutual(client, a, b, limit=100).users) == 4


def test_mutual_connections_limit_above_100_is_invalid(client, user):
    a, b = user(), user()
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE"):
        mutual(client, a, b, limit=101)
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE"):
        mutual(client, a, b, limit=-1)


@pytest.mark.parametrize("blocker", ["user", "other"])
def test_mutual_connections_refused_while_either_blocks(client, user, blocker):
    a, b, s = user(), user(), user()
    client.connect(s, a)
    client.connect(s, b)
    if blocker == "user":
        client.block(a, b)
    else:
        client.block(b, a)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        mutual(client, a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        mutual(client, b, a)


def test_mutual_connections_of_oneself_is_invalid(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        mutual(client, a, a)


def test_relationship_mutual_count_agrees(client, user):
    a, b = user(), user()
    shared = [user() for _ in range(3)]
    for s in shared:
        client.connect(s, a)
        client.connect(s, b)
    assert client.relationship(a, b).mutual_connections_count == 3
    assert client.relationship(b, a).mutual_connections_count == 3
    remove(client, shared[0], b)
    assert mutual(client, a, b).count == 2
    assert client.relationship(a, b).mutual_connections_count == 2
    [batched] = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=a, other_user_ids=[b])
    ).relationships
    assert batched.mutual_connections_count == 2


# ------------------------------------------------------------ ListConnections


def test_list_connections_newest_first_with_since(client, user):
    hub = user()
    others = [user() for _ in range(4)]
    times = []
    for other in others:
        client.send(other, hub)
        times.append(client.accept(hub, other).connected_at)
    page = connections_page(client, hub)
    assert [u.user_id for u in page.users] == others[::-1]
    assert [u.since for u in page.users] == times[::-1]
    assert page.next_page_token == ""


def test_list_connections_pages_without_repeats(client, user):
    hub = user()
    others = fill(client, hub, CONNECTION_LIMIT, user)
    seen, token = [], ""
    while True:
        page = connections_page(client, hub, page_size=2, token=token)
        assert len(page.users) <= 2
        seen += [u.user_id for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == others[::-1]


def test_list_connections_carry_display_name_and_avatar(client, user):
    hub, named = user(), user()
    client.upsert(named, display_name="Named", avatar_url="https://example.test/a.png")
    client.connect(named, hub)
    [entry] = connections_page(client, hub).users
    assert (entry.display_name, entry.avatar_url) == ("Named", "https://example.test/a.png")


def test_list_connections_viewer_blocked_by_owner_is_refused(client, user):
    owner, viewer = user(), user()
    client.connect(user(), owner)
    client.block(owner, viewer)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        connections_page(client, owner, viewer=viewer)


def test_list_connections_viewer_blocking_owner_is_refused(client, user):
    owner, viewer = user(), user()
    client.connect(user(), owner)
    client.block(viewer, owner)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        connections_page(client, owner, viewer=viewer)


def test_list_connections_leaves_out_users_blocked_with_viewer(client, user):
    owner, viewer = user(), user()
    visible, blocked_by_viewer, blocking_viewer = user(), user(), user()
    for other in (visible, blocked_by_viewer, blocking_viewer):
        client.connect(other, owner)
    client.block(viewer, blocked_by_viewer)
    client.block(blocking_viewer, viewer)
    assert connection_ids(client, owner, viewer=viewer) == [visible]
    # without a viewer, and for the owner themself, everyone is listed
    assert len(connection_ids(client, owner)) == 3
    assert len(connection_ids(client, owner, viewer=owner)) == 3


def test_list_connections_unrelated_viewer_sees_everything(client, user):
    owner, viewer = user(), user()
    others = fill(client, owner, 2, user)
    assert connection_ids(client, owner, viewer=viewer) == others[::-1]


# ---------------------------------------------------------- N1 feed sources


def test_followed_users_are_public_feed_sources(client, user):
    reader, author = user(), user()
    client.follow(reader, author)
    assert feed_map(client, reader) == {author: False}


def test_followers_are_not_feed_sources(client, user):
    reader, fan = user(), user()
    client.follow(fan, reader)
    assert feed_map(client, reader) == {}


def test_pending_request_gives_only_public_source(client, user):
    reader, author = user(), user()
    client.send(reader, author)  # auto-follow, not connected
    assert feed_map(client, reader) == {author: False}
    assert feed_map(client, author) == {}


def test_connected_and_following_includes_private_posts(client, user):
    a, b = user(), user()
    client.connect(a, b)
    assert feed_map(client, a) == {b: True}
    assert feed_map(client, b) == {a: True}


def test_unfollowing_a_connection_removes_it_from_sources(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.unfollow(a, b)
    assert feed_map(client, a) == {}
    assert feed_map(client, b) == {a: True}


def test_removing_connection_downgrades_source_to_public(client, user):
    a, b = user(), user()
    client.connect(a, b)
    remove(client, a, b)
    assert feed_map(client, a) == {b: False}


@pytest.mark.parametrize("blocker", ["reader", "author"])
def test_blocked_users_never_appear_in_feed_sources(client, user, blocker):
    reader, author, other = user(), user(), user()
    client.connect(reader, author)
    client.follow(reader, other)
    if blocker == "reader":
        client.block(reader, author)
    else:
        client.block(author, reader)
    assert feed_map(client, reader) == {other: False}
    assert author not in feed_map(client, reader)
    # unblocking restores nothing
    if blocker == "reader":
        client.unblock(reader, author)
    else:
        client.unblock(author, reader)
    assert author not in feed_map(client, reader)


def test_feed_sources_newest_follow_first(client, user):
    reader = user()
    authors = [user() for _ in range(4)]
    for author in authors:
        client.follow(reader, author)
    client.connect(reader, authors[1])  # connecting does not refresh an old follow
    sources = feed(client, reader).sources
    assert [s.author_id for s in sources] == authors[::-1]
    assert [s.include_private for s in sources] == [False, False, True, False]


def test_feed_sources_paging_by_one_walks_every_source_once(client, user):
    reader = user()
    authors = [user() for _ in range(4)]
    for author in authors:
        client.follow(reader, author)
    client.connect(reader, authors[0])
    seen, token = [], ""
    for _ in range(len(authors) + 2):
        page = feed(client, reader, page_size=1, token=token)
        assert len(page.sources) <= 1
        seen += [(s.author_id, s.include_private) for s in page.sources]
        token = page.next_page_token
        if not token:
            break
    assert token == ""
    assert [a for a, _ in seen] == authors[::-1]
    assert len(set(a for a, _ in seen)) == len(authors)
    assert dict(seen) == {authors[0]: True, authors[1]: False, authors[2]: False, authors[3]: False}
