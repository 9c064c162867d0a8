"""B4: what a block forbids and hides."""

from __future__ import annotations

from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from ..support import ZERO, counters, raises, zero
from .calls import (
    LISTS,
    can_interact,
    connections,
    filter_interactable,
    followers,
    following,
    ids,
)


def test_blocked_user_cannot_follow_the_blocker(client, user):
    a, b = user(), user()
    client.block(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.follow(b, a)


def test_blocker_cannot_follow_the_blocked(client, user):
    a, b = user(), user()
    client.block(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.follow(a, b)
    assert counters(client.counts(a)[0]) == zero(blocked=1)


def test_blocked_user_cannot_send_a_connection_request(client, user):
    a, b = user(), user()
    client.block(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.send(b, a)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_blocker_cannot_send_a_connection_request(client, user):
    a, b = user(), user()
    client.block(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.send(a, b)
    assert not client.relationship(a, b).outgoing_request_pending


def test_mutual_connections_refused_while_blocked(client, user):
    a, b = user(), user()
    client.block(a, b)
    for x, y in ((a, b), (b, a)):
        with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
            client.graph.GetMutualConnections(pb.GetMutualConnectionsRequest(user_id=x, other_user_id=y))


def test_lists_refused_to_a_viewer_the_owner_blocks(client, user):
    owner, viewer, fan = user(), user(), user()
    client.connect(owner, fan)
    client.block(owner, viewer)
    for listing in LISTS:
        with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
            listing(client, owner, viewer_id=viewer)


def test_lists_refused_to_a_viewer_who_blocks_the_owner(client, user):
    owner, viewer, fan = user(), user(), user()
    client.connect(owner, fan)
    client.block(viewer, owner)
    for listing in LISTS:
        with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
            listing(client, owner, viewer_id=viewer)


def test_lists_refused_to_a_viewer_given_in_upper_case(client, user):
    owner, viewer = user(), user()
    client.block(owner, viewer)
    for listing in LISTS:
        with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
            listing(client, owner.upper(), viewer_id=viewer.upper())


def test_lists_allowed_again_after_unblock(client, user):
    owner, viewer, fan = user(), user(), user()
    client.connect(owner, fan)
    client.block(owner, viewer)
    client.unblock(owner, viewer)
    assert ids(followers(client, owner, viewer_id=viewer)) == [fan]
    assert ids(following(client, owner, viewer_id=viewer)) == [fan]
    assert ids(connections(client, owner, viewer_id=viewer)) == [fan]


def test_owner_viewing_own_lists_is_allowed(client, user):
    owner, fan = user(), user()
    client.connect(owner, fan)
    assert ids(followers(client, owner, viewer_id=owner)) == [fan]


def _owner_with_three_contacts(client, user):
    """owner is connected to (and followed both ways by) hidden_by_viewer,
    hiding_viewer and neutral; the viewer blocks the first, the second blocks
    the viewer."""
    owner, viewer = user(), user()
    blocked_by_viewer, blocks_viewer, neutral = user(), user(), user()
    for other in (blocked_by_viewer, blocks_viewer, neutral):
        client.connect(owner, other)
    client.block(viewer, blocked_by_viewer)
    client.block(blocks_viewer, viewer)
    return owner, viewer, blocked_by_viewer, blocks_viewer, neutral


def test_followers_list_leaves_out_users_blocked_either_way_with_the_viewer(client, user):
    owner, viewer, x, y, neutral = _owner_with_three_contacts(client, user)
    assert ids(followers(client, owner)) == [neutral, y, x]
    assert ids(followers(client, owner, viewer_id=viewer)) == [neutral]


def test_following_list_leaves_out_users_blocked_either_way_with_the_viewer(client, user):
    owner, viewer, x, y, neutral = _owner_with_three_contacts(client, user)
    assert ids(following(client, owner)) == [neutral, y, x]
    assert ids(following(client, owner, viewer_id=viewer)) == [neutral]


def test_connections_list_leaves_out_users_blocked_either_way_with_the_viewer(client, user):
    owner, viewer, x, y, neutral = _owner_with_three_contacts(client, user)
    assert ids(connections(client, owner)) == [neutral, y, x]
    assert ids(connections(client, owner, viewer_id=viewer)) == [neutral]


def test_viewer_list_paging_skips_hidden_users(client, user):
    owner, viewer, x, y, neutral = _owner_with_three_contacts(client, user)
    late = user()
    client.follow(late, owner)
    first = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=owner, viewer_id=viewer, page_size=1))
    assert ids(first) == [late]
    assert first.next_page_token
    second = client.graph.ListFollowers(
        pb.ListFollowersRequest(user_id=owner, viewer_id=viewer, page_size=1, page_token=first.next_page_token)
    )
    seen = ids(second)
    token = second.next_page_token
    while token:
        page = client.graph.ListFollowers(
            pb.ListFollowersRequest(user_id=owner, viewer_id=viewer, page_size=1, page_token=token)
        )
        seen += ids(page)
        token = page.next_page_token
    assert seen == [neutral]


def test_filter_interactable_drops_users_blocked_either_way(client, user):
    viewer, x, y, z = user(), user(), user(), user()
    client.block(viewer, x)
    client.block(y, viewer)
    assert filter_interactable(client, viewer, [x, y, z]) == [z]


def test_filter_interactable_keeps_order_and_duplicates(client, user):
    viewer, x, a, b, c = user(), user(), user(), user(), user()
    client.block(viewer, x)
    candidates = [c, a, x, b, a, x, c]
    assert filter_interactable(client, viewer, candidates) == [c, a, b, a, c]


def test_filter_interactable_keeps_the_viewer_itself(client, user):
    viewer, x, a = user(), user(), user()
    client.block(x, viewer)
    assert filter_interactable(client, viewer, [viewer, x, a, viewer]) == [viewer, a, viewer]


def test_filter_interactable_returns_canonical_ids(client, user):
    viewer, x, a = user(), user(), user()
    client.block(viewer, x)
    assert filter_interactable(client, viewer.upper(), [a.upper(), x.upper(), a]) == [a, a]


def test_filter_interactable_accepts_an_empty_list(client, user):
    viewer, x = user(), user()
    client.block(viewer, x)
    assert filter_interactable(client, viewer, []) == []


def test_filter_interactable_keeps_everyone_without_blocks(client, user):
    viewer = user()
    candidates = [user() for _ in range(5)]
    assert filter_interactable(client, viewer, candidates) == candidates


def test_filter_interactable_ignores_blocks_between_candidates(client, user):
    viewer, a, b = user(), user(), user()
    client.block(a, b)
    assert filter_interactable(client, viewer, [a, b]) == [a, b]


def test_can_interact_false_both_ways_while_blocked(client, user):
    a, b = user(), user()
    assert can_interact(client, a, b) and can_interact(client, b, a)
    client.block(a, b)
    assert not can_interact(client, a, b)
    assert not can_interact(client, b, a)
    client.unblock(a, b)
    assert can_interact(client, a, b) and can_interact(client, b, a)


def test_can_interact_refuses_self(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        can_interact(client, a, a)
