"""B3: staff cannot be blocked; promotion lifts blocks."""

from __future__ import annotations

from grpc import StatusCode

from ..support import raises
from .calls import (
    ADMIN,
    MEMBER,
    MODERATOR,
    blocked_ids,
    can_interact,
)


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
