"""C1: no request to oneself or across a block; the request message."""

from __future__ import annotations

import pytest
from grpc import StatusCode

from ..support import raises
from .calls import (
    PENDING,
    cancel,
    decline,
    follows,
    incoming,
    outgoing,
    remove,
    tally,
)


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
