"""B1: blocking, once or twice, never oneself."""

from __future__ import annotations

from grpc import StatusCode

from ..support import ZERO, counters, raises
from .calls import (
    blocked_ids,
)


def test_cannot_block_oneself(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.block(a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.block(a, a.upper())
    assert counters(client.counts(a)[0]) == ZERO


def test_block_creates_a_block(client, user):
    a, b = user(), user()
    response = client.block(a, b)
    assert response.created
    assert (response.block.blocker_id, response.block.blocked_id) == (a, b)
    assert response.block.created_at.ToMicroseconds() > 0
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (0, 0, 0)


def test_blocking_twice_returns_the_same_block(client, user):
    a, b = user(), user()
    first = client.block(a, b, reason="spam")
    again = client.block(a, b, reason="a different reason")
    assert not again.created
    assert again.block.block_id == first.block.block_id
    assert again.block.created_at == first.block.created_at
    assert again.block.reason == "spam"
    assert again.block == first.block
    assert (again.removed_follows, again.removed_connections, again.removed_requests) == (0, 0, 0)
    assert client.counts(a)[0].blocked == 1
    assert blocked_ids(client, a) == [b]


def test_blocking_twice_in_other_case_is_the_same_block(client, user):
    a, b = user(), user()
    first = client.block(a, b)
    again = client.block(a.upper(), b.upper())
    assert not again.created
    assert again.block.block_id == first.block.block_id
    assert (again.block.blocker_id, again.block.blocked_id) == (a, b)


def test_blocks_in_both_directions_are_separate(client, user):
    a, b = user(), user()
    assert client.block(a, b).created
    assert client.block(b, a).created
    rel = client.relationship(a, b)
    assert (rel.blocking, rel.blocked_by, rel.can_interact) == (True, True, False)
    [ca, cb] = client.counts(a, b)
    assert (ca.blocked, cb.blocked) == (1, 1)
