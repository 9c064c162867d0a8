"""C8: mutual connections."""

from __future__ import annotations

import pytest
from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import raises
from .calls import (
    mutual,
    remove,
)


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
