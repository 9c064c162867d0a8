"""B6: the block record: reason, id, canonical ids."""

from __future__ import annotations

import uuid

from grpc import StatusCode

from ..support import raises
from .calls import (
    is_uuid7,
    list_blocked,
)


def test_block_reason_is_stored_and_listed(client, user):
    a, b = user(), user()
    response = client.block(a, b, reason="keeps sending spam")
    assert response.block.reason == "keeps sending spam"
    [listed] = list_blocked(client, a).blocks
    assert listed.reason == "keeps sending spam"
    assert listed == response.block


def test_block_reason_is_optional(client, user):
    a, b = user(), user()
    assert client.block(a, b).block.reason == ""
    assert list_blocked(client, a).blocks[0].reason == ""


def test_block_reason_of_500_characters_is_accepted(client, user):
    a, b = user(), user()
    reason = "r" * 500
    assert client.block(a, b, reason=reason).block.reason == reason
    assert list_blocked(client, a).blocks[0].reason == reason


def test_block_reason_length_counts_code_points(client, user):
    a, b = user(), user()
    reason = "\U0001f6ab" * 500  # 500 code points, 2,000 UTF-8 bytes
    assert client.block(a, b, reason=reason).block.reason == reason
    assert list_blocked(client, a).blocks[0].reason == reason


def test_block_reason_over_500_characters_is_refused(client, user):
    a, b = user(), user()
    client.follow(a, b)
    with raises(StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG") as raised:
        client.block(a, b, reason="r" * 501)
    assert raised.info.metadata["field"] == "reason"
    # The refused block changed nothing.
    assert client.relationship(a, b).following
    assert client.counts(a)[0].blocked == 0


def test_block_id_is_a_uuid7(client, user):
    a, b = user(), user()
    block = client.block(a, b).block
    assert is_uuid7(block.block_id)
    assert uuid.UUID(block.block_id).variant == uuid.RFC_4122


def test_block_ids_are_distinct(client, user):
    a = user()
    block_ids = {client.block(a, user()).block.block_id for _ in range(5)}
    assert len(block_ids) == 5
    assert all(is_uuid7(block_id) for block_id in block_ids)


def test_block_returns_canonical_ids(client, user):
    a, b = user(), user()
    block = client.block(a.upper(), b.upper()).block
    assert (block.blocker_id, block.blocked_id) == (a, b)
    assert list_blocked(client, a.upper()).blocks[0].blocked_id == b
