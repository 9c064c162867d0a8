"""Keyset paging: newest first, no repeats, no skips of items that stay for
the whole walk, while others write to the list."""

from __future__ import annotations

import random

import pytest
from grpc import StatusCode

from ratelimit import InProcessLimiter, parse_windows
from server.rules import Graph, Policy
from socialgraph.v1 import social_graph_pb2 as pb

from .support import new_user, raises


def walk_followers(client, star, page_size, between_pages=lambda: None):
    seen, token = [], ""
    while True:
        page = client.graph.ListFollowers(
            pb.ListFollowersRequest(user_id=star, page_size=page_size, page_token=token)
        )
        assert len(page.users) <= page_size
        seen.extend(u.user_id for u in page.users)
        token = page.next_page_token
        if not token:
            return seen
        between_pages()


def test_pages_cover_the_list_exactly_once_in_order(client, user):
    star, fans = user(), [user() for _ in range(23)]
    for fan in fans:
        client.follow(fan, star)
    assert walk_followers(client, star, 5) == fans[::-1]
    assert walk_followers(client, star, 23) == fans[::-1]
    assert walk_followers(client, star, 1000) == fans[::-1]


def test_concurrent_writes_never_repeat_or_skip_stable_items(client, user):
    star, fans = user(), [user() for _ in range(30)]
    for fan in fans:
        client.follow(fan, star)
    rng = random.Random(7)
    removable = fans[:]
    rng.shuffle(removable)
    removed, added = set(), []

    def churn():
        for _ in range(2):
            fan = removable.pop()
            client.unfollow(fan, star)
            removed.add(fan)
        newcomer = user()
        client.follow(newcomer, star)
        added.append(newcomer)
        # A removed follower coming back is a new follow: it may or may not be seen.
        client.follow(next(iter(removed)), star)

    seen = walk_followers(client, star, 4, churn)
    assert len(seen) == len(set(seen)), "an item came twice"
    stable = [fan for fan in fans if fan not in removed]
    assert [fan for fan in seen if fan in stable] == stable[::-1]
    assert not set(seen) & set(added), "items newer than the walk's start appear after the cursor"


def test_equal_timestamps_are_ordered_by_id_and_paged_exactly(storage):
    graph = Graph(storage, InProcessLimiter(parse_windows("1000/1h")), Policy(), clock=lambda: 1_700_000_000_000_000)
    star, fans = new_user(), [new_user() for _ in range(9)]
    for fan in fans:
        graph.follow(fan, star)
    seen, token = [], ""
    while True:
        page = graph.list_followers(star, 2, token, None)
        seen.extend(u.user_id for u in page.items)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(fans, reverse=True)


def test_a_token_is_valid_only_for_its_own_list(client, user):
    a = user()
    for _ in range(3):
        client.follow(a, user())
    token = client.graph.ListFollowing(pb.ListFollowingRequest(user_id=a, page_size=1)).next_page_token
    assert token
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        client.graph.ListFollowers(pb.ListFollowersRequest(user_id=a, page_token=token))
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        client.graph.ListConnections(pb.ListConnectionsRequest(user_id=a, page_token=token))


@pytest.mark.parametrize("token", ["x", "!!!!", "Zm9sbG93ZXJz", "Zm9sbG93ZXJzLjEuMi4z", "a" * 4000])
def test_garbage_tokens_are_refused(client, user, token):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        client.graph.ListFollowers(pb.ListFollowersRequest(user_id=user(), page_token=token))
