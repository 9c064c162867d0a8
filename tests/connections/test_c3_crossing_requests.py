"""C3: crossing requests connect both users at once."""

from __future__ import annotations

from .calls import (
    CONNECTED,
    connections_page,
    incoming,
    outgoing,
    tally,
)


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
