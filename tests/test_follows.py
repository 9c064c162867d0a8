"""F1-F4 through the API, on every backend."""

from __future__ import annotations

from grpc import StatusCode

from socialgraph.v1 import social_graph_pb2 as pb

from .support import raises


def test_follow_is_instant_and_one_way(client, user):
    a, b = user(), user()
    response = client.follow(a, b)
    assert response.created
    assert response.since.seconds > 0
    ab, ba = client.relationship(a, b), client.relationship(b, a)
    assert (ab.following, ab.followed_by) == (True, False)
    assert (ba.following, ba.followed_by) == (False, True)
    [ca, cb] = client.counts(a, b)
    assert (ca.following, ca.followers, cb.following, cb.followers) == (1, 0, 0, 1)


def test_following_twice_is_not_an_error(client, user):
    a, b = user(), user()
    first = client.follow(a, b)
    again = client.follow(a, b)
    assert not again.created
    assert again.since == first.since
    assert client.counts(b)[0].followers == 1


def test_ids_are_accepted_in_any_case_and_returned_lowercase(client, user):
    a, b = user(), user()
    client.follow(a.upper(), b)
    page = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=b.upper()))
    assert [u.user_id for u in page.users] == [a]


def test_cannot_follow_oneself(client, user):
    a = user()
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.follow(a, a)
    with raises(StatusCode.INVALID_ARGUMENT, "SELF_RELATIONSHIP"):
        client.follow(a, a.upper())


def test_no_follow_while_either_blocks(client, user):
    a, b = user(), user()
    client.block(b, a)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.follow(a, b)
    with raises(StatusCode.PERMISSION_DENIED, "BLOCKED"):
        client.follow(b, a)
    assert client.counts(a, b)[0].following == 0


def test_unfollow_is_idempotent(client, user):
    a, b = user(), user()
    client.follow(a, b)
    assert client.unfollow(a, b) is True
    assert client.unfollow(a, b) is False
    assert not client.relationship(a, b).following
    assert client.counts(b)[0].followers == 0


def test_user_can_remove_a_follower_without_blocking(client, user):
    a, b = user(), user()
    client.follow(b, a)
    removed = client.graph.RemoveFollower(pb.RemoveFollowerRequest(user_id=a, follower_id=b))
    assert removed.removed
    rel = client.relationship(a, b)
    assert not rel.followed_by and not rel.blocking and rel.can_interact
    again = client.graph.RemoveFollower(pb.RemoveFollowerRequest(user_id=a, follower_id=b))
    assert not again.removed
    # b may follow again: removing a follower is not a block.
    assert client.follow(b, a).created


def test_followers_and_following_lists_are_newest_first(client, user):
    star, fans = user(), [user() for _ in range(4)]
    for fan in fans:
        client.follow(fan, star)
    followers = client.graph.ListFollowers(pb.ListFollowersRequest(user_id=star))
    assert [u.user_id for u in followers.users] == fans[::-1]
    assert followers.next_page_token == ""
    following = client.graph.ListFollowing(pb.ListFollowingRequest(user_id=fans[0]))
    assert [u.user_id for u in following.users] == [star]
    assert following.users[0].since.ToMicroseconds() > 0


def test_list_entries_carry_display_name_and_avatar(client, user):
    star, fan, anonymous = user(), user(), user()
    client.upsert(fan, display_name="Fan", avatar_url="https://example.test/fan.png")
    client.follow(fan, star)
    client.follow(anonymous, star)
    users = {u.user_id: u for u in client.graph.ListFollowers(pb.ListFollowersRequest(user_id=star)).users}
    assert (users[fan].display_name, users[fan].avatar_url) == ("Fan", "https://example.test/fan.png")
    assert (users[anonymous].display_name, users[anonymous].avatar_url) == ("", "")
