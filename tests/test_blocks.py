"""B1-B6 and the relationship read paths through the API, on every backend."""

from __future__ import annotations

import uuid

from grpc import StatusCode

from socialgraph.v1 import common_pb2
from socialgraph.v1 import social_graph_pb2 as pb

from .support import ZERO, counters, raises, zero

MEMBER, MODERATOR, ADMIN = common_pb2.ROLE_MEMBER, common_pb2.ROLE_MODERATOR, common_pb2.ROLE_ADMIN


# ---------------------------------------------------------------- helpers




def list_blocked(client, user_id: str, page_size: int = 0, page_token: str = ""):
    return client.graph.ListBlocked(
        pb.ListBlockedRequest(user_id=user_id, page_size=page_size, page_token=page_token)
    )


def blocked_ids(client, user_id: str) -> list[str]:
    return [b.blocked_id for b in list_blocked(client, user_id).blocks]


def followers(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListFollowers(pb.ListFollowersRequest(user_id=user_id, viewer_id=viewer_id))


def following(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListFollowing(pb.ListFollowingRequest(user_id=user_id, viewer_id=viewer_id))


def connections(client, user_id: str, viewer_id: str = ""):
    return client.graph.ListConnections(pb.ListConnectionsRequest(user_id=user_id, viewer_id=viewer_id))


LISTS = (followers, following, connections)


def ids(response) -> list[str]:
    return [u.user_id for u in response.users]


def can_interact(client, a: str, b: str) -> bool:
    return client.graph.CanInteract(pb.CanInteractRequest(user_id=a, other_user_id=b)).can_interact


def filter_interactable(client, viewer: str, candidates: list[str]) -> list[str]:
    return list(
        client.graph.FilterInteractable(
            pb.FilterInteractableRequest(user_id=viewer, candidate_ids=candidates)
        ).allowed_ids
    )


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and str(parsed) == value


def nothing_between(rel) -> bool:
    return not (
        rel.following
        or rel.followed_by
        or rel.connected
        or rel.outgoing_request_pending
        or rel.incoming_request_pending
    )


# ---------------------------------------------------------------- B1


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


# ---------------------------------------------------------------- B2


def test_block_removes_follows_both_ways_and_the_connection(client, user):
    a, b = user(), user()
    client.connect(a, b)  # connection plus follows both ways (auto-follow)
    response = client.block(a, b)
    assert response.created
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (2, 1, 0)
    assert nothing_between(client.relationship(a, b))
    assert nothing_between(client.relationship(b, a))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_the_blockers_outgoing_request_and_follow(client, user):
    a, b = user(), user()
    client.send(a, b)  # a follows b (auto-follow) and a request a -> b is pending
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (1, 0, 1)
    assert nothing_between(client.relationship(a, b))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_the_blockers_incoming_request_and_follows(client, user):
    a, b = user(), user()
    client.send(b, a)  # b follows a, request b -> a pending
    client.follow(a, b)
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (2, 0, 1)
    assert nothing_between(client.relationship(a, b))
    assert nothing_between(client.relationship(b, a))
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_removes_requests_from_the_lists(client, user):
    a, b = user(), user()
    client.send(b, a)
    client.block(a, b)
    incoming = client.graph.ListIncomingConnectionRequests(pb.ListIncomingConnectionRequestsRequest(user_id=a))
    outgoing = client.graph.ListOutgoingConnectionRequests(pb.ListOutgoingConnectionRequestsRequest(user_id=b))
    assert list(incoming.requests) == [] and list(outgoing.requests) == []


def test_block_removes_a_one_way_follow_of_the_blocked(client, user):
    a, b = user(), user()
    client.follow(b, a)
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (1, 0, 0)
    assert ids(followers(client, a)) == []
    assert ids(following(client, b)) == []


def test_block_between_strangers_removes_nothing(client, user):
    a, b = user(), user()
    response = client.block(a, b)
    assert (response.removed_follows, response.removed_connections, response.removed_requests) == (0, 0, 0)
    [ca, cb] = client.counts(a, b)
    assert counters(ca) == zero(blocked=1)
    assert counters(cb) == ZERO


def test_block_cascade_leaves_other_relationships_alone(client, user):
    a, b, c = user(), user(), user()
    client.connect(a, b)
    client.connect(a, c)
    client.block(a, b)
    rel = client.relationship(a, c)
    assert (rel.following, rel.followed_by, rel.connected) == (True, True, True)
    [ca, cc] = client.counts(a, c)
    assert counters(ca) == zero(followers=1, following=1, connections=1, blocked=1)
    assert counters(cc) == zero(followers=1, following=1, connections=1)
    assert ids(connections(client, a)) == [c]


def test_block_removes_the_connection_from_both_lists(client, user):
    a, b = user(), user()
    client.connect(a, b)
    client.block(b, a)
    assert ids(connections(client, a)) == []
    assert ids(connections(client, b)) == []
    assert ids(followers(client, a)) == [] and ids(following(client, a)) == []


# ---------------------------------------------------------------- B3


def test_moderator_cannot_be_blocked(client, user):
    a, moderator = user(), user()
    client.upsert(moderator, role=MODERATOR)
    with raises(StatusCode.PERMISSION_DENIED, "CANNOT_BLOCK_STAFF"):
        client.block(a, moderator)
    assert client.relationship(a, moderator).can_interact
    assert client.counts(a)[0].blocked == 0


def test_admin_cannot_be_blocked(client, user):
    a, admin = user(), user()
    client.upsert(admin, role=ADMIN)
    with raises(StatusCode.PERMISSION_DENIED, "CANNOT_BLOCK_STAFF"):
        client.block(a, admin)
    assert blocked_ids(client, a) == []


def test_refused_staff_block_removes_nothing(client, user):
    a, moderator = user(), user()
    client.upsert(moderator, role=MODERATOR)
    client.connect(a, moderator)
    with raises(StatusCode.PERMISSION_DENIED, "CANNOT_BLOCK_STAFF"):
        client.block(a, moderator)
    rel = client.relationship(a, moderator)
    assert (rel.following, rel.followed_by, rel.connected) == (True, True, True)


def test_registered_member_can_be_blocked(client, user):
    a, member = user(), user()
    client.upsert(member, role=MEMBER)
    assert client.block(a, member).created


def test_promoting_to_moderator_lifts_blocks_against_them(client, user):
    a, b, target = user(), user(), user()
    client.block(a, target)
    client.block(b, target)
    client.upsert(target, role=MODERATOR)
    for blocker in (a, b):
        rel = client.relationship(blocker, target)
        assert (rel.blocking, rel.can_interact) == (False, True)
        assert blocked_ids(client, blocker) == []
        assert client.counts(blocker)[0].blocked == 0
        assert can_interact(client, blocker, target)
    assert client.relationship(target, a).blocked_by is False


def test_promoting_to_admin_lifts_blocks_against_them(client, user):
    a, other, target = user(), user(), user()
    client.block(a, other)
    client.block(a, target)
    client.upsert(target, role=ADMIN)
    assert blocked_ids(client, a) == [other]
    assert client.counts(a)[0].blocked == 1
    assert not client.relationship(a, target).blocking


def test_promotion_keeps_blocks_the_promoted_user_made(client, user):
    target, member = user(), user()
    client.block(target, member)
    client.upsert(target, role=MODERATOR)
    assert blocked_ids(client, target) == [member]
    assert client.relationship(target, member).blocking


def test_after_promotion_the_former_blocked_can_follow_the_blocker(client, user):
    a, target = user(), user()
    client.block(a, target)
    client.upsert(target, role=MODERATOR)
    assert client.follow(target, a).created
    assert client.follow(a, target).created


def test_upserting_as_member_keeps_blocks_against_them(client, user):
    a, target = user(), user()
    client.block(a, target)
    client.upsert(target, role=MEMBER, display_name="Still a member")
    assert blocked_ids(client, a) == [target]
    assert client.counts(a)[0].blocked == 1


def test_demoting_does_not_restore_lifted_blocks(client, user):
    a, target = user(), user()
    client.block(a, target)
    client.upsert(target, role=MODERATOR)
    client.upsert(target, role=MEMBER)
    assert blocked_ids(client, a) == []
    assert client.relationship(a, target).can_interact
    # ...and they may be blocked again now that they are a member.
    assert client.block(a, target).created


def test_staff_can_block_a_member(client, user):
    moderator, admin, member = user(), user(), user()
    client.upsert(moderator, role=MODERATOR)
    client.upsert(admin, role=ADMIN)
    assert client.block(moderator, member).created
    assert client.block(admin, member).created
    assert client.relationship(member, moderator).blocked_by
    assert client.relationship(member, admin).blocked_by


# ---------------------------------------------------------------- B4


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


# ---------------------------------------------------------------- B5


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


# ---------------------------------------------------------------- B6


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


# ---------------------------------------------------------------- ListBlocked


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


# ---------------------------------------------------------------- GetRelationship


def test_relationship_shows_the_block_from_both_sides(client, user):
    a, b = user(), user()
    client.block(a, b)
    mine, theirs = client.relationship(a, b), client.relationship(b, a)
    assert (mine.other_user_id, mine.blocking, mine.blocked_by, mine.can_interact) == (b, True, False, False)
    assert (theirs.other_user_id, theirs.blocking, theirs.blocked_by, theirs.can_interact) == (a, False, True, False)
    assert nothing_between(mine) and nothing_between(theirs)


def test_relationship_without_a_block_can_interact(client, user):
    a, b = user(), user()
    rel = client.relationship(a, b)
    assert (rel.blocking, rel.blocked_by, rel.can_interact) == (False, False, True)
    assert nothing_between(rel)
    assert rel.mutual_connections_count == 0


def test_relationship_of_a_pending_request_from_both_sides(client, user):
    a, b = user(), user()
    client.send(a, b)
    mine, theirs = client.relationship(a, b), client.relationship(b, a)
    assert (mine.outgoing_request_pending, mine.incoming_request_pending, mine.following) == (True, False, True)
    assert (theirs.outgoing_request_pending, theirs.incoming_request_pending, theirs.followed_by) == (
        False,
        True,
        True,
    )


def test_relationship_returns_canonical_other_id(client, user):
    a, b = user(), user()
    assert client.relationship(a.upper(), b.upper()).other_user_id == b


def test_relationship_with_oneself_is_invalid(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.relationship(a, a)


def test_batch_relationships_in_request_order_with_repeats(client, user):
    me, blocked, blocker, friend, stranger = user(), user(), user(), user(), user()
    client.block(me, blocked)
    client.block(blocker, me)
    client.connect(me, friend)
    others = [friend, blocked, stranger, blocker, blocked, friend]
    response = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=others)
    )
    rels = list(response.relationships)
    assert [r.other_user_id for r in rels] == others
    by_position = [(r.blocking, r.blocked_by, r.can_interact, r.connected) for r in rels]
    assert by_position == [
        (False, False, True, True),
        (True, False, False, False),
        (False, False, True, False),
        (False, True, False, False),
        (True, False, False, False),
        (False, False, True, True),
    ]


def test_batch_relationships_match_get_relationship(client, user):
    me, a, b = user(), user(), user()
    client.send(me, a)
    client.block(b, me)
    rels = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a, b])
    ).relationships
    assert list(rels) == [client.relationship(me, a), client.relationship(me, b)]


def test_batch_relationships_return_canonical_ids(client, user):
    me, a = user(), user()
    rels = client.graph.BatchGetRelationships(
        pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a.upper(), a])
    ).relationships
    assert [r.other_user_id for r in rels] == [a, a]


def test_batch_relationships_refuse_self(client, user):
    me, a = user(), user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.graph.BatchGetRelationships(pb.BatchGetRelationshipsRequest(user_id=me, other_user_ids=[a, me]))


# ---------------------------------------------------------------- GetCounts


def test_counts_in_request_order_with_repeats(client, user):
    a, b, c = user(), user(), user()
    client.follow(a, b)
    client.block(c, a)
    counts = client.counts(b, a, c, b)
    assert [x.user_id for x in counts] == [b, a, c, b]
    assert counters(counts[0]) == zero(followers=1)
    assert counters(counts[1]) == zero(following=1)
    assert counters(counts[2]) == zero(blocked=1)
    assert counters(counts[3]) == zero(followers=1)


def test_counts_of_unknown_users_are_zero(client, user):
    known, unknown = user(), user()
    client.block(known, user())
    counts = client.counts(unknown, known, unknown)
    assert [x.user_id for x in counts] == [unknown, known, unknown]
    assert counters(counts[0]) == ZERO
    assert counters(counts[1]) == zero(blocked=1)
    assert counters(counts[2]) == ZERO


def test_counts_return_canonical_ids(client, user):
    a, b = user(), user()
    client.follow(a, b)
    [cb] = client.counts(b.upper())
    assert cb.user_id == b
    assert cb.followers == 1


# ---------------------------------------------------------------- request checks


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


def test_promotion_with_mutual_blocks_keeps_the_promoted_users_block(client, user):
    a, target = user(), user()
    client.block(a, target)
    client.block(target, a)
    client.upsert(target, role=ADMIN)
    rel = client.relationship(a, target)
    assert (rel.blocking, rel.blocked_by, rel.can_interact) == (False, True, False)
    assert not can_interact(client, a, target)
    [ca, ct] = client.counts(a, target)
    assert (ca.blocked, ct.blocked) == (0, 1)
