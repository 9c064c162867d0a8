"""GetRelationship and BatchGetRelationships."""

from __future__ import annotations

from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import raises
from .calls import (
    nothing_between,
)


def test_relationship_shows_the_block_from_both_sides(client, user):
    a, b = user(), user()
    client.block(a, b)
    mine, theirs = client.relationship(a, b), client.relationship(b, a)
    assert (mine.other_user_id, mine.blocking, mine.blocked_by, mine.can_interact) == (b, True, False, False)
    assert (theirs.other_user_id, theirs.blocking, theirs.blocked_by, theirs.can_interact) == (a, False, True, False)
    assert nothing_between(mine) and nothing_between(theirs)


def test_relationship_without_a_block_can_interact(client, user):
    a, b = user(), user()
    rel = client.relationship(a, b)
    assert (rel.blocking, rel.blocked_by, rel.can_interact) == (False, False, True)
    assert nothing_between(rel)
    assert rel.mutual_connections_count == 0


def test_relationship_of_a_pending_request_from_both_sides(client, user):
    a, b = user(), user()
    client.send(a, b)
    mine, theirs = client.relationship(a, b), client.relationship(b, a)
    assert (mine.outgoing_request_pending, mine.incoming_request_pending, mine.following) == (True, False, True)
    assert (theirs.outgoing_request_pending, theirs.incoming_request_pending, theirs.followed_by) == (
        False,
        True,
        True,
    )


def test_relationship_returns_canonical_other_id(client, user):
    a, b = user(), user()
    assert client.relationship(a.upper(), b.upper()).other_user_id == b


def test_relationship_with_oneself_is_invalid(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.relationship(a, a)


def test_batch_relationships_in_request_order_with_repeats(client, user):
    me, blocked, blocker, friend, stranger = user(), user(), user(), user(), user()
    client.block(me, blocked)
    client.block(blocker, me)
    client.connect(me, friend)
    others = [friend, blocked, stranger, blocker, blocked, friend]
    response = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=others)
    )
    rels = list(response.relationships)
    assert [r.other_user_id for r in rels] == others
    by_position = [(r.blocking, r.blocked_by, r.can_interact, r.connected) for r in rels]
    assert by_position == [
        (False, False, True, True),
        (True, False, False, False),
        (False, False, True, False),
        (False, True, False, False),
        (True, False, False, False),
        (False, False, True, True),
    ]


def test_batch_relationships_match_get_relationship(client, user):
    me, a, b = user(), user(), user()
    client.send(me, a)
    client.block(b, me)
    rels = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a, b])
    ).relationships
    assert list(rels) == [client.relationship(me, a), client.relationship(me, b)]


def test_batch_relationships_return_canonical_ids(client, user):
    me, a = user(), user()
    rels = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a.upper(), a])
    ).relationships
    assert [r.other_user_id for r in rels] == [a, a]


def test_batch_relationships_refuse_self(client, user):
    me, a = user(), user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.graph.BatchGetRelationships(pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a, me]))
