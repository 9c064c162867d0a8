"""Keyset paging: newest first, no repeats, no skips of items that stay for
the whole walk, while others write to the list."""

from __future__ import annotations

import base64
import random
import zlib

import pytest
from grpc import StatusCode

from ratelimit import InProcessLimiter, parse_windows
from server.app import page_tokens
from server.rules import Graph, InvalidArgument, PageTokens, Policy, Reason
from server.settings import Settings
from socialgraph.v1 import social_graph_pb2 as pb
from storage.types import Cursor

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


def test_a_forged_token_for_another_users_list_is_refused(client, user):
    """A token made without the server's key, naming a position in a list
    the client was never given a token for, is refused."""

    victim, fan = user(), user()
    client.follow(fan, victim)
    checksum = f"{zlib.crc32(victim.encode()):08x}"
    raw = f"followers.{checksum}.{10**17}.{fan}".encode()
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        client.graph.ListFollowers(pb.ListFollowersRequest(user_id=victim, page_token=forged))


def test_an_edited_token_is_refused(client, user):
    a = user()
    for _ in range(3):
        client.follow(user(), a)
    token = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=a, page_size=1)).next_page_token
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[0] = ord("1") if raw[0] != ord("1") else ord("2")  # another position
    edited = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        client.graph.ListFollowers(pb.ListFollowersRequest(user_id=a, page_token=edited))


def test_tokens_signed_with_the_previous_key_are_accepted_after_rotation():
    old, rotated = PageTokens([b"old key"]), PageTokens([b"new key", b"old key"])
    cursor = Cursor(1_700_000_000_000_000, new_user())
    assert rotated.decode(old.encode("followers", "owner", cursor), "followers", "owner") == cursor
    # The first key signs: a server that only knows the old key refuses it.
    with pytest.raises(InvalidArgument, match="page token") as refused:
        old.decode(rotated.encode("followers", "owner", cursor), "followers", "owner")
    assert refused.value.reason == Reason.INVALID_PAGE_TOKEN
    with pytest.raises(InvalidArgument):
        PageTokens([b"new key"]).decode(old.encode("followers", "owner", cursor), "followers", "owner")


def test_every_process_on_a_database_shares_the_stored_key(storage):
    cursor = Cursor(1_700_000_000_000_000, new_user())
    first, second = page_tokens(Settings(), storage), page_tokens(Settings(), storage)
    assert second.decode(first.encode("feed", "owner", cursor), "feed", "owner") == cursor
    configured = page_tokens(Settings(page_token_key="k1, k0"), storage)
    with pytest.raises(InvalidArgument):
        configured.decode(first.encode("feed", "owner", cursor), "feed", "owner")
    assert PageTokens([b"k0", b"k1"]).decode(configured.encode("feed", "owner", cursor), "feed", "owner") == cursor
