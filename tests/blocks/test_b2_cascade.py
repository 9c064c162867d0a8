"""B2: a block removes every edge between the two users."""

from __future__ import annotations

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import ZERO, counters, zero
from .calls import (
    connections,
    followers,
    following,
    ids,
    nothing_between,
)


def test_block_removes_follows_both_ways_and_the_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)  # connection plus follows both ways (auto-follow)
    response = client.block(a, b)
    assert response.created
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (2, 1, 0)
    assert nothing_between(client.relationship(a, b))
    assert nothing_between(client.relationship(b, a))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_the_blockers_outgoing_request_and_follow(client, user):
    a, b = user(), user()
    client.send(a, b)  # a follows b (auto-follow) and a request a -> b is pending
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (1, 0, 1)
    assert nothing_between(client.relationship(a, b))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_the_blockers_incoming_request_and_follows(client, user):
    a, b = user(), user()
    client.send(b, a)  # b follows a, request b -> a pending
    client.follow(a, b)
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (2, 0, 1)
    assert nothing_between(client.relationship(a, b))
    assert nothing_between(client.relationship(b, a))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_requests_from_the_lists(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.block(a, b)
    incoming = client.graph.ListIncomingConnectionRequests(pb.ListIncomingConnectionRequestsRequest(user_id=a))
    outgoing = client.graph.ListOutgoingConnectionRequests(pb.ListOutgoingConnectionRequestsRequest(user_id=b))
    assert list(incoming.requests) == [] and list(outgoing.requests) == []


def test_block_removes_a_one_way_follow_of_the_blocked(client, user):
    a, b = user(), user()
    client.follow(b, a)
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (1, 0, 0)
    assert ids(followers(client, a)) == []
    assert ids(following(client, b)) == []


def test_block_between_strangers_removes_nothing(client, user):
    a, b = user(), user()
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (0, 0, 0)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_cascade_leaves_other_relationships_alone(client, user):
    a, b, c = user(), user(), user()
    client.connect(a, b)
    client.connect(a, c)
    client.block(a, b)
    rel = client.relationship(a, c)
    assert (rel.following, rel.followed_by, rel.connected) == (True, True, True)
    [ca, cc] = client.counts(a, c)
    assert counters(ca) == zero(followers=1, following=1, connections=1, blocked=1)
    assert counters(cc) == zero(followers=1, following=1, connections=1)
    assert ids(connections(client, a)) == [c]


def test_block_removes_the_connection_from_both_lists(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.block(b, a)
    assert ids(connections(client, a)) == []
    assert ids(connections(client, b)) == []
    assert ids(followers(client, a)) == [] and ids(following(client, a)) == []
