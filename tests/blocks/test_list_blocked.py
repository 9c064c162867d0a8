"""ListBlocked: order and paging."""

from __future__ import annotations

from grpc import StatusCode

from ..support import raises
from .calls import (
    blocked_ids,
    list_blocked,
)


def test_list_blocked_is_newest_first(client, user):
    a = user()
    targets = [user() for _ in range(4)]
    for target in targets:
        client.block(a, target)
    page = list_blocked(client, a)
    assert [b.blocked_id for b in page.blocks] == targets[::-1]
    assert all(b.blocker_id == a for b in page.blocks)
    times = [b.created_at.ToMicroseconds() for b in page.blocks]
    assert times == sorted(times, reverse=True)
    assert page.next_page_token == ""


def test_list_blocked_lists_only_the_users_own_blocks(client, user):
    a, b, c = user(), user(), user()
    client.block(a, b)
    client.block(c, a)
    assert blocked_ids(client, a) == [b]
    assert blocked_ids(client, b) == []


def test_list_blocked_pages_of_one_walk_every_block_once(client, user):
    a = user()
    targets = [user() for _ in range(5)]
    made = [client.block(a, target).block for target in targets]
    seen, token, pages = [], "", 0
    while True:
        page = list_blocked(client, a, page_size=1, page_token=token)
        pages += 1
        assert len(page.blocks) <= 1
        seen.extend(page.blocks)
        token = page.next_page_token
        if not token:
            break
        assert pages <= len(targets)
    assert [b.block_id for b in seen] == [b.block_id for b in made[::-1]]
    assert len({b.block_id for b in seen}) == len(targets)


def test_list_blocked_pages_of_two(client, user):
    a = user()
    targets = [user() for _ in range(3)]
    for target in targets:
        client.block(a, target)
    first = list_blocked(client, a, page_size=2)
    assert [b.blocked_id for b in first.blocks] == [targets[2], targets[1]]
    assert first.next_page_token
    second = list_blocked(client, a, page_size=2, page_token=first.next_page_token)
    assert [b.blocked_id for b in second.blocks] == [targets[0]]
    assert second.next_page_token == ""


def test_list_blocked_exact_page_ends_with_empty_token(client, user):
    a, b = user(), user()
    client.block(a, b)
    page = list_blocked(client, a, page_size=1)
    assert [x.blocked_id for x in page.blocks] == [b]
    if page.next_page_token:
        rest = list_blocked(client, a, page_size=1, page_token=page.next_page_token)
        assert list(rest.blocks) == [] and rest.next_page_token == ""


def test_list_blocked_empty(client, user):
    page = list_blocked(client, user())
    assert list(page.blocks) == [] and page.next_page_token == ""


def test_list_blocked_after_unblock_leaves_it_out(client, user):
    a, b, c = user(), user(), user()
    client.block(a, b)
    client.block(a, c)
    client.unblock(a, b)
    assert blocked_ids(client, a) == [c]


def test_list_blocked_bad_token_is_invalid(client, user):
    with raises(StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"):
        list_blocked(client, user(), page_token="not-a-token")
