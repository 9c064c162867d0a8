"""B5: unblocking restores nothing."""

from __future__ import annotations

from grpc import StatusCode

from ..support import ZERO, counters, raises
from .calls import (
    blocked_ids,
    connections,
    followers,
    ids,
    nothing_between,
)


def test_unblock_restores_nothing(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.block(a, b)
    assert client.unblock(a, b) is True
    for x, y in ((a, b), (b, a)):
        rel = client.relationship(x, y)
        assert nothing_between(rel)
        assert (rel.blocking, rel.blocked_by, rel.can_interact) == (False, False, True)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == ZERO
    assert counters(cb) == ZERO
    assert ids(connections(client, a)) == [] and ids(followers(client, a)) == []


def test_unblock_restores_no_pending_request(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.block(a, b)
    client.unblock(a, b)
    rel = client.relationship(a, b)
    assert not rel.incoming_request_pending
    assert client.counts(a)[0].incoming_requests == 0


def test_unblock_twice_returns_removed_false(client, user):
    a, b = user(), user()
    client.block(a, b)
    assert client.unblock(a, b) is True
    assert client.unblock(a, b) is False
    assert blocked_ids(client, a) == []
    assert client.counts(a)[0].blocked == 0


def test_unblock_without_a_block_returns_removed_false(client, user):
    a, b = user(), user()
    assert client.unblock(a, b) is False
    assert counters(client.counts(a)[0]) == ZERO


def test_unblock_by_the_blocked_user_does_nothing(client, user):
    a, b = user(), user()
    client.block(a, b)
    assert client.unblock(b, a) is False
    assert client.relationship(a, b).blocking


def test_unblock_oneself_is_invalid(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.unblock(a, a)


def test_after_unblock_users_may_follow_and_connect_again(client, user):
    a, b = user(), user()
    client.block(a, b)
    client.unblock(a, b)
    assert client.follow(b, a).created
    assert client.send(a, b).created


def test_block_after_unblock_is_a_new_block(client, user):
    a, b = user(), user()
    first = client.block(a, b)
    client.unblock(a, b)
    second = client.block(a, b)
    assert second.created
    assert second.block.block_id != first.block.block_id
