"""N1: ListFeedSources."""

from __future__ import annotations

import pytest

from .calls import (
    feed,
    feed_map,
    remove,
)


def test_followed_users_are_public_feed_sources(client, user):
    reader, author = user(), user()
    client.follow(reader, author)
    assert feed_map(client, reader) == {author: False}


def test_followers_are_not_feed_sources(client, user):
    reader, fan = user(), user()
    client.follow(fan, reader)
    assert feed_map(client, reader) == {}


def test_pending_request_gives_only_public_source(client, user):
    reader, author = user(), user()
    client.send(reader, author)  # auto-follow, not connected
    assert feed_map(client, reader) == {author: False}
    assert feed_map(client, author) == {}


def test_connected_and_following_includes_private_posts(client, user):
    a, b = user(), user()
    client.connect(a, b)
    assert feed_map(client, a) == {b: True}
    assert feed_map(client, b) == {a: True}


def test_unfollowing_a_connection_removes_it_from_sources(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.unfollow(a, b)
    assert feed_map(client, a) == {}
    assert feed_map(client, b) == {a: True}


def test_removing_connection_downgrades_source_to_public(client, user):
    a, b = user(), user()
    client.connect(a, b)
    remove(client, a, b)
    assert feed_map(client, a) == {b: False}


@pytest.mark.parametrize("blocker", ["reader", "author"])
def test_blocked_users_never_appear_in_feed_sources(client, user, blocker):
    reader, author, other = user(), user(), user()
    client.connect(reader, author)
    client.follow(reader, other)
    if blocker == "reader":
        client.block(reader, author)
    else:
        client.block(author, reader)
    assert feed_map(client, reader) == {other: False}
    assert author not in feed_map(client, reader)
    # unblocking restores nothing
    if blocker == "reader":
        client.unblock(reader, author)
    else:
        client.unblock(author, reader)
    assert author not in feed_map(client, reader)


def test_feed_sources_newest_follow_first(client, user):
    reader = user()
    authors = [user() for _ in range(4)]
    for author in authors:
        client.follow(reader, author)
    client.connect(reader, authors[1])  # connecting does not refresh an old follow
    sources = feed(client, reader).sources
    assert [s.author_id for s in sources] == authors[::-1]
    assert [s.include_private for s in sources] == [False, False, True, False]


def test_feed_sources_paging_by_one_walks_every_source_once(client, user):
    reader = user()
    authors = [user() for _ in range(4)]
    for author in authors:
        client.follow(reader, author)
    client.connect(reader, authors[0])
    seen, token = [], ""
    for _ in range(len(authors) + 2):
        page = feed(client, reader, page_size=1, token=token)
        assert len(page.sources) <= 1
        seen += [(s.author_id, s.include_private) for s in page.sources]
        token = page.next_page_token
        if not token:
            break
    assert token == ""
    assert [a for a, _ in seen] == authors[::-1]
    assert len(set(a for a, _ in seen)) == len(authors)
    assert dict(seen) == {authors[0]: True, authors[1]: False, authors[2]: False, authors[3]: False}
