"""C5: after a decline the requester may ask again, and is not told."""

from __future__ import annotations

from socialgraph.v1 import social_graph_pb2 as pb

from .calls import (
    PENDING,
    cancel,
    decline,
    incoming,
    is_uuid7,
    outgoing,
    tally,
    without_other_id,
)


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
