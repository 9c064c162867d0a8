"""Malformed block and relationship requests."""

from __future__ import annotations

from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import raises
from .calls import (
    filter_interactable,
    list_blocked,
)


def test_block_refuses_invalid_and_missing_ids(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID") as raised:
        client.block(a, "not-a-uuid")
    assert raised.info.metadata["field"] == "blocked_id"
    with raises(StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"):
        client.block("", a)


def test_list_blocked_refuses_bad_page_sizes(client, user):
    a = user()
    for size in (-1, 1001):
        with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE"):
            list_blocked(client, a, page_size=size)
    assert list(list_blocked(client, a, page_size=1000).blocks) == []


def test_list_blocked_refuses_a_token_from_another_list(client, user):
    star, fans = user(), [user(), user()]
    for fan in fans:
        client.follow(fan, star)
    token = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=star, page_size=1)).next_page_token
    assert token
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        list_blocked(client, star, page_token=token)


def test_filter_interactable_takes_at_most_1000_candidates(client, user):
    viewer = user()
    candidates = [user() for _ in range(1000)]
    assert filter_interactable(client, viewer, candidates) == candidates
    with raises(StatusCode.INVALID_ARGUMENT, "TOO_MANY_IDS"):
        filter_interactable(client, viewer, candidates + [user()])


def test_filter_interactable_refuses_an_invalid_candidate(client, user):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"):
        filter_interactable(client, user(), [user(), "bogus"])


def test_batch_relationships_take_1_to_100_ids(client, user):
    me = user()
    others = [user() for _ in range(100)]
    rels = client.graph.BatchGetRelationships(pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=others))
    assert [r.other_user_id for r in rels.relationships] == others
    with raises(StatusCode.INVALID_ARGUMENT, "TOO_MANY_IDS"):
        client.graph.BatchGetRelationships(
            pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=others + [user()])
        )
    with raises(StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"):
        client.graph.BatchGetRelationships(pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[]))


def test_counts_take_1_to_100_ids(client, user):
    ids_ = [user() for _ in range(100)]
    assert [c.user_id for c in client.counts(*ids_)] == ids_
    with raises(StatusCode.INVALID_ARGUMENT, "TOO_MANY_IDS"):
        client.counts(*ids_, user())
    with raises(StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"):
        client.counts()
