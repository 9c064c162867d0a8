"""C2: send, accept, decline, cancel, remove; and their idempotency."""

from __future__ import annotations

import pytest
from grpc import StatusCode

from ..support import raises
from .calls import (
    CONNECTED,
    PENDING,
    cancel,
    connection_ids,
    connections_page,
    decline,
    incoming,
    is_uuid7,
    outgoing,
    remove,
    tally,
)


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
